"""A program's loop nests (one statement over its index space) and fused row loops (several
statements, row by row) run by :mod:`numba.jit`; None where they do not apply, and the emitted code
then runs its NumPy statements."""
import math

import numpy as xp

from .jit import _JIT_MIN, _jit_ok, _run, numba

_CHUNK_ROWS = 64  # rows per chunk of a fused row loop, at most


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


def _rows(op, rows, arrays, scalars, shapes, kind, work):
    """The arrays of ``shapes`` the fused row loop ``rows(single)`` computes (several statements,
    row by row: each row of the inputs is read from memory once), or None where it does not apply
    (as _nest; ``work`` counts the elements all of them visit).  The caller then runs each
    statement's own code.  The loop takes its rows in chunks, a few per thread, each chunk making its
    scratch rows once (a row's own allocations cost more than a narrow row's arithmetic)."""
    if work < _JIT_MIN or any(a.dtype != kind for a in arrays) or not _jit_ok(rows, kind):
        return None
    outs = tuple(xp.empty(shape, dtype=kind) for shape in shapes)
    chunk = max(1, min(_CHUNK_ROWS, shapes[0][0] // (4 * numba.get_num_threads())))
    return outs if _run(op, rows, kind, outs[0], list(outs[1:]) + list(arrays) + list(scalars) + [chunk]) else None
