"""LaTeX for index notation: a LatexPrinter subclass (sums with ranges, Iverson brackets,
divisibility as ``s \\mid n``, Kronecker deltas) and the rendering of terms and steps."""
from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter, greek_letters_set

from ..ir import Shielded, Term
from .text import tidy


class IndexLatexPrinter(LatexPrinter):

    def doprint(self, expr):
        return super().doprint(Shielded.lift(expr) if isinstance(expr, sp.Basic) else expr)

    def _print_Symbol(self, expr, style="plain"):
        name = expr.name
        if name.endswith("'"):
            return super()._print_Symbol(sp.Symbol(name[:-1])) + "'"
        if name == "gamma":
            return r"\gamma"
        stem, _, sub = name.partition("_")
        if stem in ("lo", "hi"):  # padding amounts
            return r"p^{\mathrm{%s}}%s" % (stem, "_{%s}" % sub if sub else "")
        if name.endswith("bar") and len(name) > 3:  # an adjoint (biasbar): the bar over the whole name
            return r"\overline{%s}" % self._print_Symbol(sp.Symbol(name[:-3]))
        if name.isalpha() and len(name) > 1 and name.lower() not in greek_letters_set:
            return r"\mathrm{%s}" % name  # one name (var, xc, weight), upright: not a product of letters
        return super()._print_Symbol(expr)

    def _print_Rational(self, expr):
        """A decimal constant as written: 1e-5 as 10^{-5}, 0.25 as 0.25 (not 1/100000, 1/4)."""
        p, q = int(expr.p), int(expr.q)
        k = len(str(q)) - 1
        if q > 1 and q == 10 ** k:
            if abs(p) == 1 and k > 2:
                return ("-" if p < 0 else "") + r"10^{-%d}" % k
            return str(sp.Float(expr, 17)).rstrip("0") if k <= 6 else r"%d \cdot 10^{-%d}" % (p, k)
        return super()._print_Rational(expr)

    def _index(self, e) -> str:
        """An index as one fraction: (j + lo − d·r)/s as \\frac{j + lo − d·r}{s}, not ·½."""
        num, den = sp.fraction(sp.together(sp.sympify(e)))
        if den != 1 and den.is_number:
            return r"\frac{%s}{%s}" % (self._print(sp.expand(num)), self._print(den))
        return self._print(tidy(e))

    def _print_Indexed(self, expr):
        return subscripted(self._print(expr.base.label), ", ".join(self._index(i) for i in expr.indices))

    def _print_Bracket(self, expr):
        return r"\left[%s\right]" % self._print(expr.args[0])

    def _print_Relational(self, expr):
        if isinstance(expr, sp.Eq) and isinstance(expr.lhs, sp.Mod) and expr.rhs == 0:
            num, den = expr.lhs.args
            return r"%s \mid %s" % (self._print(den), self.parenthesize(tidy(num), 1000))
        op = {"==": "=", "<=": r"\le", "<": "<", ">=": r"\ge", ">": ">"}[expr.rel_op]
        return "%s %s %s" % (self._print(tidy(expr.lhs)), op, self._print(tidy(expr.rhs)))

    def _print_KroneckerDelta(self, expr, exp=None):
        return r"\delta_{%s,\, %s}" % (self._print(tidy(expr.args[0])), self._print(tidy(expr.args[1])))


def subscripted(base: str, indices: str) -> str:
    """``base`` with the subscript ``indices``; a base with a subscript of its own (w_dw) braced,
    {w_{dw}}_{f}, so LaTeX sees no double subscript."""
    return ("{%s}" % base if "_" in base else base) + "_{%s}" % indices


_P = IndexLatexPrinter()


def tex(expr) -> str:
    return _P.doprint(expr)


def indexed_tex(name: str, indices: str) -> str:
    """The tensor ``name`` at the (LaTeX) ``indices``, as the documents write an element."""
    return subscripted(tex(sp.Symbol(name)), indices)


def _name_arguments(expr):
    """Long pointwise expressions read better with each long argument of tanh, erf, erfc and exp
    named once: returns (expr with u in place of the argument, [(u, the argument)]).  The argument
    is named up to a rational factor, so tanh(u), exp(−2u) and erfc(−u) share one u."""
    if len(tex(expr)) < 200:
        return expr, []
    apps = {a for a in expr.atoms(sp.Function)
            if a.has(sp.Indexed) and isinstance(a, (sp.tanh, sp.erf, sp.erfc, sp.exp))}
    cores = sorted({a.args[0].as_coeff_Mul()[1] for a in apps}, key=sp.default_sort_key)
    cores = [c for c in cores if len(tex(c)) > 40]
    names = [(sp.Symbol("u" if len(cores) == 1 else "u_{%d}" % k), c) for k, c in enumerate(cores)]
    by_core = dict((c, n) for n, c in names)

    def named(a):
        coeff, core = a.args[0].as_coeff_Mul()
        return a.func(coeff * by_core[core]) if core in by_core else a

    return expr.xreplace({a: named(a) for a in apps}), names


def term_lines(term: Term) -> list:
    """A term as display lines: the sums, then the guards and deltas, then the summand (and the
    special-function arguments it names, when it is long)."""
    lines = []
    if term.sums:
        lines.append(r"\,".join(r"\sum_{%s=%s}^{%s}" % (tex(v), tex(lo), tex(hi)) for v, lo, hi in term.sums))
    conds = [r"\left[%s\right]" % tex(g) for g in term.guards]
    conds += [tex(sp.KroneckerDelta(a, b, evaluate=False)) for a, b in term.deltas]
    for k in range(0, len(conds), 2):
        lines.append(r"\,".join(conds[k:k + 2]))
    factor, names = _name_arguments(term.factor)
    summand = tex(factor)
    if lines and summand.startswith("-"):  # under sums and brackets: a negative summand is one factor, not a subtraction
        summand = r"\left(%s\right)" % summand
    lines.append(summand)
    lines += [r"\text{with } %s = %s" % (tex(n), tex(a)) for n, a in names]
    return lines


def terms_aligned(lhs: str, terms) -> str:
    """``lhs = Σ …`` as an aligned block, one line per sum / pair of guards / summand."""
    rows, first = [], True
    for t in terms or []:
        for k, line in enumerate(term_lines(t)):
            lead = (lhs + " &= " if first else "&" + (r"\phantom{=}+ " if k == 0 else r"\phantom{=}\quad "))
            rows.append(lead + line)
            first = False
    if not rows:
        rows = [lhs + " &= 0"]
    return r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"
