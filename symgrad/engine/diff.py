"""Differentiate: ∂ℒ/∂X[j] for ℒ = Σ_out G[out] · Y[out], by ``sympy.diff`` on Indexed elements.

The result is flattened into a list of :class:`Term` (sum of products), with SymPy's
``KroneckerDelta`` factors kept apart as ``Term.deltas`` for the elimination pass.
"""
from __future__ import annotations

import sympy as sp

from ..ir import Bracket, Op, SymgradError, Term, grad_indices, plain, upstream
from ..steps import ChainRule, Differentiated, Dropped


def _structural(expr) -> bool:
    """Does ``expr`` hold sums, deltas or guards (and so must be split into terms)?"""
    return expr.has(sp.Sum, sp.KroneckerDelta, Bracket)


def terms_of(expr) -> list:
    """Flatten nested Sum/Add/Mul into terms; brackets become guards, deltas become pairs."""
    expr = sp.sympify(expr)
    if isinstance(expr, sp.Add) and _structural(expr):
        return [t for a in expr.args for t in terms_of(a)]
    if isinstance(expr, sp.Sum):
        limits = tuple((plain(v), plain(lo), plain(hi)) for v, lo, hi in expr.limits)
        return [t.replace(sums=limits + t.sums) for t in terms_of(expr.function)]
    if isinstance(expr, sp.Mul):
        out = [Term(plain(sp.Mul(*[a for a in expr.args if not _structural(a)])))]
        for a in [a for a in expr.args if _structural(a)]:
            new = []
            for left in out:
                for right in terms_of(a):
                    new.append(Term(left.factor * right.factor, left.sums + right.sums,
                                    left.guards + right.guards, left.deltas + right.deltas))
            out = new
        return out
    if isinstance(expr, sp.Pow) and isinstance(expr.base, Bracket) and expr.exp.is_positive:
        return terms_of(expr.base)  # [c]² is [c]
    if isinstance(expr, sp.KroneckerDelta):
        return [Term(sp.S.One, deltas=((plain(expr.args[0]), plain(expr.args[1])),))]
    if isinstance(expr, sp.Piecewise) and _structural(expr):
        return _piecewise_terms(expr)
    if isinstance(expr, Bracket):
        conds = sorted(sp.And.make_args(plain(expr.args[0])), key=sp.default_sort_key)  # hash-free order
        return [Term(sp.S.One, guards=tuple(conds))]
    if expr.has(sp.Sum):
        raise SymgradError(f"a sum inside a non-linear function is not supported yet: {expr}")
    if expr == 0:
        return []
    return [Term(plain(expr))]


def _piecewise_terms(expr) -> list:
    """``Piecewise((A_k, c_k), …)`` whose branches hold sums, deltas or guards (the derivative of a
    pointwise rule has ``δ·G`` in every branch): one term per index structure, its factor the
    Piecewise of the branches' factors with that structure (0 in a branch without it)."""
    conds = [plain(c) for _, c in expr.args]
    groups = {}
    for k, (value, _) in enumerate(expr.args):
        for t in terms_of(value):
            factors = groups.setdefault((t.sums, t.guards, t.deltas), [sp.S.Zero] * len(conds))
            factors[k] += t.factor
    out = []
    for (sums, guards, deltas), factors in groups.items():
        factor = sp.Piecewise(*zip(factors, conds))
        if factor != 0:
            out.append(Term(factor, sums, guards, deltas))
    return out


def forward_terms(op: Op) -> list:
    """The forward rule itself as terms (the emitter computes the forward through these)."""
    return terms_of(op.rhs)


def differentiate(op: Op, wrt: str):
    """Return ``(indices, terms, steps)`` of ∂ℒ/∂wrt[indices] before delta elimination."""
    target = op.input(wrt)
    G = upstream(op)
    out_limits = [(i, 0, i.upper) for i in op.indices]
    j = grad_indices(target, plain(op.rhs).atoms(sp.Symbol) | {plain(i) for i in op.indices})
    element = target[j]
    try:  # the derivative commutes with the sum over the output: differentiate the summand only
        raw = sp.Sum(sp.diff(G[op.indices] * op.rhs, element), *out_limits)
    except Exception as exc:  # SymPy raises many kinds on odd input; name the op and input
        raise SymgradError(f"{op.name}: cannot differentiate with respect to {wrt}: {exc}") from None
    unknown = sorted({str(d.expr) for d in raw.atoms(sp.Derivative)})
    if unknown:
        raise SymgradError(f"{op.name}: SymPy leaves the derivative of {', '.join(unknown)} with respect to {wrt} "
                           "unevaluated; the rule's functions must have derivatives SymPy knows")
    steps_only = raw.has(sp.DiracDelta)
    raw = raw.replace(sp.DiracDelta, lambda *args: sp.S.Zero)  # derivatives of steps: zero almost everywhere
    terms = [t for t in terms_of(raw) if t.factor != 0]
    steps = [
        ChainRule("chain rule", f"With g = ∂ℒ/∂{op.output.name} and ℒ = Σ g·{op.output.name}, "
                  f"∂ℒ/∂{wrt}[j] = Σ_out g[out] · ∂{op.output.name}[out]/∂{wrt}[j].",
                  sp.Sum(G[op.indices] * sp.Derivative(op.output[op.indices], element), *out_limits)),
        Differentiated("differentiate", f"Differentiating the tensor elements gives one Kronecker delta per "
                       f"index of {wrt}.", tuple(terms)),
    ]
    if steps_only:
        steps.append(Dropped("steps", "The derivatives of step functions (Heaviside, sign; DiracDelta in SymPy) are "
                             "zero wherever they are defined and are dropped, as autograd frameworks do.",
                             "DiracDelta"))
    return j, terms, steps
