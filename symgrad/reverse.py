"""Reverse mode over a program's statements: each statement's vector-Jacobian products come from
the one-rule pipeline (:func:`symgrad.derive.derive`, upstream the adjoint ``d<output>``), and the
adjoint of a tensor is the sum of the contributions of every statement that reads it.

Only what matters is derived: a statement's VJP with respect to a tensor it reads is taken when
that tensor depends on an input (``active``) and the statement's output reaches an output
(``useful``); a ``stop`` statement (stop_gradient) passes nothing back.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import sympy as sp

from . import naming
from .derive import Derivation, derive
from .engine.program import normalise, selector, statement_op, validate_program
from .forms.reduce_max import max_form
from .forms import recognise
from .ir import plain
from .steps import Rewritten
from .program import Program, Statement


@dataclass
class StatementDerivation:
    """Statement ``k`` as a rule (``op``), its forward forms, and its VJPs (``derivation.grads``)."""

    index: int
    statement: Statement
    op: object
    derivation: Derivation

    @property
    def forward(self) -> list:
        return self.derivation.forward


@dataclass
class ProgramDerivation:
    """A program (normalised: hoisted statements included), each statement's derivation, and per
    tensor the contributions to its adjoint in the order the backward adds them (``(k, Gradient)``,
    ``k`` the statement read through)."""

    program: Program
    statements: list
    adjoints: dict = field(default_factory=dict)
    seconds: float = 0.0
    live: frozenset = frozenset()   # the statements an output depends on (the forward computes only these)

    @property
    def tensors(self) -> dict:
        """Every tensor the code names: the program's, the adjoints' and the max selectors'."""
        out = dict(self.program.tensors)
        for s in self.statements:
            out.update(s.derivation.tensors)
            if s.statement.over:
                sel = selector(s.statement)
                out[sel.name] = sel
        for name, t in list(self.program.tensors.items()):
            out[naming.grad(name)] = t.like(naming.grad(name))
        return out


def _active(program: Program, wrt) -> set:
    active = {t.name for t in program.inputs if wrt is None or t.name in wrt}
    for s in program.statements:
        if not s.stop and active & set(s.reads):
            active.add(s.name)
    return active


def _useful(program: Program) -> set:
    useful = set(program.outputs)
    for s in reversed(program.statements):
        if s.name in useful and not s.stop:
            useful |= set(s.reads)
    return useful


def _needed(program: Program) -> set:
    """The statements whose values an output depends on, through stop_gradient too."""
    needed = set(program.outputs)
    for s in reversed(program.statements):
        if s.name in needed:
            needed |= set(s.reads)
    return needed


def own_rhs(stmt: Statement):
    """``(right-hand side, read)`` where a derivative of ``stmt`` may hold its own right-hand side (exp's
    derivative is exp): the read of its output that stands for it, which the forward computed; None
    where it cannot (a sum, a max, no function)."""
    if stmt.over or stmt.rhs.has(sp.Sum) or not stmt.rhs.has(sp.Function):
        return None
    own = plain(stmt.rhs)
    # an index the right-hand side does not depend on is not bound in the term: read its first element
    return own, stmt.output[tuple(v if v in own.free_symbols else 0 for v in (plain(i) for i in stmt.indices))]


def _reuse(stmt: Statement, d: Derivation):
    """Common subexpressions of forward and backward: where a VJP term holds the statement's own
    right-hand side, read the forward's tensor instead, a residual, and recognise the term again."""
    if own_rhs(stmt) is None:
        return
    own, read = own_rhs(stmt)
    for grad in d.grads.values():
        for k, form in enumerate(grad.forms):
            if not form.term.factor.has(own):
                continue
            term = form.term.replace(factor=form.term.factor.subs(own, read))
            target = d.op.input(grad.wrt)
            grad.forms[k] = recognise(term, d.tensors, grad.indices, target)
            grad.forms[k].steps.insert(0, Rewritten(
                "reuse", f"The term holds {stmt.name}'s own right-hand side; the backward reads {stmt.name}, "
                "which the forward computed, instead of computing it again.", form.term.factor, term.factor,
                ("common subexpression",)))


def _known(known, program: Program, k: int, stmt: Statement, wanted: list):
    """Statement ``k``'s derivation taken from ``known`` (a derivation of a program whose statement
    ``k`` is this same statement over the same tensors: a backward program begins with its program's
    statements), holding the VJPs ``wanted``; None where it holds fewer."""
    if known is None or k >= len(known.statements) or known.statements[k].statement != stmt or \
            any(known.program.tensors.get(n) != program.tensors[n] for n in stmt.reads):
        return None
    d = known.statements[k].derivation
    if not set(wanted) <= set(d.grads):
        return None
    return replace(d, grads={name: grad for name, grad in d.grads.items() if name in wanted}, seconds=0.0)


def derive_program(program: Program, wrt=None, known: ProgramDerivation = None) -> ProgramDerivation:
    """Normalise, validate, and derive every statement's forward forms and the VJPs reverse mode needs;
    a statement ``known`` derived (the same statement at the same place) is taken from there, not
    derived again.

    >>> from symgrad import ops
    >>> d = derive_program(ops.build("softmax"))
    >>> [name for name in d.adjoints]
    ['s', 'u', 'x']
    """
    start = time.perf_counter()
    program = normalise(program)
    validate_program(program)
    active, useful = _active(program, wrt), _useful(program)
    statements = []
    for k, stmt in enumerate(program.statements):
        wanted = [r for r in stmt.reads if r in active] if stmt.name in useful and not stmt.stop else []
        d = _known(known, program, k, stmt, wanted)
        if d is None:
            d = derive(statement_op(program, k), wrt=wanted)
            if stmt.over:
                d.forward = [max_form(stmt, d.tensors)]
            _reuse(stmt, d)
        statements.append(StatementDerivation(k, stmt, d.op, d))
    adjoints, reached = {}, set(program.outputs)
    for s in reversed(statements):
        if s.statement.name not in reached:  # nothing passes an adjoint to it (every read of it is outside its range)
            s.derivation.grads = {}
        for name, grad in s.derivation.grads.items():
            if grad.forms:  # (no terms: the statement does not depend on it)
                adjoints.setdefault(name, []).append((s.index, grad))
                reached.add(name)
    live = frozenset(_needed(program))
    return ProgramDerivation(program, statements, adjoints, time.perf_counter() - start, live)


__all__ = ["ProgramDerivation", "StatementDerivation", "derive_program"]
