"""The truth of the program families: the program's statements, its backward as a program and that
backward's backward (order N by closure: symgrad/second_order.py), each evaluated literally in float64
statement by statement (verify/program_check.literal: the generic gather of every rule, no recognised
form in between).  Leading axes of a row family's input are rows, as the programs take them."""
from __future__ import annotations

import functools

import numpy as np

from .. import ops
from ..ir import SymgradError
from ..reverse import derive_program
from ..second_order import backward_program, derive_program_order
from ..verify.program_check import literal
from .cases import Case


@functools.lru_cache(maxsize=None)
def _derived(name: str, params: tuple, order: int) -> tuple:
    """``(d_0, …, d_{order−1})`` as :func:`symgrad.second_order.derive_program_order` gives them, each
    level derived once whichever orders are asked for (order 3 extends order 2's levels)."""
    if order == 1:
        return (derive_program(ops.build(name, **dict(params))),)
    below = _derived(name, params, order - 1)
    return below + (derive_program_order(below[-1], 2)[1],)


@functools.lru_cache(maxsize=None)
def chain(name: str, params: tuple, order: int) -> tuple:
    """The derivations of the program and of its backward programs up to ``order``: ``[d0, d1, …]``,
    d_k the derivation whose literal evaluation gives order k (d0 the forward).  The last is evaluated
    only, so its own gradients are not derived."""
    below = _derived(name, params, order)
    return below + (derive_program(backward_program(below[-1]), wrt=(), known=below[-1]),)


def _key(case: Case) -> tuple:
    name, params = case.op_params()
    return name, tuple(sorted(params.items()))


def _chain(case: Case, order: int) -> tuple:
    return chain(*_key(case), order)


def _program(case: Case):
    """The family's derivation (its statements, as evaluated for the forward)."""
    return _derived(*_key(case), 1)[0]


def inputs(case: Case) -> tuple:
    return tuple(t.name for t in _program(case).program.inputs)


def output_name(case: Case) -> str:
    return _program(case).program.outputs[0]


def _rows(case: Case, shape: tuple) -> tuple:
    """An array of a row family's case shape as the program takes it (every leading axis one row axis)."""
    if case.family in ("attention", "batch_norm") or case.spatial or len(shape) < 2:
        return shape
    return (int(np.prod(shape[:-1])), shape[-1])


def _program_arrays(case: Case, arrays: dict) -> dict:
    return {n: np.reshape(arrays[n], _rows(case, np.shape(arrays[n]))) for n in inputs(case)}


def forward(case: Case, arrays: dict) -> np.ndarray:
    values = literal(_program(case), _program_arrays(case, arrays))
    y = values[output_name(case)]
    if case.family == "cross_entropy":
        return y.reshape(np.shape(arrays["x"])[:-1] if case.reduction == "none" else ())
    return y if case.family == "attention" or case.spatial else y.reshape(np.shape(arrays["x"]))


#: the largest index grid the literal evaluation of order k may gather over (elements; it grows as the
#: largest input's size to the power k + 1)
GRID = 10 ** 8

#: the arrays that hold the upstream gradients of the program of order k − 1's outputs, by k (order 1's
#: is g, the output's): gg<x> for ∂ℒ/∂x (the double backward's); h<n> for the double backward's ∂/∂n
UPSTREAM = {2: lambda name: "gg" + name, 3: lambda name: "h" + name}


def adjoints(case: Case, arrays: dict, order: int) -> dict:
    """The adjoints the program of order ``order`` computes, by the name of the array they are the
    adjoint of (the inputs, then g, then gg<x>: that program's own inputs), shaped as those arrays.

    Order 1 is ∂ℒ/∂x for ℒ = Σ g·y; order 2 the double backward, ∂ℒ₂/∂(x, g) for ℒ₂ = Σ_x gg<x>·∂ℒ/∂x;
    order 3 its derivative, ∂ℒ₃/∂(x, g, gg<x>) for ℒ₃ = Σ_n h<n>·∂ℒ₂/∂n."""
    values = _program_arrays(case, arrays)
    largest = max(int(np.size(v)) for v in values.values())
    if order == 1 and (largest ** (order + 1) > GRID or _selects(case)):
        return _by_module(case, arrays)
    if largest ** (order + 1) > GRID:
        raise SymgradError(f"{case.family}: the literal truth of order {order} would gather over an index grid of "
                           f"about {largest}^{order + 1} elements (inputs of {largest}); audited at smaller sizes")
    ds = _chain(case, order)
    layout = {n: v.shape for n, v in values.items()}
    y = literal(ds[0], values)[output_name(case)]
    layout["g"] = y.shape if y.ndim else (1,)
    names = [list(inputs(case))]  # names[j]: the arrays of the inputs of the program of order j
    for k in range(1, order + 1):
        if k == 1:
            upstream = ["g"]  # the output's
        else:  # one per output of the program of order k - 1: the adjoints of order k - 2's inputs
            with_adjoint = [n for n, t in zip(names[k - 2], ds[k - 2].program.inputs) if t.name in ds[k - 2].adjoints]
            upstream = [UPSTREAM[k](n) for n in with_adjoint]
            layout.update({u: layout[n] for u, n in zip(upstream, with_adjoint)})
        for name, t in zip(upstream, ds[k].program.inputs[len(ds[k - 1].program.inputs):]):
            values[t.name] = np.reshape(arrays[name], layout[name])
        names.append(names[-1] + upstream)
    computed = literal(ds[order], values)
    below = ds[order - 1]
    with_adjoint = [n for n, t in zip(names[order - 1], below.program.inputs) if t.name in below.adjoints]
    out = {n: np.zeros(np.shape(arrays[n])) for n in names[order - 1]}
    for name, result in zip(with_adjoint, ds[order].program.outputs):
        out[name] = computed[result].reshape(np.shape(arrays[name]))
    return out


def _selects(case: Case) -> bool:
    """Whether a gradient flows through a maximum (max_pool): its backward reads the tie-splitting
    selector, which is not a rule, so the backward is no program to evaluate literally."""
    return any(s.statement.over and s.derivation.grads for s in _program(case).statements)


def _by_module(case: Case, arrays: dict) -> dict:
    """Order 1 where the literal evaluation's grid is out of reach (rows longer than float16's largest
    value) or the backward is no program (a maximum's): the derivation's own backward in its recognised
    forms, the emitted NumPy module run in float64 (held to the literal evaluation at small sizes by the
    suite, and to finite differences on every case the audit reports)."""
    module = _emitted(*_key(case))
    names = inputs(case)
    _, pullback = module.vjp(*[np.asarray(arrays[n], dtype=np.float64) for n in names])
    grads = pullback(np.asarray(arrays["g"], dtype=np.float64))
    grads = grads if isinstance(grads, tuple) else (grads,)
    return {n: np.reshape(v, np.shape(arrays[n])) for n, v in zip(names, grads)}


@functools.lru_cache(maxsize=None)
def _emitted(name: str, params: tuple):
    from ..emit import load
    from ..emit.program import emit_program
    return load(emit_program(_derived(name, params, 1)[0], jvp=False), f"audit_{name}")


def first_order(case: Case, arrays: dict) -> dict:
    """input name -> ∂ℒ/∂input for ℒ = Σ g·y."""
    return adjoints(case, arrays, 1)


def double_backward(case: Case, arrays: dict) -> dict:
    """name -> ∂ℒ₂/∂name for ℒ₂ = Σ_x ggx·(∂ℒ/∂x): the upstream g and every input."""
    return adjoints(case, arrays, 2)


def third_order(case: Case, arrays: dict) -> dict:
    """name -> ∂ℒ₃/∂name for ℒ₃ = Σ_n h<n>·∂ℒ₂/∂n: every input, g and gg<x>."""
    return adjoints(case, arrays, 3)


def arrays_for(case: Case, rng: np.random.Generator) -> dict:
    """Standard-normal inputs (x times the case's scale; cross_entropy's target rows are probabilities)."""
    arrays = {name: rng.standard_normal(shape) for name, shape in case.shapes().items()}
    if "x" in arrays:
        arrays["x"] = arrays["x"] * case.scale
    if case.family == "cross_entropy":
        e = np.exp(arrays["t"])
        arrays["t"] = e / e.sum(-1, keepdims=True)
    return arrays


def third_order_arrays(case: Case, arrays: dict, rng: np.random.Generator) -> dict:
    """h<n> for every input and g: the upstream gradients of the double backward's results."""
    return {"h" + name: rng.standard_normal(np.shape(arrays[name])) for name in list(inputs(case)) + ["g"]}
