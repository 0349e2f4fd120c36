"""Symbolic-vs-numeric verification of an emitted program module: for random small shapes, the
module's forward against the program evaluated literally statement by statement (the generic
gather of every rule, the maximum by NumPy), each gradient against central finite differences of
that literal evaluation (⟨VJP(g), v⟩ ≈ ⟨g, (f(x+εv) − f(x−εv))/2ε⟩), and, for the built-in
programs, against torch.autograd in float64; double_backward (``fd2:``, ``torch2:``) against
finite differences of ⟨gg, backward⟩ and torch's double backward.

Errors are relative to the larger magnitude of the two values compared, with a floor where both
are tiny: a gradient that is zero in exact arithmetic (a causal row that keeps one key, layer norm
over one element) comes out as rounding noise, 0 from one side and up to ~1e-14 from the other (PyTorch's layer norm
multiplies its rounding of x − μ by 1/√eps ≈ 316).  The
floors, :data:`FLOOR` for array comparisons and :data:`FD_FLOOR` for the finite-difference inner
products (whose noise is ~1e-10), are far below any value a wrong gradient gives at the checks'
standard-normal inputs."""
from __future__ import annotations

import numpy as np
import sympy as sp

from ..emit import load
from ..emit.program import emit_program
from ..engine.diff import forward_terms
from ..ir import Bracket, SymgradError, Tensor, Term, plain
from ..reverse import derive_program
from ..second_order import derive_program_second_order
from ..sizes import concrete_sizes
from .check import (Trial, check_arguments, finite_forward, jvp_errors, random_inputs, rel_err, sample_sizes,
                    second_order_errors)
from .evaluate import evaluate
from .reference import torch_double_backward, torch_jvp, torch_reference


FLOOR = 1e-3
FD_FLOOR = 1e-2


def _constants(program) -> dict:
    """The values of the program's constants (``eps`` = finfo(float64).eps) for float64 inputs."""
    return {sym: sp.Float(np.finfo(np.float64).eps) for sym in program.constants}


def literal(d, arrays: dict) -> dict:
    """Every tensor of the program, computed from the rules as written (no recognised form)."""
    program = d.program
    values = dict(arrays)
    names = {t.name for t in program.inputs}
    sizes = concrete_sizes(program, {n: a.shape for n, a in arrays.items() if n in names})
    sizes.update(_constants(program))
    for s in d.statements:
        stmt = s.statement
        out_vars = tuple(plain(i) for i in stmt.indices)
        tensors = s.derivation.tensors
        if stmt.over:
            values[stmt.name] = _maximum(stmt, tensors, sizes, values)
        else:
            values[stmt.name] = evaluate(forward_terms(s.op), stmt.output, tensors, out_vars, sizes,
                                         {n: values[n] for n in stmt.reads})
    return values


def _maximum(stmt, tensors, sizes, values):
    out_vars = tuple(plain(i) for i in stmt.indices)
    over = tuple(v for v, _, _ in stmt.over)
    dims = (tuple(stmt.output.dims) if not stmt.output.scalar else ()) + tuple(hi + 1 for _, _, hi in stmt.over)
    grid = Tensor("_grid", dims)
    args = sp.Mul.make_args(stmt.rhs)
    guards = tuple(c for b in args if isinstance(b, Bracket) for c in sp.And.make_args(b.args[0]))
    body = sp.Mul(*[a for a in args if not isinstance(a, Bracket)])
    reads = {n: values[n] for n in stmt.reads}
    vals = evaluate([Term(body)], grid, tensors, out_vars + over, sizes, reads)
    if guards:
        keep = evaluate([Term(sp.S.One, guards=guards)], grid, tensors, out_vars + over, sizes, reads)
        vals = np.where(keep > 0, vals, -np.inf)
    axes = tuple(range(vals.ndim - len(over), vals.ndim))
    return vals.max(axis=axes).reshape([int(sp.sympify(x).subs(sizes)) for x in stmt.output.shape])


def run_trial(d, module, rng, eps: float, sizes: dict = None) -> Trial:
    program = d.program
    sizes = sizes or sample_sizes(program, rng)
    arrays = random_inputs(program, sizes, rng)
    trial = Trial(", ".join(f"{k}{list(v.shape)}" for k, v in arrays.items()))
    args = [arrays[t.name] for t in program.inputs]
    outputs = list(program.outputs)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        got = module.forward(*args)
    got = got if isinstance(got, tuple) else (got,)
    finite_forward(program.name, got, "input x[N] > 0 in the text syntax")
    definition = lambda arr: [literal(d, arr)[o] for o in outputs]
    want = definition(arrays)
    trial.errors["forward"] = max(rel_err(a, b, FLOOR) for a, b in zip(got, want))
    gs = [rng.standard_normal(np.shape(y)) for y in got]
    grads = module.backward(gs[0] if len(gs) == 1 else tuple(gs), *args)
    for t, grad in zip(program.inputs, grads):
        v = rng.standard_normal(arrays[t.name].shape)
        plus = definition(dict(arrays, **{t.name: arrays[t.name] + eps * v}))
        minus = definition(dict(arrays, **{t.name: arrays[t.name] - eps * v}))
        fd = sum(float(np.sum(g * (p - m))) for g, p, m in zip(gs, plus, minus)) / (2 * eps)
        vjp = float(np.sum(grad * v))
        trial.errors[f"fd:{t.name}"] = abs(fd - vjp) / max(abs(fd), abs(vjp), FD_FLOOR)
    # PyTorch's op for the built-in programs (a rule in text is checked against its own definition only)
    ref = torch_reference(program, arrays, gs[0]) if len(gs) == 1 and program.origin is None else None
    if ref is not None:
        trial.reference = "finite differences + torch"
        trial.errors["torch:forward"] = rel_err(got[0], ref[0], FLOOR)
        for t, grad, rg in zip(program.inputs, grads, ref[1]):
            trial.errors[f"torch:{t.name}"] = rel_err(grad, rg, FLOOR)
    if hasattr(module, "double_backward"):
        _second_order(program, module, arrays, gs, rng, eps, trial, ref is not None)
    jvp_errors(module, [t.name for t in program.inputs], arrays, definition, rng, eps, trial,
               lambda tangents: torch_jvp(program, arrays, tangents) if ref is not None else None, FLOOR)
    return trial


def _second_order(program, module, arrays, gs, rng, eps: float, trial: Trial, torch: bool):
    """double_backward against finite differences of ⟨gg, backward⟩ in each upstream gradient and
    input, and against torch's double backward where torch has the program."""
    ups = ["g"] if len(gs) == 1 else [f"g_{o}" for o in program.outputs]  # the upstream gradients
    second_order_errors(module, [t.name for t in program.inputs], arrays, ups, gs, rng, eps, trial,
                        lambda gg: torch_double_backward(program, arrays, gs[0], gg) if torch else None,
                        FD_FLOOR, FLOOR)


def check_program(program, trials: int = 5, seed: int = 0, sizes: dict = None):
    """Run ``trials`` trials of the emitted module at random shapes (or at ``sizes``); returns (trials, ok)."""
    check_arguments(program.name, trials, seed)
    rng = np.random.default_rng(seed)
    d, second = derive_program(program), None
    try:  # with double_backward where it is derived (not through a max whose gradient flows)
        second = derive_program_second_order(d)
    except SymgradError:
        pass
    module = load(emit_program(d, second=second))
    results = [run_trial(d, module, rng, 1e-6, sizes) for _ in range(trials)]
    ok = all(err <= (1e-6 if k.startswith("fd") else 1e-10) for r in results for k, err in r.errors.items())
    return results, ok
