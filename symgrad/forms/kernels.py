"""Framework kernels: pointwise functions a framework computes in one fused kernel of its own.

An ``elementwise`` form printed for a framework target is one framework operation per SymPy
operation (a GELU gradient: some twelve passes over the array).  Where the expression the engine
derived is a function one of the framework's own kernels computes, the target runs that kernel
instead — the same idea as a ``conv_general_dilated`` form running as the framework's convolution.

Each kernel is written here from the framework's documentation, independently of symgrad's ops (a
wrong op is then not hidden behind a right kernel).  A form runs as a kernel only when

* SymPy proves the expression's main branch equal to the kernel's definition (a numeric test at a
  few points first, then ``simplify`` of the difference, with erf/erfc/tanh rewritten to one basis),
* every other branch is one of the engine's limit guards (``x > T``, ``x < −T``, x = ±∞: the
  same function, taken at its limit where the printed formula would overflow), and the kernel's
  definition equals the branch's value beyond its threshold (checked to double precision at T and
  further out); a guard that fails the check narrows the range the kernel is trusted on.

The emitted code calls the kernel when every element of the argument is finite and within that
range and the kernel's own float formula does not overflow (``Kernel.narrow``/``double``), else it
computes the derived expression (:func:`symgrad.runtime.torch.within._within` decides, one pass).
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import mpmath
import sympy as sp

from ..engine import numbers
from ..ir import IsInf, in_sympy_functions

#: digits the numeric comparisons evaluate with
_DIGITS = 50
#: the kernel's parameters, as symbols its definition is written in
_X, _G = sp.symbols("x g", real=True)


@dataclass(frozen=True)
class Kernel:
    """A framework's pointwise kernel: ``call`` (a format string over ``params``) computes
    ``definition``, a SymPy expression in the symbols named by ``params``.  ``argument`` is the
    parameter the kernel is non-linear in; its formula stays finite for |argument| up to ``narrow``
    where it computes in float32 (float16, bfloat16 and float32 tensors) and ``double`` in float64."""

    name: str
    call: str
    params: tuple
    definition: sp.Expr
    argument: str = "x"
    narrow: float = float("inf")
    double: float = float("inf")


def _gelu(x):
    """torch.nn.functional.gelu, approximate='none': x · Φ(x)."""
    return x / 2 * (1 + sp.erf(x / sp.sqrt(2)))


def _gelu_tanh(x):
    """torch.nn.functional.gelu, approximate='tanh'."""
    return x / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + sp.Rational(44715, 1000000) * x ** 3)))


#: the tanh form's float formula cubes x: finite below the cube root of the largest float (with
#: room for its factors), 2^42 ≈ 4.4e12 in float32 and 2^340 ≈ 2.2e102 in float64
_CUBE = {"narrow": 2.0 ** 42, "double": 2.0 ** 340}

TORCH = (
    Kernel("torch.nn.functional.gelu", "torch.nn.functional.gelu({x})", ("x",), _gelu(_X)),
    Kernel("torch.nn.functional.gelu(approximate='tanh')", "torch.nn.functional.gelu({x}, approximate='tanh')",
           ("x",), _gelu_tanh(_X), **_CUBE),
    Kernel("torch.ops.aten.gelu_backward", "torch.ops.aten.gelu_backward({g}, {x})", ("g", "x"),
           _G * sp.diff(_gelu(_X), _X)),
    Kernel("torch.ops.aten.gelu_backward(approximate='tanh')",
           "torch.ops.aten.gelu_backward({g}, {x}, approximate='tanh')", ("g", "x"),
           _G * sp.diff(_gelu_tanh(_X), _X), **_CUBE),
    Kernel("torch.nn.functional.silu", "torch.nn.functional.silu({x})", ("x",), _X / (1 + sp.exp(-_X))),
)
# Not here: sigmoid's and tanh's backward kernels take the output, s(1 − s) and 1 − t², which round to
# 0 where the derived e^{-x}/(1 + e^{-x})² does not (x > 37 in float64): less accurate than the
# expression they would replace.  Nor aten.silu_backward: torch has no derivative for it, and the torch
# target's double backward is autograd through the emitted backward ("derivative for
# aten::silu_backward is not implemented"); gelu_backward has one.
#: framework target name -> its kernels
KERNELS = {"torch": TORCH}


@dataclass(frozen=True)
class Match:
    """A kernel that computes an expression: ``args`` maps its parameters to the expression's
    symbols; ``bound`` the largest |argument| (float32, float64) it is trusted on."""

    kernel: Kernel
    args: dict
    bound: tuple

    def call(self) -> str:
        return self.kernel.call.format(**{p: str(s) for p, s in self.args.items()})


def _standard(expr):
    """``expr`` in one basis for comparison: erf for erfc (also the engine's own erfc, which keeps
    SymPy from rewriting it), exp for tanh."""
    expr = expr.replace(lambda e: isinstance(e, sp.erfc), lambda e: 1 - sp.erf(e.args[0]))
    expr = in_sympy_functions(expr)
    return expr.rewrite(sp.exp) if expr.has(sp.tanh) else expr


def _numbers(expr, values) -> sp.Float | None:
    """``expr`` at ``values`` to 50 digits (:mod:`symgrad.engine.numbers`), None where it is not finite."""
    value = numbers.value(expr, values, _DIGITS)
    return sp.Float(value, _DIGITS) if value is not None and mpmath.isfinite(value) else None


def _close(a, b) -> bool:
    """Equal to double precision (relative 2^-52, or both below 1e-300)."""
    if a is None or b is None:
        return False
    return abs(a - b) <= max(abs(a), abs(b)) * sp.Float(2) ** -52 or max(abs(a), abs(b)) < sp.Float("1e-300")


def _equal(expr, definition, symbols) -> bool:
    """``expr == definition`` as functions: equal at a few points, then proved by SymPy."""
    for point in ((sp.Rational(7, 10), sp.Rational(-13, 10)), (sp.Rational(-21, 10), sp.Rational(3, 2)),
                  (sp.Rational(1, 3), sp.Rational(37, 10))):
        values = dict(zip(symbols, itertools.cycle(point)))
        if not _close(_numbers(expr, values), _numbers(definition, values)):
            return False
    try:
        return sp.simplify(_standard(expr - definition)) == 0
    except (TypeError, ValueError, ArithmeticError, RecursionError):
        return False


def _guard(condition):
    """(symbol, sign, threshold) of a limit guard's condition — ``s > T``, ``s < −T`` (T > 0) or
    s = ±∞ (threshold None) — else None."""
    if isinstance(condition, IsInf) and condition.args[0].is_Symbol:
        return condition.args[0], int(condition.args[1]), None
    if isinstance(condition, (sp.StrictGreaterThan, sp.StrictLessThan)) and condition.lhs.is_Symbol \
            and condition.rhs.is_Number and condition.rhs.is_finite:
        sign = 1 if isinstance(condition, sp.StrictGreaterThan) else -1
        if sign * condition.rhs > 0:
            return condition.lhs, sign, abs(condition.rhs)
    return None


def _branches(expr):
    """(main, guards): ``expr`` with every Piecewise replaced by its last (default) branch, and the
    other branches as (expr with that branch's value, symbol, sign, threshold); None where a branch
    is not a limit guard (a user's own Piecewise)."""
    pieces = [p for p in expr.atoms(sp.Piecewise)]
    if not pieces:
        return expr, []
    if len(pieces) > 1 or pieces[0].args[-1].cond != sp.true:
        return None
    piece = pieces[0]
    main = expr.xreplace({piece: piece.args[-1].expr})
    guards = []
    for value, condition in piece.args[:-1]:
        found = _guard(condition)
        if found is None:
            return None
        guards.append((expr.xreplace({piece: value}), *found))
    return main, guards


def _trusted(kernel, main, guards, argument) -> tuple:
    """(float32, float64) bounds on |argument|: the kernel's own, narrowed to the threshold of any
    guard whose value the function does not reach beyond it.  The function is evaluated as ``main``,
    the engine's formula (proved equal to the kernel's definition, and written without the
    cancellation that makes 1 + erf(x/√2) useless at x = −10^153 to any working precision)."""
    narrow, double = kernel.narrow, kernel.double
    others = {s: sp.Rational(17, 10) for s in main.free_symbols if s != argument}
    for value, symbol, sign, threshold in guards:
        if symbol != argument:
            return None
        if threshold is None:
            continue  # ±∞: the runtime check sends every non-finite argument to the derived expression
        points = [threshold * sp.Integer(2) ** k for k in (0, 1) if threshold * 2.0 ** k < 1.7e308]
        if all(_close(_numbers(main, {**others, argument: sign * at}),
                      _numbers(value, {**others, argument: sign * at})) for at in points):
            continue
        narrow, double = min(narrow, float(threshold)), min(double, float(threshold))
    return narrow, double


@functools.lru_cache(maxsize=256)
def recognise(expr, framework: str) -> Match | None:
    """The framework kernel that computes ``expr`` (an expression in plain symbols), or None.

    >>> x = sp.Symbol("x_0")
    >>> recognise(x / 2 * (1 + sp.erf(x / sp.sqrt(2))), "torch").call()
    'torch.nn.functional.gelu(x_0)'
    >>> recognise(x / 2 * (1 + sp.erf(x / 2)), "torch") is None
    True
    """
    split = _branches(expr)
    if split is None:
        return None
    main, guards = split
    symbols = sorted(main.free_symbols, key=str)
    for kernel in KERNELS.get(framework, ()):
        params = [sp.Symbol(p, real=True) for p in kernel.params]
        if len(params) != len(symbols):
            continue
        for order in itertools.permutations(symbols):
            renamed = kernel.definition.xreplace(dict(zip(params, order)))
            if not _equal(main, renamed, order):
                continue
            args = {p: s for p, s in zip(kernel.params, order)}
            bound = _trusted(kernel, main, guards, args[kernel.argument])
            if bound is not None:
                return Match(kernel, args, bound)
    return None
