"""GELU, elementwise, as torch.nn.functional.gelu.

exact:  y = x · Φ(x) = x/2 · (1 + erf(x/√2))
tanh:   y = x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))
"""
from __future__ import annotations

import sympy as sp

from ..ir import Op, SymgradError, Tensor, index, size

APPROXIMATIONS = ("none", "tanh")


def gelu(approximate: str = "none") -> Op:
    """GELU on arrays of any shape (the index ``i`` runs over all elements).

    >>> gelu("tanh").params
    {'approximate': 'tanh'}
    """
    approximate = approximate.strip().lower() if isinstance(approximate, str) else approximate
    if approximate not in APPROXIMATIONS:
        raise SymgradError(f"gelu: approximate must be one of {', '.join(APPROXIMATIONS)}, got {approximate!r}")
    E = size("E")
    i = index("i", E)  # not "e": that reads as Euler's number in the formulas
    x = Tensor("x", (E,))
    v = x[i]
    if approximate == "none":
        rhs = v / 2 * (1 + sp.erf(v / sp.sqrt(2)))
    else:
        rhs = v / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (v + sp.Rational(44715, 1000000) * v ** 3)))
    return Op(name="gelu", params={"approximate": approximate}, inputs=(x,), output=Tensor("y", (E,)),
              indices=(i,), rhs=rhs, elementwise=True)
