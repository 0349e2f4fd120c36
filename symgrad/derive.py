"""The pipeline: op → differentiate → eliminate deltas → recognise.  Each stage only reads the
previous stage's value, and every stage's steps are kept for the documents."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import sympy as sp

from .deltas import eliminate_all
from .diff import differentiate, forward_terms, plain, upstream
from .ir import Op
from .recognise import recognise
from .validate import check_rule


@dataclass
class Gradient:
    """∂L/∂<wrt>[indices] = Σ terms, each with its recognised form."""

    wrt: str
    indices: tuple
    raw: list            # terms straight from differentiation (with deltas)
    terms: list          # after delta elimination
    forms: list          # one Form per term
    steps: list = field(default_factory=list)

    @property
    def kinds(self) -> list:
        return [f.kind for f in self.forms]


@dataclass
class Derivation:
    op: Op
    forward: list        # forms of the forward rule (the emitter computes the forward with them)
    grads: dict          # input name -> Gradient
    seconds: float = 0.0

    @property
    def tensors(self) -> dict:
        t = dict(self.op.tensors)
        g = upstream(self.op)
        t[g.name] = g
        return t


def rename_free(op: Op, target, j: tuple, terms: list):
    """Give the gradient's free indices the forward rule's names where the forward reads ``target``
    at a bare index (``∂L/∂w[f, c, r]`` rather than ``∂L/∂w[j_0, j_1, j_2]``)."""
    reads = [a for a in plain(op.rhs).atoms(sp.Indexed) if a.base.name == target.name]
    if not reads:
        return j, terms
    read = sorted(reads, key=sp.default_sort_key)[0]
    taken = set()
    for term in terms:
        taken |= term.expr().free_symbols | {v for v, _, _ in term.sums}
    mapping = {}
    for jk, e in zip(j, read.indices):
        if isinstance(e, sp.Symbol) and e not in taken and e not in mapping.values():
            mapping[jk] = e
    return tuple(mapping.get(v, v) for v in j), [t.subs(mapping) for t in terms]


def derive(op: Op, wrt=None) -> Derivation:
    """Derive the gradient of every input (or those named in ``wrt``).

    >>> from symgrad import ops
    >>> d = derive(ops.conv(1, stride=2))
    >>> d.grads["x"].kinds
    ['conv_general_dilated']
    """
    start = time.perf_counter()
    check_rule(op)
    tensors = dict(op.tensors)
    tensors[upstream(op).name] = upstream(op)
    prefer = {plain(i) for i in op.indices}
    out_vars = tuple(plain(i) for i in op.indices)
    forward = [recognise(t, tensors, out_vars, op.output) for t in forward_terms(op)]
    grads = {}
    for t in op.inputs:
        if wrt is not None and t.name not in wrt:
            continue
        j, raw, steps = differentiate(op, t.name)
        free_ranges = {v: (0, d - 1) for v, d in zip(j, t.dims)}
        terms, more = eliminate_all(raw, prefer, free_ranges)
        j, terms = rename_free(op, t, j, terms)
        forms = [recognise(term, tensors, j, t) for term in terms]
        grads[t.name] = Gradient(t.name, j, raw, terms, forms, steps + more)
    return Derivation(op, forward, grads, time.perf_counter() - start)
