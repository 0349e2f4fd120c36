"""The truth an audit holds the frameworks to: symgrad's derivation, evaluated in float64.

Each op family is derived once per process with its parameters symbolic (stride, dilation, padding,
groups), then evaluated literally at each case's numbers (:func:`symgrad.verify.evaluate.evaluate`,
no recognised form in between).  :func:`fd_error` cross-checks the truth of a case against central
finite differences of the definition (first order) or of the first order (second order), so a
reported discrepancy never rests on the derivation alone.
"""
from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from .. import ops
from ..engine.diff import forward_terms
from ..ir import SymgradError, plain
from ..second_order import derive_second_order
from ..sizes import concrete_sizes
from ..verify.evaluate import evaluate
from . import program_truth
from .cases import Case


@functools.lru_cache(maxsize=None)
def _second(key):
    family, arg = key
    if family == "conv":
        op = ops.conv(arg, groups="G")
    else:
        op = ops.build(family, **dict(arg))
    return derive_second_order(op)


def _derivation(case: Case):
    if case.conv:
        return _second(("conv", case.ndim))
    name, params = case.op_params()
    return _second((name, tuple(sorted(params.items()))))


def _known(case: Case, op) -> dict:
    """The symbolic parameters' values: s, d, lo, hi per axis (s_1, … from two axes), G."""
    if not case.conv:
        return {}
    names = {}
    for a in range(case.ndim):
        suffix = "" if case.ndim == 1 else f"_{a + 1}"
        names.update({f"s{suffix}": case.stride[a], f"d{suffix}": case.dilation[a], f"lo{suffix}": case.pads[a][0],
                      f"hi{suffix}": case.pads[a][1]})
    names["G"] = case.groups
    symbols = set()
    for e in [op.rhs, *op.output_sizes.values(), *(d for t in op.inputs for d in t.dims)]:
        symbols |= sp.sympify(e).free_symbols
    return {s: names[s.name] for s in symbols if s.name in names}


def sizes(case: Case, arrays: dict) -> dict:
    op = _derivation(case).first.op
    shapes = {t.name: np.shape(arrays[t.name]) for t in op.inputs}
    if op.elementwise:
        return {sp.Symbol("E", integer=True, positive=True): int(np.size(arrays["x"]))}
    return concrete_sizes(op, shapes, _known(case, op))


def _flat(case, arrays):
    return {k: np.ravel(v) for k, v in arrays.items()} if case.family == "gelu" else arrays


def output_name(case: Case) -> str:
    return program_truth.output_name(case) if case.program else _derivation(case).first.op.output.name


def forward(case: Case, arrays: dict) -> np.ndarray:
    """The op's output by its definition."""
    if case.program:
        return program_truth.forward(case, arrays)
    d = _derivation(case).first
    op = d.op
    out = evaluate(forward_terms(op), op.output, d.tensors, tuple(plain(i) for i in op.indices), sizes(case, arrays),
                   {t.name: _flat(case, arrays)[t.name] for t in op.inputs})
    return out.reshape(np.shape(arrays["x"])) if case.family == "gelu" else out


def first_order(case: Case, arrays: dict) -> dict:
    """name -> ∂ℒ/∂name for ℒ = Σ g·y (``arrays`` holds the inputs and g)."""
    if case.program:
        return program_truth.first_order(case, arrays)
    d = _derivation(case).first
    at, values = sizes(case, arrays), _flat(case, arrays)
    out = {}
    for name, grad in d.grads.items():
        value = evaluate(_terms(case, grad), d.op.input(name), d.tensors, grad.indices, at,
                         {n: values[n] for n in d.tensors if n in values})
        out[name] = value.reshape(np.shape(arrays[name]))
    return out


def _terms(case: Case, grad) -> list:
    """The terms a gradient is evaluated from: each recognised form's (GELU's in their stable rewriting);
    pooling's and interpolation's as delta elimination left them (a window sum's form reads a kernel of
    ones the recogniser made up)."""
    return list(grad.terms) if case.spatial else [f.term for f in grad.forms]


def second_order(case: Case, arrays: dict) -> dict:
    """(x, y) -> ∂(Σ ggx·dx)/∂y, for every gradient dx and every y it reads (``arrays`` also holds
    gg<x> for each input)."""
    s = _derivation(case)
    at, values = sizes(case, arrays), _flat(case, arrays)
    out = {}
    for x, dd in s.of.items():
        for y, grad in dd.grads.items():
            value = evaluate(_terms(case, grad), dd.tensors[y], dd.tensors, grad.indices, at,
                             {n: values[n] for n in dd.tensors if n in values})
            out[x, y] = value.reshape(np.shape(arrays[y]))
    return out


def double_backward(case: Case, arrays: dict) -> dict:
    """name -> ∂ℒ₂/∂name for ℒ₂ = Σ_x Σ ggx·dx: the sums over the gradients (g and every input)."""
    if case.program:
        return program_truth.double_backward(case, arrays)
    total = {name: np.zeros(np.shape(arrays[name])) for name in ["g"] + list(_inputs(case))}
    for (x, y), value in second_order(case, arrays).items():
        total[y] = total[y] + value
    return total


def third_order(case: Case, arrays: dict) -> dict:
    """name -> ∂ℒ₃/∂name for ℒ₃ = Σ_n h<n>·∂ℒ₂/∂n (n every input and g): the program families."""
    if not case.program:
        raise SymgradError(f"third order: the audit derives it for the program families, not {case.family}")
    return program_truth.third_order(case, arrays)


def _inputs(case: Case) -> tuple:
    if case.program:
        return program_truth.inputs(case)
    return tuple(t.name for t in _derivation(case).first.op.inputs)


def fd_error(case: Case, arrays: dict, order: int, rng: np.random.Generator) -> float:
    """The largest relative difference between the truth's directional derivatives and central
    finite differences (of the definition for order 1, of the first order for order 2)."""
    names = list(_inputs(case))
    if order == 1:
        value = lambda a: float(np.sum(arrays["g"] * forward(case, a)))  # noqa: E731
        truth, wrt = first_order(case, arrays), names
    elif order == 2:
        value = lambda a: sum(float(np.sum(arrays["gg" + n] * v)) for n, v in first_order(case, a).items())  # noqa: E731
        truth, wrt = double_backward(case, arrays), ["g"] + names
    else:
        value = lambda a: sum(float(np.sum(arrays["h" + n] * v)) for n, v in double_backward(case, a).items())  # noqa: E731
        truth, wrt = third_order(case, arrays), names + ["g"] + ["gg" + n for n in names]
    worst, eps = 0.0, 1e-6 if case.family == "gelu" else 1e-3
    for name in wrt:
        v = rng.standard_normal(np.shape(arrays[name]))
        plus, minus = dict(arrays, **{name: arrays[name] + eps * v}), dict(arrays, **{name: arrays[name] - eps * v})
        fd = (value(plus) - value(minus)) / (2 * eps)
        dot = float(np.sum(truth[name] * v))
        worst = max(worst, abs(fd - dot) / max(abs(fd), abs(dot), 1e-12))
    return worst


def arrays_for(case: Case, seed: int) -> dict:
    """Inputs, the upstream gradient g and a gg<x> per input, standard normal (GELU's x times the
    case's scale), seeded."""
    rng = np.random.default_rng(seed)
    shapes = case.shapes()
    if case.program:
        arrays = program_truth.arrays_for(case, rng)
    else:
        arrays = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
    if case.family == "gelu":
        arrays["x"] = arrays["x"] * case.scale
    arrays["g"] = rng.standard_normal(forward(case, arrays).shape)
    for name, shape in shapes.items():
        arrays["gg" + name] = rng.standard_normal(shape)
    if case.program:
        arrays.update(program_truth.third_order_arrays(case, arrays, rng))
    return arrays
