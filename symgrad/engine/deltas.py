"""Kronecker-delta elimination over the integers, and pruning of guards implied by index ranges.

A delta ``δ(c·v + rest, 0)`` with a summation variable ``v`` is removed by solving
``v = −rest / c``.  That is only a term of the sum where ``v`` is an integer inside its range,
so two guards come with it:

* divisibility ``c | −rest`` — for a stride c > 1 this *is* the zero-insertion of the gradient
  (the transposed convolution).  SymPy's own ``deltasummation`` drops it (seen with 1.14), which
  is why this pass exists;
* range ``lo ≤ −rest/c ≤ hi`` — the padding (or cropping) of the result.

Which variable is eliminated decides which closed form comes out: we prefer the output indices
of the forward op (the ones ``ℒ = Σ g·Y`` sums over), so that the surviving sum runs over the
kernel taps; among those, unit coefficients first (no divisibility guard).
"""
from __future__ import annotations

import sympy as sp

from ..ir import SymgradError, Term
from ..steps import Eliminated, Solution


def _linear_coefficient(e, v):
    c = sp.diff(e, v)
    if c.has(v) or c.has(sp.Derivative) or c.has(sp.Subs):
        raise SymgradError(f"index {e} is not affine in {v}: only affine indices (a·i + b·r + c) are supported")
    return c


def _sign(c):
    if c.is_positive:
        return 1
    if c.is_negative:
        return -1
    return None


def eliminate(term: Term, prefer, solved: list = None) -> Term:
    """Remove every delta that involves a summation variable; the rest become equality guards.
    ``prefer``: the variables to solve for first, a set or a sequence of sets in order of preference.
    Each :class:`~symgrad.steps.Solution` is appended to ``solved`` when given."""
    tiers = [prefer] if isinstance(prefer, (set, frozenset)) else list(prefer)
    tier = lambda v: next((k for k, t in enumerate(tiers) if v in t), len(tiers))  # noqa: E731
    while term.deltas:
        ranges = {v: (lo, hi) for v, lo, hi in term.sums}
        best = None
        for k, (a, b) in enumerate(term.deltas):
            e = sp.expand(a - b)
            for order, v in enumerate(sorted(e.free_symbols & set(ranges), key=sp.default_sort_key)):
                c = _linear_coefficient(e, v)
                if _sign(c) is None:
                    continue
                rank = (tier(v), abs(c) != 1, k, order)
                if best is None or rank < best[0]:
                    best = (rank, k, v, c, e)
        if best is None:
            guards = tuple(sp.Eq(a, b) for a, b in term.deltas)
            return term.replace(deltas=(), guards=term.guards + guards)
        _, k, v, c, e = best
        sign = _sign(c)
        numer = sp.expand(-(e - c * v) * sign)  # v = numer / |c|
        den = c * sign
        value = numer / den
        lo, hi = ranges[v]
        new_guards = [sp.Le(lo, value), sp.Le(value, hi)]
        if den != 1:
            new_guards.insert(0, sp.Eq(sp.Mod(numer, den), 0))
        if solved is not None:
            solved.append(Solution(v, value, tuple(new_guards)))
        rest = term.deltas[:k] + term.deltas[k + 1:]
        term = term.replace(deltas=rest, guards=term.guards + tuple(new_guards)).subs({v: value})
    return term


def _bounds(e, ranges: dict):
    """(min, max) of an expression affine in the ranged variables, or None when a sign is unknown."""
    e = sp.expand(e)
    lo = hi = e
    for v in sorted(e.free_symbols & set(ranges), key=sp.default_sort_key):
        c = _linear_coefficient(e, v)
        vlo, vhi = ranges[v]
        if c.is_nonnegative:
            lo, hi = lo.subs(v, vlo), hi.subs(v, vhi)
        elif c.is_nonpositive:
            lo, hi = lo.subs(v, vhi), hi.subs(v, vlo)
        else:
            return None
    return sp.expand(lo), sp.expand(hi)


def implied(guard, ranges: dict):
    """True if ``guard`` holds for every value of the ranged variables, False if for none, else None."""
    if guard in (sp.true, sp.false):
        return bool(guard)
    if isinstance(guard, sp.Eq) and isinstance(guard.lhs, sp.Mod) and guard.rhs == 0:
        return True if guard.lhs.args[1] == 1 else None
    if not isinstance(guard, (sp.Le, sp.Lt, sp.Ge, sp.Gt, sp.Eq)):
        return None
    if isinstance(guard, (sp.Ge, sp.Gt)):
        guard = guard.reversed
    gap = _bounds(guard.rhs - guard.lhs, ranges)  # gap >= 0 (Le) / > 0 (Lt) / == 0 (Eq)
    if gap is None:
        return None
    gmin, gmax = gap
    if isinstance(guard, sp.Eq):
        if gmin == 0 and gmax == 0:
            return True
        if gmin.is_positive or gmax.is_negative:
            return False
        return None
    strict = isinstance(guard, sp.Lt)
    if (gmin.is_positive if strict else gmin.is_nonnegative):
        return True
    if (gmax.is_nonpositive if strict else gmax.is_negative):
        return False
    return None


def collapse_sums(term: Term) -> Term:
    """A sum over a variable the term does not use is its extent times the term:
    ``Σ_{s<2} t[i] = 2·t[i]``."""
    used = term.factor.free_symbols.union(*[g.free_symbols for g in term.guards],
                                          *[sp.sympify(a - b).free_symbols for a, b in term.deltas],
                                          *[sp.sympify(lo).free_symbols | sp.sympify(hi).free_symbols
                                            for _, lo, hi in term.sums])
    idle = [(v, lo, hi) for v, lo, hi in term.sums if v not in used]
    if not idle:
        return term
    count = sp.Mul(*[hi - lo + 1 for _, lo, hi in idle])
    return term.replace(factor=term.factor * count, sums=tuple(x for x in term.sums if x not in idle))


def prune(term: Term, free_ranges: dict):
    """Drop guards the index ranges imply and sums over variables the term does not use; return None
    when a guard can never hold."""
    term = collapse_sums(term)
    ranges = dict(free_ranges)
    ranges.update({v: (lo, hi) for v, lo, hi in term.sums})
    kept, seen = [], set()
    for g in term.guards:
        verdict = implied(g, ranges)
        if verdict is False:
            return None
        if verdict is None and _same(g) not in seen:
            kept.append(g)
            seen.add(_same(g))
    return term.replace(guards=tuple(kept))


def _same(guard):
    """One key for guards that say the same of integers: ``a < b`` and ``a ≤ b − 1``, ``b > a``."""
    if isinstance(guard, (sp.Ge, sp.Gt)):
        guard = guard.reversed
    if isinstance(guard, (sp.Le, sp.Lt)):
        gap = sp.expand(guard.rhs - guard.lhs)  # Le: gap >= 0; Lt: gap > 0, for integers gap - 1 >= 0
        if gap.is_integer:
            return ("<=", gap - 1 if isinstance(guard, sp.Lt) else gap)
    return guard


def eliminate_all(terms: list, prefer, free_ranges: dict):
    """Eliminate deltas in every term and prune guards; returns ``(terms, steps)``."""
    out, pointwise, solved = [], [], []
    for t in terms:
        t = prune(eliminate(t, prefer, solved), free_ranges)
        if t is None or t.factor == 0:
            continue
        (pointwise if not (t.sums or t.guards or t.deltas) else out).append(t)
    if pointwise:  # products without sums or guards add up into one pointwise expression
        merged = sp.factor_terms(sp.Add(*[t.factor for t in pointwise]))
        if merged != 0:
            out.insert(0, Term(merged))
    step = Eliminated("eliminate deltas",
                      "Each Kronecker delta is solved for one summation variable over the integers; the "
                      "solution must be an integer (divisibility guard) inside the variable's range (range guard). "
                      "Guards that the index ranges already imply are dropped.", tuple(terms), tuple(out), tuple(solved))
    return out, [step]
