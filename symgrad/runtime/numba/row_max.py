"""A row's maximum, for the compiled loops of a max statement (:mod:`jit`): compiled into the loops that
call it."""
import math

from .jit import numba


def _row_max(row):
    """The maximum of a row (a max statement's, over its last axis), read in its own dtype, NaN where
    the row holds one (as NumPy's amax and torch's): eight running maxima, branch-free, which the
    machine keeps in vector lanes (one would wait on each comparison)."""
    n = row.shape[0]
    if n == 0:
        return -math.inf
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = row[0]
    nan = False
    k = 0
    while k + 8 <= n:
        v0, v1, v2, v3 = row[k], row[k + 1], row[k + 2], row[k + 3]
        v4, v5, v6, v7 = row[k + 4], row[k + 5], row[k + 6], row[k + 7]
        nan |= (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3) | (v4 != v4) | (v5 != v5) | (v6 != v6) | (v7 != v7)
        t0, t1, t2, t3 = (v0 if v0 > t0 else t0), (v1 if v1 > t1 else t1), (v2 if v2 > t2 else t2), (v3 if v3 > t3 else t3)
        t4, t5, t6, t7 = (v4 if v4 > t4 else t4), (v5 if v5 > t5 else t5), (v6 if v6 > t6 else t6), (v7 if v7 > t7 else t7)
        k += 8
    top = max(max(max(t0, t1), max(t2, t3)), max(max(t4, t5), max(t6, t7)))
    while k < n:
        value = row[k]
        nan |= value != value
        top = value if value > top else top
        k += 1
    return math.nan if nan else top


_row_max = numba.njit(_row_max) if numba is not None else _row_max
