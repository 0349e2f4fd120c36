"""Scaled dot-product attention as a program (definitions only), with
``torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=False, scale=None)``'s
semantics: q (B, T, E), k (B, S, E), v (B, S, F), every leading axis a batch (``B``); the scale
defaults to 1/√E; the causal mask keeps j ≤ i (top-left aligned, as PyTorch) and is a bracket.
The row maximum of the scores is subtracted before ``exp`` (stop_gradient, over the kept keys only).
"""
from __future__ import annotations

import sympy as sp

from ..ir import Bracket, SymgradError, Tensor, index, size
from ..program import Program, max_over, rule


def attention(is_causal=False, scale=None) -> Program:
    """softmax(q kᵀ · scale [+ causal mask]) v.

    >>> [s.name for s in attention().statements]
    ['s', 'm', 'p', 'z', 'o', 'y']
    """
    if not isinstance(is_causal, bool) and is_causal not in ("true", "false"):
        raise SymgradError(f"attention: is_causal must be true or false, got {is_causal!r}")
    causal = is_causal in (True, "true")
    B, T, S, E, F = size("B"), size("T"), size("S"), size("E"), size("F")
    b, i, j, e, f = index("b", B), index("i", T), index("j", S), index("e", E), index("f", F)
    j2 = index("j2", S)
    if scale is None:
        factor = 1 / sp.sqrt(E)
    else:
        try:
            factor = sp.Rational(repr(float(scale)))
        except (TypeError, ValueError):
            raise SymgradError(f"attention: scale must be a number, got {scale!r}") from None
    q, k, v = Tensor("q", (B, T, E)), Tensor("k", (B, S, E)), Tensor("v", (B, S, F))
    s, m = Tensor("s", (B, T, S)), Tensor("m", (B, T))
    p, z, o, y = Tensor("p", (B, T, S)), Tensor("z", (B, T)), Tensor("o", (B, T, F)), Tensor("y", (B, T, F))
    keep = Bracket(sp.Le(j, i)) if causal else sp.S.One
    keep2 = Bracket(sp.Le(j2, i)) if causal else sp.S.One
    return Program("attention", {"is_causal": causal, "scale": None if scale is None else float(scale)}, (q, k, v), (
        rule(s, (b, i, j), factor * sp.Sum(q[b, i, e] * k[b, j, e], (e, 0, E - 1))),
        rule(m, (b, i), max_over(keep2 * s[b, i, j2], (j2, 0, S - 1)), stop=True),
        rule(p, (b, i, j), keep * sp.exp(s[b, i, j] - m[b, i])),
        rule(z, (b, i), sp.Sum(p[b, i, j2], (j2, 0, S - 1))),
        rule(o, (b, i, f), sp.Sum(p[b, i, j2] * v[b, j2, f], (j2, 0, S - 1))),
        rule(y, (b, i, f), o[b, i, f] / z[b, i]),
    ), leading=B)
