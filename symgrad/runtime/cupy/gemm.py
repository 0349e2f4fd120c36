"""GEMMs for the CuPy modules: direct cuBLAS calls (``cupy.cuda.cublas.gemmStridedBatchedEx``) on the
operands where they lie; defines the names :mod:`gemm` defines for the NumPy modules, and
``_gemm``, which :mod:`cupy.accumulate` uses to add into a result.

cupy.matmul copies every operand that is not C-contiguous, and a per-tap GEMM reads a strided
window of the input; nor can it add into its output.  cuBLAS reads such a window in place through
its leading dimension, a transposed operand through its transpose flag, and adds into the result
with beta = 1.  float16 GEMMs accumulate in float32 (tensor cores), as PyTorch's do; float32 ones
run in float32 without TF32; float64 in float64.
"""
import numpy
import cupy as xp

_CUDA_TYPES = {"float16": (2, 68), "float32": (0, 68), "float64": (1, 70)}  # (cudaDataType, cublasComputeType)
_INT_MAX = 2 ** 31 - 1
_SCALARS = {compute: numpy.array([0, 1], numpy.float64 if compute == 70 else numpy.float32) for compute in (68, 70)}


def _address(a):
    """The device address of the first element of ``a``."""
    return a.data.ptr


def _operand(a):
    """How cuBLAS reads the matrix in the last two axes of ``a`` (rows x cols) where it lies: (True
    when its rows, not its columns, have unit stride; the leading dimension), or None when it
    cannot (no unit stride, or rows closer together than cuBLAS allows)."""
    rows, cols = a.shape[-2:]
    row_step, col_step = (s // a.itemsize for s in a.strides[-2:])
    if (col_step == 1 or cols == 1) and (rows == 1 or row_step >= max(cols, 1)):
        return False, row_step if rows > 1 else max(cols, 1)
    if (row_step == 1 or rows == 1) and (cols == 1 or col_step >= max(rows, 1)):
        return True, col_step if cols > 1 else max(rows, 1)
    return None


def _gemm(a, b, out, beta):
    """out = a @ b (beta 0) or out += a @ b (beta 1), for stacks of at most one batch axis (size 1
    broadcasts), by one cuBLAS call on the arrays where they lie.  Returns False, having done
    nothing, where cuBLAS cannot read them so (other dtypes, no unit stride, empty, too large)."""
    types = _CUDA_TYPES.get(out.dtype.name)
    if types is None or a.dtype != out.dtype or b.dtype != out.dtype or not a.ndim == b.ndim == out.ndim <= 3:
        return False
    left, right, result = _operand(a), _operand(b), _operand(out)
    (m, k), n = a.shape[-2:], b.shape[-1]
    batch = out.shape[0] if out.ndim == 3 else 1
    if None in (left, right, result) or result[0] or min(m, n, k, batch) == 0:
        return False
    if max(m, n, k, batch, left[1], right[1], result[1]) > _INT_MAX or (batch > 1 and out.strides[0] == 0):
        return False
    if any(x.ndim == 3 and x.shape[0] not in (1, batch) for x in (a, b)):
        return False
    steps = [x.strides[0] // x.itemsize if x.ndim == 3 and x.shape[0] > 1 else 0 for x in (a, b, out)]
    if min(steps) < 0:
        return False
    data, compute = types
    scalars = _SCALARS[compute]  # host values 0 and 1 in the compute type: alpha = 1, beta = 0 or 1
    alpha_at, beta_at = (scalars.ctypes.data + value * scalars.itemsize for value in (1, beta))
    # row-major out = a @ b is column-major out^T = b^T a^T: cuBLAS's first operand is b
    xp.cuda.cublas.gemmStridedBatchedEx(
        xp.cuda.device.get_cublas_handle(), int(right[0]), int(left[0]), n, m, k, alpha_at,
        _address(b), data, right[1], steps[1], _address(a), data, left[1], steps[0],
        beta_at, _address(out), data, result[1], steps[2], batch, compute, -1)  # -1: default algorithm
    return True


def _matmul(a, b):
    """a @ b: by cuBLAS on the operands where they lie, else cupy.matmul."""
    if a.ndim == b.ndim and a.dtype == b.dtype:
        lead = tuple(max(p, q) for p, q in zip(a.shape[:-2], b.shape[:-2]))
        out = xp.empty(lead + (a.shape[-2], b.shape[-1]), dtype=a.dtype)
        if _gemm(a, b, out, 0):
            return out
    return xp.matmul(a, b)
