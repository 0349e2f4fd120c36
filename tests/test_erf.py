"""The float32 erf the NumPy modules carry (templates/helpers/erf.py.j2): accuracy against float64
erf on a dense grid and at the edges, dtypes, and its use outside elementwise ops."""
import math

import numpy as np
import pytest
import scipy.special
import sympy as sp

import symgrad
from symgrad.check import check
from symgrad.emit import emit, load
from symgrad.ir import Op, Tensor, index, size


@pytest.fixture(scope="module")
def erf():
    return load(emit(symgrad.derive(symgrad.ops.gelu("none"))), "gelu_erf")._erf


def _grid():
    dense = np.linspace(-6.0, 6.0, 1_200_001, dtype=np.float32)
    tiny_to_huge = np.float32(10.0) ** np.arange(-37.0, 38.0, 0.01, dtype=np.float32)
    return np.concatenate([dense, tiny_to_huge, -tiny_to_huge])


def test_float32_accuracy_against_float64(erf):
    z = _grid()
    got = erf(z)
    assert got.dtype == np.float32
    want = scipy.special.erf(z.astype(np.float64))
    error = np.abs(got.astype(np.float64) - want)
    assert error.max() <= 5e-7, (error.max(), z[error.argmax()])
    normal = np.abs(z) >= 1e-30  # relative accuracy wherever x * P / Q stays a normal float32
    assert (error[normal] / np.abs(want[normal])).max() <= 2e-6
    assert np.array_equal(np.sign(got), np.sign(z))  # odd, and exactly 0 at 0


def test_edges(erf):
    got = erf(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3.9, 4.0, 50.0], dtype=np.float32))
    assert np.isnan(got[0])
    assert got[1:3].tolist() == [1.0, -1.0]
    assert got[3] == 0.0 and not np.signbit(got[3]) and np.signbit(got[4])
    assert abs(got[5] - math.erf(3.9)) <= 5e-7 and got[7] == got[6]
    assert erf(np.float32(0.5)) == pytest.approx(math.erf(0.5), abs=5e-7)  # a scalar works too


def test_other_dtypes(erf):
    z = np.linspace(-5, 5, 1001)
    assert np.array_equal(erf(z), scipy.special.erf(z))  # float64: SciPy unchanged, bit for bit
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
