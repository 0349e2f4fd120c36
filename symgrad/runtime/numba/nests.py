"""A program's loop nests (one statement over its index space) run by :mod:`numba.jit`; None where
they do not apply, and the emitted code then runs its NumPy statements."""
import math

import numpy as xp

from .jit import _JIT_MIN, _jit_ok, _run


def _nest(op, nest, arrays, scalars, shape, kind, work=None):
    """The array of ``shape`` the numba loop nest ``nest(single)`` computes from ``arrays`` (any
    strides, read where the nest's indices say) and the numbers ``scalars``, or None when it does
    not apply: fewer than _JIT_MIN elements of ``work`` (the elements it visits, a reduction's
    summand grid; default the output's), arrays not all of float type ``kind`` (float32 or
    float64), no numba, or a nest numba could not compile (warned about once).  The caller then
    runs its NumPy code."""
    work = math.prod(shape) if work is None else work
    if work < _JIT_MIN or any(a.dtype != kind for a in arrays) or not _jit_ok(nest, kind):
        return None
    out = xp.empty(shape, dtype=kind)
    return out if _run(op, nest, kind, out, list(arrays) + list(scalars)) else None
