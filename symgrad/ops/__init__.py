"""The operator registry: each op is an index-notation definition and nothing else."""
from __future__ import annotations

from ..ir import Op, SymgradError
from .conv import conv, conv1d, conv2d, conv3d
from .convolve import convolve
from .gelu import gelu
from .matmul import matmul
from .pool import avg_pool1d, avg_pool2d, avg_pool3d

#: name -> (builder, {parameter: help})
REGISTRY = {
    "conv": (conv, {"ndim": "number of spatial axes (>= 1)"}),
    "conv1d": (conv1d, {}),
    "conv2d": (conv2d, {}),
    "conv3d": (conv3d, {}),
    "convolve": (convolve, {"mode": "full | same | valid (numpy.convolve)"}),
    "matmul": (matmul, {"a_shape": "pattern such as B,M,K or 1,M,K or K",
                        "b_shape": "pattern such as B,K,N or K,N or K"}),
    "gelu": (gelu, {"approximate": "none (erf) | tanh"}),
}
POOL_PARAMS = {
    "kernel_size": "int or one per axis (required)",
    "stride": "int or one per axis (default: the kernel size)",
    "padding": "int or one per axis, at most half the kernel (zeros, counted in the mean)",
}
for _name, _builder in (("avg_pool1d", avg_pool1d), ("avg_pool2d", avg_pool2d), ("avg_pool3d", avg_pool3d)):
    REGISTRY[_name] = (_builder, dict(POOL_PARAMS))

CONV_PARAMS = {
    "stride": "int or one per axis (default: symbolic for derive, 1 for emit/check)",
    "dilation": "int or one per axis",
    "padding": "int | one per axis | lo:hi per axis (negative crops) | same | valid | full | causal",
    "groups": "int dividing both channel counts (depthwise: groups = C_in)",
    "bias": "add b[C_out] (default on)",
    "kernel_size": "int or one per axis (default: read from w at run time)",
}
for _name in ("conv", "conv1d", "conv2d", "conv3d"):
    REGISTRY[_name][1].update(CONV_PARAMS)


def build(name: str, **params) -> Op:
    """Build a registered op by name: ``build("conv2d", stride=2)``."""
    if name not in REGISTRY:
        raise SymgradError(f"unknown op {name!r}; known ops: {', '.join(REGISTRY)}")
    builder, _ = REGISTRY[name]
    return builder(**params)


__all__ = ["Op", "REGISTRY", "avg_pool1d", "avg_pool2d", "avg_pool3d", "build", "conv", "conv1d", "conv2d", "conv3d",
           "convolve", "gelu", "matmul"]
