"""Second order by closure: a derived gradient is itself an index-notation rule, so the pipeline
applies to it unchanged.

The gradient ``dx[j] = Σ_out g[out] · ∂y[out]/∂x[j]`` is taken as the rule it is straight from
differentiation (its Kronecker deltas kept, :attr:`Gradient.raw`): inputs the upstream gradient
``g`` and the op's inputs it reads, output ``dx``, upstream ``ggx`` = ∂ℒ₂/∂dx.  Deriving that rule
gives ∂ℒ₂/∂g and ∂ℒ₂/∂(each input) for ℒ₂ = Σ ggx·dx, with delta elimination and recognition as
for any op: a convolution's second-order terms come out as convolutions again.  The raw rule, not
the eliminated one, is what is derived: elimination solved its deltas for ``dx``'s index (the
transposed convolution's ``(j + lo − d·r)/s`` with a divisibility guard), and solving them afresh
from ℒ₂'s side gives the forward-shaped convolution the closed forms need.

Double backward (PyTorch's semantics): given ``gg`` for some gradients, the gradients of
Σ_x ⟨ggx, dx⟩ with respect to ``g`` and to every input, each the sum of the contributions of the
gradients that read it.

A program's backward is a program too (:func:`backward_program`): its forward statements, then per
tensor, in reverse order, the statement ``x̄ = Σ contributions`` (each contribution's raw rule, deltas
kept, as above), its outputs the inputs' adjoints.  Reverse mode over that program
(:func:`symgrad.reverse.derive_program`) gives the double backward with every term recognised.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import sympy as sp

from . import naming
from .derive import Derivation, derive
from .ir import Op, SymgradError, Tensor, grad_indices, plain, upstream
from .program import Program, Statement
from .reverse import ProgramDerivation, derive_program, own_rhs


def gradient_op(d: Derivation, wrt: str) -> Op:
    """The gradient ``d<wrt>`` of ``d.op`` as a rule of its own (see the module docstring).

    >>> from symgrad import ops, derive
    >>> gradient_op(derive(ops.matmul()), "a").inputs[0].name
    'g'
    """
    op = d.op
    if wrt not in d.grads:
        raise SymgradError(f"{op.name}: no gradient with respect to {wrt!r} was derived "
                           f"(gradients: {', '.join(d.grads) or 'none'})")
    grad, target = d.grads[wrt], op.input(wrt)
    indices = tuple(sp.Idx(j, (0, dim - 1)) for j, dim in zip(grad.raw_indices, target.dims))
    rhs = sp.Add(*[term.expr() for term in grad.raw]).xreplace(dict(zip(grad.raw_indices, indices)))
    read = {a.base.name for a in rhs.atoms(sp.Indexed)}
    inputs = tuple(t for t in (upstream(op), *op.inputs) if t.name in read)
    output = target.like(naming.grad(wrt))
    notes = [f"the gradient ∂ℒ/∂{wrt} of {op.name} as a rule of its own: ℒ₂ = Σ {naming.grad_grad(wrt)}·"
             f"{output.name}, and g and the op's inputs are its inputs"]
    return Op(f"{op.name} {output.name}", dict(op.params), inputs, output, indices, rhs, dict(op.output_sizes),
              list(op.requires), op.elementwise, notes, dict(op.spec), op.batch if inputs and _batched(inputs, op)
              else None, op.empty_ok, upstream=naming.grad_grad(wrt), prefer=tuple(plain(i) for i in op.indices))


def _batched(inputs, op) -> bool:
    return any(t.dims and t.dims[0] == op.batch for t in inputs)


@dataclass
class SecondOrder:
    """The first-order derivation and, per input ``x``, the derivation of the rule ``dx``
    (``of[x].grads[y]`` is ∂ℒ₂/∂y for ℒ₂ = Σ ggx·dx; ``y`` is ``g`` or an input)."""

    first: Derivation
    of: dict
    seconds: float = 0.0


def derive_second_order(op_or_derivation, wrt=None) -> SecondOrder:
    """Derive every gradient (or those of ``wrt``), then each gradient's own gradients.

    >>> from symgrad import ops
    >>> s = derive_second_order(ops.conv(2, stride=2))
    >>> s.of["w"].grads["g"].kinds, s.of["x"].grads["g"].kinds
    (['conv_general_dilated'], ['conv_general_dilated'])
    """
    start = time.perf_counter()
    d = op_or_derivation if isinstance(op_or_derivation, Derivation) else derive(op_or_derivation, wrt)
    of = {x: derive(gradient_op(d, x)) for x in d.grads}
    return SecondOrder(d, of, time.perf_counter() - start)


def backward_program(d: ProgramDerivation) -> Program:
    """The backward of ``d.program`` as a program of its own: inputs the program's inputs and each
    output's upstream ``ȳ`` (shape of the output, a scalar's as (1,)), statements the forward's and
    then, per tensor in reverse order, ``x̄ = Σ`` its contributions' raw rules; outputs the inputs'
    adjoints that were derived, in input order.

    >>> from symgrad import ops
    >>> [s.name for s in backward_program(derive_program(ops.build("softmax"))).statements][4:]
    ['sbar', 'ubar', 'xbar']
    """
    p = d.program
    tensors = p.tensors
    for s in d.statements:
        if s.statement.over and s.derivation.grads:
            raise SymgradError(f"{p.name}: double backward through the max of statement {s.statement.name} is not "
                               "derived: its tie-splitting selector is not a rule (where the max only shifts, as in "
                               "the built-in softmax, read it through stop_gradient)")
    named = set(tensors)

    def fresh(name: str) -> str:
        """``name``, or ``name`` numbered where the program already has it (a backward of a backward
        taken again: order N by closure, or a program of one's own naming a tensor ``ubar``)."""
        out, k = name, 1
        while out in named or naming.grad(out) in named:
            k += 1
            out = f"{name}{k}"
        named.add(out)
        return out
    upstreams = [Tensor(fresh(naming.adjoint(o)), tensors[o].dims, tensors[o].split) for o in p.outputs]  # a scalar: (1,)
    adjoint = {o: t for o, t in zip(p.outputs, upstreams)}
    statements = list(p.statements)
    for name in [s.name for s in reversed(p.statements)] + [t.name for t in p.inputs]:
        if name not in d.adjoints:
            continue
        exprs = []
        for k, grad in d.adjoints[name]:
            up = d.statements[k].statement.name
            read = {naming.grad(up): adjoint[up]}
            expr = sp.Add(*[term.expr() for term in grad.raw])
            own = own_rhs(d.statements[k].statement)  # u = exp(…) passes back exp(…)·ū: read u, as the first
            expr = expr.xreplace(dict([own])) if own is not None else expr  # order does (xreplace: inside sums too)
            exprs.append((grad, expr.replace(lambda a: isinstance(a, sp.Indexed) and a.base.name in read,
                                             lambda a: read[a.base.name][a.indices])))
        t = tensors[name]
        # the new indices avoid every name a contribution keeps (its sums' variables included: a
        # contribution's raw indices may be another's summation variables, as in a backward's backward)
        taken = {v for grad, e in exprs for v in e.atoms(sp.Symbol) - set(grad.raw_indices)}
        indices = tuple(sp.Idx(j, (0, dim - 1)) for j, dim in zip(grad_indices(t, taken), t.dims))
        rhs = sp.Add(*[e.xreplace(dict(zip(grad.raw_indices, indices))) for grad, e in exprs])
        if name in adjoint:  # an output read by later statements: its upstream, and what they pass back
            rhs += adjoint[name][tuple(plain(i) for i in indices)]
            total = t.like(fresh(naming.adjoint(name) + "_total"))
        else:
            total = t.like(fresh(naming.adjoint(name)))
        prefer = tuple(dict.fromkeys(plain(i) for k, _ in d.adjoints[name] for i in p.statements[k].indices))
        statements.append(Statement(total, indices, rhs, prefer=prefer))
        adjoint[name] = total
    outputs = tuple(adjoint[t.name].name for t in p.inputs if t.name in d.adjoints)
    if not outputs:
        raise SymgradError(f"{p.name}: no input has a gradient, so there is no backward to differentiate")
    return Program(f"{p.name}_backward", dict(p.params), tuple(p.inputs) + tuple(upstreams), tuple(statements),
                   outputs, dict(p.output_sizes), list(p.requires), [], p.leading, p.dim, dict(p.constants))


@dataclass
class ProgramSecondOrder:
    """A program's first-order derivation, its backward as a program, and that program's derivation
    (whose adjoints of the inputs and the upstream gradients are the double backward); both None
    where no input has a gradient (the double backward is 0)."""

    first: ProgramDerivation
    backward: Program
    second: ProgramDerivation
    seconds: float = 0.0


def derive_program_second_order(program_or_derivation) -> ProgramSecondOrder:
    """Derive the program (or take its derivation), take its backward as a program, and derive that
    (the statements it shares with the program are not derived again).

    >>> from symgrad import ops
    >>> s = derive_program_second_order(ops.build("softmax"))
    >>> [k for k, _ in s.second.adjoints["u"]], s.second.program.outputs  # xbar = u·ubar reads u, not exp(…)
    ([6, 4, 2], ('xbar',))
    """
    start = time.perf_counter()
    first = _derivation(program_or_derivation)
    if not any(t.name in first.adjoints for t in first.program.inputs):  # the backward is 0: so is its derivative
        return ProgramSecondOrder(first, None, None, time.perf_counter() - start)
    backward, second = _next_order(first)
    return ProgramSecondOrder(first, backward, second, time.perf_counter() - start)


def _derivation(program_or_derivation) -> ProgramDerivation:
    return program_or_derivation if isinstance(program_or_derivation, ProgramDerivation) else \
        derive_program(program_or_derivation)


def _next_order(d: ProgramDerivation) -> tuple:
    """``d``'s backward as a program (as written: emission reads it), and its derivation (the statements
    it shares with ``d``'s program taken from ``d``, not derived again)."""
    backward = backward_program(d)
    return backward, derive_program(backward, known=d)


def derive_program_order(program_or_derivation, order: int) -> list:
    """Order N by closure: ``[d_0, …, d_{N−1}]``, d_k the derivation of the program of order k (d_0 the
    program's own; the program of order k + 1 is the backward of d_k taken as a program), so that the
    adjoints of d_{N−1} are the order-N gradients (of order k − 1's inputs: the program's inputs, then
    the upstream gradients each backward added).  Each statement is derived once: a backward's copies of
    the statements below it are taken from there.

    >>> from symgrad import ops
    >>> ds = derive_program_order(ops.build("softmax"), 3)
    >>> [t.name for t in ds[2].program.inputs], ds[2].program.outputs
    (['x', 'ybar', 'xbarbar'], ('xbar2', 'ybarbar'))
    """
    if not isinstance(order, int) or order < 1:
        raise SymgradError(f"order must be an integer >= 1, got {order!r}")
    first = _derivation(program_or_derivation)
    out = [first]
    while len(out) < order:
        if not any(t.name in out[-1].adjoints for t in out[-1].program.inputs):
            raise SymgradError(f"{first.program.name}: order {len(out)} is 0 (no input has a gradient), so is "
                               f"every order above it")
        out.append(_next_order(out[-1])[1])
    return out
