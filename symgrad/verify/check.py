"""Symbolic-vs-numeric verification of an emitted module.

For random small shapes: the emitted forward against the definition evaluated literally; each
emitted gradient against central finite differences of the definition (the inner-product test
⟨VJP(g), v⟩ ≈ ⟨g, (f(x+εv) − f(x−εv)) / 2ε⟩) and, when PyTorch is installed, against
torch.autograd in float64; the module's jvp (forward mode) against the directional difference
(f(x+εt) − f(x−εt)) / 2ε and torch.func.jvp (columns ``fd:jvp``, ``torch:jvp``).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..derive import derive
from ..emit import emit, load
from ..engine.diff import forward_terms
from ..ir import SymgradError, plain
from ..sizes import concrete_sizes
from .evaluate import evaluate
from .reference import torch_double_backward, torch_jvp, torch_reference


@dataclass
class Trial:
    config: str
    errors: dict = field(default_factory=dict)   # "fd:x" / "torch:x" / "forward" -> relative error
    reference: str = "finite differences"


def rel_err(a, b, floor: float = 1e-300) -> float:
    """The largest difference relative to the larger magnitude of ``a`` and ``b`` (at least ``floor``)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), floor)
    return float(np.abs(a - b).max(initial=0.0) / scale)


def sample_sizes(op, rng, max_size: int = 6, tries: int = 200) -> dict:
    """Random small sizes for the input size symbols that satisfy the op's requirements.  A symbol a
    requirement or an output size keeps refusing (a dilated kernel wider than six) gets a larger
    range on the next try: sizes follow from the parameters, not the other way round."""
    free = []
    for t in op.inputs:
        for d in t.dims:
            for s in sorted(sp.sympify(d).free_symbols, key=str):
                if s not in free:
                    free.append(s)
    top = {s: max_size for s in free}
    for _ in range(tries):
        sizes = {s: int(rng.integers(1, top[s] + 1)) for s in free}
        failing = [c for c, _ in op.requires if not bool(c.subs(sizes))]
        failing += [e for e in op.output_sizes.values() if int(sp.sympify(e).subs(sizes)) < 1]
        if not failing:
            return sizes
        for s in set().union(*(sp.sympify(c).free_symbols for c in failing)) & set(top):
            top[s] += 1 + top[s] // 4
    raise SymgradError(f"{op.name}: found no valid input shapes in {tries} tries")

def random_inputs(op, sizes, rng, dtype=np.float64) -> dict:
    """Standard-normal values; log-normal ones (median 1, 95% within 0.4 .. 2.7) for positive tensors."""
    out = {}
    for t in op.inputs:
        values = rng.standard_normal([int(sp.sympify(d).subs(sizes)) for d in t.shape])
        out[t.name] = (np.exp(0.5 * values) if t.positive else values).astype(dtype)
    return out


def finite_forward(name: str, outputs, how: str):
    """Refuse, in the op's terms, a forward that is not finite at the sampled inputs (no gradient can
    be checked there); ``how`` says how the rule declares positive inputs."""
    bad = sum(int(np.size(y) - np.isfinite(y).sum()) for y in outputs)
    if bad:
        total = sum(int(np.size(y)) for y in outputs)
        raise SymgradError(f"check {name}: the forward is not finite at the sampled inputs ({bad} of {total} values NaN "
                           f"or inf); if the rule is defined for positive values only (log, a fractional power), "
                           f"declare those inputs positive ({how}) and check samples them positive")


def run_trial(op, module, derivation, rng, eps: float, sizes: dict = None) -> Trial:
    sizes = sizes or sample_sizes(op, rng)
    arrays = random_inputs(op, sizes, rng)
    shapes = {k: v.shape for k, v in arrays.items()}
    trial = Trial(", ".join(f"{k}{list(v)}" for k, v in shapes.items()))
    args = [arrays[t.name] for t in op.inputs]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # reported below, in the op's terms
        y = module.forward(*args)
    finite_forward(op.name, [y], "Tensor(..., positive=True)")
    tensors = derivation.tensors
    out_vars = tuple(plain(i) for i in op.indices)
    bound = concrete_sizes(op, {name: a.shape for name, a in arrays.items()})
    definition = lambda arr: evaluate(forward_terms(op), op.output, tensors, out_vars, bound, arr)
    trial.errors["forward"] = rel_err(y, definition(arrays))
    g = rng.standard_normal(y.shape)
    grads = module.backward(g, *args)
    for t, grad in zip(op.inputs, grads):
        v = rng.standard_normal(arrays[t.name].shape)
        plus = dict(arrays, **{t.name: arrays[t.name] + eps * v})
        minus = dict(arrays, **{t.name: arrays[t.name] - eps * v})
        fd = float(np.sum(g * (definition(plus) - definition(minus))) / (2 * eps))
        vjp = float(np.sum(grad * v))
        trial.errors[f"fd:{t.name}"] = abs(fd - vjp) / max(abs(fd), abs(vjp), 1e-300)
    ref = torch_reference(op, arrays, g)
    if ref is not None:
        trial.reference = "finite differences + torch"
        trial.errors["torch:forward"] = rel_err(y, ref[0])
        for t, grad, rg in zip(op.inputs, grads, ref[1]):
            trial.errors[f"torch:{t.name}"] = rel_err(grad, rg)
    if hasattr(module, "double_backward"):
        _second_order(op, module, arrays, g, rng, eps, trial)
    jvp_errors(module, [t.name for t in op.inputs], arrays, lambda arr: [definition(arr)], rng, eps, trial,
               lambda tangents: torch_jvp(op, arrays, tangents))
    return trial


def jvp_errors(module, names, arrays, definition, rng, eps: float, trial: Trial, reference, floor: float = 1e-300):
    """The module's jvp (of an op or a program; its inputs ``names``) along random tangents against the
    directional central differences of ``definition`` (arrays -> the outputs), one input moved at a
    time and summed (exact, as the VJP test, where the definition is polynomial of degree 2 or less in
    each input), and ``reference(tangents)`` ((output, tangent) from torch.func.jvp, or None): columns
    ``fd:jvp`` and ``torch:jvp``.  A module without jvp (forward mode refused) adds none."""
    tangents = {name: rng.standard_normal(arrays[name].shape) for name in names}
    try:
        _, moved = module.jvp([arrays[n] for n in names], [tangents[n] for n in names])
    except NotImplementedError:
        return
    moved = moved if isinstance(moved, tuple) else (moved,)
    fd = [0.0] * len(moved)
    for n in names:
        plus = definition(dict(arrays, **{n: arrays[n] + eps * tangents[n]}))
        minus = definition(dict(arrays, **{n: arrays[n] - eps * tangents[n]}))
        fd = [f + (p - q) / (2 * eps) for f, p, q in zip(fd, plus, minus)]
    trial.errors["fd:jvp"] = max(rel_err(m, f, floor) for m, f in zip(moved, fd))
    ref = reference(tangents)
    if ref is not None:
        trial.errors["torch:jvp"] = rel_err(moved[0], ref[1], floor)


def _second_order(op, module, arrays, g, rng, eps: float, trial: Trial):
    """double_backward against finite differences of ⟨gg, backward⟩ and torch's double backward."""
    second_order_errors(module, [t.name for t in op.inputs], arrays, ["g"], [g], rng, eps, trial,
                        lambda gg: torch_double_backward(op, arrays, g, gg))


def second_order_errors(module, names, arrays, ups, gs, rng, eps: float, trial: Trial, reference,
                        fd_floor: float = 1e-300, floor: float = 1e-300):
    """double_backward (of an op or a program) against finite differences of ⟨gg, backward⟩ (the
    module's backward, checked before against the definition) in each upstream gradient (named
    ``ups``, values ``gs``) and each input, and against ``reference(gg)`` (torch's double backward,
    or None): columns ``fd2:`` and ``torch2:``."""
    gg = {name: rng.standard_normal(arrays[name].shape) for name in names}
    point = dict(arrays, **dict(zip(ups, gs)))
    got = module.double_backward(*[gg[n] for n in names], *gs, *[arrays[n] for n in names])

    def inner(values):
        upstream = [values[u] for u in ups]
        grads = module.backward(upstream[0] if len(ups) == 1 else tuple(upstream), *[values[n] for n in names])
        return sum(float(np.sum(gg[n] * grad)) for n, grad in zip(names, grads))
    for name, value in zip(ups + names, got):
        v = rng.standard_normal(np.shape(point[name]))
        fd = (inner(dict(point, **{name: point[name] + eps * v})) -
              inner(dict(point, **{name: point[name] - eps * v}))) / (2 * eps)
        dot = float(np.sum(value * v))
        trial.errors[f"fd2:{name}"] = abs(fd - dot) / max(abs(fd), abs(dot), fd_floor)
    ref = reference(gg)
    if ref is not None:
        for name, value, want in zip(ups + names, got, ref):
            trial.errors[f"torch2:{name}"] = rel_err(value, want, floor)


def polynomial(op) -> bool:
    """Whether the definition is a polynomial in the tensor entries (sums, guards and constants
    aside): central differences are then exact up to rounding, so a wide step and a tight
    tolerance apply; erf, exp, tanh, ... need a small step and leave a truncation error."""
    reads = sorted(op.rhs.atoms(sp.Indexed), key=sp.default_sort_key)
    entries = sp.symbols(f"e0:{len(reads)}")
    flat = op.rhs.replace(lambda e: isinstance(e, sp.Sum), lambda e: e.function)
    return bool(flat.xreplace(dict(zip(reads, entries))).is_polynomial(*entries))


def fd_settings(op) -> tuple:
    """(step, tolerance) of the finite-difference comparison, decided once per op."""
    return (1e-3, 1e-8) if polynomial(op) else (1e-6, 1e-6)


def check_arguments(name: str, trials, seed):
    """A SymgradError naming ``name`` unless trials >= 1 and seed >= 0 are integers."""
    for what, value, minimum in (("trials", trials, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise SymgradError(f"check {name}: {what} must be an integer >= {minimum}, got {value!r}")


def check(op, trials: int = 5, seed: int = 0, sizes: dict = None):
    """Run ``trials`` trials at random shapes (or at ``sizes``, size symbol -> value); returns (trials, ok)."""
    check_arguments(op.name, trials, seed)
    rng = np.random.default_rng(seed)
    derivation = derive(op)
    module = load(emit(derivation))
    step, fd_tolerance = fd_settings(op)
    results = [run_trial(op, module, derivation, rng, step, sizes) for _ in range(trials)]
    ok = all(err <= (fd_tolerance if k.startswith("fd") else 1e-10) for r in results for k, err in r.errors.items())
    return results, ok


def table(op, results) -> str:
    keys = []
    for r in results:
        for k in r.errors:
            if k not in keys:
                keys.append(k)
    header = ["config"] + keys + ["reference"]
    rows = [[r.config] + [f"{r.errors[k]:.1e}" if k in r.errors else "-" for k in keys] + [r.reference]
            for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])
