"""The float32 erf and tanh the NumPy modules carry (templates/helpers/special.py.j2): accuracy
against float64 on a dense grid and at the edges, dtypes, and erf outside elementwise ops; the
printer's common subexpressions and integer powers."""
import math

import numpy as np
import pytest
import scipy.special
import sympy as sp

import symgrad
from symgrad.check import check
from symgrad.emit import emit, load
from symgrad.ir import Op, Tensor, index, size
from symgrad.printing import array_code


@pytest.fixture(scope="module")
def gelu_erf():
    return load(emit(symgrad.derive(symgrad.ops.gelu("none"))), "gelu_erf")


@pytest.fixture(scope="module")
def erf(gelu_erf):
    return gelu_erf._erf


@pytest.fixture(scope="module")
def tanh_source():
    return emit(symgrad.derive(symgrad.ops.gelu("tanh")))


def _grid(span):
    dense = np.linspace(-span, span, 1_200_001, dtype=np.float32)
    tiny_to_huge = np.float32(10.0) ** np.arange(-37.0, 38.0, 0.01, dtype=np.float32)
    return np.concatenate([dense, tiny_to_huge, -tiny_to_huge])


@pytest.mark.parametrize("name,span,reference", [("erf", 6.0, scipy.special.erf), ("tanh", 12.0, np.tanh)])
def test_float32_accuracy_against_float64(gelu_erf, tanh_source, name, span, reference):
    function = getattr(gelu_erf if name == "erf" else load(tanh_source, "gelu_tanh"), f"_{name}")
    z = _grid(span)
    got = function(z)
    assert got.dtype == np.float32
    want = reference(z.astype(np.float64))
    error = np.abs(got.astype(np.float64) - want)
    assert error.max() <= 5e-7, (error.max(), z[error.argmax()])
    normal = np.abs(z) >= 1e-30  # relative accuracy wherever x * P / Q stays a normal float32
    assert (error[normal] / np.abs(want[normal])).max() <= 2e-6
    assert np.array_equal(np.sign(got), np.sign(z))  # odd, and exactly 0 at 0
    assert np.isnan(function(np.float32(np.nan))) and function(np.float32(np.inf)) == 1.0
    z64 = np.linspace(-5, 5, 1001)
    assert np.array_equal(function(z64), reference(z64))  # float64: SciPy/NumPy unchanged, bit for bit


def test_edges(erf):
    got = erf(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3.9, 4.0, 50.0], dtype=np.float32))
    assert np.isnan(got[0])
    assert got[1:3].tolist() == [1.0, -1.0]
    assert got[3] == 0.0 and not np.signbit(got[3]) and np.signbit(got[4])
    assert abs(got[5] - math.erf(3.9)) <= 5e-7 and got[7] == got[6]
    assert erf(np.float32(0.5)) == pytest.approx(math.erf(0.5), abs=5e-7)  # a scalar works too


def test_float16_is_computed_in_float32(erf):
    z = np.linspace(-5, 5, 1001)
    half = erf(z.astype(np.float16))
    assert half.dtype == np.float32
    assert np.abs(half - scipy.special.erf(z.astype(np.float16).astype(np.float64))).max() <= 5e-7


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
    source = emit(symgrad.derive(op))
    assert "_erf(" in source and "def _erf(" in source and "import scipy.special" in source
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
    assert "def _tanh(" in tanh_source and "def _erf(" not in tanh_source and "scipy" not in tanh_source
    erf_source = emit(symgrad.derive(symgrad.ops.gelu("none")))
    assert "def _erf(" in erf_source and "def _tanh(" not in erf_source


def test_common_subexpressions_once(tanh_source):
    """The derived tanh-GELU gradient holds tanh(...) three times; the block computes it once."""
    block = tanh_source.split("def _grad_x_block")[1].split("\ndef ")[0]
    assert block.count("_tanh(") == 1 and "dx_term0_s0 = _tanh(" in block


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
