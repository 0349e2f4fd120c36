"""Text: sizes as Python integer arithmetic (the emitted modules' shape checks) and index notation
on one line (the CLI, the JSON, the emitted headers)."""
from __future__ import annotations

import textwrap

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter
from sympy.printing.str import StrPrinter

from ..ir import Shielded, Term, plain


class SizePrinter(PythonCodePrinter):
    """Sizes are Python ints: ``floor(a/b)`` prints as ``a // b`` (parenthesised as Python needs),
    ``ceiling(a/b)`` as ``-(-a // b)``, Min/Max as min/max."""

    def _floor_division(self, num, den) -> str:
        # // binds as * does, from the left: the left operand needs parentheses when it is a sum,
        # the right one when it is a sum or a product
        left = self.parenthesize(num, PRECEDENCE["Mul"], strict=True)
        right = self.parenthesize(den, PRECEDENCE["Mul"], strict=False)
        return f"{left} // {right}"

    def parenthesize(self, item, level, strict=False):
        """As SymPy's, but a floor or ceiling printed as a division always in parentheses: SymPy takes
        it for a function call, which needs none, and asks only where it is an operand (a factor, a
        power's base, a division's side; a sum's terms and min/max's arguments print without asking)."""
        if isinstance(item, (sp.floor, sp.ceiling)) and sp.fraction(sp.together(item.args[0]))[1] != 1:
            return f"({self._print(item)})"
        return super().parenthesize(item, level, strict)

    def _print_floor(self, expr):
        num, den = sp.fraction(sp.together(expr.args[0]))
        if den == 1:
            return self._print(num)
        return self._floor_division(num, den)

    def _print_ceiling(self, expr):
        num, den = sp.fraction(sp.together(expr.args[0]))
        if den == 1:
            return self._print(num)
        return f"-({self._floor_division(-num, den)})"

    def _print_Rational(self, expr):
        return "(%d / %d)" % (expr.p, expr.q)


def size_code(expr) -> str:
    """A size as Python integer arithmetic: ``size_code(floor((L - 3)/2) + 1) == '(L - 3) // 2 + 1'``."""
    return SizePrinter().doprint(sp.sympify(expr))


def shape_code(dims) -> str:
    """A tuple of size expressions as Python code: ``(N, C_in)``, ``(N,)``, ``()``."""
    return tuple_code(size_code(d) for d in dims)


def comment(text: str, width: int = 100) -> tuple:
    """``text`` as comment lines of emitted code, at most ``width`` characters each where its words
    allow (a derived term runs to hundreds): ``# first part``, ``#     the rest``."""
    return tuple(textwrap.wrap(text, width, initial_indent="# ", subsequent_indent="#     ",
                               break_long_words=False, break_on_hyphens=False)) or ("#",)


def tuple_code(items) -> str:
    """Python code of the tuple of the code ``items``: ``(a, b)``, ``(a,)``, ``()``."""
    items = list(items)
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


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

    def doprint(self, expr):
        return super().doprint(Shielded.lift(expr) if isinstance(expr, sp.Basic) else expr)

    def _print_IsInf(self, expr):
        return "%s == %sinf" % (self._print(expr.args[0]), "+" if expr.args[1] > 0 else "-")

    def _print_Sum(self, expr):
        limits = " ".join(f"sum_{{{self._print(v)}={self._print(lo)}..{self._print(hi)}}}" for v, lo, hi in expr.limits)
        body = self._print(expr.function)
        return f"{limits} ({body})" if isinstance(expr.function, sp.Add) else f"{limits} {body}"

    def _print_Mod(self, expr):
        return "(%s) mod %s" % (self._print(tidy(expr.args[0])), self._print(expr.args[1]))


def text(expr) -> str:
    return _TextPrinter().doprint(expr)


def term_text(term: Term, reduction: str = "sum") -> str:
    """``sum_{r=0}^{K-1} [guard] g[…]*w[…]`` — index notation on one line (``reduction``: what its
    summed indices do, ``max`` for a max statement's term)."""
    parts = [f"{reduction}_{{{v}={text(lo)}..{text(hi)}}}" for v, lo, hi in term.sums]
    parts += [f"[{text(g)}]" for g in term.guards]
    parts += [f"delta({text(a)}, {text(b)})" for a, b in term.deltas]
    parts.append(text(term.factor))
    return " ".join(parts)


def terms_text(terms) -> str:
    return " + ".join(term_text(t) for t in terms) if terms else "0"


def statement_text(stmt) -> str:
    """A program's statement on one line: ``m[n] = stop_gradient(max_{j=0..D - 1} x[n, j])``."""
    head = f"{stmt.name}[{', '.join(text(plain(i)) for i in stmt.indices)}]"
    body = text(plain(stmt.rhs))
    if stmt.over:
        body = " ".join(f"max_{{{v}={text(lo)}..{text(hi)}}}" for v, lo, hi in stmt.over) + " " + body
    return f"{head} = {f'stop_gradient({body})' if stmt.stop else body}"
