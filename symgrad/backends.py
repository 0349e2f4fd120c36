"""What differs between the emitted modules, in one place: the array module, the printer, how
elementwise work runs, and the few spellings the array
libraries disagree on.

Two kinds: standalone array modules (``numpy``, ``cupy``: ``emit --backend``) and framework
targets (``torch``, ``jax``: ``emit --target``), whose modules wrap the same forms' code in a
``torch.autograd.Function`` or a ``jax.custom_vjp``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ir import SymgradError
from .printing.array import ArrayPrinter, CuPyArrayPrinter, JaxArrayPrinter, ModuleArrayPrinter, TorchArrayPrinter


@dataclass(frozen=True)
class Backend:
    """One target array library.

    Its own runtime pieces are in ``symgrad/runtime/<name>/`` and stand in for the shared ones of
    the same name (:func:`symgrad.emit.inline.resolve`); ``blockwise``: elementwise ops run over cache-sized
    blocks (and numba loops); ``fused``: pointwise expressions become one CUDA kernel each.
    """

    name: str
    title: str
    array_import: str
    printer: type
    blockwise: bool = False
    fused: bool = False
    #: how a convolution runs, one clause for the emitted header
    conv_runs: str = ""
    #: whether that clause follows the paths of runtime/conv.py (else it is the whole story)
    conv_paths: bool = True
    #: a convolution without lhs dilation or batch groups calls runtime/plain_conv.py, so that a module
    #: whose convolutions are all plain carries no transposed path nor im2col (CuPy keeps the general
    #: entry: its im2col alternative is a measured choice on the GPU)
    plain_conv: bool = False
    #: how a matmul form runs, one clause for the emitted header
    matmul_runs: str = ""
    #: how a pointwise expression runs, one clause for the emitted header
    expression_runs: str = "array expression (ufuncs)"
    #: the array method that reorders axes: NumPy's ``transpose(*axes)``, torch's ``permute``
    permute: str = "transpose"
    #: the keyword of ``xp.flip`` that names its axes
    flip_axes: str = "axis"
    #: arrays made from nothing take the device of the array they go with (torch)
    device: bool = False
    #: a fresh result may be added into in place (JAX's arrays are immutable; torch's autograd
    #: records the backward for double backward, which in-place updates complicate)
    in_place: bool = True
    #: a framework target: the module wraps forward and backward for the framework's autodiff
    framework: bool = False
    #: arrays are immutable: a slice is written as ``a = a.at[index].set(value)`` (JAX)
    immutable: bool = False
    #: the runtime function an elementwise op's operands pass through before its derived expression
    #: (torch: ``_wide``, float64 for the narrower floats, as the NumPy modules compute)
    widen: str = ""
    #: a tensor through which no gradient flows, as code (``{}`` the tensor): a stop_gradient statement's
    #: value in a framework target, so that differentiating the backward again does not pass through it
    stop: str = ""

    def make_printer(self) -> ArrayPrinter:
        return self.printer()

    @property
    def xp(self) -> str:
        """What the emitted code calls the array module (its printer's ``module``): ``xp`` where one
        module's code serves NumPy and CuPy alike (and jax.numpy), ``torch`` in the torch target's."""
        return self.printer.module

    def permuted(self, code: str, order) -> str:
        """``code`` with its axes in ``order``."""
        return f"{code}.{self.permute}({', '.join(map(str, order))})"

    def flipped(self, code: str, axes) -> str:
        """``code`` reversed along ``axes``."""
        return f"{self.xp}.flip({code}, {self.flip_axes}={tuple(axes)})"

    def new(self, function: str, shape: str, like: str) -> str:
        """``xp.zeros``/``xp.ones`` of ``shape`` with the dtype (and device) of the array ``like``."""
        device = f", device={like}.device" if self.device else ""
        return f"{self.xp}.{function}({shape}, dtype={like}.dtype{device})"

    def set_slice(self, array: str, index: str, value: str) -> str:
        """The statement writing ``value`` into ``array[index]``."""
        return f"{array} = {array}.at[{index}].set({value})" if self.immutable else f"{array}[{index}] = {value}"

    def arange(self, lo: str, hi: str, like: str) -> str:
        """``xp.arange(lo, hi)``, on the device of ``like`` where arrays have one."""
        device = f", device={like}.device" if self.device else ""
        return f"{self.xp}.arange({lo}, {hi}{device})"


NUMPY = Backend("numpy", "NumPy", "import numpy as xp", ModuleArrayPrinter, blockwise=True, plain_conv=True,
                conv_runs="in cache-sized batch chunks dealt out to worker threads",
                matmul_runs="one batched BLAS matrix product")
CUPY = Backend("cupy", "CuPy", "import cupy as xp", CuPyArrayPrinter,
               fused=True,
               conv_runs="over the whole batch, each GEMM one cuBLAS call on its operands where they lie",
               matmul_runs="one strided-batched cuBLAS GEMM on the operands as they lie")
TORCH = Backend("torch", "PyTorch", "import torch", TorchArrayPrinter,
                conv_runs="asymmetric or negative padding by torch.nn.functional.pad; on the tensors' device",
                conv_paths=False, matmul_runs="one torch.matmul on the permuted operands",
                expression_runs="torch expression (one kernel per operation)",
                permute="permute", flip_axes="dims", device=True, in_place=False, framework=True, widen="_wide",
                stop="{}.detach()")
JAX = Backend("jax", "JAX", "import jax.numpy as xp", JaxArrayPrinter,
              conv_runs="jax.lax.conv_general_dilated with these fields verbatim (precision HIGHEST)",
              conv_paths=False, matmul_runs="jax.lax.dot_general with these dimension numbers (precision HIGHEST)",
              expression_runs="jax.numpy expression (XLA fuses it under jit)", in_place=False, framework=True,
              immutable=True, stop="jax.lax.stop_gradient({})")
BACKENDS = {b.name: b for b in (NUMPY, CUPY)}
TARGETS = {b.name: b for b in (TORCH, JAX)}


def backend(name: str) -> Backend:
    """The backend or framework target called ``name``; a SymgradError naming the choices otherwise."""
    if name in TARGETS:
        return TARGETS[name]
    if name not in BACKENDS:
        raise SymgradError(f"emit: backend must be one of {', '.join(BACKENDS)} (or a target: "
                           f"{', '.join(TARGETS)}), got {name!r}")
    return BACKENDS[name]
