"""Evaluate index-notation terms numerically at concrete sizes (the symbolic side of the checks).

The code is the emitter's own generic form (gather over the index grid), so the definition, the
raw derivative with its Kronecker deltas and the delta-free result are all evaluated literally,
without any recognised closed form in between.
"""
from __future__ import annotations

import numpy as np
import scipy.special  # noqa: F401  (the printed code may call scipy.special)
import sympy as sp

from .. import naming
from ..forms.generic import generic_code
from ..ir import Tensor


def evaluate(terms, target: Tensor, tensors: dict, out_vars, sizes: dict, arrays: dict) -> np.ndarray:
    """Σ terms as an array in ``target``'s real layout."""
    concrete = Tensor(target.name, tuple(sp.sympify(d).subs(sizes) for d in target.dims), target.split)
    shapes = {n: Tensor(n, tuple(sp.sympify(d).subs(sizes) for d in t.dims), t.split) for n, t in tensors.items()}
    namespace = {"xp": np, "scipy": scipy}
    for name, a in arrays.items():
        t = shapes[name]
        namespace[name] = a
        namespace[naming.view(name)] = a.reshape([int(d) for d in t.dims])
    total = np.zeros([int(d) for d in concrete.dims])
    for k, term in enumerate(terms):
        term = term.subs(sizes) if sizes else term
        out = f"_term{k}"
        code = "\n".join(generic_code(term, out, concrete, shapes, out_vars))
        exec(compile(code, "<symgrad-evaluate>", "exec"), namespace)
        total = total + namespace[out]
    return total.reshape([int(d) for d in concrete.shape])
