"""GELU accurate over the whole float range in every dtype (issue: numerically stable emission): the
emitted forward and gradient against the definition evaluated with mpmath (symgrad.verify.ulp),
beside PyTorch's, at log-spaced magnitudes of both signs, subnormals, the largest finite values and
±inf, upstream gradients 1e-4 .. 1e4.  A small scan here; `symgrad check gelu --ulp` runs the full
one (README)."""
import numpy as np
import pytest

import symgrad
from symgrad.verify.ulp import report, scan
from cublas_emulator import stand_in

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", params=["none", "tanh"])
def scanned(request):
    return scan(symgrad.ops.gelu(request.param), count=24 if request.config.getoption("--full") else 12)


def test_float16_and_float32_are_correctly_rounded(scanned):
    """Computed in float64 and rounded once: within half an ulp at every point, limits included
    (torch: NaN at ±inf, and the left tail's cancellation)."""
    for dtype, quantity, n, ours, theirs, worse in scanned.rows:
        if dtype in ("float16", "float32"):
            assert ours[0] <= 0.5 + 1e-9 and not worse, (dtype, quantity, ours, worse[:3])


def test_float64_is_never_behind_torch(scanned):
    """float64 computes in double-double and rounds once: at no point scanned is its error more than
    torch's (beyond the one-ulp allowance) — before, 11 forward and 55 gradient points of the exact
    form and 3 and 85 of the tanh form were, by up to 28 ulps, all with |x| < 3.4."""
    for dtype, quantity, n, ours, theirs, worse in scanned.rows:
        if dtype == "float64":
            assert not worse, (quantity, worse[:3])
            assert ours[0] <= 8, (quantity, ours)  # the far left tail, x < -7, in double: torch 1e15 there


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_limits_and_overflow(approximate):
    """gelu(-inf) = 0, gelu(inf) = inf, gelu'(±inf) = 1 and 0 (torch gives NaN), no NaN from an
    overflowing x**3 (float16 |x| >= 40.5, float32 7.2e12, float64 7.2e102 gave NaN before)."""
    module = symgrad.emit.load(symgrad.emit.emit(symgrad.derive(symgrad.ops.gelu(approximate))))
    for dtype in (np.float16, np.float32, np.float64):
        big = np.finfo(dtype).max
        x = np.array([-np.inf, np.inf, -big, big, -40.5, 40.5, 7.2e12 if dtype != np.float16 else 60000.0], dtype=dtype)
        with np.errstate(over="ignore"):
            y = module.forward(x)
            (d,) = module.backward(np.ones_like(x), x)
        assert y[0] == 0 and y[1] == np.inf and np.isfinite(y[2:]).all() and y[3] == big
        assert d.tolist()[:2] == [0.0, 1.0] and np.isfinite(d).all()


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_cuda_kernels_compute_in_double_as_the_numpy_modules(monkeypatch, approximate):
    """The CuPy module's fused kernels (run on the host: tests/cuda_kernels_on_host.py) widen
    float16/float32 reads to double as the NumPy modules do: the same values at the extremes and the
    limits, where float arithmetic would overflow x**3 into NaN.  float64 is computed in double there
    (the NumPy modules compute it in double-double): within the conditioning of erfc at x = -9.5,
    where the rounding of x/√2 is amplified some 90 times."""
    d = symgrad.derive(symgrad.ops.gelu(approximate))
    reference = symgrad.emit.load(symgrad.emit.emit(d))
    stand_in(monkeypatch)
    module = symgrad.emit.load(symgrad.emit.emit(d, "cupy"), "cupy_module_on_host")
    for dtype in (np.float16, np.float32, np.float64):
        big = np.finfo(dtype).max
        x = np.array([-np.inf, np.inf, -big, big, -1e4, 1e4, -9.5, -1.0, 0.0, 0.5, 3.0], dtype=dtype)
        g = np.full_like(x, 0.01)
        with np.errstate(over="ignore"):
            got = (module.forward(x), module.backward(g, x)[0])
            want = (reference.forward(x), reference.backward(g, x)[0])
        for a, b in zip(got, want):
            assert a.dtype == dtype and not np.isnan(a).any()
            np.testing.assert_array_max_ulp(a, b, maxulp=0 if dtype != np.float64 else 64)
    assert sum(kernel.calls for kernel in module._KERNELS.values()) == 6


def test_small_upstream_gradients_do_not_vanish_in_float16():
    """float16 computed in float16 gave 0 for x = 1, g = 0.01 (true 0.01083): an intermediate went
    subnormal.  Computed in float64, it is the true value rounded."""
    module = symgrad.emit.load(symgrad.emit.emit(symgrad.derive(symgrad.ops.gelu("tanh"))))
    (d,) = module.backward(np.array([0.01], np.float16), np.array([1.0], np.float16))
    assert d.dtype == np.float16 and d[0] == np.float16(0.010831)


def test_the_report_names_every_dtype(scanned):
    text = report(scanned)
    assert all(f"{dtype} " in text for dtype in ("float16", "float32", "float64")) and "torch, finite x" in text


@pytest.mark.parametrize("size", [64, 4096])  # the NumPy path and the compiled loop (from 1,024 elements)
def test_the_float64_double_backward_keeps_its_digits_where_the_derivatives_cross_zero(size):
    """GELU's double backward, float64, near gelu′'s zero (x ≈ −0.7518) and gelu″'s (x = ±√2), where the
    terms cancel: within 1 ulp of a 40-digit mpmath value of gelu′ and gelu″ (written here from the
    definition, gelu′ = Φ + xφ, gelu″ = φ(2 − x²)). A float64 NumPy path lost up to 2.6e6 ulps there."""
    import mpmath
    mpmath.mp.dps = 40
    module = symgrad.module(symgrad.ops.gelu())
    x = np.concatenate([np.linspace(-0.7519, -0.7517, size // 4), np.linspace(1.4141, 1.4143, size // 4),
                        np.linspace(-1.4143, -1.4141, size // 4), np.linspace(-3, 3, size // 4)])
    g, gg = np.full_like(x, 1.25), np.full_like(x, -0.75)
    got_g, got_x = module.double_backward(gg, g, x)
    for k in range(0, x.size, max(1, x.size // 256)):
        X = mpmath.mpf(x[k])
        pdf = mpmath.exp(-X * X / 2) / mpmath.sqrt(2 * mpmath.pi)
        for got, want in ((got_g[k], gg[k] * (mpmath.erfc(-X / mpmath.sqrt(2)) / 2 + X * pdf)),
                          (got_x[k], g[k] * gg[k] * pdf * (2 - X * X))):
            assert abs(mpmath.mpf(got) - want) <= abs(want) * 2.0 ** -52, (x[k], got, want)
