"""tanh of one element in double precision, for the compiled loops (:mod:`jit`): Cephes' x + x^3 P/Q
below 0.625, 1 - 2/(exp(2|x|) + 1) above (exp LLVM vectorises, and it overflows to exactly +-1)."""
import math

from .jit import _inline
from .exp import _exp64, _polynomial

_tanh_libm = math.tanh  # what float64 loops call (C's libm)
_TANH_P = (-9.64399179425052238628E-1, -9.92877231001918586564E1, -1.61468768441708447952E3)
_TANH_Q = (1.0, 1.12811678491632931402E2, 2.23548839060100448583E3, 4.84406305325125486048E3)


@_inline
def _tanh64(x):
    """tanh(x) in double precision (numba); NaN stays NaN."""
    a = abs(x)
    zz = x * x
    small = x + x * zz * _polynomial(_TANH_P, zz) / _polynomial(_TANH_Q, zz)
    large = 1.0 - 2.0 / (_exp64(2.0 * a) + 1.0)
    large = -large if x < 0 else large
    return small if a < 0.625 else large
