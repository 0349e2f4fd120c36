"""Independent references for the checks: PyTorch autograd (float64) for the built-in ops.

These compute forward passes with PyTorch's own operators and let torch.autograd produce the
gradients; nothing here is used by the engine.
"""
from __future__ import annotations

import importlib.util

import numpy as np

from ..sizes import concrete_sizes


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def _conv(op, x, w, b=None, groups=None, sizes=None):
    import torch.nn.functional as F
    p = op.params
    nd = p["ndim"]
    if nd > 3:
        return None
    import sympy as sp
    if sizes is None:
        sizes = concrete_sizes(op, {t.name: tuple(a.shape) for t, a in zip(op.inputs, (x, w, b))})
    pads = []  # explicit (lo, hi) per axis, last axis first: F.pad's order ('same' with a stride included)
    for lo, hi in reversed(p["padding"]):
        pads += [int(sp.sympify(lo).subs(sizes)), int(sp.sympify(hi).subs(sizes))]
    x = F.pad(x, pads)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    return fn(x, w, b, stride=tuple(map(int, p["stride"])), dilation=tuple(map(int, p["dilation"])),
              groups=int(p["groups"] if groups is None else groups))


def _convolve(op, x, y):
    import torch
    import torch.nn.functional as F
    lx, ly = x.shape[0], y.shape[0]
    full = F.conv1d(F.pad(x, (ly - 1, ly - 1))[None, None], torch.flip(y, (0,))[None, None])[0, 0]
    short, long_ = min(lx, ly), max(lx, ly)
    off, n = {"full": (0, lx + ly - 1), "same": ((short - 1) // 2, long_),
              "valid": (short - 1, long_ - short + 1)}[op.params["mode"]]
    return full[off:off + n]


def _matmul(op, a, b):
    import torch
    return torch.matmul(a, b)


def _avg_pool(op, x):
    import torch.nn.functional as F
    p = op.params
    fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[p["ndim"]]
    kernel, stride, padding = tuple(p["kernel_size"]), tuple(map(int, p["stride"])), tuple(map(int, p["padding"]))
    options = {"ceil_mode": p.get("ceil_mode", False), "count_include_pad": p.get("count_include_pad", True)}
    if "divisor_override" not in p:
        return fn(x, kernel, stride, padding, **options)
    if p["ndim"] == 1:  # avg_pool1d takes no divisor_override: avg_pool2d over a unit axis does
        return F.avg_pool2d(x.unsqueeze(-2), (1, *kernel), (1, *stride), (0, *padding), **options,
                            divisor_override=p["divisor_override"]).squeeze(-2)
    return fn(x, kernel, stride, padding, **options, divisor_override=p["divisor_override"])


def _interpolate(op, x):
    import torch.nn.functional as F
    p = op.params
    mode = {"linear": ("linear", "bilinear", "trilinear")[p["ndim"] - 1]}.get(p["mode"], p["mode"])
    corners = {"align_corners": p.get("align_corners", False)} if p["mode"] == "linear" else {}
    if "size" in p:
        return F.interpolate(x, size=tuple(p["size"]), mode=mode, **corners)
    return F.interpolate(x, scale_factor=tuple(float(f) for f in p["scale_factor"]), mode=mode, **corners)


def _max_pool(op, x):
    import torch.nn.functional as F
    p = op.params
    fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[p["ndim"]]
    return fn(x, tuple(p["kernel_size"]), tuple(map(int, p["stride"])), tuple(map(int, p["padding"])),
              tuple(map(int, p["dilation"])), ceil_mode=p.get("ceil_mode", False))


def _gelu(op, x):
    import torch.nn.functional as F
    return F.gelu(x, approximate=op.params["approximate"])


def _softmax(op, x):
    import torch.nn.functional as F
    return F.softmax(x, -1)


def _log_softmax(op, x):
    import torch.nn.functional as F
    return F.log_softmax(x, -1)


def _cross_entropy(op, x, t):
    import torch.nn.functional as F
    return F.cross_entropy(x, t, reduction=op.params["reduction"])


def _affine(op, rest):
    """(weight, bias) of a normalisation from its optional inputs."""
    rest = list(rest)
    weight = rest.pop(0) if op.params.get("weight") else None
    bias = rest.pop(0) if op.params.get("bias") else None
    return weight, bias


def _layer_norm(op, x, *rest):
    import torch.nn.functional as F
    weight, bias = _affine(op, rest)
    return F.layer_norm(x, tuple(x.shape[-op.params.get("ndim", 1):]), weight, bias, eps=op.params["eps"])


def _rms_norm(op, x, *rest):
    import torch.nn.functional as F
    weight, _ = _affine(op, rest)
    return F.rms_norm(x, tuple(x.shape[-op.params.get("ndim", 1):]), weight, eps=op.params["eps"])


def _batch_norm(op, x, *rest):
    import torch.nn.functional as F
    weight, bias = _affine(op, rest)
    return F.batch_norm(x, None, None, weight, bias, training=True, eps=op.params["eps"])


def _attention(op, q, k, v):
    import torch.nn.functional as F
    return F.scaled_dot_product_attention(q, k, v, is_causal=op.params["is_causal"], scale=op.params["scale"])


def _conv_bias_gelu(op, x, w, b):
    import torch.nn.functional as F
    return F.gelu(_conv(op, x, w, b), approximate=op.params["approximate"])


def _depthwise_separable(op, x, w_dw, *rest):
    import torch.nn.functional as F
    b_dw, w_pw, b_pw = rest if len(rest) == 3 else (None, rest[0], None)
    inputs = (x, w_dw, *rest)
    sizes = concrete_sizes(op, {t.name: tuple(a.shape) for t, a in zip(op.inputs, inputs)})
    depth = _conv(op, x, w_dw, b_dw, groups=x.shape[1], sizes=sizes)
    return {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[op.params["ndim"]](depth, w_pw, b_pw)


def _conv_padded(op, x, w, b=None):
    """A convolution with a padding mode: torch.nn.functional.pad in that mode, then no padding."""
    import sympy as sp
    import torch.nn.functional as F
    p = op.params
    sizes = concrete_sizes(op, {t.name: tuple(a.shape) for t, a in zip(op.inputs, (x, w, b))})
    pads = [int(sp.sympify(v).subs(sizes)) for lo, hi in reversed(p["padding"]) for v in (lo, hi)]
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[p["ndim"]]
    return fn(F.pad(x, pads, mode=p["padding_mode"]), w, b, stride=tuple(map(int, p["stride"])),
              dilation=tuple(map(int, p["dilation"])), groups=int(p["groups"]))


REFERENCES = {"conv1d": _conv, "conv2d": _conv, "conv3d": _conv, "convolve": _convolve,
              "matmul": _matmul, "gelu": _gelu, "avg_pool1d": _avg_pool, "avg_pool2d": _avg_pool,
              "avg_pool3d": _avg_pool, **{f"max_pool{n}d": _max_pool for n in (1, 2, 3)},
              "interpolate": _interpolate, "softmax": _softmax, "log_softmax": _log_softmax,
              "cross_entropy": _cross_entropy, "layer_norm": _layer_norm, "rms_norm": _rms_norm,
              "batch_norm": _batch_norm, "attention": _attention, "depthwise_separable": _depthwise_separable,
              **{f"conv{n}d_bias_gelu": _conv_bias_gelu for n in (1, 2, 3)},
              **{f"conv{n}d_{mode}": _conv_padded for n in (1, 2, 3) for mode in ("circular", "reflect", "replicate")}}


def _reference(op):
    """PyTorch's own operator for ``op`` (a function of the op and its input tensors), or None."""
    import re
    name = "conv" if re.fullmatch(r"conv\d+d", op.name) and op.name not in REFERENCES else op.name
    return REFERENCES.get(name) if torch_available() else None


def _torch_forward(op, arrays):
    """(input tensors requiring grad, output) by PyTorch's own operator, or None without one."""
    fn = _reference(op)
    if fn is None:
        return None
    import torch
    ts = [torch.tensor(arrays[t.name], requires_grad=True) for t in op.inputs]
    try:
        out = fn(op, *ts)
    except RuntimeError:  # a shape PyTorch refuses and the definition takes (avg_pool3d checks the unpadded
        return None       # input against the kernel, avg_pool1d/2d the padded one): finite differences alone
    return None if out is None else (ts, out)


def torch_reference(op, arrays, grad_output):
    """(output, grads) from PyTorch autograd, or None when no reference exists for ``op``."""
    made = _torch_forward(op, arrays)
    if made is None:
        return None
    import torch
    ts, out = made
    out.backward(torch.tensor(grad_output))
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


def torch_jvp(op, arrays, tangents):
    """(output, output tangent) from ``torch.func.jvp`` of PyTorch's own operator (forward-mode AD),
    tangents ``tangents`` (name -> array); None when no reference exists for ``op``."""
    if _torch_forward(op, arrays) is None:  # (no operator, or a shape PyTorch refuses)
        return None
    import torch
    primals = tuple(torch.tensor(arrays[t.name]) for t in op.inputs)
    moved = tuple(torch.tensor(tangents[t.name]) for t in op.inputs)
    y, ydot = torch.func.jvp(lambda *ts: _reference(op)(op, *ts), primals, moved)
    return y.numpy(), ydot.numpy()


def torch_double_backward(op, arrays, grad_output, gg):
    """PyTorch's double backward: the gradients of Σ gg[x]·∂ℒ/∂x (ℒ = Σ grad_output·y) with respect
    to grad_output and to each input, in that order (zeros where nothing depends on one); None
    when no reference exists for ``op``."""
    made = _torch_forward(op, arrays)
    if made is None:
        return None
    import torch
    ts, out = made
    g = torch.tensor(grad_output, requires_grad=True)
    first = torch.autograd.grad(out, ts, g, create_graph=True, allow_unused=True, materialize_grads=True)
    total = sum((f * torch.tensor(gg[t.name])).sum() for t, f in zip(op.inputs, first))
    if not total.requires_grad:  # every gradient is constant in g and the inputs (a bias alone)
        return [np.zeros_like(grad_output)] + [np.zeros_like(arrays[t.name]) for t in op.inputs]
    second = torch.autograd.grad(total, [g] + ts, allow_unused=True, materialize_grads=True)
    return [s.detach().numpy() for s in second]
