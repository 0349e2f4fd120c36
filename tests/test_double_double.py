"""float64 elementwise work in double-double (symgrad/runtime/double_double.py, printing/double.py):
the arithmetic and functions against mpmath, the printed statements, the compiled loop against the
NumPy blocks, and GELU in float64 within an ulp of the exact value at points dense across its turn
(where torch's error is up to a few ulps and ours was up to 28 more before)."""
import math

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.emit import emit, load
from symgrad.ir import Op, Tensor, index, size
from symgrad.printing.double import wide_statements
from symgrad.runtime import double_double as dd

mpmath.mp.dps = 60


def _relative(pair, exact):
    got = mpmath.mpf(float(pair[0])) + mpmath.mpf(float(pair[1]))
    return float(abs(got - exact) / abs(exact)) if exact != 0 else float(abs(got))


@pytest.mark.parametrize("name, reference, low, high, bound", [
    ("exp", mpmath.exp, -700.0, 700.0, 5e-21),
    ("erfc", mpmath.erfc, -5.0, 5.0, 5e-21),
    ("erf", mpmath.erf, -6.0, 6.0, 5e-21),
    ("tanh", mpmath.tanh, -20.0, 20.0, 5e-21),
])
def test_functions_against_mpmath(name, reference, low, high, bound):
    """Relative error of each function at 300 random arguments (tanh away from 0, where 1 - e^(-2a)
    costs digits: checked apart below) well under the 1.1e-16 of a double."""
    x = np.random.default_rng(3).uniform(low, high, 300)
    if name == "tanh":
        x = np.copysign(np.maximum(np.abs(x), 0.5), x)
    hi, lo = dd._DD[name](x, 0.0 * x)
    worst = max(_relative((hi[k], lo[k]), reference(mpmath.mpf(float(x[k])))) for k in range(x.size))
    assert worst < bound, (name, worst)


def test_arithmetic_and_edges():
    third = dd._DD["div"](np.array([1.0]), 0.0, np.array([3.0]), 0.0)
    assert _relative((third[0][0], third[1][0]), mpmath.mpf(1) / 3) < 1e-31
    root = dd._DD["sqrt"](np.array([2.0]), 0.0)
    assert _relative((root[0][0], root[1][0]), mpmath.sqrt(2)) < 1e-31
    small = dd._DD["tanh"](np.array([1e-3, -1e-12]), 0.0)
    assert _relative((small[0][0], small[1][0]), mpmath.tanh(mpmath.mpf(1e-3))) < 1e-19
    with np.errstate(all="ignore"):
        e = dd._DD["exp"](np.array([np.inf, -np.inf, np.nan, 710.0, -800.0]), 0.0)[0]
        c = dd._DD["erfc"](np.array([np.inf, -np.inf, np.nan, 27.0, -1e300]), 0.0)[0]
    assert e[0] == np.inf and e[1] == 0 and np.isnan(e[2]) and e[3] == np.inf and e[4] == 0
    assert c[0] == 0 and c[1] == 2 and np.isnan(c[2]) and 0 < c[3] < 1e-300 and c[4] == 2


def test_erfc_table_against_mpmath():
    """The Taylor table's c0 = erfc(j/32) (series below 2, continued fraction beyond) to 1e-26."""
    hi, lo, _ = dd._DD_TABLE
    worst = max(_relative((hi[0][j], lo[0][j]), mpmath.erfc(mpmath.mpf(j) / 32)) for j in range(dd._NODES))
    assert worst < 1e-26


def test_printed_pairs():
    """Constants split into their pair (-√2/2 keeps the digits one double drops), the number applied
    after the quotient, and an expression with a function the pairs lack gets no such code."""
    x, g = sp.symbols("x g")
    lines, used = wide_statements(x * sp.exp(-sp.sqrt(2) * x / 2) / 2, "y")
    assert lines[0] == "y_w0h, y_w0l = _dd_mul(-0.7071067811865476, 4.833646656726457e-17, x, 0.0)"
    assert lines[-1].startswith("y = _dd_value(") and set(used) == {"exp", "mul", "value"}
    lines, _ = wide_statements(3 * x ** 3 / (sp.exp(x) + 1) ** 2, "d")
    assert "_dd_div" in lines[-3] and "_dd_mul(3.0, 0.0" in lines[-2]
    with pytest.raises(ValueError, match="log"):
        wide_statements(sp.log(x) * g, "d")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_loop_equals_blocks_in_float64(approximate):
    """The compiled loop (2^16 elements and more) computes the same double-double as the NumPy
    blocks: identical results, from the tails to ±inf and NaN."""
    pytest.importorskip("numba")
    module = load(emit(symgrad.derive(symgrad.ops.gelu(approximate)), jvp=False), f"gelu_wide_{approximate}")
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0, 4, 1 << 16), np.geomspace(1e-300, 1e300, 500),
                        -np.geomspace(1e-300, 1e300, 500), [np.inf, -np.inf, np.nan, 0.0]])
    g = rng.normal(0, 1, x.size)
    whole = (module.forward(x), module.backward(g, x)[0])
    parts = [np.array_split(x, 32), np.array_split(g, 32)]
    blocks = (np.concatenate([module.forward(c) for c in parts[0]]),
              np.concatenate([module.backward(b, c)[0] for b, c in zip(parts[1], parts[0])]))
    for a, b in zip(whole, blocks):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_float64_within_an_ulp_across_the_turn(approximate):
    """400 random points in [-7, 7] (float64 computed in double-double): forward and gradient
    within one ulp of the definition (mpmath); before, up to 62 ulps near the gradient's zero."""
    op = symgrad.ops.gelu(approximate)
    module = load(emit(symgrad.derive(op), jvp=False), f"gelu_ulp_{approximate}")
    s = sp.Symbol("s", real=True)
    (read,) = op.rhs.atoms(sp.Indexed)
    h = op.rhs.xreplace({read: s})
    f, df = sp.lambdify(s, h, "mpmath"), sp.lambdify(s, sp.diff(h, s), "mpmath")
    x = np.random.default_rng(11).uniform(-7, 7, 400)
    y, (d,) = module.forward(x), module.backward(np.ones_like(x), x)
    for k in range(x.size):
        for got, exact in ((y[k], f(mpmath.mpf(x[k]))), (d[k], df(mpmath.mpf(x[k])))):
            assert abs(mpmath.mpf(float(got)) - exact) <= np.spacing(abs(float(exact))), (x[k], got, exact)


def test_numba_loops_divide_as_numpy():
    """The loops compile with NumPy's error model: x/0 is inf as in the array code, not an exception
    (numba's default raises ZeroDivisionError, and its check on every division kept LLVM from
    vectorising a loop)."""
    pytest.importorskip("numba")
    E = size("E")
    e = index("e", E)
    a, b = Tensor("a", (E,)), Tensor("b", (E,))
    op = Op("ratio", {}, (a, b), Tensor("y", (E,)), (e,), a[e] / b[e], elementwise=True)
    module = load(emit(symgrad.derive(op), jvp=False), "ratio")
    n = (1 << 16) + 1
    with np.errstate(divide="ignore"):
        y = module.forward(np.ones(n), np.zeros(n))
    assert np.isinf(y).all() and math.isinf(float(y[-1]))
