"""Framework kernels (symgrad/forms/kernels.py): an elementwise form the engine derived runs as the
framework's own fused kernel only where SymPy proves the two equal and the engine's limit guards
agree with the kernel's function; elsewhere the derived expression computes it.

- both GELUs' forward and gradient, as derived, are recognised as torch's kernels; a GELU with a
  perturbed constant, a user's own Piecewise and an unrelated function are not;
- a guard whose value is not the function's beyond its threshold narrows the range the kernel is
  trusted on; the kernel's own float range (the tanh form cubes x) bounds it too;
- the emitted torch Functions equal torch's F.gelu bit for bit on finite values, keep the derived
  limits at ±inf, NaN and values beyond the kernel's range, and pass gradcheck/gradgradcheck;
- a user's SiLU rule runs as torch's silu (its backward as torch expressions: aten.silu_backward has no
  derivative, and the target's double backward is autograd through its backward); conv→bias→GELU's
  program module calls the kernels.
"""
import math

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.emit import emit, emit_target, load
from symgrad.forms.kernels import TORCH, recognise
from symgrad.ir import Op, Tensor, index, size
from conftest import needs_torch

X, G = sp.Symbol("x_0"), sp.Symbol("g_0")
E = size("E")
e = index("e", E)


def _factor(d, wrt=None):
    """A derived elementwise term's factor with its tensor reads as plain symbols, as emitted."""
    term = (d.forward if wrt is None else d.grads[wrt].forms)[0].term
    return term.factor.xreplace({a: sp.Symbol(f"{a.base.name}_{k}") for k, a in enumerate(term.accesses)})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_derived_gelu_is_recognised_as_torchs_kernels(approximate):
    d = symgrad.derive(symgrad.ops.gelu(approximate))
    forward, gradient = recognise(_factor(d), "torch"), recognise(_factor(d, "x"), "torch")
    tail = "" if approximate == "none" else "(approximate='tanh')"
    assert forward.kernel.name == f"torch.nn.functional.gelu{tail}"
    assert gradient.kernel.name == f"torch.ops.aten.gelu_backward{tail}"
    assert gradient.args == {"g": sp.Symbol("g_0"), "x": sp.Symbol("x_1")}  # grad_output first, as aten takes it
    if approximate == "none":
        assert forward.bound == gradient.bound == (math.inf, math.inf)  # only ±inf and NaN leave the kernel
    else:
        assert gradient.bound == (2.0 ** 42, 2.0 ** 340)  # the kernel's x³ stays finite


def test_near_misses_are_not_recognised():
    tanh_gelu = X / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (X + sp.Rational(44716, 1000000) * X ** 3)))
    assert recognise(tanh_gelu, "torch") is None                           # one digit off
    assert recognise(X / 2 * (1 + sp.erf(X / 2)), "torch") is None          # √2 missing
    assert recognise(sp.Piecewise((X / 2 * (1 + sp.erf(X / sp.sqrt(2))), X > 0), (0, True)), "torch") is None
    assert recognise(G * X, "torch") is None
    assert recognise(X / 2 * (1 + sp.erf(X / sp.sqrt(2))), "numpy") is None  # no kernels there


def test_a_guard_the_function_does_not_reach_narrows_the_range():
    gelu = X / 2 * (1 + sp.erf(X / sp.sqrt(2)))
    honest = sp.Piecewise((X, X > 40), (gelu, True))       # x·Φ(x) = x to double precision beyond 40
    wrong = sp.Piecewise((2 * X, X > 40), (gelu, True))    # not the function there
    assert recognise(honest, "torch").bound == (math.inf, math.inf)
    assert recognise(wrong, "torch").bound == (40.0, 40.0)


@needs_torch
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_torch_gelu_runs_torchs_kernel_and_keeps_the_derived_limits(approximate):
    import torch
    F = torch.nn.functional
    d = symgrad.derive(symgrad.ops.gelu(approximate))
    fn, reference = load(emit_target(d, "torch"), "gelu_target").gelu, load(emit(d), "gelu_numpy")
    for dtype in (torch.float32, torch.float64):
        x = torch.linspace(-12, 12, 4001, dtype=dtype).requires_grad_()
        g = torch.cos(torch.arange(4001, dtype=dtype))
        y = fn(x)
        (dx,) = torch.autograd.grad(y, x, g)
        xr = x.detach().clone().requires_grad_()
        yr = F.gelu(xr, approximate=approximate)
        (dxr,) = torch.autograd.grad(yr, xr, g)
        assert torch.equal(y, yr) and torch.equal(dx, dxr)  # the same kernels, bit for bit
    # outside the kernels' range the derived expression computes every element (the limits)
    special = [-math.inf, math.inf, 1e30, -1e30, 3e38, -3e38, 0.5]
    x = torch.tensor(special, dtype=torch.float32, requires_grad=True)
    y = fn(x)
    (dx,) = torch.autograd.grad(y, x, torch.ones_like(y))
    want_y = reference.forward(np.array(special, np.float32))
    (want_dx,) = reference.backward(np.ones(len(special), np.float32), np.array(special, np.float32))
    np.testing.assert_array_equal(y.detach().numpy(), want_y)
    np.testing.assert_array_equal(dx.numpy(), want_dx)
    assert not torch.isnan(dx).any()  # torch's own: NaN at ±inf (and the tanh form's beyond |x| ≈ 7e12)
    nan = fn(torch.tensor([math.nan, 1.0], dtype=torch.float64))
    assert math.isnan(nan[0]) and float(nan[1]) == pytest.approx(reference.forward(np.array([1.0]))[0], rel=1e-15)
    assert fn(torch.zeros(0)).shape == (0,)
    t = torch.randn(7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (t,)) and torch.autograd.gradgradcheck(fn, (t,))


@needs_torch
def test_a_users_silu_runs_as_torchs_silu():
    import torch
    x = Tensor("x", (E,))
    op = Op("silu", {}, (x,), Tensor("y", (E,)), (e,), x[e] / (1 + sp.exp(-x[e])), elementwise=True)
    source = emit_target(symgrad.derive(op), "torch")
    assert "torch.nn.functional.silu(x_0)" in source and "silu_backward" not in source
    t = torch.linspace(-30, 30, 1001, dtype=torch.float64, requires_grad=True)
    r = t.detach().clone().requires_grad_()
    y, want = load(source, "silu").silu(t), torch.nn.functional.silu(r)
    g = torch.cos(torch.arange(1001, dtype=torch.float64))
    assert torch.equal(y, want)
    assert torch.allclose(torch.autograd.grad(y, t, g)[0], torch.autograd.grad(want, r, g)[0], rtol=1e-13, atol=1e-15)
    u = torch.randn(7, dtype=torch.float64, requires_grad=True)  # double backward: autograd through the backward
    assert torch.autograd.gradgradcheck(load(source, "silu").silu, (u,))


def test_conv_bias_gelu_program_calls_the_kernels():
    from symgrad.emit.program import emit_program
    from symgrad.reverse import derive_program
    source = emit_program(derive_program(symgrad.ops.build("conv_bias_gelu", stride=1, padding=0, dilation=1)), "torch")
    assert "torch.nn.functional.gelu(y_0)" in source and "torch.ops.aten.gelu_backward(dz_0, y_1)" in source


def test_the_kernel_table_is_what_torch_documents():
    """Each kernel's definition, at a few points, against an independent float evaluation."""
    for kernel in TORCH:
        f = sp.lambdify([sp.Symbol(p, real=True) for p in kernel.params], kernel.definition, "math")
        args = [1.3] * len(kernel.params)
        x = 1.3
        phi = math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
        expected = {
            "torch.nn.functional.gelu": x * (1 + math.erf(x / math.sqrt(2))) / 2,
            "torch.nn.functional.gelu(approximate='tanh')": x / 2 * (1 + math.tanh(inner)),
            "torch.ops.aten.gelu_backward": 1.3 * ((1 + math.erf(x / math.sqrt(2))) / 2 + x * phi),
            "torch.ops.aten.gelu_backward(approximate='tanh')": 1.3 * (
                (1 + math.tanh(inner)) / 2
                + x / 2 * (1 - math.tanh(inner) ** 2) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x)),
            "torch.nn.functional.silu": x / (1 + math.exp(-x)),
        }[kernel.name]
        assert f(*args) == pytest.approx(expected, rel=1e-14)


@needs_torch
def test_within_decides_by_finiteness_range_and_precision():
    import torch
    from symgrad.runtime.torch.within import _within
    inf = math.inf
    assert _within(torch.tensor([-3.0, 2.0]), 3.0, 1.0)                   # float32: the narrow bound
    assert not _within(torch.tensor([-3.0, 2.0], dtype=torch.float64), 3.0, 1.0)
    assert _within(torch.tensor([1e30, -1e30]), inf, inf)
    assert not _within(torch.tensor([1.0, inf]), inf, inf)                # ±inf never: an infinite bound is
    assert not _within(torch.tensor([-inf, 1.0], dtype=torch.float64), inf, inf)  # the dtype's largest float
    assert not _within(torch.tensor([math.nan, 1.0]), inf, inf)
    assert _within(torch.tensor([1.0], dtype=torch.float16), 2.0, 1.0)
    assert _within(torch.zeros(0), 1.0, 1.0)
