"""Numerically stable forms of derived pointwise expressions: the same function, printed so that
floating point does not lose it.  A symbolic engine knows the expression it prints; where a form
cancels or overflows, it prints an equivalent one that does not.

Rules, as data (each applies to any sum, or product, in the expression, first match wins):

* ``c + c·erf(u) → c·erfc(−u)``; ``c − c·erf(u) → c·erfc(u)``: 1 + erf(u) cancels to 0 for u ≪ 0
  (exact GELU's left tail), erfc(−u) keeps every digit;
* ``c + c·tanh(u) → 2c·σ(2u)``: 1 + tanh(u) cancels for u ≪ 0;
* ``c − c·tanh(u)² → 4c·σ(2u)·σ(−2u)``: 1 − tanh² cancels for |u| ≫ 1, and the product goes to 0
  where tanh² rounds to 1;
* ``exp(k·w)·(1 + exp(w))^(−m) → σ(w)^k·σ(−w)^(m−k)`` (1 ≤ k ≤ m: a sigmoid's slope and
  curvature): ∞/∞ once exp(w) overflows, factors in [0, 1] in the product form.

σ(u) = 1/(1 + e^(−u)) is :class:`symgrad.ir.sigmoid`, which every target computes without overflow
and whose derivative the frameworks take from its value: the torch target's double backward is
autograd through the emitted backward, and autograd through 1/(1 + e^(−u)) gives ∞/∞ where e^(−u)
overflows (written with exp, these forms have the right value and a NaN derivative).

Then limits: where a pointwise function h of one tensor element x has a finite limit at ±∞ that the
formula cannot reach (∞·0, ∞ − ∞, an overflowing x³), the expression takes the limit beyond a
threshold T: where an exponent of e passes 700 (softplus' exp(x)/(1 + exp(x)) is ∞/∞ past 709.78),
else where a power of x leaves float64's range — the first of the two at which the limit equals
h(±T) to double precision (50-digit evaluation); where neither does, only x = ±∞ itself takes the
limit.  A limit is read off h at ±2^50, ±2^100 and ±2^150, evaluated with 200 digits (mpmath):
fast and bounded in time where SymPy's symbolic limit can run for minutes on a sigmoid in a
denominator, and never trusted blindly — the threshold check evaluates h there again.
"""
from __future__ import annotations

import functools
from fractions import Fraction

import mpmath
import sympy as sp

from ..ir import IsInf, Shielded, Term, sigmoid
from ..steps import Rewritten
from . import numbers

#: how many digits the limit check evaluates with
_DIGITS = 50
#: the variable a function of one element is written in (one symbol, so that limits can be cached)
_S = sp.Dummy("s", real=True)


class erfc(sp.erfc):
    """SymPy's erfc without its canonical form: SymPy writes erfc(−u) as 2 − erfc(u), which is the
    cancellation this module removes.  Numbers still evaluate; printers see an erfc."""

    @classmethod
    def eval(cls, arg):
        return sp.erfc.eval(arg) if arg.is_Number else None


def _erf_to_erfc(terms):
    """c + c·erf(u) → c·erfc(−u); c − c·erf(u) → c·erfc(u)."""
    return _pair(terms, sp.erf, lambda c, u: c * erfc(-u), lambda c, u: c * erfc(u))


def _one_plus_tanh(terms):
    """c + c·tanh(u) → 2c·σ(2u); c − c·tanh(u) → 2c·σ(−2u)."""
    return _pair(terms, sp.tanh, lambda c, u: 2 * c * sigmoid(2 * u), lambda c, u: 2 * c * sigmoid(-2 * u))


def _one_minus_tanh_squared(terms):
    """c − c·tanh(u)² → 4c·σ(2u)·σ(−2u)."""
    constant = [t for t in terms if t.is_number]
    for t in terms:
        coeff, rest = t.as_coeff_Mul()
        if isinstance(rest, sp.Pow) and rest.exp == 2 and isinstance(rest.base, sp.tanh):
            for c in constant:
                if c == -coeff:
                    u = rest.base.args[0]
                    others = [x for x in terms if x is not t and x is not c]
                    return others + [4 * c * sigmoid(2 * u) * sigmoid(-2 * u)]
    return None


def _pair(terms, function, plus, minus):
    """A constant c and c·function(u) in one sum, replaced by plus(c, u) (or by minus(c, u) for −c·f)."""
    constant = [t for t in terms if t.is_number]
    for t in terms:
        coeff, rest = t.as_coeff_Mul()
        if isinstance(rest, function):
            for c in constant:
                if c in (coeff, -coeff):
                    others = [x for x in terms if x is not t and x is not c]
                    return others + [(plus if c == coeff else minus)(c, rest.args[0])]
    return None


def _logistic_powers(factors):
    """exp(k·w)·(1 + exp(w))^(−m) → σ(w)^k·σ(−w)^(m−k) for integers 1 ≤ k ≤ m
    (a sigmoid's slope is k = 1, m = 2; its curvature has k = 2, m = 3): ∞/∞ once exp(w) overflows
    (a sigmoid of −exp(x)); each factor of the product form lies in [0, 1]."""
    for f in factors:
        if not (isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp < 0 and isinstance(f.base, sp.Add)
                and len(f.base.args) == 2 and sp.S.One in f.base.args):
            continue
        (e,) = [a for a in f.base.args if a != 1]
        if not isinstance(e, sp.exp):
            continue
        w, m = e.args[0], -f.exp
        for g in factors:
            if not isinstance(g, sp.exp) or g.args[0].free_symbols != w.free_symbols:
                continue
            # k·w as SymPy writes it (a number times a sum is distributed): compared expanded, never simplified
            k = next((k for k in range(1, int(m) + 1) if sp.expand(g.args[0] - k * w) == 0), None)
            if k is not None:
                others = [x for x in factors if x is not f and x is not g]
                return others + [sigmoid(w) ** k, sigmoid(-w) ** (m - k)]
    return None


#: (identity as LaTeX, rule): applied to every sum until none applies
RULES = [
    (r"$1 + \operatorname{erf} u = \operatorname{erfc}(-u)$", _erf_to_erfc),   # cancels for u ≪ 0
    (r"$1 + \tanh u = 2\sigma(2u)$", _one_plus_tanh),                             # cancels for u ≪ 0
    (r"$1 - \tanh^2 u = 4\sigma(2u)\,\sigma(-2u)$", _one_minus_tanh_squared),       # cancels for |u| ≫ 1
]
#: the same for products
PRODUCT_RULES = [
    (r"$e^{kw}/(1 + e^{w})^m = \sigma(w)^k \sigma(-w)^{m-k}$", _logistic_powers),  # ∞/∞ for w ≫ 1 (1 ≤ k ≤ m)
]


def rewrite(expr):
    """``expr`` with every rule applied wherever it matches; returns (expression, names of the rules used)."""
    used = []

    def visit(e):
        if e.is_Atom:
            return e
        e = e.func(*[visit(a) for a in e.args]) if e.args else e
        while isinstance(e, (sp.Add, sp.Mul)):
            add = isinstance(e, sp.Add)
            for name, rule in RULES if add else PRODUCT_RULES:
                new = rule(list(e.args))
                if new is not None:
                    used.append(name)
                    e = visit(sp.Add(*new) if add else sp.Mul(*new))
                    break
            else:
                break
        return e

    return visit(expr), list(dict.fromkeys(used))


def _degree(h, s) -> int:
    """The highest integer power of ``s`` the formula computes (overflow comes first from it)."""
    powers = [int(p.exp) for p in h.atoms(sp.Pow) if p.base == s and p.exp.is_Integer and p.exp > 0]
    return max(powers + [1])


def _exponents(h, s) -> list:
    """The exponents the formula raises e to (exp(a), σ(a) as the exp(−a) of its definition, and b**a
    as exp(a·log b)) that depend on s."""
    found = [e.args[0] for e in h.atoms(sp.exp) if e.has(s)] + [-e.args[0] for e in h.atoms(sigmoid) if e.has(s)]
    return found + [p.exp * sp.log(p.base) for p in h.atoms(sp.Pow) if p.exp.has(s) and not p.base.has(s)]


def _bounds(h, s, sign) -> list:
    """Thresholds T to try on the side ``sign`` of zero, smallest first: where an exponent the
    formula raises e to passes 700 (exp overflows past 709.78: softplus' exp(x)/(1 + exp(x)) is ∞/∞
    there), and where its highest power of s leaves float64's range (x**3 past 5.6e102)."""
    powers = 1022 // _degree(h, s) - 1
    exponents = _exponents(h, s)

    def finite(k):
        at = sign * mpmath.mpf(2) ** k
        values = [_value(a, s, at, 20) for a in exponents]
        return all(v is None or v <= 700 for v in values)  # (a complex exponent: no overflow bound to keep)

    lo, hi = 0, powers  # the largest k with finite(k), by bisection
    if not finite(hi):
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if finite(mid) else (lo, mid)
        hi = lo
    return [sp.Float(2.0 ** k) for k in sorted({hi, powers})]


def _value(h, s, at, digits: int):
    """h(at) with ``digits`` digits (an mpmath real), or None where it has none (:mod:`.numbers`)."""
    return numbers.value(h, {s: at}, digits)


def _agrees(h, s, at, limit) -> bool:
    """Does h(at), evaluated to 50 digits, round to ``limit`` in double precision?"""
    value = _value(h, s, at, _DIGITS)
    if value is None or not mpmath.isfinite(value):
        return False
    if limit == 0:
        return abs(value) < mpmath.mpf("1e-320")
    with mpmath.workdps(_DIGITS):
        target = mpmath.mpf(sp.N(limit, _DIGITS))
        return abs(value - target) <= abs(target) * mpmath.mpf(2) ** -60


#: where a limit is read: ±2^k (with _WORK digits), the last two values agreeing to _AGREE
_POINTS, _WORK, _AGREE = (50, 100, 150), 200, mpmath.mpf("1e-25")


@functools.lru_cache(maxsize=256)
def _limit(h, s, infinity):
    """The limit of h at ``infinity`` read off its values at ±2^50, 2^100, 2^150 (200 digits): a
    number where the last two agree to 25 digits (exact where it is a simple fraction: 0, 1, ½),
    ±∞ where they grow past every bound, None where neither (an oscillation, no real value)."""
    sign = 1 if infinity == sp.oo else -1
    values = [_value(h, s, sign * mpmath.mpf(2) ** k, _WORK) for k in _POINTS]
    if any(v is None for v in values):
        return None
    a, b, c = values
    if mpmath.isinf(c):
        return sp.oo if c > 0 else -sp.oo
    if abs(c - b) <= _AGREE * max(1, abs(c)):
        return _exact(c)
    if abs(a) < abs(b) < abs(c) and abs(c) > 1e10 and (a > 0) == (b > 0) == (c > 0):
        return sp.oo if c > 0 else -sp.oo
    return None


def _exact(value) -> sp.Expr:
    """A limit read numerically as SymPy wants it: 0, a fraction with a small denominator, or a Float."""
    if abs(value) < _AGREE:
        return sp.S.Zero
    with mpmath.workdps(40):
        text = mpmath.nstr(value, 35, strip_zeros=False)
    fraction = Fraction(text).limit_denominator(1000)
    if abs(mpmath.mpf(fraction.numerator) / fraction.denominator - value) <= _AGREE * max(1, abs(value)):
        return sp.Rational(fraction.numerator, fraction.denominator)
    return sp.Float(text, 30)


def _asymptote(h, s, infinity):
    """a·s + b when h(s) ~ a·s + b at ``infinity`` (a, b finite, a ≠ 0), else None."""
    a = _limit(h / s, s, infinity)
    if a is None or not (a.is_real and a.is_finite) or a == 0:
        return None
    b = _limit(h - a * s, s, infinity)
    return a * s + b if b is not None and b.is_real and b.is_finite else None


def _at(h, s, infinity):
    """h with ±∞ substituted, or None where SymPy cannot say (∞/∞ inside a max: nan, not comparable)."""
    try:
        return h.subs(s, infinity)
    except (ValueError, TypeError):
        return None


def limit_guards(expr, x):
    """``expr`` (a function of the element ``x`` times factors free of it) with its limits at ±∞ —
    a finite value, or a line a·x + b — taken beyond the threshold T where the formula breaks down
    (∞·0, an overflowing power of x, a product that overflows before the value does); (expression,
    branches added)."""
    free, h = expr.as_independent(x, as_Add=False)
    s = _S
    h = h.xreplace({x: s})
    if not h.has(s) or h.is_polynomial(s):
        return expr, []
    branches = []
    for sign, infinity in ((1, sp.oo), (-1, -sp.oo)):
        limit = _limit(h, s, infinity)
        if limit is None:
            continue
        if limit.is_real and limit.is_finite:
            if _at(h, s, infinity) == limit:  # the formula reaches its limit there by itself
                continue
            value, check = limit, (lambda at, limit=limit: _agrees(h, s, at, limit))
        else:
            line = _asymptote(h, s, infinity)
            if line is None:
                continue
            value, check = line, (lambda at, line=line: _agrees(h / line, s, at, sp.Integer(1)))
        # the first threshold where the limit is the value to double precision (an overflow below
        # it may be harmless: exp(−u) → ∞ in a denominator); ±∞ included, the code computes in float64
        bound = next((b for b in _bounds(h, s, sign) if check(sign * b)), None)
        condition = IsInf(x, sign) if bound is None else sp.Gt(x, bound) if sign > 0 else sp.Lt(x, -bound)
        branches.append((free * value.xreplace({s: x}), condition))
    if not branches:
        return expr, []
    at = _finite_point(h, s)
    if at is not None:  # the formula read at a finite point where a guard holds (autograd differentiates it there)
        expr = free * h.xreplace({s: Shielded(x, sp.Or(*[c for _, c in branches]), at)})
    return sp.Piecewise(*branches, (expr, True)), branches


#: where :func:`_finite_point` looks
_CANDIDATES = (sp.S.Zero, sp.S.One, -sp.S.One, sp.S.Half, sp.Integer(2))


def _finite_point(h, s):
    """A small number at which h and its derivative are finite (None if none of a few is)."""
    slope = sp.diff(h, s)
    for at in _CANDIDATES:
        values = [_value(f, s, mpmath.mpf(int(at.p)) / int(at.q), _DIGITS) for f in (h, slope)]
        if all(v is not None and mpmath.isfinite(v) for v in values):
            return at
    return None


def stabilise(term: Term, reads) -> tuple:
    """A term rewritten (RULES: identities, in any term) and, where it is pointwise (no sums,
    brackets or deltas), guarded (limits); returns (term, step or None).  ``reads`` are the tensor
    elements that may take the limit (the op's inputs, not g)."""
    factor, used = rewrite(term.factor)
    guards = []
    # the one element the term is a non-polynomial function of (a gradient taken as a rule also reads g, linearly)
    candidates = [a for a in term.accesses if a in reads and not factor.is_polynomial(a)]
    if len(candidates) == 1 and not (term.sums or term.guards or term.deltas):
        factor, guards = limit_guards(factor, candidates[0])
    if factor == term.factor:
        return term, None
    said = list(used)
    if guards:
        said.append(r"beyond the threshold where the formula overflows or gives $\infty \cdot 0$, its limit "
                    r"at $\pm\infty$")
    text = ("Rewritten for floating point: " + "; ".join(said) + ". The same function, computed without "
            "cancellation or overflow" + (r", with $\sigma(u) = 1/(1 + e^{-u})$." if factor.has(sigmoid) else "."))
    return term.replace(factor=factor), Rewritten("rewrite for stability", text, term, term.replace(factor=factor),
                                                  tuple(used))
