"""erf and erfc of one element in double precision, for the float32 loops (:mod:`jit`; float64 loops
call libm): Cephes' rational approximations, every branch computed and one selected, so LLVM
vectorises the loop.  Relative error under 4e-16 up to 8 and under 4e-10 beyond (Cephes fits its
exp(-a^2) P(a)/Q(a) on [1, 8]; past 8 it still holds to far better than a float32 rounding, which is
all these serve); erfc keeps that relative accuracy in the far tail, where 1 - erf is 0.

Each takes exp(-z²) from its caller (``e``): a derivative of erf(u) or erfc(u) holds exp(-u²)
itself, and the element's code computes it once for both (:func:`printing.scalar.element_parts`)."""
import math

from .jit import _inline
from .exp import _polynomial

_ERF_T = (9.60497373987051638749E0, 9.00260197203842689217E1, 2.23200534594684319226E3, 7.00332514112805075473E3,
          5.55923013010394962768E4)
_ERF_U = (1.0, 3.35617141647503099647E1, 5.21357949780152679795E2, 4.59432382970980127987E3,
          2.26290000613890934246E4, 4.92673942608635921086E4)
_ERFC_P = (2.46196981473530512524E-10, 5.64189564831068821977E-1, 7.46321056442269912687E0, 4.86371970985681366614E1,
           1.96520832956077098242E2, 5.26445194995477358631E2, 9.34528527171957607540E2, 1.02755188689515710272E3,
           5.57535335369399327526E2)
_ERFC_Q = (1.0, 1.32281951154744992508E1, 8.67072140885989742329E1, 3.54937778887819891062E2,
           9.75708501743205489753E2, 1.82390916687909736289E3, 2.24633760818710981792E3, 1.65666309194161350182E3,
           5.57535340817727675546E2)


@_inline
def _erf_small(z):
    """erf(z) for |z| < 1: z T(z^2) / U(z^2)."""
    zz = z * z
    return z * _polynomial(_ERF_T, zz) / _polynomial(_ERF_U, zz)


@_inline
def _erfc_large(a, e):
    """erfc(a) for a >= 1, given e = exp(-a^2): e P(a)/Q(a) (P/Q read at a <= 30: erfc(30) is far
    below the smallest double, and e is 0 there)."""
    a = min(a, 30.0)
    return e * _polynomial(_ERFC_P, a) / _polynomial(_ERFC_Q, a)


@_inline
def _erfc64(z, e):
    """erfc(z) in double precision, given e = exp(-z^2) (numba); NaN stays NaN."""
    if z != z:
        return z
    a = abs(z)
    large = _erfc_large(max(a, 1.0), e)
    large = 2.0 - large if z < 0 else large
    return 1.0 - _erf_small(z) if a < 1.0 else large


@_inline
def _erf64(z, e):
    """erf(z) in double precision, given e = exp(-z^2) (numba); NaN stays NaN."""
    if z != z:
        return z
    a = abs(z)
    large = 1.0 - _erfc_large(max(a, 1.0), e)
    large = -large if z < 0 else large
    return _erf_small(z) if a < 1.0 else large


@_inline
def _erfc_libm(z, e):
    """erfc(z) by C's libm, for float64 loops (``e`` unused: libm computes its own)."""
    return math.erfc(z)


@_inline
def _erf_libm(z, e):
    """erf(z) by C's libm, for float64 loops (``e`` unused)."""
    return math.erf(z)
