"""N-d convolution (PyTorch semantics: cross-correlation) as an index-notation definition.

    y[n, f, i] = Σ_{c, r} w[f, c, r] · x[n, c, s·i + d·r − lo] · [0 ≤ s·i + d·r − lo < L] + b[f]

Zero padding is the bracket, not a padded copy.  With groups the channel axes are seen as
(G, C/G): x[n, g, c, ·], w[g, f, c, ·], y[n, g, f, ·].  Nothing here knows about gradients.
"""
from __future__ import annotations

import sympy as sp

from ..ir import Bracket, Op, SymgradError, Tensor, in_range, index, size
from . import params as P


#: the most spatial axes: the dimension-number letters other than N, C, O and I
MAX_NDIM = 22


def _axis_names(ndim: int, stem: str) -> list:
    return [stem] if ndim == 1 else [f"{stem}_{k + 1}" for k in range(ndim)]


def conv(ndim: int, stride=None, dilation=None, padding=None, groups=1, bias=True, kernel_size=None) -> Op:
    """N-d convolution (torch semantics); parameters left as None stay symbolic.

    ``padding="same"`` keeps the input length at stride 1, as PyTorch; with a stride it gives
    ⌈L/s⌉ outputs with the odd padding element on the high side, as TensorFlow and JAX.

    >>> conv(1).name
    'conv1d'
    """
    name = f"conv{ndim}d"
    if not isinstance(ndim, int) or not 1 <= ndim <= MAX_NDIM:
        raise SymgradError(f"conv: ndim must be an integer from 1 to {MAX_NDIM}, got {ndim!r} (a recognised form "
                           "names each spatial axis by a letter of its dimension numbers, as XLA does)")
    if stride is None and isinstance(padding, str) and padding.strip().lower() == "same":
        stride = 1  # torch allows 'same' only unstrided
    stride = P.per_axis(name, "stride", stride, ndim, minimum=1, symbol="s")
    dilation = P.per_axis(name, "dilation", dilation, ndim, minimum=1, symbol="d")
    ksize = P.per_axis(name, "kernel_size", kernel_size, ndim, minimum=1, symbol="K")
    L = [size(n) for n in _axis_names(ndim, "L")]
    pads = P.padding(name, padding, ndim, stride, dilation, ksize, L)
    if groups is None:
        groups = size("G")
    elif not isinstance(groups, sp.Basic):
        groups = P.per_axis(name, "groups", groups, 1, minimum=1, symbol="G")[0]
    grouped = groups != 1

    N, C, F = size("N"), size("C_in"), size("C_out")
    O = [size(n) for n in _axis_names(ndim, "O")]
    n, c, f = index("n", N), index("c", C), index("f", F)
    i = [index(v, o) for v, o in zip(_axis_names(ndim, "i"), O)]
    r = [index(v, k) for v, k in zip(_axis_names(ndim, "r"), ksize)]
    gdims = (groups,) if grouped else ()
    g = (index("gamma", groups),) if grouped else ()  # not "g": that is the upstream gradient
    gsplit = 2 if grouped else 1

    x = Tensor("x", (N, *gdims, C, *L), (1, gsplit) + (1,) * ndim)
    w = Tensor("w", (*gdims, F, C, *ksize), (gsplit, 1) + (1,) * ndim)
    y = Tensor("y", (N, *gdims, F, *O), (1, gsplit) + (1,) * ndim)
    inputs = [x, w]

    pos = [s * ii + d * rr - lo for s, d, ii, rr, (lo, _) in zip(stride, dilation, i, r, pads)]
    guard = sp.And(*[in_range(p, l) for p, l in zip(pos, L)])
    body = w[(*g, f, c, *r)] * x[(n, *g, c, *pos)] * Bracket(guard)
    rhs = sp.Sum(body, (c, 0, C - 1), *[(rr, 0, k - 1) for rr, k in zip(r, ksize)])
    if bias:
        b = Tensor("b", (*gdims, F), (gsplit,))
        inputs.append(b)
        rhs = rhs + b[(*g, f)]

    output_sizes, requires = window_sizes(name, L, O, stride, dilation, ksize, pads)
    params = {"ndim": ndim, "stride": list(stride), "dilation": list(dilation),
              "padding": [list(p) for p in pads], "groups": groups,
              "bias": bool(bias), "kernel_size": list(ksize)}
    return Op(name=name, params=params, inputs=tuple(inputs), output=y, indices=(n, *g, f, *i),
              rhs=rhs, output_sizes=output_sizes, requires=requires, spec={"padding": padding}, batch=N)


def window_sizes(name: str, L, O, stride, dilation, ksize, pads) -> tuple:
    """``(output_sizes, requires)`` of a sliding window per spatial axis: each output size, and that
    the dilated kernel fits the padded input."""
    output_sizes, requires = {}, []
    for ax, (l, o, s, d, k, (lo, hi)) in enumerate(zip(L, O, stride, dilation, ksize, pads)):
        span = d * (k - 1) + 1
        output_sizes[o] = sp.floor((l + lo + hi - span) / s) + 1
        where = "" if len(L) == 1 else f" on spatial axis {ax + 1}"
        cond = sp.Ge(l + lo + hi, span)
        if cond is sp.true:
            continue
        requires.append((cond,
                         f"{name}: kernel (dilated extent {{{span}}}) larger than the padded input "
                         f"({{{l + lo + hi}}}){where}"))
    return output_sizes, requires


def conv1d(**kw) -> Op:
    """1-d convolution, torch.nn.functional.conv1d semantics."""
    return conv(1, **kw)


def conv2d(**kw) -> Op:
    """2-d convolution, torch.nn.functional.conv2d semantics."""
    return conv(2, **kw)


def conv3d(**kw) -> Op:
    """3-d convolution, torch.nn.functional.conv3d semantics."""
    return conv(3, **kw)
