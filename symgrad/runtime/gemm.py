"""GEMMs for the NumPy modules: NumPy's BLAS.  The CuPy modules carry :mod:`cupy.gemm` instead,
the torch target :mod:`torch.gemm`; each defines the same names."""
import numpy as xp

from .threads import _in_parallel, _split


def _matmul(a, b):
    """a @ b (NumPy's BLAS).  A batch of GEMMs (attention's heads, a grouped convolution's groups)
    is dealt out to the worker threads in contiguous runs, each run on one BLAS thread: a batched
    matmul runs its GEMMs one after another, each too small for BLAS's own threads to gain much
    (a 512 x 64 x 512 attention GEMM ran slower on two of them than on one)."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[0] < 2:
        return xp.matmul(a, b)
    runs = _split(a.shape[0], a.shape[0])[1]
    if len(runs) == 1:
        return xp.matmul(a, b)
    out = xp.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=xp.result_type(a, b))

    def work(start, stop):
        xp.matmul(a[start:stop], b[start:stop], out=out[start:stop])
    _in_parallel(work, runs)
    return out
