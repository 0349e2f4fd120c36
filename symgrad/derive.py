"""The pipeline: op → differentiate → eliminate deltas → recognise.  Each stage only reads the
previous stage's value, and every stage's steps are kept for the documents."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import sympy as sp

from .engine.deltas import eliminate_all, prune
from .engine.diff import differentiate, forward_terms
from .engine.stable import stabilise
from .engine.validate import validate_rule
from .forms import recognise
from .ir import Op, plain, upstream
from .summary import as_text


@dataclass
class Gradient:
    """∂ℒ/∂<wrt>[indices] = Σ terms, each with its recognised form.

    ``raw`` holds the terms straight from differentiation (with deltas), in the fresh indices
    ``raw_indices``; ``terms`` the terms after delta elimination, in ``indices`` (renamed after the
    forward rule's where it reads the input bare); ``forms`` one Form per term, recognised in the
    term's floating-point form where a ``Rewritten`` step made one; ``steps`` the
    typed records of :mod:`symgrad.steps` the engine made on the way.
    """

    wrt: str
    indices: tuple
    raw: list
    terms: list
    forms: list
    steps: list = field(default_factory=list)
    raw_indices: tuple = ()

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
        """The op's inputs and output, and the upstream gradient ``g``, by name."""
        return _tensors(self.op)

    def __str__(self) -> str:
        """The derivation as ``symgrad derive`` prints it: rules, gradients, forms in words."""
        return as_text(self)


def _tensors(op: Op) -> dict:
    return {**op.tensors, upstream(op).name: upstream(op)}


def rename_free(op: Op, target, j: tuple, terms: list):
    """Give the gradient's free indices the forward rule's names where the forward reads ``target``
    at a bare index (``∂ℒ/∂w[f, c, r]`` rather than ``∂ℒ/∂w[j_0, j_1, j_2]``)."""
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


def _stable(term, inputs: set):
    """A term in its numerically stable form (engine/stable.py), and the step saying so (or None)."""
    return stabilise(term, {a for a in term.accesses if a.base.name in inputs})


def derive(op: Op, wrt=None) -> Derivation:
    """Derive the gradient of every input (or those named in ``wrt``).

    >>> from symgrad import ops
    >>> d = derive(ops.conv(1, stride=2))
    >>> d.grads["x"].kinds
    ['conv_general_dilated']
    """
    start = time.perf_counter()
    validate_rule(op)
    tensors = _tensors(op)
    prefer = ({plain(i) for i in op.indices}, set(op.prefer))
    out_vars = tuple(plain(i) for i in op.indices)
    inputs = {t.name for t in op.inputs}
    out_ranges = {v: (0, plain(i.upper)) for v, i in zip(out_vars, op.indices)}
    forward = []
    terms = [t for t in (prune(t, out_ranges) for t in forward_terms(op)) if t is not None]  # none that is always 0
    if any(t.deltas for t in terms):  # a rule written with deltas (a gradient taken as a rule): solved first
        terms, _ = eliminate_all(terms, prefer, out_ranges)
    for term in terms:
        term, step = _stable(term, inputs)
        forward.append(recognise(term, tensors, out_vars, op.output))
        forward[-1].steps.extend([step] if step else [])
    grads = {}
    for t in op.inputs:
        if wrt is not None and t.name not in wrt:
            continue
        j, raw, steps = differentiate(op, t.name)
        free_ranges = {v: (0, d - 1) for v, d in zip(j, t.dims)}
        terms, more = eliminate_all(raw, prefer, free_ranges)
        renamed, terms = rename_free(op, t, j, terms)
        stable = [_stable(term, inputs) for term in terms]
        more += [step for _, step in stable if step]
        forms = [recognise(term, tensors, renamed, t) for term, _ in stable]
        grads[t.name] = Gradient(t.name, renamed, raw, terms, forms, steps + more, raw_indices=j)
    return Derivation(op, forward, grads, time.perf_counter() - start)
