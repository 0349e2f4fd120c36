"""Pooling with PyTorch's semantics, as index-notation definitions.

Average pooling is a window sum divided by a divisor:

    y[n, c, i] = (1/D(i)) Σ_r x[n, c, s·i + r − p] · [0 ≤ s·i + r − p < L]

where D is the window size K (torch's defaults), the number of window positions inside the padded
input (``ceil_mode``: the last windows are clipped at its end), the number inside the input itself
(``count_include_pad=False``), or a given constant (``divisor_override``).  D depends on the indices
only: per axis, min(s·i − p + K, hi) − max(s·i − p, lo) positions of the window lie in [lo, hi).

Max pooling is a maximum over the window (``max_pool``: a program of one max statement; positions
in the padding are left out, as torch's −∞ padding does).

Nothing here knows about gradients or convolutions: the recogniser reads the window sum as a
depthwise convolution with a kernel of ones.
"""
from __future__ import annotations

import math

import sympy as sp

from ..ir import Bracket, Op, SymgradError, Tensor, in_range, index, size
from ..program import Program, max_over, rule
from . import params as P


def _axes(ndim: int):
    """Input and output length symbols and the output indices, named as the docs write them."""
    one = ndim == 1
    L = [size("L" if one else f"L_{k + 1}") for k in range(ndim)]
    O = [size("O" if one else f"O_{k + 1}") for k in range(ndim)]
    i = [index("i" if one else f"i_{k + 1}", o) for k, o in enumerate(O)]
    return L, O, i


def _out_size(L, k, s, p, d, ceil_mode: bool):
    """torch's pooling output size: ⌊(L + 2p − d(k−1) − 1)/s⌋ + 1, or with ``ceil_mode`` ⌈…⌉ + 1
    as long as the last window starts inside the input or its left padding."""
    span = L + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return sp.floor(span / s) + 1
    return sp.Min(sp.floor((span + s - 1) / s), sp.floor((L + p - 1) / s)) + 1


def _window(name: str, ndim: int, kernel_size, stride, padding, ceil_mode, dilation=1):
    if not isinstance(ndim, int) or ndim < 1:
        raise SymgradError(f"{name[:-2]}: ndim must be an integer >= 1, got {ndim!r}")
    if kernel_size is None:
        raise SymgradError(f"{name}: kernel_size is required (an int or one per axis)")
    ksize = P.per_axis(name, "kernel_size", kernel_size, ndim, minimum=1, symbol="K")
    if any(not isinstance(k, int) for k in ksize):
        raise SymgradError(f"{name}: kernel_size must be integers, got {kernel_size!r}")
    stride = P.per_axis(name, "stride", ksize if stride is None else stride, ndim, minimum=1, symbol="s")
    pads = P.per_axis(name, "padding", padding, ndim, minimum=0, symbol="p")
    dilation = P.per_axis(name, "dilation", dilation, ndim, minimum=1, symbol="d")
    for k, p in zip(ksize, pads):  # (torch checks the kernel size, whatever the dilation)
        if isinstance(p, int) and 2 * p > k:
            raise SymgradError(f"{name}: padding must be at most half the kernel size (as torch), got {p} for {k}")
    ceil_mode = P.flag(name, "ceil_mode", ceil_mode)
    return ksize, stride, pads, dilation, ceil_mode


def _sizes(name, L, O, ksize, stride, pads, dilation, ceil_mode):
    output_sizes = {o: _out_size(ll, k, s, p, d, ceil_mode)
                    for o, ll, k, s, p, d in zip(O, L, ksize, stride, pads, dilation)}
    requires = []
    if not ceil_mode:  # ceil_mode takes a window longer than the padded input (its output size says when)
        requires = [(sp.Ge(ll + 2 * p, d * (k - 1) + 1),
                     f"{name}: window ({d * (k - 1) + 1}) larger than the padded input ({{{ll + 2 * p}}})")
                    for ll, p, k, d in zip(L, pads, ksize, dilation)
                    if sp.Ge(ll + 2 * p, d * (k - 1) + 1) is not sp.true]
    return output_sizes, requires


def _override(name: str, value) -> int:
    """divisor_override: a nonzero integer."""
    try:
        number = int(str(value).strip()) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if not number:
        raise SymgradError(f"{name}: divisor_override must be a nonzero integer, got {value!r}")
    return number


def _divisor(ksize, stride, pads, L, i, ceil_mode: bool, count_include_pad: bool):
    """The window's divisor: the window size, or a product over the axes of the window's positions
    inside [lo, hi) — the padded input (count_include_pad) or the input — min(start + K, hi) − max(start, lo)."""
    if count_include_pad and not ceil_mode:
        return sp.Integer(math.prod(ksize))
    divisor = sp.S.One
    for k, s, p, ll, ii in zip(ksize, stride, pads, L, i):
        start = s * ii - p  # the window's first position; it ends before start + k
        lo, hi = (-p, ll + p) if count_include_pad else (0, ll)
        divisor *= sp.Min(start + k, hi) - sp.Max(start, lo)
    return divisor


def avg_pool(ndim: int, kernel_size=None, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None) -> Op:
    """N-d average pooling; ``stride`` defaults to the kernel size, as in PyTorch.

    >>> avg_pool(2, kernel_size=2).params["stride"]
    [2, 2]
    """
    name = f"avg_pool{ndim}d"
    ksize, stride, pads, _, ceil_mode = _window(name, ndim, kernel_size, stride, padding, ceil_mode)
    L, O, i = _axes(ndim)
    N, C = size("N"), size("C")
    n, c = index("n", N), index("c", C)
    r = [index(f"r_{a + 1}" if ndim > 1 else "r", k) for a, k in enumerate(ksize)]
    x = Tensor("x", (N, C, *L))
    pos = [s * ii + rr - p for s, ii, rr, p in zip(stride, i, r, pads)]
    body = x[(n, c, *pos)] * Bracket(sp.And(*[in_range(q, ll) for q, ll in zip(pos, L)]))
    count_include_pad = P.flag(name, "count_include_pad", count_include_pad)
    override = None if divisor_override is None else _override(name, divisor_override)
    divisor = sp.Integer(override) if override else _divisor(ksize, stride, pads, L, i, ceil_mode, count_include_pad)
    rhs = sp.Sum(body, *[(rr, 0, k - 1) for rr, k in zip(r, ksize)]) / divisor
    output_sizes, requires = _sizes(name, L, O, ksize, stride, pads, [1] * ndim, ceil_mode)
    params = {"ndim": ndim, "kernel_size": list(ksize), "stride": list(stride), "padding": list(pads)}
    if ceil_mode:
        params["ceil_mode"] = True
    if override is not None:
        params["divisor_override"] = override
    elif not count_include_pad:
        params["count_include_pad"] = False
    return Op(name=name, params=params, inputs=(x,), output=Tensor("y", (N, C, *O)), indices=(n, c, *i), rhs=rhs,
              output_sizes=output_sizes, requires=requires, batch=N)


def max_pool(ndim: int, kernel_size=None, stride=None, padding=0, dilation=1, ceil_mode=False) -> Program:
    """N-d max pooling (torch.nn.functional.max_pool*d): the maximum over each window's positions
    inside the input (padding is −∞ in torch: never the maximum).  The gradient of a maximum goes to
    the window's maximal element (split evenly among ties)."""
    name = f"max_pool{ndim}d"
    ksize, stride, pads, dilation, ceil_mode = _window(name, ndim, kernel_size, stride, padding, ceil_mode, dilation)
    L, O, i = _axes(ndim)
    N, C = size("N"), size("C")
    n, c = index("n", N), index("c", C)
    r = [index(f"r_{a + 1}" if ndim > 1 else "r", k) for a, k in enumerate(ksize)]
    x = Tensor("x", (N, C, *L))
    pos = [s * ii + d * rr - p for s, ii, rr, p, d in zip(stride, i, r, pads, dilation)]
    body = Bracket(sp.And(*[in_range(q, ll) for q, ll in zip(pos, L)])) * x[(n, c, *pos)]
    y = Tensor("y", (N, C, *O))
    output_sizes, requires = _sizes(name, L, O, ksize, stride, pads, dilation, ceil_mode)
    params = {"ndim": ndim, "kernel_size": list(ksize), "stride": list(stride), "padding": list(pads),
              "dilation": list(dilation), **({"ceil_mode": True} if ceil_mode else {})}
    statement = rule(y, (n, c, *i), max_over(body, *[(rr, 0, k - 1) for rr, k in zip(r, ksize)]))
    return Program(name, params, (x,), (statement,), output_sizes=output_sizes, requires=requires)


def avg_pool1d(**kw) -> Op:
    """1-d average pooling, torch.nn.functional.avg_pool1d semantics."""
    return avg_pool(1, **kw)


def avg_pool2d(**kw) -> Op:
    """2-d average pooling, torch.nn.functional.avg_pool2d semantics."""
    return avg_pool(2, **kw)


def avg_pool3d(**kw) -> Op:
    """3-d average pooling, torch.nn.functional.avg_pool3d semantics."""
    return avg_pool(3, **kw)


def max_pool1d(**kw) -> Program:
    """1-d max pooling, torch.nn.functional.max_pool1d semantics."""
    return max_pool(1, **kw)


def max_pool2d(**kw) -> Program:
    """2-d max pooling, torch.nn.functional.max_pool2d semantics."""
    return max_pool(2, **kw)


def max_pool3d(**kw) -> Program:
    """3-d max pooling, torch.nn.functional.max_pool3d semantics."""
    return max_pool(3, **kw)
