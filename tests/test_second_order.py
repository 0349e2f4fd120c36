"""Second order by closure: each derived gradient taken as a rule of its own and derived again.

- the NumPy modules' double_backward equals PyTorch's double backward (torch.autograd.grad through
  F.conv*/matmul/gelu with create_graph) on a sample of the sweep, every op family;
- the second-order forms of `derive --order 2 --format json`, pasted into jax.lax.conv_general_dilated
  (and the loop reference of it), give torch's double backward term by term;
- the convolution's second-order terms are convolutions again; GELU's second order is finite to the
  ends of float64; gg arguments left out count as zero, wrong shapes are refused by name.
"""
import json

import numpy as np
import pytest

import symgrad
from symgrad.cli import main
from symgrad.emit import emit, load
from symgrad.ir import SymgradError
from symgrad.second_order import derive_second_order, gradient_op
from symgrad.sizes import concrete_sizes
from symgrad.verify.reference import torch_double_backward
from conftest import needs_torch, sliced
from sweep_configs import all_configs
from support import TOLERANCE, apply_form, conv_impls, cupy_module, relative

SAMPLE = all_configs()[3::9]
IDS = [f"{name}-{k}" for k, (name, _, _) in enumerate(SAMPLE)]


def _module(name, params, order=2):
    return load(emit(symgrad.derive(symgrad.ops.build(name, **params)), order=order, jvp=False), "second_order_module")


def _values(op, shapes, seed):
    rng = np.random.default_rng(seed)
    arrays = {t.name: rng.standard_normal(shapes[t.name]) for t in op.inputs}
    gg = {t.name: rng.standard_normal(shapes[t.name]) for t in op.inputs}
    return arrays, gg, rng


@needs_torch
@pytest.mark.parametrize("name,params,shapes", sliced(SAMPLE, 6, ids=IDS))
def test_double_backward_equals_torchs(name, params, shapes):
    op = symgrad.ops.build(name, **params)
    module = _module(name, params)
    arrays, gg, rng = _values(op, shapes, 0)
    args = [arrays[t.name] for t in op.inputs]
    g = rng.standard_normal(module.forward(*args).shape)
    got = module.double_backward(*[gg[t.name] for t in op.inputs], g, *args)
    want = torch_double_backward(op, arrays, g, gg)
    if want is None:
        pytest.skip(f"no PyTorch reference for {name} {params}")
    assert len(got) == len(want) == len(op.inputs) + 1
    for k, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == np.float64
        scale = max(np.abs(b).max(initial=0), 1.0)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * scale, err_msg=f"{name} {params} output {k}")


CONV_CASES = [
    (["conv2d", "--stride", "2,1", "--dilation", "1,2", "--padding", "1:0,2:1", "--groups", "1"], (2, 3, 7, 9), (4, 3, 3, 2)),
    (["conv1d", "--stride", "3", "--dilation", "2", "--padding", "2:-1", "--groups", "2"], (2, 4, 13), (6, 2, 3)),
    (["conv1d", "--stride", "5", "--dilation", "1", "--padding", "0", "--groups", "1"], (2, 2, 13), (3, 2, 2)),
]


@needs_torch
@pytest.mark.parametrize("argv,xshape,wshape", CONV_CASES, ids=[" ".join(c[0]) for c in CONV_CASES])
def test_second_order_forms_pasted_into_conv_general_dilated(capsys, argv, xshape, wshape):
    """Each second-order form, as `derive --order 2 --format json` prints it, run through
    jax.lax.conv_general_dilated (and the loop reference): the sum over the gradients whose rule reads
    a tensor is torch's double backward for it."""
    assert main(["derive", *argv, "--order", "2", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    op = symgrad.ops.build(argv[0], **{k.lstrip("-"): v for k, v in zip(argv[1::2], argv[2::2])})
    rng = np.random.default_rng(3)
    arrays = {"x": rng.standard_normal(xshape), "w": rng.standard_normal(wshape), "b": rng.standard_normal(wshape[0])}
    sizes = {str(k): v for k, v in concrete_sizes(op, {n: a.shape for n, a in arrays.items()}).items()}
    y = load(emit(symgrad.derive(op), order=1, jvp=False)).forward(*arrays.values())
    g = rng.standard_normal(y.shape)
    gg = {n: rng.standard_normal(a.shape) for n, a in arrays.items()}
    want = dict(zip(["g", "x", "w", "b"], torch_double_backward(op, arrays, g, gg)))
    values = dict(arrays, g=g, **{f"gg{n}": a for n, a in gg.items()})
    second = d["second_order"]
    assert {x: sorted(s["grads"]) for x, s in second.items()} == {"x": ["g", "w"], "w": ["g", "x"], "b": ["g"]}
    for label, conv in conv_impls():
        for of in ("g", "x", "w"):
            forms = [s["grads"][of]["form"] for s in second.values() if of in s["grads"]]
            bias = [f for f in forms if f["kind"] == "elementwise"]  # ∂ℒ₂/∂g from ggb: ggb[f] on every position
            assert all(f["kind"] == "conv_general_dilated" for f in forms if f not in bias), forms
            assert [f["operands"] for f in bias] == ([["ggb"]] if of == "g" else [])
            got = sum(apply_form(f, values, sizes, conv).reshape(want[of].shape) for f in forms if f not in bias)
            if bias:
                got = got + gg["b"].reshape((1, -1) + (1,) * (g.ndim - 2))
            np.testing.assert_allclose(got, want[of], rtol=1e-10, atol=1e-10, err_msg=f"{label} d{of}")


def test_conv_second_order_moves_the_parameters_as_the_first_order_did():
    """∂ℒ₂/∂g from ggx is the forward convolution of ggx with w (the forward's fields, ggx for x);
    from ggw the forward convolution of x with ggw; ∂ℒ₂/∂w from ggx has the first order's weight-
    gradient fields with ggx for x; ∂ℒ₂/∂x from ggw is again a convolution.  Symbolic parameters."""
    s = derive_second_order(symgrad.ops.conv(2, groups="G"))
    forward = next(f for f in s.first.forward if f.kind == "conv_general_dilated").fields
    dw = s.first.grads["w"].forms[0].fields
    same = lambda a, b, keys: {k: a[k] for k in keys} == {k: b[k] for k in keys}  # noqa: E731
    keys = ("window_strides", "padding", "lhs_dilation", "rhs_dilation", "feature_group_count", "batch_group_count")
    from_ggx, from_ggw = s.of["x"].grads, s.of["w"].grads
    assert from_ggx["g"].forms[0].fields["lhs"] == "ggx" and same(from_ggx["g"].forms[0].fields, forward, keys)
    assert from_ggw["g"].forms[0].fields["rhs"] == "ggw" and same(from_ggw["g"].forms[0].fields, forward, keys)
    assert from_ggx["w"].forms[0].fields["lhs"] == "ggx" and same(from_ggx["w"].forms[0].fields, dw, keys)
    assert from_ggw["x"].kinds == ["conv_general_dilated"]
    assert s.of["b"].grads["g"].kinds == ["elementwise"] and set(s.of["b"].grads) == {"g"}


def test_derive_order_2_prints_every_gradients_gradients(capsys):
    assert main(["derive", "conv2d", "--stride", "2", "--order", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("conv2d  ")  # the first order comes first, as without --order
    for header in ("conv2d dx:", "d(Σ ggx·dx)/dg[", "d(Σ ggx·dx)/dw[", "conv2d dw:", "d(Σ ggw·dw)/dx[",
                   "conv2d db:", "d(Σ ggb·db)/dg["):
        assert header in out, header
    assert out.count("form: conv_general_dilated") == 1 + 2 + 4  # forward; first order x, w; second order four
    assert "sum_{f=0..C_out - 1}" in out.split("conv2d dw:")[1]  # the forward's index names where it reads them


def test_gradient_op_is_an_ordinary_rule():
    d = symgrad.derive(symgrad.ops.matmul())
    gop = gradient_op(d, "a")
    assert [t.name for t in gop.inputs] == ["g", "b"] and gop.output.name == "da" and gop.upstream == "gga"
    with pytest.raises(SymgradError, match="matmul: no gradient with respect to 'q'"):
        gradient_op(d, "q")


def test_gelu_second_order_is_finite_to_the_ends_of_float64():
    for approximate in ("none", "tanh"):
        module = _module("gelu", {"approximate": approximate})
        x = np.array([-np.inf, -1e300, -1e154, -40.0, -5.0, 0.0, 1.5, 40.0, 1e154, 1e300, np.inf])
        dg, dx = module.double_backward(np.ones_like(x), np.ones_like(x), x)
        assert np.all(np.isfinite(dg)) and np.all(np.isfinite(dx)), (approximate, dg, dx)
        assert dg[0] == 0 and dg[-1] == 1 and dx[0] == 0 and dx[-1] == 0  # gelu'(±∞) = 0, 1; gelu''(±∞) = 0


def test_double_backward_takes_none_and_refuses_wrong_shapes():
    module = _module("conv1d", {"stride": 2, "padding": 1, "dilation": 1})
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 9)), rng.standard_normal((4, 3, 3)), rng.standard_normal(4)
    g = rng.standard_normal(module.forward(x, w, b).shape)
    dg, dx, dw, db = module.double_backward(None, None, None, g, x, w, b)
    assert [a.shape for a in (dg, dx, dw, db)] == [g.shape, x.shape, w.shape, b.shape]
    assert not any(a.any() for a in (dg, dx, dw, db))
    gg = rng.standard_normal(w.shape)
    only_w = module.double_backward(None, gg, None, g, x, w, b)
    assert not only_w[2].any() and only_w[1].any()  # ∂ℒ₂/∂w needs ggx, ∂ℒ₂/∂x comes from ggw
    with pytest.raises(ValueError, match=r"conv1d double_backward: ggw must have shape \(C_out, C_in, K\)"):
        module.double_backward(None, gg[:, :2], None, g, x, w, b)
    batched = module.double_backward(x, gg, b, g, x, w, b)
    single = module.double_backward(x[0], gg, b, g[0], x[0], w, b)  # unbatched, as torch takes it
    for a, c in zip(single, (batched[0][0], None, None, None)):
        if c is not None:
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_order_1_leaves_double_backward_out_and_order_2_is_deterministic():
    d = symgrad.derive(symgrad.ops.conv(2, stride=2, padding=1, dilation=1))
    assert "def double_backward" not in emit(d, order=1, jvp=False)
    assert emit(d, jvp=False) == emit(d, jvp=False) and "def double_backward(ggx, ggw, ggb, grad_output, x, w, b):" in emit(d, jvp=False)
    with pytest.raises(SymgradError, match="order must be 1 or 2"):
        emit(d, order=3)


def test_emit_order_flag(tmp_path, capsys):
    out = tmp_path / "gelu.py"
    assert main(["emit", "gelu", "--order", "1", "-o", str(out)]) == 0
    assert "def double_backward" not in out.read_text()
    assert main(["emit", "gelu", "-o", str(out)]) == 0
    assert "def double_backward(ggx, grad_output, x):" in out.read_text()
    assert main(["emit", "gelu", "--target", "torch", "--order", "1"]) == 2
    assert "the torch target's double backward is the framework's autograd" in capsys.readouterr().err


CUPY_CASES = [("gelu", {"approximate": "none"}, {"x": (5, 7)}), ("gelu", {"approximate": "tanh"}, {"x": (33,)}),
              ("conv2d", {"stride": 2, "padding": "1:0,0:2", "dilation": 1, "groups": 2},
               {"x": (2, 4, 7, 6), "w": (4, 2, 3, 2), "b": (4,)}),
              ("matmul", {"a_shape": "B,M,K", "b_shape": "K,N"}, {"a": (2, 3, 4), "b": (4, 5)})]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda t: t.__name__)
@pytest.mark.parametrize("name,params,shapes", CUPY_CASES, ids=[c[0] for c in CUPY_CASES])
def test_cupy_module_double_backward_on_emulated_cupy(monkeypatch, name, params, shapes, dtype):
    """The CuPy module's double_backward, run over the NumPy stand-in for CuPy (GEMMs through the
    emulated cuBLAS, fused kernels compiled by the host C compiler): the NumPy module's values."""
    module, _ = cupy_module(name, params, monkeypatch)
    reference = _module(name, params)
    op = symgrad.ops.build(name, **params)
    arrays, gg, rng = _values(op, shapes, 4)
    args = [arrays[t.name].astype(dtype) for t in op.inputs]
    g = rng.standard_normal(reference.forward(*args).shape).astype(dtype)
    ggs = [gg[t.name].astype(dtype) for t in op.inputs]
    got = module.double_backward(*ggs, g, *args)
    want = reference.double_backward(*[a.astype(np.float64) for a in ggs], g.astype(np.float64),
                                     *[a.astype(np.float64) for a in args])
    for a, b in zip(got, want):
        assert a.dtype == dtype and a.shape == b.shape
        assert relative(a.astype(np.float64), b) <= TOLERANCE[dtype]
