"""Emitted code computes with numbers: every symbol a form's code uses must be a size the module reads
from its inputs (:func:`require_concrete`)."""
from __future__ import annotations

import sympy as sp

from ..derive import Derivation
from ..forms import kind
from ..ir import SymgradError
from ..ops import TORCH_DEFAULTS


def require_concrete(d: Derivation, bound):
    """Every symbol the code uses must be a size read from the inputs; parameters must be numbers."""
    used = set()
    for f in d.forward + [f for g in d.grads.values() for f in g.forms]:
        for v in _leaves([f.fields[k] for k in kind(f.kind).numeric_fields if k in f.fields]):
            used |= v.free_symbols if isinstance(v, sp.Basic) else set()
    for e in d.op.output_sizes.values():
        used |= e.free_symbols
    loose = used - set(bound)
    if loose:
        named = [k for k, v in d.op.params.items()  # (the user's names for them; padding="same" is given)
                 if set(_symbols(v)) & loose and d.op.spec.get(k) is None]
        left = sorted(str(s) for s in loose - {x for k in named for x in _symbols(d.op.params[k])})
        what = ", ".join(named + ([f"the sizes {', '.join(left)}"] if left else []))
        example = ", ".join(f"{k}={TORCH_DEFAULTS[k]}" for k in named if k in TORCH_DEFAULTS)
        defaults = f" (PyTorch's defaults: {example}, which the CLI's emit fills in where unset)" if example else ""
        raise SymgradError(f"{d.op.name}: emitting code needs numbers for {what}, symbolic here; give "
                           f"{'it' if len(named) + bool(left) == 1 else 'them'} when building it{defaults}")


def _symbols(value):
    """The SymPy symbols in a parameter's value (a number, a symbol, lists of them)."""
    for v in _leaves(value):
        yield from (v.free_symbols if isinstance(v, sp.Basic) else ())


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value
