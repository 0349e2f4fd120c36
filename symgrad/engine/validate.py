"""Check a forward rule before anything is derived from it, and say what is wrong in the rule's own
terms: which op, which tensor or index, and what was expected.  Without these checks a bad rule
fails deep inside SymPy or, worse, emits code that fails when it runs."""
from __future__ import annotations

import sympy as sp

from ..ir import Op, SymgradError, plain


def _output(op: Op):
    """The output's indices: one per axis, each a different index."""
    labels = [plain(i) for i in op.indices]
    if len(labels) != len(op.output.dims):
        raise SymgradError(f"{op.name}: the output {op.output.name} has {len(op.output.dims)} index axes "
                           f"{tuple(op.output.dims)} but the rule gives {len(labels)} indices {tuple(labels)}")
    for k, v in enumerate(labels):
        if not isinstance(v, sp.Symbol):
            raise SymgradError(f"{op.name}: output index {k} of {op.output.name} is {v}; each output axis "
                               "needs a plain index (index('i', extent))")
        if v in labels[:k]:
            raise SymgradError(f"{op.name}: output index {v} appears twice in {op.output.name}"
                               f"[{', '.join(map(str, labels))}]; each output axis needs its own index")


def _reads(op: Op, bound: set):
    """Every tensor read names an input, with one index per axis, each affine in the index variables."""
    inputs = {t.name: t for t in op.inputs}
    for acc in sorted(plain(op.rhs).atoms(sp.Indexed), key=sp.default_sort_key):
        name = acc.base.name
        if name not in inputs:
            raise SymgradError(f"{op.name}: the rule reads {name}, which is not an input "
                               f"(inputs: {', '.join(sorted(inputs))})")
        dims = inputs[name].dims
        if len(acc.indices) != len(dims):
            raise SymgradError(f"{op.name}: {name} has {len(dims)} index axes {tuple(dims)} but the rule reads "
                               f"{acc} with {len(acc.indices)}")
        for e in acc.indices:
            if e.has(sp.Indexed):
                raise SymgradError(f"{op.name}: index {e} of {name} reads a tensor; indices must be affine in the "
                                   "index variables (a gather by tensor values is not an index-notation rule)")
            for v in e.free_symbols & bound:
                c = sp.diff(e, v)
                if c.has(v) or c.has(sp.Derivative) or c.has(sp.Subs):
                    raise SymgradError(f"{op.name}: index {e} of {name} is not affine in {v}; "
                                       "indices must be a·i + b·r + c with coefficients free of indices")


def _free_indices(op: Op):
    """Every index the rule uses is an output index or summed over."""
    outputs = {plain(i) for i in op.indices}
    labels = {i.label for i in op.rhs.atoms(sp.Idx)}
    loose = sorted((plain(op.rhs).free_symbols & labels) - outputs, key=str)
    if loose:
        names = ", ".join(map(str, loose))
        raise SymgradError(f"{op.name}: index {names} is neither an output index "
                           f"({', '.join(str(plain(i)) for i in op.indices)}) nor summed over; add it to "
                           f"{op.output.name}'s indices or sum over it")


def _nonlinear_sums(op: Op, expr):
    """Sums only under sums, products and additions (the rule is a sum of products)."""
    if isinstance(expr, (sp.Add, sp.Mul, sp.Sum)):
        for a in expr.args:
            _nonlinear_sums(op, a)
    elif isinstance(expr, sp.Tuple):  # a Sum's limits
        return
    elif expr.has(sp.Sum):
        raise SymgradError(f"{op.name}: a sum inside a non-linear function is not supported yet: {expr}; "
                           "the rule must be a sum of products of tensor elements and functions of them")


def _functions(op: Op):
    for fn in op.rhs.atoms(sp.Function):
        if isinstance(fn, sp.core.function.AppliedUndef):
            raise SymgradError(f"{op.name}: unsupported function {fn.func.__name__}; use SymPy functions "
                               "(exp, log, erf, tanh, …) whose derivatives SymPy knows")


def validate_rule(op: Op):
    """Raise a :class:`SymgradError` naming the op and the fault if the rule cannot be derived."""
    _output(op)
    bound = {plain(i) for i in op.indices}
    for s in op.rhs.atoms(sp.Sum):
        bound |= {plain(v) for v, _, _ in s.limits}
    _reads(op, bound)
    _free_indices(op)
    _nonlinear_sums(op, op.rhs)
    _functions(op)
