"""Forward mode: the Jacobian-vector product of a program is a program of its own, as its backward is
(:func:`symgrad.second_order.backward_program`).

Its inputs are the program's inputs and one tangent per input (``ẋ``, named ``xdot``, of ``x``'s
shape); its statements the program's, then per statement in order its tangent statement, the
directional derivative of its right-hand side::

    ṫ[i] = d/dε rhs(a + ε·ȧ for every read a) at ε = 0  =  Σ_a ∂rhs/∂a · ȧ

(``ȧ``: an input's tangent, or the tangent statement of the statement that defines ``a``); its
outputs the program's outputs and then their tangents.  No Kronecker delta arises (the tangent is
read at the index the rule reads), so each tangent statement is a forward rule and the recogniser
names its form as for any statement: the JVP of a convolution in ``x`` is the convolution of ``ẋ``.
A ``stop_gradient`` statement has no tangent (its tangent is 0); a max not under stop_gradient
is refused by name (its tangent flows through its tie-splitting selector, which is not a rule).
"""
from __future__ import annotations

import sympy as sp

from .engine.program import normalise, validate_program
from .ir import Op, SymgradError
from .naming import tangent
from .program import Program, Statement


def op_program(op: Op) -> Program:
    """An op as the program of one statement it is."""
    return Program(op.name, dict(op.params), tuple(op.inputs), (Statement(op.output, tuple(op.indices), op.rhs),),
                   (op.output.name,), dict(op.output_sizes), list(op.requires), list(op.notes))


def _directional(rhs, tangents: dict):
    """``Σ_a ∂rhs/∂a · ȧ`` over the reads ``a`` of the tensors in ``tangents`` (name -> tangent tensor).
    Each read and its tangent stand in as real symbols while SymPy differentiates (a read is real;
    unknown, SymPy's checks of tanh's or sqrt's argument expand it, for seconds), then are read again."""
    eps = sp.Dummy("eps", real=True)
    reads = sorted((a for a in sp.sympify(rhs).atoms(sp.Indexed) if a.base.name in tangents), key=sp.default_sort_key)
    values = {a: sp.Dummy(f"v{k}", real=True) for k, a in enumerate(reads)}
    moves = {a: sp.Dummy(f"t{k}", real=True) for k, a in enumerate(reads)}
    moved = sp.sympify(rhs).xreplace(values).xreplace({values[a]: values[a] + eps * moves[a] for a in reads})
    out = sp.diff(moved, eps).xreplace({eps: 0})
    back = {**{values[a]: a for a in reads}, **{moves[a]: tangents[a.base.name][a.indices] for a in reads}}
    out = out.xreplace(back)
    out = out.replace(sp.DiracDelta, lambda *args: sp.S.Zero)  # steps' derivatives: 0 almost everywhere
    return out.replace(lambda e: isinstance(e, sp.Sum) and isinstance(sp.expand_mul(e.function), sp.Add),
                       lambda e: sp.Add(*[sp.Sum(part, *e.limits) for part in sp.expand_mul(e.function).args]))


def jvp_program(source, primal: bool = True) -> Program:
    """The JVP of ``source`` (a :class:`~symgrad.program.Program` or an :class:`~symgrad.ir.Op`) as a
    program (see the module docstring); ``primal=False``: its outputs are the tangents alone (the
    statements no tangent reads are then not computed).

    >>> from symgrad import ops
    >>> p = jvp_program(ops.build("softmax"))
    >>> p.outputs, [t.name for t in p.inputs]
    (('y', 'ydot'), ['x', 'xdot'])
    """
    program = normalise(op_program(source) if isinstance(source, Op) else source)
    validate_program(program)
    taken = set(program.tensors)
    tangents = {}
    for t in program.inputs:
        tangents[t.name] = t.like(_fresh(tangent(t.name), taken, program.name))
    inputs = tuple(program.inputs) + tuple(tangents[t.name] for t in program.inputs)
    statements, refused = list(program.statements), {}
    for k, stmt in enumerate(program.statements):
        if stmt.stop:  # stop_gradient: no tangent flows through it
            continue
        for name in stmt.reads:
            if name in refused:
                raise SymgradError(refused[name])
        if stmt.over:  # refused where a tangent reads it (under stop_gradient, as softmax's shift, none does)
            if _directional(stmt.rhs, tangents) != 0:
                refused[stmt.name] = (f"{stmt.where(program.name, k)}: forward mode through a max is not derived: "
                                      "its tangent flows through its tie-splitting selector, which is not a rule "
                                      "(where the max only shifts, as in the built-in softmax, read it through "
                                      "stop_gradient)")
            continue
        try:
            rhs = _directional(stmt.rhs, tangents)
        except Exception as exc:  # SymPy raises many kinds on odd input: name the statement
            raise SymgradError(f"{stmt.where(program.name, k)}: cannot take its directional derivative: {exc}") from None
        if rhs == 0:
            continue
        out = stmt.output.like(_fresh(tangent(stmt.name), taken, program.name))
        statements.append(Statement(out, stmt.indices, rhs, prefer=stmt.prefer))
        tangents[stmt.name] = out
    for name in program.outputs:
        if name in refused:
            raise SymgradError(refused[name])
        if name not in tangents:  # an output no input moves: its tangent is 0
            t = program.tensors[name]
            out = t.like(_fresh(tangent(name), taken, program.name))
            index = next(s.indices for s in program.statements if s.name == name)
            statements.append(Statement(out, index, sp.S.Zero))
            tangents[name] = out
    outputs = (tuple(program.outputs) if primal else ()) + tuple(tangents[name].name for name in program.outputs)
    return Program(f"{program.name}_jvp", dict(program.params), inputs, tuple(statements), outputs,
                   dict(program.output_sizes), list(program.requires), list(program.notes), program.leading,
                   program.dim, dict(program.constants))


def _fresh(name: str, taken: set, program: str) -> str:
    if name in taken:
        raise SymgradError(f"{program}: forward mode names the tangent {name!r}, which the program already uses; "
                           "rename that tensor")
    taken.add(name)
    return name


__all__ = ["jvp_program", "op_program"]
