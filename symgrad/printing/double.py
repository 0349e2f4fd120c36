"""Double-double code for one element of a pointwise expression: float64 elementwise work computed
in about 106 bits and rounded once (runtime piece ``double_double``), as float32 work is computed in
float64.  The same statements run on arrays (the NumPy blocks) and, compiled by numba, on single
elements: every value is a pair ``(hi, lo)`` and every operation a ``_dd_*`` call.

Constants are rounded from 40 digits into their pair (√2/2 keeps the digits a double drops);
comparisons in a Piecewise's conditions are made in double, on the doubles the inputs are.
Expressions with a function the pairs do not have (log, a user's own) get no such code: they
compute in float64 as written."""
from __future__ import annotations

import sympy as sp

from ..ir import IsInf, Shielded, sigmoid

#: the functions computed in double-double (runtime piece double_double)
WIDE_FUNCTIONS = ("exp", "erf", "erfc", "tanh")
_COMPARISONS = {sp.StrictGreaterThan: ">", sp.GreaterThan: ">=", sp.StrictLessThan: "<", sp.LessThan: "<=",
                sp.Equality: "==", sp.Unequality: "!="}


class _Pairs:
    """Statements computing an expression as pairs, each subexpression once."""

    def __init__(self, out: str):
        self.out, self.lines, self.memo, self.used = out, [], {}, set()

    def call(self, function: str, *args) -> tuple:
        self.used.add(function)
        name = f"{self.out}_w{len(self.lines)}"
        self.lines.append(f"{name}h, {name}l = _dd_{function}({', '.join(args)})")
        return f"{name}h", f"{name}l"

    def pair(self, expr) -> tuple:
        if expr not in self.memo:
            self.memo[expr] = self._pair(expr)
        return self.memo[expr]

    def _pair(self, expr) -> tuple:
        if expr.is_Symbol:
            return expr.name, "0.0"
        if expr.is_number:
            return _constant(expr)
        if expr.is_Add:
            args = [self.pair(a) for a in sorted(expr.args, key=sp.default_sort_key)]
            total = args[0]
            for a in args[1:]:
                total = self.call("add", *total, *a)
            return total
        if expr.is_Mul or expr.is_Pow:
            return self._product(expr)
        if isinstance(expr, sp.Piecewise):
            *branches, (last, cond) = expr.args
            if cond is not sp.true:
                raise ValueError(f"a Piecewise without a default branch: {expr}")
            result = self.pair(last)
            for value, c in reversed(branches):
                result = self.call("where", self.condition(c), *self.pair(value), *result)
            return result
        if isinstance(expr, Shielded):
            return self.pair(expr.args[0])
        if isinstance(expr, sigmoid):
            return self._pair(expr.definition())
        if isinstance(expr, sp.Function) and expr.func.__name__ in WIDE_FUNCTIONS and len(expr.args) == 1:
            return self.call(expr.func.__name__, *self.pair(expr.args[0]))
        raise ValueError(f"no double-double code for {expr.func.__name__}")

    def _product(self, expr) -> tuple:
        """Factors, then the quotient by the negative powers, then the number: x³/(e^u + e^-u)² is
        0 where both overflow only if the number 107316√2/√π does not multiply x³ first."""
        number, rest = expr.as_independent(*expr.free_symbols, as_Add=False)
        numerator, denominator = [], []
        for factor in sp.Mul.make_args(rest):
            base, n = (factor.base, factor.exp) if factor.is_Pow else (factor, sp.Integer(1))
            if n.is_Integer and n < 0:
                denominator.append(self.power(base, -n))
            else:
                numerator.append(self.power(base, n))
        result = self._multiply(numerator) if numerator else ("1.0", "0.0")
        if denominator:
            result = self.call("div", *result, *self._multiply(denominator))
        return result if number == 1 else self.call("mul", *self.pair(number), *result)

    def power(self, base, n) -> tuple:
        if n == 1:
            return self.pair(base)
        if n.is_Integer and 1 < n <= 16:
            return self._multiply([self.pair(base)] * int(n))
        if (2 * n).is_Integer and 0 < n <= 8:
            root = self.call("sqrt", *self.pair(base))
            return self._multiply([self.pair(base)] * int(n - sp.Rational(1, 2)) + [root])
        raise ValueError(f"no double-double code for the power {n}")

    def _multiply(self, factors) -> tuple:
        total = factors[0]
        for f in factors[1:]:
            total = self.call("mul", *total, *f)
        return total

    def condition(self, cond) -> str:
        if cond is sp.true:
            return "True"
        if isinstance(cond, (sp.And, sp.Or)):
            joined = " & " if isinstance(cond, sp.And) else " | "
            return "(" + joined.join(self.condition(c) for c in cond.args) + ")"
        if isinstance(cond, IsInf):
            return f"({self.double(cond.args[0])} == {'' if cond.args[1] > 0 else '-'}xp.inf)"
        if type(cond) in _COMPARISONS:
            return f"({self.double(cond.lhs)} {_COMPARISONS[type(cond)]} {self.double(cond.rhs)})"
        raise ValueError(f"no double-double code for the condition {cond}")

    def double(self, expr) -> str:
        """expr as one double: an input or a number as it is, anything else computed in pairs and rounded."""
        if expr.is_Symbol:
            return expr.name
        if expr.is_number:
            return repr(float(expr))
        name = f"{self.out}_w{len(self.lines)}"
        self.used.add("value")
        self.lines.append(f"{name} = _dd_value({', '.join(self.pair(expr))})")
        return name


def _constant(expr) -> tuple:
    value = sp.N(expr, 40)
    if not value.is_real:
        raise ValueError(f"no double-double code for the number {expr}")
    hi = float(value)
    lo = float(value - sp.Float(hi, 40)) if abs(hi) != float("inf") else 0.0
    return repr(hi), repr(lo)


def wide_statements(expr, out: str):
    """(statements setting the double ``out`` to ``expr`` computed in double-double, the
    double-double functions they call); ValueError where the expression has no such code."""
    pairs = _Pairs(out)
    hi, lo = pairs.pair(Shielded.lift(expr))
    pairs.used.add("value")
    return pairs.lines + [f"{out} = _dd_value({hi}, {lo})"], tuple(sorted(pairs.used))
