"""Emitted code computes with numbers: every symbol a form's code uses must be a size the module reads
from its inputs (:func:`require_concrete`)."""
from __future__ import annotations

import sympy as sp

from ..derive import Derivation
from ..forms import kind
from ..ir import SymgradError


def require_concrete(d: Derivation, bound):
    """Every symbol the code uses must be a size read from the inputs; parameters must be numbers."""
    used = set()
    for f in d.forward + [f for g in d.grads.values() for f in g.forms]:
        for v in _leaves([f.fields[k] for k in kind(f.kind).numeric_fields if k in f.fields]):
            used |= v.free_symbols if isinstance(v, sp.Basic) else set()
    for e in d.op.output_sizes.values():
        used |= e.free_symbols
    loose = sorted(str(s) for s in used - set(bound))
    if loose:
        raise SymgradError(f"{d.op.name}: emitting code needs concrete parameter values; symbolic: "
                           f"{', '.join(loose)} (the CLI's emit fills unset ones with PyTorch's defaults)")


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value
