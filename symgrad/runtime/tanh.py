"""tanh of arrays: float32 (and float16) by a rational approximation, max abs error 4.0e-7 against
float64; other dtypes by NumPy."""
import numpy as xp

from .special import _odd_rational, _single

_TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
           1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


def _tanh(z):
    """tanh(z), elementwise; float32 stays float32."""
    z, single = _single(z)
    return _odd_rational(z, 7.90531110763549805, _TANH_P, _TANH_Q) if single else xp.tanh(z)
