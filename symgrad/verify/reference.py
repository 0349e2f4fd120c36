"""Independent references for the checks: PyTorch autograd (float64) for the built-in ops.

These compute forward passes with PyTorch's own operators and let torch.autograd produce the
gradients; nothing here is used by the engine.
"""
from __future__ import annotations

import importlib.util

import numpy as np


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def _conv(op, x, w, b=None):
    import torch.nn.functional as F
    p = op.params
    nd = p["ndim"]
    if nd > 3:
        return None
    import sympy as sp
    from ..sizes import concrete_sizes
    sizes = concrete_sizes(op, {t.name: tuple(a.shape) for t, a in zip(op.inputs, (x, w, b))})
    pads = []  # explicit (lo, hi) per axis, last axis first: F.pad's order ('same' with a stride included)
    for lo, hi in reversed(p["padding"]):
        pads += [int(sp.sympify(lo).subs(sizes)), int(sp.sympify(hi).subs(sizes))]
    x = F.pad(x, pads)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    return fn(x, w, b, stride=tuple(map(int, p["stride"])), dilation=tuple(map(int, p["dilation"])),
              groups=int(p["groups"]))


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
    return fn(x, tuple(p["kernel_size"]), tuple(map(int, p["stride"])), tuple(map(int, p["padding"])))


def _gelu(op, x):
    import torch.nn.functional as F
    return F.gelu(x, approximate=op.params["approximate"])


REFERENCES = {"conv1d": _conv, "conv2d": _conv, "conv3d": _conv, "convolve": _convolve,
              "matmul": _matmul, "gelu": _gelu, "avg_pool1d": _avg_pool, "avg_pool2d": _avg_pool,
              "avg_pool3d": _avg_pool}


def _torch_forward(op, arrays):
    """(input tensors requiring grad, output) by PyTorch's own operator, or None without one."""
    import re
    name = "conv" if re.fullmatch(r"conv\d+d", op.name) and op.name not in REFERENCES else op.name
    fn = REFERENCES.get(name)
    if fn is None or not torch_available():
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
