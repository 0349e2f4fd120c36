"""Array code: NumPy (``xp`` = numpy), the emitted NumPy modules' variant, CuPy, and the framework
targets' torch and jax.numpy."""
from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import SciPyPrinter
from sympy.printing.precedence import PRECEDENCE

from ..ir import Shielded
from .fold import fold_constants
from .text import size_code

def _of_sizes(expr) -> bool:
    """A function (or a fractional power) of size symbols alone, no tensor read in it."""
    symbols = expr.free_symbols
    if expr.is_Atom or not symbols or not all(s.is_integer and s.is_positive for s in symbols) or expr.has(sp.Indexed):
        return False
    return expr.has(sp.Function) or any(p.exp.is_integer is False for p in expr.atoms(sp.Pow))


class ArrayPrinter(SciPyPrinter):
    """Array code for ``xp`` (numpy as xp); special functions from ``scipy.special``.

    While it prints, the printer records in ``used_modules`` the modules the code calls besides
    ``xp`` (to import) and in ``used_pieces`` the runtime pieces it calls (to inline).
    """

    module = "xp"  # what the code calls the array module (Backend.xp reads it)
    special = "scipy.special."
    accurate_erfc = False  # True: erfc prints as the runtime's _erfc (float64's far tail)
    shields = False        # True: a Shielded element prints as where(cond, at, x) (autograd reads it)
    wide_constants = True  # numbers past float16's range as xp.float64 (the frameworks compare in their dtype)

    def __init__(self, settings=None):
        super().__init__({"fully_qualified_modules": True, **(settings or {})})
        self.used_modules, self.used_pieces = set(), set()

    def _print(self, expr, **kwargs):
        """A function of sizes alone (``sqrt(E)``, ``sigmoid(N^0.5)``) as a Python float of ``math``: an
        array library's functions want arrays (torch's refuse an int), and a float keeps float32 float32."""
        if isinstance(expr, sp.Expr) and _of_sizes(expr):
            value = size_code(expr)
            if "math." in value:
                self.used_modules.add("math")
            return f"float({value})"
        return super()._print(expr, **kwargs)

    def _module_format(self, fqn, register=True):
        text = super()._module_format(fqn, register)
        if text.startswith("scipy.special."):
            self.used_modules.add(self.special.rstrip("."))
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

    def _print_erfc(self, expr):
        if not self.accurate_erfc:
            return super()._print_erfc(expr)
        self.used_pieces.add("erfc")  # accurate in float64's far tail, where SciPy's erfc is not
        return "_erfc(%s)" % self._print(expr.args[0])

    def _print_sigmoid(self, expr):
        """σ(u) as its definition 1/(1 + exp(−u)): right where exp(−u) overflows (1/∞ is 0), and no
        module to import for it (the frameworks print their own sigmoid, whose derivative is finite)."""
        return self._print(expr.definition())

    def _print_Shielded(self, expr):  # (the value never depends on the shield: x itself)
        return self._print(expr.args[0])

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

    def _print_Float(self, expr):
        """A number beyond float16's range (a limit guard's threshold, 1e102) as an ``xp.float64``:
        float16 and float32 arrays are compared with it in float64, where a bare Python float would
        be cast to their dtype (to ∞, with an overflow warning)."""
        text = super()._print_Float(expr)
        wide = self.wide_constants and abs(float(expr)) > 65504
        return f"{self._module_format('numpy.float64')}({text})" if wide else text

    def _print_IsInf(self, expr):
        return f"{self._module_format('numpy.isposinf' if expr.args[1] > 0 else 'numpy.isneginf')}({self._print(expr.args[0])})"

    def _print_Indexed(self, expr):  # every tensor read is replaced by a named array before printing
        raise ValueError(f"unresolved tensor read {expr}")


class ModuleArrayPrinter(ArrayPrinter):
    """Code for emitted NumPy modules: erfc through the runtime's ``_erfc``, within a few ulps in
    float64's far tail (the stable GELU computes with it)."""

    accurate_erfc = True


class CuPyArrayPrinter(ArrayPrinter):
    """The same code for ``xp`` = cupy; special functions from ``cupyx.scipy.special``."""

    special = "cupyx.scipy.special."


def array_code(expr, printer=None) -> str:
    """Print an array expression with constants folded to floats (keeps float32 float32)."""
    printer = printer or ArrayPrinter()
    return printer.doprint(fold_constants(expr if printer.shields else Shielded.lift(expr)))


def array_statements(expr, out: str, printer=None) -> list:
    """``out = expr`` as statements, each common subexpression computed once into ``out_s<k>``
    (the tanh in a tanh-GELU gradient appears three times in the derived expression)."""
    printer = printer or ArrayPrinter()
    expr = expr if printer.shields else Shielded.lift(expr)
    temps, (reduced,) = sp.cse(fold_constants(expr), symbols=sp.numbered_symbols(f"{out}_s"), optimizations="basic")
    kept, sizes_only = [], {}
    for name, value in temps:  # a subexpression of sizes alone (log(D)) stays inline: a number, not an array
        value = value.xreplace(sizes_only)
        if all(s.is_integer for s in value.free_symbols):
            sizes_only[name] = value
        else:
            kept.append((name, value))
    reduced = reduced.xreplace(sizes_only)
    return [f"{name} = {printer.doprint(value)}" for name, value in kept] + [f"{out} = {printer.doprint(reduced)}"]


#: SciPy's special functions that the frameworks have, under their names there
_TORCH_SPECIAL = {"erf": "torch.special.erf", "erfc": "torch.special.erfc", "erfcx": "torch.special.erfcx",
                  "erfinv": "torch.special.erfinv", "gammaln": "torch.special.gammaln", "psi": "torch.special.digamma",
                  "digamma": "torch.special.digamma", "polygamma": "torch.special.polygamma", "expit": "torch.special.expit",
                  "logit": "torch.special.logit", "i0": "torch.special.i0", "i0e": "torch.special.i0e", "i1": "torch.special.i1",
                  "i1e": "torch.special.i1e", "ndtr": "torch.special.ndtr", "ndtri": "torch.special.ndtri",
                  "log_ndtr": "torch.special.log_ndtr", "xlogy": "torch.special.xlogy", "xlog1py": "torch.special.xlog1py",
                  "zeta": "torch.special.zeta"}
_JAX_SPECIAL = ("erf", "erfc", "erfinv", "gamma", "gammaln", "digamma", "psi", "polygamma", "expit", "logit", "i0",
                "i0e", "i1", "i1e", "ndtr", "ndtri", "log_ndtr", "xlogy", "xlog1py", "zeta", "betaln", "spence")


class _FrameworkPrinter(ArrayPrinter):
    """What torch and jax.numpy share against NumPy: a Piecewise without a final ``True`` as nested
    ``where`` (NaN where no condition holds, as ``numpy.select`` gives); large constants as plain
    numbers; logical operators as ``&``/``|``/``~``; special functions only where the framework has
    them (otherwise NotImplementedError, which the emitter reports as an error naming the term)."""

    special_names = ()
    wide_constants = False
    shields = True

    def _module_format(self, fqn, register=True):
        if fqn.startswith("scipy.special."):
            name = fqn[len("scipy.special."):]
            if name not in self.special_names:
                raise NotImplementedError(f"{self.framework} has no {fqn}")
        if fqn == "scipy.constants.pi":
            self.used_modules.add("math")
            return "math.pi"
        return super()._module_format(fqn, register)

    def _print_Piecewise(self, expr):
        *branches, (last, cond) = expr.args
        if cond is sp.true:
            return super()._print_Piecewise(expr)
        text = "float('nan')"
        for value, c in reversed(expr.args):
            text = f"{self._module_format('numpy.where')}({self._print(c)}, {self._print(value)}, {text})"
        return text

    def _print_sigmoid(self, expr):
        """σ(u) as the framework's sigmoid (``torch.special.expit``, ``jax.scipy.special.expit``): its
        derivative is taken from its value, so autograd through an emitted backward (the torch
        target's double backward) stays finite where 1/(1 + exp(−u)) would give ∞/∞."""
        return f"{self._module_format('scipy.special.expit')}({self._print(expr.args[0])})"

    def _print_Shielded(self, expr):
        """The element where the guard does not hold, a finite point where it does: autograd's gradient
        of the unselected formula is then 0, not ∞·0 (the "double where")."""
        x, cond, at = expr.args
        return f"{self._module_format('numpy.where')}({self._print(cond)}, {self._print(at)}, {self._print(x)})"

    def _print_And(self, expr):
        return " & ".join(f"({self._print(a)})" for a in expr.args)

    def _print_Or(self, expr):
        return " | ".join(f"({self._print(a)})" for a in expr.args)

    def _print_Not(self, expr):
        return f"~({self._print(expr.args[0])})"


class TorchArrayPrinter(_FrameworkPrinter):
    """Code for the torch target (``torch.`` names): SciPy's special functions as ``torch.special``'s,
    ``maximum``/``minimum`` with constants as ``clamp`` (torch's take tensors only), ``==`` as
    ``eq`` (``torch.equal`` compares whole tensors), ``mod`` as ``remainder``."""

    framework = "torch"
    module = "torch"
    special_names = tuple(_TORCH_SPECIAL)

    def _module_format(self, fqn, register=True):
        if fqn.startswith("scipy.special.") and fqn[len("scipy.special."):] in _TORCH_SPECIAL:
            return _TORCH_SPECIAL[fqn[len("scipy.special."):]]
        if fqn == "numpy.equal":
            return "torch.eq"
        if fqn == "numpy.mod":
            return "torch.remainder"
        return super()._module_format(fqn, register)

    def _print_gamma(self, expr):
        if not expr.args[0].is_positive:
            raise NotImplementedError("torch has no gamma function (only lgamma, for positive arguments)")
        return f"torch.exp(torch.lgamma({self._print(expr.args[0])}))"

    def _print_Heaviside(self, expr):
        at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        x = self._print(expr.args[0])
        return f"torch.where({x} > 0, 1.0, torch.where({x} == 0, {self._print(sp.Float(at_zero))}, 0.0))"

    def _clamped(self, expr, bound):
        """Numbers and expressions of sizes alone (``log(D)``: integer symbols) are Python floats: the
        clamp's bound (the largest of them for a max, the smallest for a min)."""
        constant = lambda a: a.is_number or all(s.is_integer for s in a.free_symbols)
        numbers = [a for a in expr.args if constant(a)]
        rest = [a for a in expr.args if not constant(a)]
        text = self._nested("numpy.maximum" if bound == "min" else "numpy.minimum", rest)
        if not numbers:
            return text
        floats = [self._print(sp.Float(a)) if a.is_number else f"float({self._print(a)})" for a in numbers]
        limit = floats[0] if len(floats) == 1 else f"{'max' if bound == 'min' else 'min'}({', '.join(floats)})"
        return f"torch.clamp({text}, {bound}={limit})" if rest else limit

    def _print_Max(self, expr):
        return self._clamped(expr, "min")

    def _print_Min(self, expr):
        return self._clamped(expr, "max")



class JaxArrayPrinter(_FrameworkPrinter):
    """Code for the jax target (``xp`` = jax.numpy); special functions from ``jax.scipy.special``."""

    framework = "jax"
    special = "jax.scipy.special."
    special_names = _JAX_SPECIAL
