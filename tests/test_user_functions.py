"""Functions in user rules: activations with kinks (Max, Min, Abs, Piecewise, Heaviside) and
smooth special functions (gamma, Bessel, 2**x, …), derived, emitted for NumPy and CuPy, and checked
against finite differences, against PyTorch's own gradients, and (CuPy) against the NumPy module,
the CuPy module's fused kernels run by the host C compiler and, where NVRTC is present, compiled
for the GPU; functions whose derivative SymPy leaves unevaluated are refused by name."""
import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.verify.check import check
from symgrad.emit import emit, load
from symgrad.ir import Op, SymgradError, Tensor, index, size
from conftest import needs_torch
from cublas_emulator import stand_in
from cuda_kernels_on_host import SEEN, gpu_compile_errors, needs_nvrtc

E = size("E")
e = index("e", E)
x = Tensor("x", (E,))
X = x[e]

#: torch's hardsigmoid and hardswish gradients multiply by 1/6 rounded to float32, even in float64
TORCH_ROUNDS = {"hardsigmoid": 1e-7, "hardswish": 1e-7}
RULES = {  # name: (rule for y[e], the same activation in torch)
    "relu": (sp.Max(X, 0), "torch.relu(t)"),
    "relu6": (sp.Min(sp.Max(X, 0), 6), "F.relu6(t)"),
    "hardtanh": (sp.Max(-1, sp.Min(1, X)), "F.hardtanh(t)"),
    "leaky_relu": (sp.Piecewise((X, X > 0), (X / 100, True)), "F.leaky_relu(t, 0.01)"),
    "elu": (sp.Piecewise((X, X > 0), (sp.exp(X) - 1, True)), "F.elu(t)"),
    "hardsigmoid": (sp.Piecewise((0, X <= -3), (1, X >= 3), (X / 6 + sp.Rational(1, 2), True)), "F.hardsigmoid(t)"),
    "hardswish": (X * sp.Piecewise((0, X <= -3), (1, X >= 3), (X / 6 + sp.Rational(1, 2), True)), "F.hardswish(t)"),
    "abs": (sp.Abs(X), "torch.abs(t)"),
    "softplus": (sp.log(1 + sp.exp(X)), "F.softplus(t)"),
}


positive = Tensor("x", (E,), positive=True)
P = positive[e]
SMOOTH = {  # rules on positive values, several with functions C has no name for (the array code runs them)
    "exp2": 2 ** P, "gamma": sp.gamma(P), "loggamma": sp.loggamma(P), "bessel_j0": sp.besselj(0, P),
    "atan": sp.atan(P), "erfc": sp.erfc(P), "cbrt": sp.cbrt(P), "pow_2_5": P ** sp.Rational(5, 2),
}


#: fused kernels per forward + backward where C lacks a function: polygamma (the gradients of gamma
#: and loggamma) and the Bessel functions run as array code
UNFUSED = {"gamma": 1, "loggamma": 1, "bessel_j0": 0}


def pointwise(name):
    if name in SMOOTH:
        return Op(name, {}, (positive,), Tensor("y", (E,)), (e,), SMOOTH[name], elementwise=True)
    return Op(name, {}, (x,), Tensor("y", (E,)), (e,), RULES[name][0], elementwise=True)


def relu_linear():
    """y[n] = Σ_f max(x[n, f], 0) · w[f]: a kink inside a reduction."""
    N, F = size("N"), size("F")
    n, f = index("n", N), index("f", F)
    xs, w = Tensor("x", (N, F)), Tensor("w", (F,))
    return Op("relu_linear", {}, (xs, w), Tensor("y", (N,)), (n,), sp.Sum(sp.Max(xs[n, f], 0) * w[f], (f, 0, F - 1)))


def inputs(shape, seed=0):
    """Normal values spread over ±8, so every kink (0, ±1, ±3, 6) lies inside the sample."""
    return 4 * np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("name", list(RULES) + list(SMOOTH))
def test_user_function_checks_against_finite_differences(name):
    results, ok = check(pointwise(name), trials=3, seed=2)
    assert ok, [r.errors for r in results]


def test_kink_inside_a_reduction_checks_against_finite_differences():
    results, ok = check(relu_linear(), trials=3, seed=4)
    assert ok, [r.errors for r in results]
    d = symgrad.derive(relu_linear())
    assert d.grads["x"].terms[0].factor.has(sp.Heaviside)


@needs_torch
@pytest.mark.parametrize("name", RULES)
def test_kinked_activation_matches_torch(name):
    import torch
    import torch.nn.functional as F  # noqa: F401  (used by the expressions in RULES)
    module = load(emit(symgrad.derive(pointwise(name)), jvp=False))
    values, g = inputs((6, 50)), inputs((6, 50), seed=1)
    t = torch.tensor(values, requires_grad=True)
    y = eval(RULES[name][1])
    y.backward(torch.tensor(g))
    tolerance = TORCH_ROUNDS.get(name, 1e-12)
    np.testing.assert_allclose(module.forward(values), y.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(module.backward(g, values)[0], t.grad.numpy(), rtol=tolerance, atol=tolerance)


@needs_torch
def test_kink_inside_a_reduction_matches_torch():
    import torch
    module = load(emit(symgrad.derive(relu_linear()), jvp=False))
    values, w, g = inputs((5, 7)), inputs(7, seed=1), inputs(5, seed=2)
    ts = [torch.tensor(a, requires_grad=True) for a in (values, w)]
    y = torch.relu(ts[0]) @ ts[1]
    y.backward(torch.tensor(g))
    np.testing.assert_allclose(module.forward(values, w), y.detach().numpy(), rtol=1e-12)
    for got, t in zip(module.backward(g, values, w), ts):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_gradient_at_the_kink_is_sympys_heaviside_half():
    """At x = 0 exactly, d max(x, 0)/dx is Heaviside(0) = 1/2 (SymPy's convention; PyTorch's relu
    takes 0 there); steps' own derivatives (DiracDelta) are dropped, and the derivation says so."""
    d = symgrad.derive(pointwise("relu"))
    module = load(emit(d, jvp=False))
    np.testing.assert_array_equal(module.backward(np.ones(3), np.array([-1.0, 0.0, 2.0]))[0], [0.0, 0.5, 1.0])
    hs = symgrad.derive(Op("step_times_x", {}, (x,), Tensor("y", (E,)), (e,), sp.Heaviside(X) * X, elementwise=True))
    assert not hs.grads["x"].terms[0].factor.has(sp.DiracDelta)
    assert any(step.name == "steps" for step in hs.grads["x"].steps)


def test_softplus_takes_its_limit_where_exp_overflows():
    """log(1 + exp(x)) and its gradient exp(x)/(1 + exp(x)) are ∞ and ∞/∞ = NaN past x = 709.78:
    the engine's limit guard (engine/stable.py) takes x and 1 from a threshold below that."""
    d = symgrad.derive(pointwise("softplus"))
    module = load(emit(d, jvp=False))
    x = np.array([30.0, 700.0, 710.0, 1000.0, 1e300, np.inf])
    with np.errstate(over="ignore"):
        y, (dx,) = module.forward(x), module.backward(np.ones_like(x), x)
    np.testing.assert_array_max_ulp(y, np.logaddexp(0, x), maxulp=1)
    np.testing.assert_array_max_ulp(dx, 1 / (1 + np.exp(-x)), maxulp=1)


@pytest.mark.parametrize("dtype", [np.float16, pytest.param(np.float32, marks=pytest.mark.full), np.float64],
                         ids=lambda t: t.__name__)
def test_cupy_modules_compute_the_numpy_modules_values(monkeypatch, dtype):
    """Each function's CuPy module (its fused kernels compiled by the host C compiler; SciPy
    standing in for cupyx.scipy.special) against the NumPy module in float64 on the same values."""
    tolerance = {np.float16: 1e-2, np.float32: 1e-5, np.float64: 1e-12}[dtype]
    stand_in(monkeypatch)
    for name in list(RULES) + list(SMOOTH):
        d = symgrad.derive(pointwise(name))
        reference = load(emit(d, "numpy", jvp=False))
        module = load(emit(d, "cupy", jvp=False), "cupy_module_on_host")
        values, g = inputs((3, 40)).astype(dtype), inputs((3, 40), seed=1).astype(dtype)
        if name in SMOOTH:
            values = np.exp(values / 8).astype(dtype)
        got = (module.forward(values), module.backward(g, values)[0])
        want = (reference.forward(values.astype(np.float64)),
                reference.backward(g.astype(np.float64), values.astype(np.float64))[0])
        for a, b in zip(got, want):
            assert a.dtype == dtype
            scale = max(np.abs(b).max(), 1.0)
            assert np.abs(a.astype(np.float64) - b).max() / scale <= tolerance, name
        fused = sum(kernel.calls for kernel in getattr(module, "_KERNELS", {}).values())
        assert fused == UNFUSED.get(name, 2), name


@needs_nvrtc
def test_user_function_kernels_compile_for_the_gpu(monkeypatch):
    """The fused kernels of every function above, in float16, float32 and float64, compile with
    NVRTC as CuPy compiles them (Max/Min as fmax/fmin, Piecewise as ?:, constants such as log 2 as
    numbers: NVRTC has no M_LN2)."""
    test_cupy_modules_compute_the_numpy_modules_values(monkeypatch, np.float16)
    test_cupy_modules_compute_the_numpy_modules_values(monkeypatch, np.float32)
    test_cupy_modules_compute_the_numpy_modules_values(monkeypatch, np.float64)
    kernels = set(SEEN)  # these and any kernel an earlier test ran
    assert any("fmax" in k[2] for k in kernels) and any("?" in k[2] for k in kernels)
    assert any("tgamma" in k[2] for k in kernels) and any("pow(2" in k[2] for k in kernels)
    assert not gpu_compile_errors(kernels)


@pytest.mark.parametrize("name,rule", [("floor_times_x", lambda v: sp.floor(v) * v), ("mod_one", lambda v: sp.Mod(v, 1))])
def test_functions_sympy_cannot_differentiate_are_refused_by_name(name, rule):
    op = Op(name, {}, (x,), Tensor("y", (E,)), (e,), rule(X), elementwise=True)
    with pytest.raises(SymgradError, match=rf"{name}: SymPy leaves the derivative of .* with respect to x unevaluated"):
        symgrad.derive(op)
