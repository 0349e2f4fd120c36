"""Pointwise expressions as one CUDA kernel each (the CuPy modules)."""
import cupy as xp

_KERNELS = {}


def fused(params, body, name, outputs="T out"):
    """One cupy.ElementwiseKernel per expression (compiled once, reused): a single pass over memory;
    ``outputs`` several for a run of pointwise steps fused into one kernel."""
    key = (params, body, outputs)
    if key not in _KERNELS:
        _KERNELS[key] = xp.ElementwiseKernel(params, outputs, body, name)
    return _KERNELS[key]
