"""The registry of form kinds: each kind is one module holding its recogniser, its code generator,
its plain-language description and its formulation (how the runtime computes it).  Adding a kind is
adding a module and a line here.

Recognisers are tried in :data:`KINDS` order, first match wins; ``generic`` (gather + sum over the
index grid) is the named fallback and is always correct.
"""
from __future__ import annotations

import sympy as sp

from ..ir import SymgradError, Term
from ..steps import Recognised
from .conv import CONV
from .elementwise import ELEMENTWISE
from .form import Code, Form, Kind, Target, jsonable
from .generic import GENERIC
from .matmul import MATMUL
from .reduce_max import REDUCE_MAX
from .reduce_sum import REDUCE_SUM
from .shift import SHIFT

#: the recognisers, in the order they are tried
KINDS = (CONV, MATMUL, ELEMENTWISE, REDUCE_SUM, SHIFT)
_BY_NAME = {k.name: k for k in (*KINDS, GENERIC, REDUCE_MAX)}


def kind(name: str) -> Kind:
    """The kind called ``name`` (``form.kind``)."""
    if name not in _BY_NAME:
        raise SymgradError(f"no form kind {name!r}; kinds: {', '.join(_BY_NAME)}")
    return _BY_NAME[name]


def _index_valued(term: Term, out_vars: tuple) -> bool:
    """Whether the term computes with an index's value (``x[n] · n``, an interpolation's weights): only
    the generic form, which evaluates over the index grid, has the index values as numbers."""
    indices = set(out_vars) | {v for v, _, _ in term.sums}
    # each read a symbol of its own (not a number, which may make the rest vanish: Heaviside(c − 1) is 0)
    values = term.factor.xreplace({a: sp.Dummy() for a in term.factor.atoms(sp.Indexed)})
    return bool(values.free_symbols & indices)


def recognise(term: Term, tensors: dict, out_vars: tuple, target) -> Form:
    """The first form whose recogniser accepts ``term``; else the ``generic`` fallback (the only one
    for a term that computes with an index's value)."""
    for k in KINDS if not _index_valued(term, out_vars) else ():
        form = k.match(term, tensors, out_vars, target)
        if form is not None:
            form.steps.insert(0, Recognised("recognise", f"The term has the shape of a {form.kind}.", form.kind))
            return form
    form = GENERIC.match(term, tensors, out_vars, target)
    form.steps.append(Recognised("recognise", "No closed form matched; the named generic fallback computes it "
                                              "by gathering over the index grid.", form.kind))
    return form


__all__ = ["Code", "Form", "KINDS", "Kind", "Target", "jsonable", "kind", "recognise"]
