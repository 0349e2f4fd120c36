"""What differs between the emitted NumPy and CuPy modules, in one place: the array module, the
printer, which runtime pieces stand in for which, and how elementwise work runs."""
from __future__ import annotations

from dataclasses import dataclass, field

from .ir import SymgradError
from .printing.array import ArrayPrinter, CuPyArrayPrinter, ModuleArrayPrinter


@dataclass(frozen=True)
class Backend:
    """One target array library.

    ``substitutes`` maps a runtime piece written for NumPy to the one that replaces it here (the
    replacement defines the same names); ``blockwise``: elementwise ops run over cache-sized
    blocks (and numba loops); ``fused``: pointwise expressions become one CUDA kernel each.
    """

    name: str
    title: str
    array_import: str
    printer: type
    substitutes: dict = field(default_factory=dict)
    blockwise: bool = False
    fused: bool = False
    #: how a convolution's GEMMs run, one clause for the emitted header
    conv_runs: str = ""
    #: how a matmul form runs, one clause for the emitted header
    matmul_runs: str = ""

    def make_printer(self) -> ArrayPrinter:
        return self.printer()


NUMPY = Backend("numpy", "NumPy", "import numpy as xp", ModuleArrayPrinter, blockwise=True,
                conv_runs="in cache-sized batch chunks dealt out to worker threads",
                matmul_runs="one batched BLAS matrix product")
CUPY = Backend("cupy", "CuPy", "import cupy as xp", CuPyArrayPrinter,
               substitutes={"gemm_numpy": "gemm_cupy", "accumulate_numpy": "accumulate_cupy", "threads": "stream"}, fused=True,
               conv_runs="over the whole batch, each GEMM one cuBLAS call on its operands where they lie",
               matmul_runs="one strided-batched cuBLAS GEMM on the operands as they lie")
BACKENDS = {b.name: b for b in (NUMPY, CUPY)}


def backend(name: str) -> Backend:
    """The backend called ``name``; a SymgradError naming the choices otherwise."""
    if name not in BACKENDS:
        raise SymgradError(f"emit: backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    return BACKENDS[name]
