"""interpolate (nearest, nearest-exact, linear by size or scale factor, align_corners, 1 to 3 axes):
its definition's weights are index-only factors (symgrad/ops/interpolate.py); the derived module is held
to torch.nn.functional.interpolate on seeded random configurations."""
import random

import numpy as np
import pytest

import symgrad
from symgrad.ir import SymgradError
from conftest import needs_torch, sliced


def configs(count=30, seed=21):
    rng, out = random.Random(seed), []
    for k in range(count):
        ndim = 1 + k % 3
        mode = ("nearest", "nearest-exact", "linear", "linear")[k % 4]
        lengths = [rng.randint(1, {1: 9, 2: 6, 3: 4}[ndim]) for _ in range(ndim)]
        params = {"ndim": ndim, "mode": mode}
        if rng.random() < 0.3:
            params["scale_factor"] = [rng.randint(1, 3) for _ in range(ndim)]
        else:
            params["size"] = [rng.randint(1, 2 * {1: 9, 2: 6, 3: 4}[ndim]) for _ in range(ndim)]
        if mode == "linear" and rng.random() < 0.4:
            params["align_corners"] = True
        out.append((mode, params, (rng.randint(1, 2), rng.randint(1, 2), *lengths)))
    return out


@needs_torch
@pytest.mark.parametrize("mode,params,shape", sliced(configs(), 3))
def test_interpolate_matches_torch(mode, params, shape):
    """Forward and gradient of the emitted module equal torch's to 1e-12 (a random configuration)."""
    from symgrad.verify.reference import torch_reference
    op = symgrad.ops.build("interpolate", **params)
    module = symgrad.module(op)
    x = np.random.default_rng(len(shape)).standard_normal(shape)
    y = module.forward(x)
    g = np.random.default_rng(3).standard_normal(y.shape)
    want_y, (want_dx,) = torch_reference(op, {"x": x}, g)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(module.backward(g, x)[0], want_dx, rtol=1e-12, atol=1e-12)


def test_linear_upsampling_by_two_by_hand():
    """Half-pixel centres: y[0] = x[0] (clamped), y[1] = ¾x[0] + ¼x[1], y[2] = ¼x[0] + ¾x[1], y[3] = x[1];
    the gradient spreads g back with the same weights."""
    module = symgrad.module(symgrad.ops.build("interpolate", scale_factor=2, mode="linear"))
    x = np.array([[[4.0, 8.0]]])
    np.testing.assert_allclose(module.forward(x), [[[4.0, 5.0, 7.0, 8.0]]])
    np.testing.assert_allclose(module.backward(np.array([[[1.0, 1.0, 1.0, 1.0]]]), x)[0], [[[2.0, 2.0]]])


@pytest.mark.parametrize("params,message", [
    ({"size": 3, "scale_factor": 2}, "give exactly one of size and scale_factor"),
    ({}, "give exactly one of size and scale_factor"),
    ({"size": 3, "mode": "cubic"}, "mode must be one of nearest, nearest-exact, linear, got 'cubic'"),
    ({"size": 3, "align_corners": True}, "align_corners applies to mode linear only"),
    ({"size": 3, "ndim": 4}, "ndim must be 1, 2 or 3"),
    ({"size": 0}, "size must be an integer >= 1, got 0"),
])
def test_bad_interpolate_parameters_are_named(params, message):
    with pytest.raises(SymgradError, match="interpolate: " + message):
        symgrad.ops.build("interpolate", **params)


def test_derive_takes_the_interpolate_flags(capsys):
    from symgrad.cli import main
    assert main(["derive", "interpolate", "--ndim", "2", "--size", "5,4", "--mode", "linear", "--align-corners",
                 "true"]) == 0
    out = capsys.readouterr().out
    assert "interpolate  ndim=2, mode=linear, size=[5, 4], align_corners=True" in out and "form: generic" in out
