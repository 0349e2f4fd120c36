"""The operator registry: each op is an index-notation definition and nothing else."""
from __future__ import annotations

from ..ir import Op, SymgradError
from ..program import Program
from .attention import attention
from .blocks import conv_bias_gelu, depthwise_separable
from .conv import conv, conv1d, conv2d, conv3d
from .convolve import convolve
from .gelu import gelu
from .interpolate import interpolate
from .matmul import matmul
from .norm import batch_norm, layer_norm, rms_norm
from .padded import conv_padded
from .pool import avg_pool1d, avg_pool2d, avg_pool3d, max_pool1d, max_pool2d, max_pool3d
from .softmax import cross_entropy, log_softmax, softmax

#: the convolutions, and the parameters emit and check fill with PyTorch's defaults where unset
CONV_OPS = ("conv", "conv1d", "conv2d", "conv3d")
TORCH_DEFAULTS = {"stride": 1, "dilation": 1, "padding": 0, "groups": 1}

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
    "interpolate": (interpolate, {"ndim": "spatial axes 1..3 (default 1)", "size": "int or one per axis",
                                  "scale_factor": "an integer, or one per axis (instead of size)",
                                  "mode": "nearest | nearest-exact | linear (bilinear, trilinear by ndim)",
                                  "align_corners": "true | false (linear; default false)"}),
}
#: programs (several statements), name -> (builder, {parameter: help})
PROGRAMS = {
    "softmax": (softmax, {}),
    "log_softmax": (log_softmax, {}),
    "cross_entropy": (cross_entropy, {"reduction": "mean | sum | none"}),
    "layer_norm": (layer_norm, {"eps": "default 1e-5", "weight": "true | false", "bias": "true | false",
                                "ndim": "trailing axes normalised, len(normalized_shape) (default 1)"}),
    "rms_norm": (rms_norm, {"eps": "default: finfo(dtype).eps", "weight": "true | false",
                            "ndim": "trailing axes normalised, len(normalized_shape) (default 1)"}),
    "batch_norm": (batch_norm, {"ndim": "spatial axes 0..3 (default 1)", "eps": "default 1e-5",
                                "weight": "true | false", "bias": "true | false"}),
    "attention": (attention, {"is_causal": "true | false", "scale": "default 1/sqrt(E)"}),
    "conv_bias_gelu": (conv_bias_gelu, {"ndim": "number of spatial axes (default 2)",
                                        "approximate": "none (erf) | tanh"}),
    "depthwise_separable": (depthwise_separable, {"ndim": "number of spatial axes (default 2)",
                                                  "stride": "int or one per axis", "dilation": "int or one per axis",
                                                  "padding": "as conv's", "kernel_size": "int or one per axis",
                                                  "bias": "both convolutions' biases (default on)"}),
}
POOL_PARAMS = {
    "kernel_size": "int or one per axis (required)",
    "stride": "int or one per axis (default: the kernel size)",
    "padding": "int or one per axis, at most half the kernel size",
    "ceil_mode": "true | false: the output size rounded up (a last window that starts inside the input or its "
                 "left padding)",
}
AVG_POOL_PARAMS = {
    "count_include_pad": "true (default): the padding's zeros count in the mean | false: the input's positions only",
    "divisor_override": "a nonzero integer every window sum is divided by",
}
for _nd, _avg, _max in ((1, avg_pool1d, max_pool1d), (2, avg_pool2d, max_pool2d), (3, avg_pool3d, max_pool3d)):
    REGISTRY[f"avg_pool{_nd}d"] = (_avg, {**POOL_PARAMS, **AVG_POOL_PARAMS})
    PROGRAMS[f"max_pool{_nd}d"] = (_max, {**POOL_PARAMS, "dilation": "int or one per axis"})

CONV_PARAMS = {
    "stride": "int or one per axis (default: symbolic for derive, 1 for emit/check)",
    "dilation": "int or one per axis",
    "padding": "int | one per axis | lo:hi per axis (negative crops) | same | valid | full | causal",
    "groups": "int dividing both channel counts (depthwise: groups = C_in)",
    "bias": "add b[C_out] (default on)",
    "kernel_size": "int or one per axis (default: read from w at run time)",
    "padding_mode": "zeros (default) | circular | reflect | replicate (PyTorch's; a padding statement first)",
}
for _name in ("conv", "conv1d", "conv2d", "conv3d"):
    REGISTRY[_name][1].update(CONV_PARAMS)
PROGRAMS["conv_bias_gelu"][1].update({k: v for k, v in CONV_PARAMS.items() if k != "bias"})


#: the parameters that are not text, by kind (the CLI parses their flags so): yes/no, integers, numbers
BOOLEAN = ("bias", "weight", "is_causal", "ceil_mode", "count_include_pad", "align_corners")
INTEGER = ("ndim", "divisor_override")
NUMBER = ("eps", "scale")


def build(name: str, **params) -> Op | Program:
    """Build a registered op or program by name: ``build("conv2d", stride=2)``, ``build("softmax")``."""
    known = {**REGISTRY, **PROGRAMS}
    if name not in known:
        raise SymgradError(f"unknown op {name!r}; known ops: {', '.join(REGISTRY)}; programs: {', '.join(PROGRAMS)}")
    builder, _ = known[name]
    return builder(**params)


__all__ = ["CONV_OPS", "Op", "PROGRAMS", "TORCH_DEFAULTS", "Program", "REGISTRY", "attention", "batch_norm", "conv_bias_gelu", "cross_entropy",
           "conv_padded", "depthwise_separable", "layer_norm", "log_softmax", "rms_norm", "softmax", "avg_pool1d", "avg_pool2d", "avg_pool3d", "build",
           "max_pool1d", "max_pool2d", "max_pool3d", "conv", "conv1d", "conv2d", "conv3d",
           "convolve", "gelu", "interpolate", "matmul"]
