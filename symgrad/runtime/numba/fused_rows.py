"""A program's fused row loops (several statements, row by row) run by :mod:`numba.jit`; None where
they do not apply, and the emitted code then runs each statement's NumPy code."""
import numpy as xp

from .jit import _JIT_MIN, _jit_ok, _run, numba

_CHUNK_ROWS = 64  # rows per chunk of a fused row loop, at most


def _rows(op, rows, arrays, scalars, shapes, kind, work):
    """The arrays of ``shapes`` the fused row loop ``rows(single)`` computes (several statements,
    row by row: each row of the inputs is read from memory once), or None where it does not apply:
    fewer than _JIT_MIN elements of ``work`` (those all of them visit), arrays not all of float type
    ``kind``, no numba, or a loop numba could not compile.  The caller then runs each statement's own
    code.  The loop takes its rows in chunks, a few per thread, each chunk making its
    scratch rows once (a row's own allocations cost more than a narrow row's arithmetic)."""
    if work < _JIT_MIN or any(a.dtype != kind for a in arrays) or not _jit_ok(rows, kind):
        return None
    outs = tuple(xp.empty(shape, dtype=kind) for shape in shapes)
    chunk = max(1, min(_CHUNK_ROWS, shapes[0][0] // (4 * numba.get_num_threads())))
    return outs if _run(op, rows, kind, outs[0], list(outs[1:]) + list(arrays) + list(scalars) + [chunk]) else None
