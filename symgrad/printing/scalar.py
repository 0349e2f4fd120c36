"""Scalar code for one element: Python for the numba loops of the NumPy modules, CUDA C for the
fused kernels of the CuPy modules."""
from __future__ import annotations

import sympy as sp
import sympy.codegen.ast  # noqa: F401  (type aliases for single-precision C)
from sympy.printing.c import C99CodePrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter

from ..ir import Shielded
from .fold import fold_constants

#: functions the numba loops bind per dtype: double-precision versions LLVM vectorises, or libm's
ELEMENT_FUNCTIONS = ("erf", "erfc", "tanh", "exp")


class ElementPrinter(PythonCodePrinter):
    """Scalar code for one element, compiled by numba: every number is cast by ``_F`` (the
    array's float type, so float32 arithmetic stays float32: numba would widen ``x*0.5`` to
    float64), integer powers are products, erf, tanh and exp are the ``_erf``/``_tanh``/``_exp``
    the module passes in (float32 versions LLVM vectorises, or C's libm), others come from math."""

    def _print_Float(self, expr):
        return f"_F({super()._print_Float(expr)})"

    def _print_Integer(self, expr):
        return f"_F({int(expr)})"

    def _print_Rational(self, expr):
        return self._print_Float(sp.Float(expr, 17))

    _print_Zero = _print_One = _print_NegativeOne = _print_Integer
    _print_Half = _print_Rational

    def _print_Pow(self, expr, rational=False):
        base, n = expr.base, expr.exp
        twice = float(2 * n) if n.is_number and n.is_real else 0.5
        if not twice.is_integer() or not 1 <= abs(twice) <= 16:
            return f"{self.parenthesize(base, PRECEDENCE['Pow'])}**{self.parenthesize(n, PRECEDENCE['Pow'])}"
        whole, half = divmod(abs(int(twice)), 2)
        factors = [self.parenthesize(base, PRECEDENCE["Mul"])] * whole + [f"math.sqrt({self._print(base)})"] * half
        product = "*".join(factors)
        return f"({product})" if twice > 0 else f"(_F(1)/({product}))"

    def __init__(self, settings=None):
        super().__init__({"fully_qualified_modules": True, "strict": True, **(settings or {})})
        self.used_functions = set()  # which of ELEMENT_FUNCTIONS the code calls

    def _print_Function(self, expr):
        if expr.func.__name__ in ELEMENT_FUNCTIONS:
            self.used_functions.add(expr.func.__name__)
            return "_%s(%s)" % (expr.func.__name__, self._print(expr.args[0]))
        return super()._print_Function(expr)

    _print_erf = _print_erfc = _print_tanh = _print_exp = _print_Function

    def _print__ErfGiven(self, expr):
        self.used_functions.add(expr.function)
        return f"_{expr.function}({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    _print__ErfcGiven = _print__ErfGiven

    def _print_sigmoid(self, expr):  # 1/(1 + inf) is 0: no overflow in a value computed once
        return self._print(expr.definition())

    def _print_Shielded(self, expr):  # (a value: the shield matters to autograd only)
        return self._print(expr.args[0])

    def _print_IsInf(self, expr):
        x = self._print(expr.args[0])
        return f"(math.isinf({x}) and {x} {'>' if expr.args[1] > 0 else '<'} 0)"

    def _print_sign(self, expr):
        z = self._print(expr.args[0])
        return f"(_F(0) if {z} == 0 else math.copysign(_F(1), {z}))"

    def _print_Indexed(self, expr):
        raise ValueError(f"unresolved tensor read {expr}")

    def _print_not_supported(self, expr):
        raise ValueError(f"no scalar code for {expr}")


class _ErfGiven(sp.Function):
    """erf(u) as the loops compute it, from ``args`` (u, exp(-u²)): a derivative of erf(u) holds
    exp(-u²) as well, and the element then computes it once."""

    nargs, function = 2, "erf"


class _ErfcGiven(_ErfGiven):
    """erfc(u), the same way."""

    function = "erfc"


def _with_exp(expr):
    """``expr`` with each erf(u) and erfc(u) given exp(-u²) (:class:`_ErfGiven`): common
    subexpression elimination then finds exp(-u²) where the expression also holds it."""
    return expr.replace(lambda e: isinstance(e, (sp.erf, sp.erfc)),
                        lambda e: (_ErfcGiven if isinstance(e, sp.erfc) else _ErfGiven)(e.args[0], sp.exp(-e.args[0] ** 2)))


def element_parts(expr, out: str) -> tuple:
    """``(temps, value)``: one element's expression as the common subexpressions it names once
    (``[(name, expression)]``, named after ``out``) and the value in terms of them."""
    temps, (reduced,) = sp.cse(fold_constants(_with_exp(Shielded.lift(expr))), symbols=sp.numbered_symbols(f"{out}_s"),
                               optimizations="basic")
    return temps, reduced


def element_statements(expr, out: str, printer=None) -> list:
    """``out = expr`` for one element as statements, common subexpressions named once."""
    printer = printer or ElementPrinter()
    temps, reduced = element_parts(expr, out)
    return [f"{name} = {printer.doprint(value)}" for name, value in temps] + [f"{out} = {printer.doprint(reduced)}"]


class _CudaPrinter(C99CodePrinter):
    """Small integer powers as products (no pow overload questions for float T); integers inside
    fmax/fmin as floating constants (every argument of the operands' type, no int to pick an
    overload by); a Piecewise as one nested conditional expression on one line."""

    @staticmethod
    def _floating(expr):
        return expr.func(*[sp.Float(a) if a.is_Integer else a for a in expr.args], evaluate=False)

    def _print_Max(self, expr):
        return super()._print_Max(self._floating(expr))

    def _print_Min(self, expr):
        return super()._print_Min(self._floating(expr))

    def _print_Piecewise(self, expr):
        *branches, (last, cond) = expr.args
        if cond is not sp.true:
            raise ValueError(f"a Piecewise without a default branch has no value everywhere: {expr}")
        text = self._print(last)
        for value, c in reversed(branches):
            text = f"(({self._print(c)}) ? ({self._print(value)}) : ({text}))"
        return text

    _print_sigmoid = ElementPrinter._print_sigmoid
    _print_Shielded = ElementPrinter._print_Shielded

    def _print_IsInf(self, expr):
        x = self._print(expr.args[0])
        return f"(isinf({x}) && {x} {'>' if expr.args[1] > 0 else '<'} 0)"

    def _print_Pow(self, expr):
        if expr.exp.is_Integer and 2 <= expr.exp <= 4:
            base = self.parenthesize(expr.base, 100)
            return "(" + "*".join([base] * int(expr.exp)) + ")"
        return super()._print_Pow(expr)


def c_code(expr, widen: bool = False, out: str = "out") -> str:
    """CUDA C statements computing ``out`` from a pointwise expression in double precision, common
    subexpressions named once (inside cupy.ElementwiseKernel; erf, exp, tanh are CUDA's).  ``widen``:
    the inputs read as double — for float32 and float16 arrays, computed in double and rounded once
    on the store, as the NumPy modules compute them (runtime/blockwise.py)."""
    folded = fold_constants(Shielded.lift(expr))
    if widen:
        folded = folded.xreplace({v: sp.Symbol(f"((double){v})") for v in folded.free_symbols})
    temps, (reduced,) = sp.cse(folded, symbols=sp.numbered_symbols("t"), optimizations="basic")
    p = _CudaPrinter()
    lines = [f"double {name} = {p.doprint(value)};" for name, value in temps]
    return " ".join(lines + [f"{out} = {p.doprint(reduced)};"])
