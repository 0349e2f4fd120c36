"""The numba loops of an elementwise op's NumPy module: one element of each function as scalar
statements (runtime piece ``jit`` runs them; ``jit_<function>`` supplies float32 ``erf``, ``tanh``
and ``exp`` that LLVM vectorises)."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..printing.scalar import ElementPrinter, element_statements

#: names the numba loop factories define or bind; a tensor with one of them gets no loop
RESERVED = {"_F", "_erf", "_tanh", "_exp", "math", "numba", "element", "loop", "out", "k", "single"}


@dataclass(frozen=True)
class Loop:
    """One elementwise function as a numba loop over the flat arrays ``params``."""

    params: str
    lines: tuple
    result: str
    reads: str         # the element reads, each widened to the loop's compute type _F
    functions: tuple   # the scalar functions it calls (erf, erfc, tanh, exp)


def element_code(forms, out: str):
    """(statements computing one element of an elementwise op's result, the scalar functions they
    call), or None when a form is not a plain pointwise expression or has no scalar code."""
    if not all(f.kind == "elementwise" and not (f.term.sums or f.term.guards or f.term.deltas) for f in forms):
        return None
    names = {a.base.name for f in forms for a in f.term.accesses}
    if names & RESERVED or any(n.startswith(out + "_s") for n in names):
        return None
    expr = sp.Add(*[f.term.factor.xreplace({a: sp.Symbol(a.base.name) for a in f.term.accesses}) for f in forms])
    printer = ElementPrinter()
    try:
        lines = element_statements(expr, out, printer)
    except ValueError:
        return None
    return lines, tuple(sorted(printer.used_functions))


def loop(forms, result: str, names: list):
    """The numba loop for one elementwise function of the arrays ``names``, or None without one."""
    code = element_code(forms, result)
    if code is None:
        return None
    lines, functions = code
    return Loop(", ".join(names), tuple(lines), result, ", ".join(f"_F({name}[k])" for name in names), functions)
