"""cuBLAS's gemmStridedBatchedEx emulated with NumPy on host memory, so that the CPU suite runs the
CuPy modules' GEMM calls (symgrad/runtime/cupy/gemm.py) as they are made on the GPU.

The emulation follows the cuBLAS documentation, not the helper: column-major matrices at raw
addresses, each read through its leading dimension, op(A) = A or A^T by the transpose flag, a
batch stride between the matrices of a batch, C = alpha * op(A) op(B) + beta * C with C not read
when beta is 0.  It rejects the arguments cuBLAS rejects (a leading dimension shorter than the
matrix's first dimension, mismatched data and compute types)."""
import ctypes
import importlib.util
import itertools
import sys
import types
from pathlib import Path

import numpy as np

import symgrad.runtime
from cuda_kernels_on_host import ElementwiseKernel

DATA_TYPES = {0: np.float32, 1: np.float64, 2: np.float16}          # cudaDataType
COMPUTE_TYPES = {68: np.float32, 70: np.float64}                     # cublasComputeType


def _host(address, dtype, count):
    """``count`` elements of ``dtype`` from address on."""
    size = count * np.dtype(dtype).itemsize
    return np.ctypeslib.as_array((ctypes.c_char * size).from_address(address)).view(dtype)


def _matrices(address, dtype, rows, cols, ld, batch, step):
    """The batch of column-major (rows x cols) matrices at address, as a (batch, rows, cols) view."""
    item = np.dtype(dtype).itemsize
    extent = (batch - 1) * step + (cols - 1) * ld + rows
    return np.lib.stride_tricks.as_strided(_host(address, dtype, extent), (batch, rows, cols),
                                           (step * item, item, ld * item))


class Cublas:
    """The calls the helper makes, kept in ``calls``."""

    def __init__(self):
        self.calls = []
        self.refused = []  # the GEMMs the helper left to cupy.matmul: (a, b, out) shapes and strides

    def gemmStridedBatchedEx(self, handle, transa, transb, m, n, k, alpha, a, a_type, lda, stride_a,
                             b, b_type, ldb, stride_b, beta, c, c_type, ldc, stride_c, batch, compute, algo):
        assert a_type == b_type == c_type and c_type in DATA_TYPES, (a_type, b_type, c_type)
        dtype, acc = DATA_TYPES[c_type], COMPUTE_TYPES[compute]
        assert acc == (np.float64 if dtype == np.float64 else np.float32), (dtype, compute)
        assert transa in (0, 1) and transb in (0, 1) and min(m, n, k) >= 0 and batch >= 1
        a_rows, a_cols = (m, k) if transa == 0 else (k, m)
        b_rows, b_cols = (k, n) if transb == 0 else (n, k)
        assert lda >= max(1, a_rows) and ldb >= max(1, b_rows) and ldc >= max(1, m), (lda, ldb, ldc, m, n, k)
        assert min(stride_a, stride_b, stride_c) >= 0 and (batch == 1 or stride_c >= ldc * (n - 1) + m)
        alpha, beta = _host(alpha, acc, 1)[0], _host(beta, acc, 1)[0]
        op_a = _matrices(a, dtype, a_rows, a_cols, lda, batch, stride_a)
        op_b = _matrices(b, dtype, b_rows, b_cols, ldb, batch, stride_b)
        op_a, op_b = (x.transpose(0, 2, 1) if t else x for x, t in ((op_a, transa), (op_b, transb)))
        result = _matrices(c, dtype, m, n, ldc, batch, stride_c)
        value = alpha * np.matmul(op_a.astype(acc), op_b.astype(acc))
        if beta != 0:
            value += beta * result.astype(acc)
        result[...] = value.astype(dtype)
        self.calls.append((transa, transb, m, n, k, batch))


def fake_cupy():
    """A stand-in for the cupy module over NumPy: NumPy's functions, cuBLAS emulated, elementwise
    kernels run by the host C compiler (tests/cuda_kernels_on_host.py); and the emulated cuBLAS."""
    cublas = Cublas()
    xp = types.ModuleType("cupy_on_numpy")
    xp.__getattr__ = lambda name: getattr(np, name)
    xp.cuda = types.SimpleNamespace(cublas=cublas, device=types.SimpleNamespace(get_cublas_handle=lambda: 0))
    xp.ElementwiseKernel = ElementwiseKernel
    return xp, cublas


def stand_in(monkeypatch):
    """Make ``import cupy`` give :func:`fake_cupy`'s module and ``import cupyx.scipy.special`` give
    SciPy's (for the test's duration); returns the module and the emulated cuBLAS."""
    import scipy.special
    xp, cublas = fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", xp)
    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy.special = scipy.special
    for name, module in (("cupyx", cupyx), ("cupyx.scipy", cupyx.scipy), ("cupyx.scipy.special", scipy.special)):
        monkeypatch.setitem(sys.modules, name, module)
    return xp, cublas


def on_host(namespace, cublas):
    """Point the CuPy helpers in ``namespace`` (a module's dict) at host memory, and record in
    cublas.refused the GEMMs they do not give to cuBLAS.  A module without GEMMs (GELU) is left as is."""
    if "_gemm" not in namespace:
        return
    namespace["_address"] = lambda a: a.ctypes.data
    gemm = namespace["_gemm"]

    def recorded(a, b, out, beta):
        done = gemm(a, b, out, beta)
        if not done:
            cublas.refused.append(tuple((x.shape, x.strides, x.dtype.name) for x in (a, b, out)))
        return done
    namespace["_gemm"] = recorded


_LOADED = itertools.count()


def runtime_module(name, xp=None, siblings=None):
    """A fresh copy of the runtime module ``name`` (symgrad/runtime/<name>.py, ``cupy/gemm``: in its
    folder), loaded now (module constants read the environment anew) with ``import cupy`` giving
    ``xp`` (None: no cupy); its sibling imports are the package's own modules, or those in
    ``siblings`` (name -> module)."""
    path = Path(symgrad.runtime.__file__).parent / f"{name}.py"
    package = ".".join(["symgrad.runtime"] + name.split("/")[:-1])
    spec = importlib.util.spec_from_file_location(f"{package}._{name.split('/')[-1]}_on_host_{next(_LOADED)}", path)
    module = importlib.util.module_from_spec(spec)
    swapped = {"cupy": xp, **{f"symgrad.runtime.{k.replace('/', '.')}": m for k, m in (siblings or {}).items()}}
    saved = {key: sys.modules.get(key) for key in swapped}
    sys.modules.update(swapped)
    try:
        spec.loader.exec_module(module)
    finally:
        for key, value in saved.items():
            if value is None:
                del sys.modules[key]
            else:
                sys.modules[key] = value
    return module


def cupy_helpers():
    """The CuPy modules' GEMM and accumulation helpers (runtime/cupy/gemm.py and cupy/accumulate.py,
    as one namespace) over NumPy arrays, cuBLAS emulated, host addresses standing in for device
    ones; and the emulated cuBLAS, which also records the GEMMs the helpers did not give it."""
    xp, cublas = fake_cupy()
    gemm = runtime_module("cupy/gemm", xp)
    accumulate = runtime_module("cupy/accumulate", xp, siblings={"cupy/gemm": gemm})
    on_host(vars(gemm), cublas)
    accumulate._gemm = gemm._gemm  # the recording wrapper on_host put in place
    return {**vars(gemm), **vars(accumulate)}, cublas
