"""Expression printers: ``_print_<Node>`` dispatch over SymPy's own printers.

* :class:`ArrayPrinter` — NumPy code for array expressions (SciPy for special functions);
  :class:`ModuleArrayPrinter` (emitted NumPy modules: float32 erf/tanh by the module's helpers) and
  :class:`CuPyArrayPrinter` (cupy, cupyx.scipy.special) refine it;
* :class:`SizePrinter` — plain Python integer arithmetic for sizes and index bounds;
* :func:`term_text` — the one-line index notation the CLI and the JSON show.
"""
from __future__ import annotations

import sympy as sp
import sympy.codegen.ast  # noqa: F401  (type aliases for single-precision C)
from sympy.printing.c import C99CodePrinter
from sympy.printing.numpy import SciPyPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter
from sympy.printing.str import StrPrinter

from .ir import Term


#: functions the emitted NumPy modules evaluate on float32 by rational approximations (helpers/special)
FLOAT32_APPROXIMATED = ("erf", "tanh")
#: functions the numba loops take as arguments: float32 versions LLVM can vectorise (helpers/jit), or libm's
ELEMENT_FUNCTIONS = FLOAT32_APPROXIMATED + ("exp",)


class ArrayPrinter(SciPyPrinter):
    """Array code for ``xp`` (numpy as xp); special functions from ``scipy.special``."""

    module = "xp"
    special = "scipy.special."
    fast_float32 = False  # True: erf/tanh print as _erf/_tanh, the emitted module's helpers (helpers/special)

    def _module_format(self, fqn, register=True):
        text = super()._module_format(fqn, register)
        if text.startswith("scipy.special."):
            return self.special + text[len("scipy.special."):]
        return self.module + text[len("numpy"):] if text.startswith("numpy.") else text

    def _print_Bracket(self, expr):
        return "(%s)" % self._print(expr.args[0])

    def _print_Pow(self, expr, rational=False):
        """Powers NumPy has no fast path for, as the operations that are fast: ``x**3`` as
        ``x*x*x``, ``x**-1`` as ``1/x``, ``x**0.5`` as ``xp.sqrt(x)``, ``x**-1.5`` as
        ``1/(x*xp.sqrt(x))``.  NumPy's power calls pow() per element for other exponents: on
        float32, ``x**3`` is 35x slower than ``x*x*x`` and ``x**-0.5`` 10x slower than
        ``1/xp.sqrt(x)``; only ``x**2`` (kept) is fast.  The exponent may be a folded Float."""
        base, n = expr.base, expr.exp
        twice = float(2 * n) if n.is_number and n.is_real else 0.5
        if base.is_number or not twice.is_integer() or not 1 <= abs(twice) <= 8 or twice == 4:
            return super()._print_Pow(expr, rational=rational)
        twice = int(twice)
        if twice == -4:
            return f"(1/{self.parenthesize(base, PRECEDENCE['Pow'])}**2)"
        b = self.parenthesize(base, PRECEDENCE["Mul"])  # a product base gets brackets
        whole, half = divmod(abs(twice), 2)
        if whole > 1 and not base.is_Atom:  # a compound base is not repeated
            return super()._print_Pow(expr, rational=rational)
        factors = [b] * whole + ([f"{self._module_format('numpy.sqrt')}({self._print(base)})"] if half else [])
        product = "*".join(factors)
        return f"({product})" if twice > 0 else f"(1/({product}))" if len(factors) > 1 else f"(1/{product})"

    def _print_erf(self, expr):
        if self.fast_float32:
            return "_erf(%s)" % self._print(expr.args[0])
        return super()._print_erf(expr)

    def _print_tanh(self, expr):
        if self.fast_float32:
            return "_tanh(%s)" % self._print(expr.args[0])
        return super()._print_tanh(expr)

    def _nested(self, function, args):
        """``xp.maximum(a, xp.maximum(b, c))``: NumPy's two-argument ufunc applied in turn."""
        first, *rest = sorted(args, key=sp.default_sort_key)
        return f"{self._module_format(function)}({self._print(first)}, {self._nested(function, rest)})" \
            if rest else self._print(first)

    def _print_Max(self, expr):
        return self._nested("numpy.maximum", expr.args)

    def _print_Min(self, expr):
        return self._nested("numpy.minimum", expr.args)

    def _print_Piecewise(self, expr):
        """Nested ``xp.where(cond, a, else)``: elementwise, in the operands' dtype (select is neither)."""
        *branches, (last, cond) = expr.args
        if cond is not sp.true:
            return super()._print_Piecewise(expr)
        text = self._print(last)
        for value, c in reversed(branches):
            text = f"{self._module_format('numpy.where')}({self._print(c)}, {self._print(value)}, {text})"
        return text

    def _print_Heaviside(self, expr):
        """``xp.heaviside(x, H(0))``: one ufunc, in the array's dtype (SymPy's H(0) is 1/2)."""
        at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"{self._module_format('numpy.heaviside')}({self._print(expr.args[0])}, {self._print(at_zero)})"

    def _print_Indexed(self, expr):  # every tensor read is replaced by a named array before printing
        raise ValueError(f"unresolved tensor read {expr}")


class ModuleArrayPrinter(ArrayPrinter):
    """Code for emitted NumPy modules: erf and tanh through the module's ``_erf``/``_tanh``, which
    evaluate float32 by rational approximations (4x faster than SciPy's erf, 1.4x than NumPy's tanh)."""

    fast_float32 = True


class CuPyArrayPrinter(ArrayPrinter):
    """The same code for ``xp`` = cupy; special functions from ``cupyx.scipy.special``."""

    special = "cupyx.scipy.special."
    fused_elementwise = True  # pointwise expressions become one CUDA kernel (see codegen)


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

    def _print_Function(self, expr):
        if expr.func.__name__ in ELEMENT_FUNCTIONS:
            return "_%s(%s)" % (expr.func.__name__, self._print(expr.args[0]))
        return super()._print_Function(expr)

    _print_erf = _print_tanh = _print_exp = _print_Function

    def _print_sign(self, expr):
        z = self._print(expr.args[0])
        return f"(_F(0) if {z} == 0 else math.copysign(_F(1), {z}))"

    def _print_Indexed(self, expr):
        raise ValueError(f"unresolved tensor read {expr}")

    def _print_not_supported(self, expr):
        raise ValueError(f"no scalar code for {expr}")


def element_statements(expr, out: str) -> list:
    """``out = expr`` for one element as statements, common subexpressions named once."""
    printer = ElementPrinter({"fully_qualified_modules": True, "strict": True})
    temps, (reduced,) = sp.cse(fold_constants(expr), symbols=sp.numbered_symbols(f"{out}_s"), optimizations="basic")
    return [f"{name} = {printer.doprint(value)}" for name, value in temps] + [f"{out} = {printer.doprint(reduced)}"]


class SizePrinter(PythonCodePrinter):
    """Sizes are Python ints: ``floor(a/b)`` prints as ``(a) // (b)``, Min/Max as min/max."""

    def _print_floor(self, expr):
        num, den = sp.fraction(sp.together(expr.args[0]))
        if den == 1:
            return self._print(num)
        return "(%s) // (%s)" % (self._print(num), self._print(den))

    def _print_Rational(self, expr):
        return "(%d / %d)" % (expr.p, expr.q)


def fold_constants(expr):
    """Numeric constants (1/2, sqrt(2), pi, log(2)) as 17-digit floats: Python floats keep float32
    float32, and CUDA's runtime compiler (NVRTC, which CuPy uses) has no M_LN2 or M_PI."""
    kinds = (sp.Rational, sp.NumberSymbol, sp.Pow, sp.Function)
    return expr.xreplace({a: sp.Float(a.evalf(17), 17) for a in expr.atoms(*kinds)
                          if a.is_number and a.is_real and not a.is_Integer})


def array_code(expr, printer=None) -> str:
    """Print an array expression with constants folded to floats (keeps float32 float32)."""
    printer = printer or ArrayPrinter({"fully_qualified_modules": True})
    return printer.doprint(fold_constants(expr))


def array_statements(expr, out: str, printer=None) -> list:
    """``out = expr`` as statements, each common subexpression computed once into ``out_s<k>``
    (the tanh in a tanh-GELU gradient appears three times in the derived expression)."""
    printer = printer or ArrayPrinter({"fully_qualified_modules": True})
    temps, (reduced,) = sp.cse(fold_constants(expr), symbols=sp.numbered_symbols(f"{out}_s"), optimizations="basic")
    return [f"{name} = {printer.doprint(value)}" for name, value in temps] + [f"{out} = {printer.doprint(reduced)}"]


def size_code(expr) -> str:
    return SizePrinter().doprint(sp.sympify(expr))


def tidy(e):
    """An index expression as one fraction with an expanded numerator: (j + lo − d·r)/s."""
    e = sp.sympify(e)
    if not e.free_symbols or e.has(sp.Mod):
        return e
    num, den = sp.fraction(sp.together(e))
    return sp.Mul(sp.expand(num), sp.Pow(den, -1), evaluate=False) if den != 1 else sp.expand(num)


class _TextPrinter(StrPrinter):
    printmethod = "_symgrad_text"  # our _print_* methods win over objects' own _sympystr
    def _print_Bracket(self, expr):
        return "[%s]" % self._print(expr.args[0])

    def _print_Relational(self, expr):
        return "%s %s %s" % (self._print(tidy(expr.lhs)), expr.rel_op, self._print(tidy(expr.rhs)))

    def _print_Indexed(self, expr):
        return "%s[%s]" % (self._print(expr.base.label), ", ".join(self._print(tidy(i)) for i in expr.indices))

    def _print_Mod(self, expr):
        return "(%s) mod %s" % (self._print(tidy(expr.args[0])), self._print(expr.args[1]))


def text(expr) -> str:
    return _TextPrinter().doprint(expr)


def term_text(term: Term) -> str:
    """``sum_{r=0}^{K-1} [guard] g[…]*w[…]`` — index notation on one line."""
    parts = [f"sum_{{{v}={text(lo)}..{text(hi)}}}" for v, lo, hi in term.sums]
    parts += [f"[{text(g)}]" for g in term.guards]
    parts += [f"delta({text(a)}, {text(b)})" for a, b in term.deltas]
    parts.append(text(term.factor))
    return " ".join(parts)


def terms_text(terms) -> str:
    return " + ".join(term_text(t) for t in terms) if terms else "0"


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

    def _print_Pow(self, expr):
        if expr.exp.is_Integer and 2 <= expr.exp <= 4:
            base = self.parenthesize(expr.base, 100)
            return "(" + "*".join([base] * int(expr.exp)) + ")"
        return super()._print_Pow(expr)


def c_code(expr, single: bool = False, out: str = "out") -> str:
    """CUDA C statements computing ``out`` from a pointwise expression, common subexpressions named
    once (inside cupy.ElementwiseKernel; erf, exp, tanh are CUDA's).  ``single``: float arithmetic
    (``erff``, ``1.0F``) with the inputs read as float — for float32 and float16 arrays."""
    folded = fold_constants(expr)
    if single:
        folded = folded.xreplace({v: sp.Symbol(f"((float){v})") for v in folded.free_symbols})
    temps, (reduced,) = sp.cse(folded, symbols=sp.numbered_symbols("t"), optimizations="basic")
    settings = {"type_aliases": {sp.codegen.ast.real: sp.codegen.ast.float32}} if single else {}
    p = _CudaPrinter(settings)
    ctype = "float" if single else "double"
    lines = [f"{ctype} {name} = {p.doprint(value)};" for name, value in temps]
    return " ".join(lines + [f"{out} = {p.doprint(reduced)};"])
