"""Pooling with every torch option — avg_pool's ceil_mode, count_include_pad and divisor_override,
max_pool's padding, dilation and ceil_mode — derived from the definitions in symgrad/ops/pool.py
and held to PyTorch's own functions on seeded random configurations."""
import random

import numpy as np
import pytest

import symgrad
from symgrad.ir import SymgradError
from conftest import needs_torch, sliced


def _window(rng, ndim, dilated=False):
    kernel = [rng.randint(1, 4) for _ in range(ndim)]
    dilation = [rng.randint(1, 2) if dilated else 1 for _ in range(ndim)]
    stride = [rng.randint(1, 3) for _ in range(ndim)]
    padding = [rng.randint(0, k // 2) for k in kernel]  # (torch: of the kernel size, whatever the dilation)
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    lengths = [rng.randint(max(1, s - 2 * p), s + 6) for s, p in zip(span, padding)]
    return kernel, stride, padding, dilation, lengths


def avg_configs(count=36, seed=11):
    rng, out = random.Random(seed), []
    for k in range(count):
        ndim = 1 + k % 3
        kernel, stride, padding, _, lengths = _window(rng, ndim)
        params = {"kernel_size": kernel, "stride": stride, "padding": padding, "ceil_mode": rng.random() < 0.6}
        if rng.random() < 0.25:
            params["divisor_override"] = rng.choice([1, 3, -2, 7])
        else:
            params["count_include_pad"] = rng.random() < 0.4
        out.append((f"avg_pool{ndim}d", params, (rng.randint(1, 2), rng.randint(1, 3), *lengths)))
    return out


def max_configs(count=18, seed=12):
    rng, out = random.Random(seed), []
    for k in range(count):
        ndim = 1 + k % 3
        kernel, stride, padding, dilation, lengths = _window(rng, ndim, dilated=True)
        params = {"kernel_size": kernel, "stride": stride, "padding": padding, "dilation": dilation,
                  "ceil_mode": rng.random() < 0.5}
        out.append((f"max_pool{ndim}d", params, (rng.randint(1, 2), rng.randint(1, 3), *lengths)))
    return out


def _torch_or_skip(op, x, g):
    from symgrad.verify.reference import torch_reference
    want = torch_reference(op, {"x": x}, g)
    if want is None:
        pytest.skip("PyTorch refuses this shape")
    return want


@needs_torch
@pytest.mark.parametrize("name,params,shape", sliced(avg_configs() + max_configs(), 3))
def test_pooling_matches_torch(name, params, shape):
    """Forward and gradient of the emitted module equal torch's to 1e-12 (a random configuration)."""
    import torch.nn.functional as F
    import torch
    op = symgrad.ops.build(name, **params)
    module = symgrad.module(op)
    x = np.random.default_rng(len(shape)).standard_normal(shape)
    try:
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items() if k != "divisor_override"}
        fn = getattr(F, name)
        fn(torch.tensor(x), **kw)
    except RuntimeError:
        pytest.skip("PyTorch refuses this shape")
    y = module.forward(x)
    if np.isinf(y).any():  # a dilated window with no position inside the input: its maximum is -inf, which
        pytest.skip("a window without input positions (tests/test_pooling.py's own test)")  # no gradient reaches
    g = np.random.default_rng(7).standard_normal(y.shape)
    want_y, (want_dx,) = _torch_or_skip(op, x, g)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(module.backward(g, x)[0], want_dx, rtol=1e-12, atol=1e-12)


@needs_torch
def test_ceil_mode_last_window_is_clipped_and_divided_by_its_size():
    """ceil_mode adds a window that runs past the padded input: torch divides it by the positions it
    covers there (3 of them: x[8], x[9] and the right padding), not the kernel's 4."""
    op = symgrad.ops.build("avg_pool1d", kernel_size=4, stride=3, padding=1, ceil_mode=True)
    module = symgrad.module(op)
    x = np.arange(10.0).reshape(1, 1, 10)
    y = module.forward(x)
    assert y.shape == (1, 1, 4)
    assert y[0, 0, -1] == pytest.approx((8 + 9) / 3)
    assert y[0, 0, 0] == pytest.approx((0 + 1 + 2) / 4)


def test_count_include_pad_false_divides_by_the_inputs_positions():
    op = symgrad.ops.build("avg_pool1d", kernel_size=3, stride=1, padding=1, count_include_pad=False)
    module = symgrad.module(op)
    y = module.forward(np.array([[[3.0, 5.0, 7.0]]]))
    np.testing.assert_allclose(y, [[[4.0, 5.0, 6.0]]])


def test_max_pool_gradient_goes_to_the_maximum():
    module = symgrad.module(symgrad.ops.build("max_pool1d", kernel_size=2, stride=2))
    x = np.array([[[1.0, 4.0, 3.0, 2.0]]])
    np.testing.assert_allclose(module.forward(x), [[[4.0, 3.0]]])
    np.testing.assert_allclose(module.backward(np.array([[[10.0, 20.0]]]), x)[0], [[[0, 10.0, 20.0, 0]]])


@pytest.mark.parametrize("params,message", [
    ({"kernel_size": 3, "divisor_override": 0}, "divisor_override must be a nonzero integer, got 0"),
    ({"kernel_size": 3, "divisor_override": 1.5}, "divisor_override must be a nonzero integer"),
    ({"kernel_size": 3, "ceil_mode": "maybe"}, "ceil_mode must be true or false, got 'maybe'"),
    ({"kernel_size": 3, "count_include_pad": 2}, "count_include_pad must be true or false"),
    ({"kernel_size": 2, "padding": 2}, "padding must be at most half the kernel size"),
])
def test_bad_pooling_parameters_are_named(params, message):
    with pytest.raises(SymgradError, match="avg_pool1d: " + message.replace("(", r"\(")):
        symgrad.ops.build("avg_pool1d", **params)


def test_derive_takes_the_pooling_flags(capsys):
    from symgrad.cli import main
    assert main(["derive", "avg_pool2d", "--kernel-size", "3", "--stride", "2", "--padding", "1", "--ceil-mode",
                 "true", "--count-include-pad", "false"]) == 0
    out = capsys.readouterr().out
    assert "ceil_mode=True, count_include_pad=False" in out and "Min(" in out
    assert main(["derive", "max_pool1d", "--kernel-size", "3", "--dilation", "2", "--divisor-override", "2"]) == 2
    assert "--divisor-override does not apply to max_pool1d" in capsys.readouterr().err


@needs_torch
def test_a_window_without_input_positions_has_no_gradient():
    """Dilation 2 over one element padded by 1: each window reads positions -1 and 1, both padding.
    Its maximum is -inf and nothing depends on x, so its gradient is 0; torch 2.13 sends it to x[.., 1]
    (the audit's max_pool edge class "a window in the padding only" reports this)."""
    op = symgrad.ops.build("max_pool2d", kernel_size=2, stride=1, padding=1, dilation=(1, 2))
    module = symgrad.module(op)
    x = np.arange(6.0).reshape(1, 1, 6, 1)
    y = module.forward(x)
    assert np.isneginf(y).all()
    np.testing.assert_array_equal(module.backward(np.ones(y.shape), x)[0], np.zeros(x.shape))
