"""Special functions in the emitted modules: erf outside elementwise ops (SciPy's, float32 kept
float32), only the runtime functions used inlined, CuPy keeping cupyx's erf; the printer's common
subexpressions and integer powers."""
import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.verify.check import check
from symgrad.emit import emit, load
from symgrad.ir import Op, Tensor, index, size
from symgrad.printing.array import array_code


@pytest.fixture(scope="module")
def tanh_source():
    return emit(symgrad.derive(symgrad.ops.gelu("tanh")))


def erf_features():
    """y[n] = Σ_i erf(x[n, i]) · w[i] — erf inside a contraction, not an elementwise op."""
    N, I = size("N"), size("I")
    n, i = index("n", N), index("i", I)
    x, w = Tensor("x", (N, I)), Tensor("w", (I,))
    return Op("erf_features", {}, (x, w), Tensor("y", (N,)), (n,), sp.Sum(sp.erf(x[n, i]) * w[i], (i, 0, I - 1)))


def test_erf_inside_a_contraction():
    op = erf_features()
    results, ok = check(op, trials=3, seed=5)
    assert ok, [r.errors for r in results]
    source = emit(symgrad.derive(op), jvp=False)
    assert "scipy.special.erf(" in source and "def _erf" not in source and "import scipy.special" in source
    module = load(source, "erf_features")
    rng = np.random.default_rng(0)
    x, w, g = rng.standard_normal((6, 5)) * 2, rng.standard_normal(5), rng.standard_normal(6)
    single = [module.forward(x.astype(np.float32), w.astype(np.float32)),
              *module.backward(g.astype(np.float32), x.astype(np.float32), w.astype(np.float32))]
    double = [module.forward(x, w), *module.backward(g, x, w)]
    for got, want in zip(single, double):
        assert got.dtype == np.float32
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_cupy_source_keeps_cupyx_erf():
    source = emit(symgrad.derive(erf_features()), backend="cupy")
    assert "_erf(" not in source and "cupyx.scipy.special.erf(" in source


def test_only_the_functions_used_are_emitted(tanh_source):
    """The tanh-GELU, rewritten for stability, computes with exp alone; the exact one with erfc: each
    module carries only what its code calls."""
    assert "def _tanh(" not in tanh_source and "def _erf(" not in tanh_source and "scipy" not in tanh_source
    assert "_exp64" in tanh_source and "_erfc64" not in tanh_source
    erf_source = emit(symgrad.derive(symgrad.ops.gelu("none")))
    assert "scipy.special.erfc(" in erf_source and "def _erfc64(" in erf_source
    assert "def _erf(" not in erf_source and "def _tanh(" not in erf_source and "_tanh64" not in erf_source


def test_common_subexpressions_once(tanh_source):
    """The tanh-GELU gradient's sech² = 4σ(2u)σ(−2u) appears twice in the expression and its
    argument three times; the block computes each once."""
    block = tanh_source.split("def _grad_x_block")[1].split("\ndef ")[0]
    assert block.count("xp.exp(dx_term0_s0)") == 1 and block.count("xp.exp(-dx_term0_s0)") == 1
    assert block.count("0.044715") == 1


def test_powers_print_as_fast_operations():
    """NumPy's power calls pow() per element except for the exponent 2: other small integer and
    half-integer exponents print as products, reciprocals and square roots."""
    x, y = sp.symbols("x y")
    assert array_code(x**3) == "(x*x*x)" and array_code(2 * y / x**4) == "2*y/(x*x*x*x)"
    assert array_code(x**-3) == "(1/(x*x*x))" and array_code(x**2) == "x**2"
    assert array_code(1 / (x + y)) == "(1/(x + y))" and array_code((x + y)**-2) == "(1/(x + y)**2)"
    assert array_code(sp.sqrt(x + y)) == "(xp.sqrt(x + y))" and array_code(1 / sp.sqrt(x)) == "(1/xp.sqrt(x))"
    assert array_code(x**sp.Rational(-3, 2)) == "(1/(x*xp.sqrt(x)))"
    assert array_code((x + y)**3) == "(x + y)**3"  # a compound base is not repeated
    assert array_code(sp.Pow(x * y, -1, evaluate=False)) == "(1/(x*y))"  # a product base keeps its brackets
    assert array_code(x**sp.Rational(1, 3)) == "x**0.33333333333333333" and array_code(x**y) == "x**y"
    values = {"xp": np, "x": np.linspace(0.5, 3.0, 7), "y": np.linspace(-0.2, 0.4, 7)}
    for e in (x**3, x**-3, 2 * y / x**4, 1 / (x + y), (x + y)**-2, 1 / sp.sqrt(x + y), x**sp.Rational(5, 2),
              (x + y)**sp.Rational(-3, 2), x**sp.Rational(-7, 2), -x**3):
        want = sp.lambdify((x, y), e, "numpy")(values["x"], values["y"])
        assert np.allclose(eval(array_code(e), values), want, rtol=1e-14, atol=0), e
