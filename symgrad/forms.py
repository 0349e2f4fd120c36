"""Recognised closed forms: a named kind, its fields (JAX/XLA vocabulary) and the term it computes."""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .ir import Term

KINDS = ("conv_general_dilated", "matmul", "elementwise", "reduce_sum", "generic")


@dataclass
class Form:
    """``kind`` is one of :data:`KINDS`; ``fields`` are JSON-ready once passed through :func:`jsonable`.

    ``term`` is the (possibly re-indexed) term the form computes; ``layout`` holds what the
    emitter needs beyond the public fields (operand index orders and the like).
    """

    kind: str
    fields: dict
    term: Term
    layout: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)


def jsonable(value):
    """SymPy numbers -> int, other SymPy expressions -> their text; containers recursively."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, sp.Basic):
        if value.is_Integer:
            return int(value)
        if value in (sp.true, sp.false):
            return bool(value)
        return str(value)
    return value


def plain_var(e):
    """The index symbol when ``e`` is a bare index, else None."""
    return e if isinstance(e, sp.Symbol) else None


def constant_scale(factor):
    """Split ``factor`` into (numeric scale, product of the rest)."""
    scale, rest = factor.as_coeff_Mul()
    return scale, rest
