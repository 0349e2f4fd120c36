"""Average pooling (PyTorch semantics: ``count_include_pad=True``, ``ceil_mode=False``) as an
index-notation definition: a window sum divided by the window size.

    y[n, c, i] = (1/K) Σ_r x[n, c, s·i + r − p] · [0 ≤ s·i + r − p < L]

Nothing here knows about gradients or convolutions: the recogniser reads the window sum as a
depthwise convolution with a kernel of ones.
"""
from __future__ import annotations

import math

import sympy as sp

from ..ir import Bracket, Op, SymgradError, Tensor, in_range, index, size
from . import params as P


def avg_pool(ndim: int, kernel_size=None, stride=None, padding=0) -> Op:
    """N-d average pooling; ``stride`` defaults to the kernel size, as in PyTorch.

    >>> avg_pool(2, kernel_size=2).params["stride"]
    [2, 2]
    """
    name = f"avg_pool{ndim}d"
    if not isinstance(ndim, int) or ndim < 1:
        raise SymgradError(f"avg_pool: ndim must be an integer >= 1, got {ndim!r}")
    if kernel_size is None:
        raise SymgradError(f"{name}: kernel_size is required (an int or one per axis)")
    ksize = P.per_axis(name, "kernel_size", kernel_size, ndim, minimum=1, symbol="K")
    if any(not isinstance(k, int) for k in ksize):
        raise SymgradError(f"{name}: kernel_size must be integers (the divisor is the window size), got {kernel_size!r}")
    stride = P.per_axis(name, "stride", ksize if stride is None else stride, ndim, minimum=1, symbol="s")
    pads = P.per_axis(name, "padding", padding, ndim, minimum=0, symbol="p")
    for k, p in zip(ksize, pads):
        if isinstance(p, int) and 2 * p > k:
            raise SymgradError(f"{name}: padding must be at most half the kernel size (as torch), got {p} for {k}")
    N, C = size("N"), size("C")
    L = [size(n) for n in ([f"L_{k + 1}" for k in range(ndim)] if ndim > 1 else ["L"])]
    O = [size(n) for n in ([f"O_{k + 1}" for k in range(ndim)] if ndim > 1 else ["O"])]
    n, c = index("n", N), index("c", C)
    i = [index(f"i_{k + 1}" if ndim > 1 else "i", o) for k, o in enumerate(O)]
    r = [index(f"r_{a + 1}" if ndim > 1 else "r", k) for a, k in enumerate(ksize)]
    x = Tensor("x", (N, C, *L))
    pos = [s * ii + rr - p for s, ii, rr, p in zip(stride, i, r, pads)]
    body = x[(n, c, *pos)] * Bracket(sp.And(*[in_range(q, ll) for q, ll in zip(pos, L)]))
    rhs = sp.Sum(body, *[(rr, 0, k - 1) for rr, k in zip(r, ksize)]) / math.prod(ksize)
    output_sizes = {o: sp.floor((ll + 2 * p - k) / s) + 1 for o, ll, p, k, s in zip(O, L, pads, ksize, stride)}
    requires = [(sp.Ge(ll + 2 * p, k), f"{name}: window ({k}) larger than the padded input ({{{ll + 2 * p}}})")
                for ll, p, k in zip(L, pads, ksize) if sp.Ge(ll + 2 * p, k) is not sp.true]
    params = {"ndim": ndim, "kernel_size": list(ksize), "stride": list(stride), "padding": list(pads)}
    return Op(name=name, params=params, inputs=(x,), output=Tensor("y", (N, C, *O)), indices=(n, c, *i), rhs=rhs,
              output_sizes=output_sizes, requires=requires, batch=N)


def avg_pool1d(**kw) -> Op:
    """1-d average pooling, torch.nn.functional.avg_pool1d semantics."""
    return avg_pool(1, **kw)


def avg_pool2d(**kw) -> Op:
    """2-d average pooling, torch.nn.functional.avg_pool2d semantics."""
    return avg_pool(2, **kw)


def avg_pool3d(**kw) -> Op:
    """3-d average pooling, torch.nn.functional.avg_pool3d semantics."""
    return avg_pool(3, **kw)
