"""How the emitted code computes each recognised form: the sentence the module header carries.

The NumPy helpers choose among their formulations from the form's parameters (and, for the
loop over taps versus output positions, the sizes at run time); this module says which rule
applies, so that a reader of the emitted file knows what runs without reading the helpers.
"""
from __future__ import annotations

import sympy as sp

from .printing import FLOAT32_APPROXIMATED


def _all_one(values) -> bool:
    return all(sp.sympify(v) == 1 for v in values)


def _conv(fields: dict, backend: str) -> str:
    gemms = "" if backend == "numpy" else ("; each GEMM one cuBLAS call that reads its operands where they lie "
                                           "and adds into the result (beta = 1)")
    return _conv_paths(fields, backend) + gemms


def _conv_paths(fields: dict, backend: str) -> str:
    chunks = ("in cache-sized batch chunks dealt out to the worker threads" if backend == "numpy"
              else "over the whole batch")
    unit_stride = _all_one(fields["window_strides"])
    unit_lhs = _all_one(fields["lhs_dilation"])
    single_batch_group = sp.sympify(fields["batch_group_count"]) == 1
    if not unit_lhs and unit_stride and single_batch_group:
        return ("transposed convolution by output phase (no zero insertion): the outputs of each "
                "lhs_dilation phase meet only every few kernel taps, so each phase is a unit-stride "
                f"convolution of the undilated input with those taps, one GEMM per tap {chunks}, "
                "written straight into its strided share of the output")
    prefix = "" if unit_lhs else "zero-inserted input (lhs_dilation), then "
    dilation = "" if _all_one(fields["rhs_dilation"]) else " (split into the phases of the kernel dilation)"
    inner = ("per contracted channel, the channels dealt out to the worker threads" if backend == "numpy"
             else "with channels and kernel extent merged into one long inner dimension")
    text = (f"one GEMM per output position of the flattened padded input{dilation} {inner}, when there are "
            "fewer output positions than kernel taps (a weight gradient); else ")
    if not single_batch_group:
        return prefix + text + "im2col windows (sliding_window_view) and one batched GEMM per group"
    phases = "" if unit_stride else ", the input split into its window-stride phases in one buffer"
    depthwise = (" (a broadcast multiply-add per tap when each group has one input channel)" if backend == "numpy"
                 else " (when each group has one input channel, the taps' broadcast products summed by one fused "
                 "elementwise kernel per 16 taps)")
    return prefix + text + (f"one GEMM per kernel tap on the flattened padded input{phases} (no im2col copy), "
                            f"accumulated {chunks}{depthwise}")


def formulation(kind: str, fields: dict, backend: str = "numpy", blockwise: bool = False, jit: bool = False) -> str:
    if kind == "conv_general_dilated":
        return _conv(fields, backend)
    if kind == "matmul":
        if backend == "cupy":
            return "one strided-batched cuBLAS GEMM on the operands as they lie, transposes by flag (dot_general)"
        return "one batched BLAS matrix product (dot_general)"
    if kind == "reduce_sum":
        return "one reduction (xp.sum)"
    if kind == "elementwise":
        if backend == "cupy":
            return "one fused elementwise kernel"
        expr = str(fields.get("expr", ""))
        special = [f for f in FLOAT32_APPROXIMATED if f + "(" in expr]
        note = (f"; {' and '.join(special)} of float32 by rational approximations (max abs error <= 4.5e-7)"
                if special else "")
        exp = "; float32 exp by Cephes' expf, vectorised, within an ulp" if jit and "exp(" in expr else ""
        loop = f"one loop compiled by numba when it is installed (threads: NUMBA_NUM_THREADS{exp}), else " if jit else ""
        blocks = ", in cache-sized blocks (threads: SYMGRAD_NUM_THREADS)" if blockwise else ""
        return f"{loop}array expression (ufuncs){blocks}{note}"
    return "gather loop over the derived index expression (no closed form recognised)"
