"""erf of arrays: float32 (and float16) by a rational approximation, max abs error 4.5e-7 against
float64; other dtypes by SciPy."""
import scipy.special

from .special import _odd_rational, _single

_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)


def _erf(z):
    """erf(z), elementwise; float32 stays float32.

    >>> float(_erf(0.5)) == float(scipy.special.erf(0.5))  # float64: SciPy's
    True
    """
    z, single = _single(z)
    return _odd_rational(z, 4.0, _ERF_P, _ERF_Q) if single else scipy.special.erf(z)
