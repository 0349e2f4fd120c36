"""A row of summands added up, for the compiled loops' reductions (:mod:`jit`; a loop nest's and a fused
row loop's): compiled into the loops that call it."""
from .jit import numba


def _sum(row):
    """The sum of a row of summands (a loop nest's reduction): added in the machine's vector
    lanes, the only arithmetic compiled with reassociation allowed (the summands themselves are
    computed without it)."""
    total = 0.0
    for k in range(row.shape[0]):
        total += row[k]
    return total


_sum = numba.njit(fastmath={"reassoc"})(_sum) if numba is not None else _sum
