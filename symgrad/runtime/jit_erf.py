"""erf of one float32 element, for the compiled loops (:mod:`jit`)."""
from .erf import _ERF_P, _ERF_Q
from .jit import _inline, _odd_rational32, numba


@_inline
def _erf32(z):
    """erf._erf for one float32 element (numba)."""
    return _odd_rational32(z, numba.float32(4.0), _ERF_P, _ERF_Q)
