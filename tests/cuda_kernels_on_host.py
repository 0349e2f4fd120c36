"""cupy.ElementwiseKernel on the host: the kernel's C body compiled by the host's C compiler and run
over NumPy arrays, so the CPU suite runs the CuPy modules' fused kernels (the GELU forward and
gradient, the depthwise tap sums) with the arithmetic their bodies ask for: float where a body casts
to float (float16 and float32 arrays), double for float64.  float16 is C's _Float16, IEEE binary16 as
CUDA's half.

What is modelled, after CuPy's elementwise kernel generator (cupy/_core/_kernel.pyx): ``typedef
<dtype> T;``; each input read as ``const T &name`` and each output as ``T &name`` at the element's
index; inputs broadcast against each other and against given outputs; one dtype bound to T by all
arguments (CuPy raises "Type is mismatched" otherwise); an output made when none is given.

:func:`cuda_source` writes the same kernels as CuPy hands them to the CUDA compiler (its headers,
``CArray``/``CIndexer`` parameters, the ``CUPY_FOR`` grid-stride loop), and :func:`gpu_compile_errors`
compiles them with NVRTC, CuPy's own compiler, so that a machine with NVRTC and CuPy's headers (no
GPU) compiles every body the modules build as the GPU machine would."""
import atexit
import ctypes
import ctypes.util
import functools
import importlib.util
import os
import shutil
import subprocess
import sysconfig
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

HOST_TYPES = {np.dtype(np.float16): "_Float16", np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
CUPY_TYPES = {np.dtype(np.float16): "float16", np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
#: every kernel the stand-in ran: (in_params, out_params, body, name, dtype)
SEEN = set()


def compiler():
    """The host C compiler (Python's own, else cc or gcc), or None."""
    configured = (sysconfig.get_config_var("CC") or "").split()
    for candidate in configured[:1] + ["cc", "gcc"]:
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def _names(params: str) -> list:
    """``"T a0, T b0"`` -> ``["a0", "b0"]``; only the type placeholder T is used by the modules."""
    names = []
    for param in params.split(","):
        kind, name = param.split()
        assert kind == "T", params
        names.append(name)
    return names


_LIBRARIES = {}  # (inputs, outputs, body, dtype) -> the compiled kernel function
_COMPILING = threading.Lock()  # a convolution's worker threads may ask for the same kernel at once


@functools.lru_cache(maxsize=None)
def _build_dir() -> str:
    path = tempfile.mkdtemp(prefix="symgrad-kernels-")
    atexit.register(shutil.rmtree, path, True)
    return path


def host_source(inputs, outputs, body, dtype) -> str:
    """The kernel as a C loop over n contiguous elements."""
    params = [f"const T *_raw_{n}" for n in inputs] + [f"T *_raw_{n}" for n in outputs]
    reads = [f"const T {n} = _raw_{n}[i];" for n in inputs] + [f"T {n} = _raw_{n}[i];" for n in outputs]
    writes = [f"_raw_{n}[i] = {n};" for n in outputs]
    return "\n".join([
        "#include <math.h>",
        "#include <stdbool.h>  /* true and false, built into CUDA C++ */",
        f"typedef {HOST_TYPES[dtype]} T;",
        f"void kernel(long n, {', '.join(params)}) {{",
        "  for (long i = 0; i < n; ++i) {",
        *["    " + line for line in reads],
        f"    {body}",
        *["    " + line for line in writes],
        "  }",
        "}",
    ]) + "\n"


def _library(inputs, outputs, body, dtype):
    with _COMPILING:
        return _compiled(inputs, outputs, body, dtype)


def _compiled(inputs, outputs, body, dtype):
    key = (tuple(inputs), tuple(outputs), body, dtype)
    if key not in _LIBRARIES:
        cc = compiler()
        if cc is None:
            pytest.skip("no C compiler to run the CuPy modules' fused kernels on the host")
        stem = os.path.join(_build_dir(), f"kernel{len(_LIBRARIES)}")
        with open(stem + ".c", "w") as fh:
            fh.write(host_source(inputs, outputs, body, dtype))
        done = subprocess.run([cc, "-std=c11", "-O2", "-fPIC", "-shared", "-o", stem + ".so", stem + ".c", "-lm"],
                              capture_output=True, text=True)
        assert done.returncode == 0, f"the kernel body does not compile as C:\n{body}\n{done.stderr}"
        function = ctypes.CDLL(stem + ".so").kernel
        function.restype = None
        function.argtypes = [ctypes.c_long] + [ctypes.c_void_p] * (len(inputs) + len(outputs))
        _LIBRARIES[key] = function
    return _LIBRARIES[key]


class ElementwiseKernel:
    """cupy.ElementwiseKernel(in_params, out_params, body, name), run by the host C compiler."""

    def __init__(self, in_params, out_params, body, name):
        self.in_params, self.out_params, self.body, self.name = in_params, out_params, body, name
        self.inputs, self.outputs = _names(in_params), _names(out_params)
        self.calls = 0

    @property
    def compute(self):
        """The type the body casts its operands to (float or double), or None."""
        casts = {c for c in ("float", "double") if f"({c})" in self.body}
        return {"float": np.float32, "double": np.float64}[casts.pop()] if len(casts) == 1 else None

    def __call__(self, *args):
        inputs, outputs = [np.asarray(a) for a in args[:len(self.inputs)]], list(args[len(self.inputs):])
        assert len(outputs) in (0, len(self.outputs)), (self.name, len(args))
        dtypes = {a.dtype for a in inputs + outputs}
        if len(dtypes) != 1:
            raise TypeError(f"Type is mismatched. {self.name}: T bound to {sorted(d.name for d in dtypes)}")
        (dtype,) = dtypes
        shape = np.broadcast_shapes(*(a.shape for a in inputs + outputs))
        if any(o.shape != shape for o in outputs):
            raise ValueError(f"Out shape is mismatched: {[o.shape for o in outputs]} while {shape} is expected.")
        outputs = outputs or [np.empty(shape, dtype) for _ in self.outputs]
        flat_in = [np.ascontiguousarray(np.broadcast_to(a, shape)) for a in inputs]
        flat_out = [np.ascontiguousarray(o) for o in outputs]
        SEEN.add((self.in_params, self.out_params, self.body, self.name, dtype.name))
        function = _library(self.inputs, self.outputs, self.body, dtype)
        function(int(np.prod(shape)), *[a.ctypes.data for a in flat_in + flat_out])
        for given, flat in zip(outputs, flat_out):
            if given is not flat:
                given[...] = flat
        self.calls += 1
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def cuda_source(kernels) -> str:
    """One CUDA translation unit holding each (in_params, out_params, body, name, dtype) as CuPy
    generates it, each in its own namespace with its own ``T`` and a numbered name."""
    parts = ["#include <cupy/complex.cuh>", "#include <cupy/carray.cuh>", "#include <cupy/float16.cuh>", ""]
    for k, (in_params, out_params, body, name, dtype) in enumerate(sorted(kernels)):
        inputs, outputs = _names(in_params), _names(out_params)
        params = [f"const CArray<T, 1, true, true> _raw_{n}" for n in inputs]
        params += [f"CArray<T, 1, true, true> _raw_{n}" for n in outputs] + ["CIndexer<1, true> _ind"]
        refs = [f"const T &{n} = _raw_{n}[_ind.get()];" for n in inputs]
        refs += [f"T &{n} = _raw_{n}[_ind.get()];" for n in outputs]
        parts += [
            f"namespace kernel{k} {{",
            f"typedef {CUPY_TYPES[np.dtype(dtype)]} T;",
            f"extern \"C\" __global__ void {name}_{k}({', '.join(params)}) {{",
            "  CUPY_FOR(i, _ind.size()) {",
            "    _ind.set(i);",
            *["    " + line for line in refs],
            f"    {body};",
            "  }",
            "}",
            "}",
            "",
        ]
    return "\n".join(parts)


def _package_dirs(name) -> list:
    """The directories of an installed package, found without importing it ([] when absent)."""
    try:
        spec = importlib.util.find_spec(name)
    except ValueError:  # stood in for by a module without a spec (cupy, in these tests)
        return []
    return [Path(p) for p in spec.submodule_search_locations] if spec and spec.submodule_search_locations else []


def _cupy_include():
    """CuPy's kernel headers (cupy/_core/include), or None."""
    found = [d / "_core" / "include" for d in _package_dirs("cupy")]
    return next((d for d in found if (d / "cupy" / "carray.cuh").exists()), None)


CUPY_INCLUDE = _cupy_include()  # looked up once, before any test stands NumPy in for cupy


def _nvidia_wheels() -> list:
    """The roots of the CUDA component wheels (nvidia-cuda-nvrtc, nvidia-cuda-runtime): nvidia/cu13, …"""
    return sorted(p for root in _package_dirs("nvidia") for p in root.glob("cu*") if p.is_dir())


CUDA = Path(os.environ.get("CUDA_PATH", "/usr/local/cuda"))


def _nvrtc():
    """NVRTC, the runtime compiler CuPy compiles its kernels with (no GPU needed), or None: from the
    nvidia-cuda-nvrtc wheel, the CUDA toolkit, or the library path."""
    candidates = [p for root in _nvidia_wheels() for p in sorted(root.glob("lib/libnvrtc.so*"))]
    candidates += sorted((CUDA / "lib64").glob("libnvrtc.so*"))
    found = ctypes.util.find_library("nvrtc")
    candidates += [found] if found else []
    for path in candidates:
        if "builtins" in str(path):
            continue
        try:
            return ctypes.CDLL(str(path))
        except OSError:
            continue
    return None


NVRTC = _nvrtc()
needs_nvrtc = pytest.mark.skipif(NVRTC is None or CUPY_INCLUDE is None,
                                 reason="needs NVRTC and CuPy's headers (cupy-cuda13x, nvidia-cuda-nvrtc, "
                                        "nvidia-cuda-runtime; no GPU needed)")


def gpu_compile_errors(kernels) -> str:
    """Compile the kernels with NVRTC as CuPy does (its headers and CCCL on the include path, the CUDA
    headers of the toolkit or of the nvidia-cuda-runtime wheel, C++17, for the H100: compute_90);
    returns the compiler's log when they do not compile, else ''."""
    include = [CUPY_INCLUDE] + [CUPY_INCLUDE / "cupy" / "_cccl" / d for d in ("thrust", "libcudacxx", "cub")]
    include += [CUDA / "include"] + [root / "include" for root in _nvidia_wheels()]
    options = ["--gpu-architecture=compute_90", "--std=c++17"] + [f"-I{d}" for d in include if d.exists()]
    program = ctypes.c_void_p()
    assert NVRTC.nvrtcCreateProgram(ctypes.byref(program), cuda_source(kernels).encode(), b"kernels.cu", 0, None,
                                    None) == 0
    status = NVRTC.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(
        *[o.encode() for o in options]))
    size = ctypes.c_size_t()
    NVRTC.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    NVRTC.nvrtcGetProgramLog(program, log)
    NVRTC.nvrtcDestroyProgram(ctypes.byref(program))
    return "" if status == 0 else log.value.decode(errors="replace")[-4000:] or f"NVRTC status {status}"
