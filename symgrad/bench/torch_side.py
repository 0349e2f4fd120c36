"""The other side of a benchmark: what a PyTorch user writes for the op — ``F.conv2d(x, w, b, stride,
padding, dilation, groups)``, ``F.layer_norm``, ``F.scaled_dot_product_attention`` — with every
parameter worked out once, before any timing, so the timed call is torch's and nothing else (no SymPy,
no symgrad).  Where torch's call cannot say it (padding that differs between the two sides of an axis,
a crop, numpy.convolve, a padding mode), the note says what the call does instead, and the benchmark's
table shows it."""
from __future__ import annotations

import functools

import sympy as sp

from ..sizes import concrete_sizes

_CONV = {1: "conv1d", 2: "conv2d", 3: "conv3d"}


def _padding(op, shapes, params=None) -> list:
    """(lo, hi) per spatial axis as Python ints, at the given input shapes."""
    sizes = concrete_sizes(op, shapes)
    return [(int(sp.sympify(lo).subs(sizes)), int(sp.sympify(hi).subs(sizes))) for lo, hi in (params or op.params)["padding"]]


def _conv_call(op, shapes, groups=None, mode=None):
    """``F.convNd`` with torch's own padding where it is symmetric and not negative; else F.pad first."""
    import torch.nn.functional as F
    p = op.params
    conv = getattr(F, _CONV[p["ndim"]])
    pads = _padding(op, shapes)
    kw = dict(stride=tuple(int(s) for s in p["stride"]), dilation=tuple(int(d) for d in p["dilation"]),
              groups=int(p["groups"] if groups is None else groups))
    if mode is not None:  # what nn.ConvNd(padding_mode=...) does: F.pad in that mode, then no padding
        flat = [v for lo, hi in reversed(pads) for v in (lo, hi)]
        return (lambda x, w, b=None: conv(F.pad(x, flat, mode=mode), w, b, **kw)), f"F.pad(mode='{mode}') + F.{conv.__name__}"
    if all(lo == hi >= 0 for lo, hi in pads):
        return functools.partial(conv, padding=tuple(lo for lo, _ in pads), **kw), f"F.{conv.__name__}"
    flat = [v for lo, hi in reversed(pads) for v in (lo, hi)]
    return (lambda x, w, b=None: conv(F.pad(x, flat), w, b, **kw)), \
        f"F.pad + F.{conv.__name__} (padding {pads}: torch's conv takes one padding per axis)"


def _convolve_call(op, shapes):
    import torch
    import torch.nn.functional as F
    lx, ly = shapes["x"][0], shapes["y"][0]
    short, long_ = min(lx, ly), max(lx, ly)
    off, n = {"full": (0, lx + ly - 1), "same": ((short - 1) // 2, long_),
              "valid": (short - 1, long_ - short + 1)}[op.params["mode"]]

    def convolve(x, y):  # torch has no numpy.convolve: the full correlation with the flipped kernel, cut
        return F.conv1d(F.pad(x, (ly - 1, ly - 1))[None, None], torch.flip(y, (0,))[None, None])[0, 0, off:off + n]
    return convolve, "F.conv1d of the flipped kernel, cut to the mode (torch has no convolve)"


def torch_call(op, shapes: dict):
    """``(call, note)``: ``call(*tensors)`` is torch's own op on the inputs in ``op``'s order (shapes
    ``shapes``), every parameter fixed now; ``note`` says what it calls."""
    import torch
    import torch.nn.functional as F
    name, p = op.name, op.params
    if name in _CONV.values() or name == "conv":
        return _conv_call(op, shapes)
    if name.startswith("avg_pool"):
        fn = getattr(F, name)
        return functools.partial(fn, kernel_size=tuple(p["kernel_size"]), stride=tuple(int(s) for s in p["stride"]),
                                 padding=tuple(int(q) for q in p["padding"])), f"F.{name}"
    simple = {
        "matmul": (torch.matmul, "torch.matmul"),
        "gelu": (functools.partial(F.gelu, approximate=p.get("approximate", "none")), "F.gelu"),
        "softmax": (functools.partial(F.softmax, dim=-1), "F.softmax"),
        "log_softmax": (functools.partial(F.log_softmax, dim=-1), "F.log_softmax"),
        "cross_entropy": (functools.partial(F.cross_entropy, reduction=p.get("reduction", "mean")), "F.cross_entropy"),
        "attention": (functools.partial(F.scaled_dot_product_attention, is_causal=bool(p.get("is_causal")),
                                        scale=p.get("scale")), "F.scaled_dot_product_attention"),
    }
    if name in simple:
        return simple[name]
    if name == "convolve":
        return _convolve_call(op, shapes)
    if name in ("layer_norm", "rms_norm", "batch_norm"):
        return _norm_call(op, shapes)
    if name.endswith("_bias_gelu"):
        conv, _ = _conv_call(op, shapes)
        approximate = p.get("approximate", "none")
        return (lambda x, w, b: F.gelu(conv(x, w, b), approximate=approximate)), "F.gelu(F.conv)"
    if name == "depthwise_separable":
        depth, _ = _conv_call(op, shapes, groups=shapes["x"][1])
        pw = getattr(F, _CONV[p["ndim"]])

        def block(x, w_dw, *rest):
            b_dw, w_pw, b_pw = rest if len(rest) == 3 else (None, rest[0], None)
            return pw(depth(x, w_dw, b_dw), w_pw, b_pw)
        return block, "two F.conv calls (groups=C, then 1x1)"
    mode = next((m for m in ("circular", "reflect", "replicate") if name.endswith("_" + m)), None)
    if mode is not None:
        return _conv_call(op, shapes, mode=mode)
    return None, None


def _norm_call(op, shapes):
    import torch.nn.functional as F
    p, name = op.params, op.name
    has_w, has_b = p.get("weight", True), p.get("bias", name != "rms_norm")
    eps = p.get("eps")

    def split(rest):
        rest = list(rest)
        return (rest.pop(0) if has_w else None), (rest.pop(0) if has_b and name != "rms_norm" else None)
    normalized = tuple(shapes["x"][-p.get("ndim", 1):])  # torch's normalized_shape
    if name == "layer_norm":
        return (lambda x, *rest: F.layer_norm(x, normalized, *split(rest), eps=eps)), "F.layer_norm"
    if name == "rms_norm":
        return (lambda x, *rest: F.rms_norm(x, normalized, split(rest)[0], eps=eps)), "F.rms_norm"
    return (lambda x, *rest: F.batch_norm(x, None, None, *split(rest), training=True, eps=eps)), \
        "F.batch_norm(training=True)"


__all__ = ["torch_call"]
