"""Numeric constants folded to floats before any code is printed."""
from __future__ import annotations

import sympy as sp


def fold_constants(expr):
    """Numeric constants (1/2, sqrt(2), pi, log(2)) as 17-digit floats: Python floats keep float32
    float32, and CUDA's runtime compiler (NVRTC, which CuPy uses) has no M_LN2 or M_PI."""
    kinds = (sp.Rational, sp.NumberSymbol, sp.Pow, sp.Function)
    return expr.xreplace({a: sp.Float(a.evalf(17), 17) for a in expr.atoms(*kinds)
                          if a.is_number and a.is_real and not a.is_Integer})
