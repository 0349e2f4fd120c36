"""Expressions evaluated with many digits (mpmath), quickly and without hanging: the limits and
thresholds of :mod:`.stable` and the checks that a framework's kernel computes a derived expression
(:mod:`symgrad.forms.kernels`) both evaluate pointwise functions at arguments up to 1.8e308.

Three things SymPy's and mpmath's own evaluation get wrong there: exp of an argument that is itself
astronomically large (mpmath reduces e^(e^100) modulo ln 2 to every one of its 2^144 bits: it never
returns), sin and cos of one (reduced modulo π the same way) and erfc beyond 2^500 (mpmath overflows
a float).  Both are taken at their limits, far below
or above any double.  An expression with a function outside :data:`EVALUATED` (polygamma at
−2^50 runs for minutes) is not evaluated at all.
"""
from __future__ import annotations

import functools

import mpmath
import sympy as sp

from ..ir import in_sympy_functions

#: the functions whose values at huge arguments mpmath finds quickly
EVALUATED = (sp.exp, sp.log, sp.erf, sp.erfc, sp.tanh, sp.sinh, sp.cosh, sp.sin, sp.cos, sp.atan, sp.Abs, sp.Max,
             sp.Min, sp.Heaviside, sp.sign)


def _exp(u):
    if abs(u) > mpmath.mpf(2) ** 2000:
        return mpmath.inf if u > 0 else mpmath.mpf(0)
    return mpmath.exp(u)


def _erfc(u):
    if abs(u) > mpmath.mpf(2) ** 500:
        return mpmath.mpf(0) if u > 0 else mpmath.mpf(2)
    return mpmath.erfc(u)


def _erf(u):
    if abs(u) > mpmath.mpf(2) ** 500:
        return mpmath.mpf(1) if u > 0 else mpmath.mpf(-1)
    return mpmath.erf(u)


def _periodic(f):
    """sin or cos, without a value beyond 2^2000: mpmath reduces the argument modulo π to every one of
    its bits (cos(e^(2^50)) needs π to 10^15 digits: it never returns), and there the function
    oscillates faster than any double resolves."""
    def safe(u):
        return mpmath.nan if abs(u) > mpmath.mpf(2) ** 2000 else f(u)
    return safe


_HUGE_SAFE = {"exp": _exp, "erfc": _erfc, "erf": _erf, "sin": _periodic(mpmath.sin), "cos": _periodic(mpmath.cos)}


@functools.lru_cache(maxsize=1024)
def function(expr, symbols: tuple):
    """``expr`` as a function of ``symbols`` on mpmath numbers, or None where it holds a function
    outside :data:`EVALUATED` (any subclass of erfc counts as erfc)."""
    standard = in_sympy_functions(expr).replace(lambda e: isinstance(e, sp.erfc) and type(e) is not sp.erfc,
                                                lambda e: sp.erfc(e.args[0]))
    if any(not isinstance(f, EVALUATED) for f in standard.atoms(sp.Function)):
        return None
    return sp.lambdify(symbols, standard, modules=[_HUGE_SAFE, "mpmath"])


def value(expr, values: dict, digits: int):
    """``expr`` at ``values`` (symbol -> number) with ``digits`` digits: an mpmath real (±inf
    included), or None where it has no real value there or cannot be evaluated."""
    symbols = tuple(sorted(values, key=str))
    f = function(sp.sympify(expr), symbols)
    if f is None:
        return None
    try:
        with mpmath.workdps(digits):
            out = f(*[mpmath.mpf(sp.N(values[s], digits)) if isinstance(values[s], sp.Basic) else mpmath.mpf(values[s])
                      for s in symbols])
    except Exception:  # noqa: BLE001  (a pole, a domain error, an overflow: no value)
        return None
    if isinstance(out, (int, float)):
        out = mpmath.mpf(out)
    return out if isinstance(out, mpmath.mpf) and not mpmath.isnan(out) else None


__all__ = ["EVALUATED", "function", "value"]
