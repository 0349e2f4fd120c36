"""Resampling with torch.nn.functional.interpolate's semantics, as an index-notation definition: each
output element is a weighted sum of input elements whose weights depend on the indices only,

    y[n, c, i] = Σ_q x[n, c, q] · w(i, q)

with w a product over the spatial axes of brackets on affine expressions of (i, q).  With the ratio
r = L/O (``size``) or 1/f (``scale_factor`` f), written as a/b in integers or sizes:

* ``nearest``: q = ⌊i·r⌋, w = [b·q ≤ a·i < b·q + b];
* ``nearest-exact``: q = ⌊(i + ½)·r⌋, w = [2b·q ≤ (2i + 1)·a < 2b·q + 2b];
* ``linear`` (bilinear, trilinear by axis): the source position s = (i + ½)·r − ½ (``align_corners``:
  s = i·(L − 1)/(O − 1)) clamped to [0, L − 1], w = max(0, 1 − |s − q|) (one index-only factor).

Nothing here knows about gradients: the weights are index-only factors of one sum.
"""
from __future__ import annotations

import sympy as sp

from ..ir import Bracket, Op, SymgradError, Tensor, index
from ..ir import size as size_symbol
from . import params as P

MODES = ("nearest", "nearest-exact", "linear")


def _ratio(L, target, factor):
    """(a, b, O): the ratio a/b of input to output positions and the output size O."""
    if factor is not None:
        return 1, factor, factor * L
    return L, target, target


def _weight(mode, align_corners, L, O, a, b, i, q):
    """w(i, q) on one axis."""
    if mode == "nearest":
        return Bracket(sp.And(sp.Le(b * q, a * i), sp.Lt(a * i, b * q + b)))
    if mode == "nearest-exact":
        return Bracket(sp.And(sp.Le(2 * b * q, (2 * i + 1) * a), sp.Lt((2 * i + 1) * a, 2 * b * q + 2 * b)))
    if align_corners:  # s = i·(L − 1)/(O − 1), in [0, L − 1] (one output: s = 0)
        source = i * (L - 1) / sp.Max(O - 1, 1)  # (one output: i = 0)
    else:  # s = (i + ½)·a/b − ½, clamped to [0, L − 1]
        source = sp.Min(sp.Max(((2 * i + 1) * a - b) / (2 * b), 0), L - 1)
    return sp.Max(0, 1 - sp.Abs(source - q))  # the tent: 1 − λ and λ at the two neighbours of s


def interpolate(ndim: int = 1, size=None, scale_factor=None, mode: str = "nearest", align_corners=False) -> Op:
    """N-d resampling of x (N, C, L…): ``size`` (an int or one per axis) or an integer ``scale_factor``
    (one or one per axis); ``mode`` nearest | nearest-exact | linear (torch's linear, bilinear or
    trilinear by the number of axes); ``align_corners`` for linear.

    >>> interpolate(1, scale_factor=2).params["scale_factor"]
    [2]
    """
    name = "interpolate"
    if not isinstance(ndim, int) or not 1 <= ndim <= 3:
        raise SymgradError(f"{name}: ndim must be 1, 2 or 3 (spatial axes), got {ndim!r}")
    mode = mode.strip().lower() if isinstance(mode, str) else mode
    if mode not in MODES:
        raise SymgradError(f"{name}: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if (size is None) == (scale_factor is None):
        raise SymgradError(f"{name}: give exactly one of size and scale_factor")
    align_corners = P.flag(name, "align_corners", align_corners)
    if align_corners and mode != "linear":
        raise SymgradError(f"{name}: align_corners applies to mode linear only, got mode {mode}")
    sizes = P.per_axis(name, "size", size, ndim, minimum=1, symbol="O") if size is not None else [None] * ndim
    factors = (P.per_axis(name, "scale_factor", scale_factor, ndim, minimum=1, symbol="f")
               if scale_factor is not None else [None] * ndim)
    if any(v is not None and not isinstance(v, int) for v in (*sizes, *factors)):
        raise SymgradError(f"{name}: size and scale_factor must be integers")
    N, C = size_symbol("N"), size_symbol("C")
    L = [size_symbol("L" if ndim == 1 else f"L_{k + 1}") for k in range(ndim)]
    n, c = index("n", N), index("c", C)
    q = [index("q" if ndim == 1 else f"q_{k + 1}", ll) for k, ll in enumerate(L)]
    out_dims, output_sizes, i, weight = [], {}, [], sp.S.One
    for k, (ll, target, factor) in enumerate(zip(L, sizes, factors)):
        a, b, O = _ratio(ll, target, factor)
        if factor is not None:  # O = f·L, a size the module computes
            output_sizes[size_symbol("O" if ndim == 1 else f"O_{k + 1}")] = O
            O = list(output_sizes)[-1]
        out_dims.append(O)
        ii = index("i" if ndim == 1 else f"i_{k + 1}", O)
        i.append(ii)
        weight *= _weight(mode, align_corners, ll, O, a, b, ii, q[k])
    x = Tensor("x", (N, C, *L))
    rhs = sp.Sum(x[(n, c, *q)] * weight, *[(qq, 0, ll - 1) for qq, ll in zip(q, L)])
    params = {"ndim": ndim, "mode": mode, **({"size": list(sizes)} if size is not None else {}),
              **({"scale_factor": list(factors)} if scale_factor is not None else {}),
              **({"align_corners": True} if align_corners else {})}
    return Op(name=name, params=params, inputs=(x,), output=Tensor("y", (N, C, *out_dims)), indices=(n, c, *i),
              rhs=rhs, output_sizes=output_sizes, batch=N)

