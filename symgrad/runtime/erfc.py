"""erfc of arrays, accurate in the far tail in float64 too: SciPy's erfc (Cephes) computes
exp(-z^2) from a rounded z^2, which costs up to hundreds of ulps past z = 8; this is
erfcx(z) * exp(-z^2) with z^2 split so that its rounding never reaches the exponential."""
import numpy as xp
import scipy.special


def _exp_minus_square(z):
    """exp(-z^2), z split into a 24-bit head (whose square is exact in double) and the rest."""
    head = z.astype(xp.float32).astype(z.dtype)
    return xp.exp(-head * head) * xp.exp(-(z - head) * (z + head))


def _erfc(z):
    """erfc(z), elementwise; float64 within a few ulps everywhere, other dtypes by SciPy (which
    computes them in double).

    >>> float(_erfc(xp.float64(27.0))) > 0  # 5e-319: SciPy's exp(-z*z) path gives far less digits here
    True
    """
    z = xp.asarray(z)
    if z.dtype != xp.float64:
        return scipy.special.erfc(z)
    a = xp.minimum(xp.abs(z), 40.0)  # erfc(27) is already below the smallest double
    with xp.errstate(under="ignore"):
        tail = scipy.special.erfcx(a) * _exp_minus_square(a)
    tail = xp.where(z < 0, 2.0 - tail, tail)
    return xp.where(xp.isnan(z), z, xp.where(a < 0.5, scipy.special.erfc(z), tail))
