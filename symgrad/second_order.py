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
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import sympy as sp

from . import naming
from .derive import Derivation, derive
from .ir import Op, SymgradError, Tensor, plain, upstream


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
    output = Tensor(naming.grad(wrt), target.dims, target.split, scalar=target.scalar)
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
