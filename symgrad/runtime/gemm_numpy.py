"""GEMMs for the NumPy modules: NumPy's BLAS.  The CuPy modules carry :mod:`gemm_cupy` instead,
the torch target :mod:`gemm_torch`; each defines the same names."""
import numpy as xp


def _matmul(a, b):
    """a @ b (NumPy's BLAS)."""
    return xp.matmul(a, b)
