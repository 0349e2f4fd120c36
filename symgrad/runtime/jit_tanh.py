"""tanh of one float32 element, for the compiled loops (:mod:`jit`)."""
from .jit import _inline, _odd_rational32, numba
from .tanh import _TANH_P, _TANH_Q


@_inline
def _tanh32(z):
    """tanh._tanh for one float32 element (numba)."""
    return _odd_rational32(z, numba.float32(7.90531110763549805), _TANH_P, _TANH_Q)
