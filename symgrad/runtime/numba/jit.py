"""How the NumPy modules' compiled loops run, when numba is installed: each compiled once per dtype,
on first use, and kept (:func:`_run`); :mod:`numba.elementwise` and :mod:`numba.nests` call them.

Each elementwise function runs as one loop (the emitted module's ``_*_loop`` factories): a single
pass over memory, vectorised by LLVM and spread over numba's threads (NUMBA_NUM_THREADS,
numba.set_num_threads), where the NumPy path makes a ufunc pass per operation (some 30 for a GELU
gradient).  A loop is compiled once per dtype, on first use (about half a second), and cached.
Programs' elementwise statements run as loop nests over their index space (``_nest``), each operand
read at its own indices (a row's statistic, a column's weight), with the same fallback; runs of
statements that go row by row run as one loop over the rows (``_rows``).  Compiled loops are cached on
disk where the module has a file (:mod:`numba.cache`): a later process loads them.
Every loop computes in double precision and rounds once on the store: float32 loops call the
double-precision functions of :mod:`numba.erf`, :mod:`numba.tanh` and :mod:`numba.exp`, which LLVM can
vectorise; float64 loops call C's libm.  Arrays under _JIT_MIN elements, of other dtypes (float16
included), or of differing shapes or dtypes take the NumPy path (:mod:`blockwise`), as does
everything without numba or with NUMBA_DISABLE_JIT set (the loops would then run in Python).
"""
import math
import warnings

import numpy as xp

from .cache import _on_disk

try:
    import numba
except ImportError:
    numba = None
# scalar helpers are compiled lazily, into the loops that call them
_inline = numba.njit(inline="always") if numba is not None else (lambda function: function)
# Below this many elements a call takes the NumPy path, which compiles nothing.  A compiled loop is
# faster at every size measured (GELU of 16 elements: 8 us against 41; softmax of 8 x 8: 19 against
# 27), but its first call compiles it (about a second, once per machine with the disk cache), which a
# one-off small call would not repay.
_JIT_MIN = 1 << 10
_COMPILED = {}


def _sum(row):
    """The sum of a row of summands (a loop nest's reduction): added in the machine's vector
    lanes, the only arithmetic compiled with reassociation allowed (the summands themselves are
    computed without it)."""
    total = 0.0
    for k in range(row.shape[0]):
        total += row[k]
    return total


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


if numba is not None:
    _sum = numba.njit(fastmath={"reassoc"})(_sum)
    _row_max = numba.njit(_row_max)


def _jit_ok(factory, kind) -> bool:
    """Whether a numba loop may run: numba present and compiling, a float32/float64 dtype, and the
    factory not known to fail."""
    return (numba is not None and not numba.config.DISABLE_JIT and kind in (xp.float32, xp.float64)
            and _COMPILED.get((factory, kind), False) is not None)


def _run(op, factory, kind, out, args) -> bool:
    """factory(single) compiled once per dtype and run on (out, *args); False when numba cannot
    compile it (then it is never tried again and a warning says why)."""
    key = (factory, kind)
    compiled = _COMPILED.get(key)
    if compiled is not None:
        compiled(out, *args)
        return True
    # NumPy's error model: x/0 is inf or NaN as in the array code (numba's default raises, and its
    # check on every division keeps LLVM from vectorising a loop)
    compiled = _on_disk(numba.njit(parallel=True, error_model="numpy")(factory(kind == xp.float32)))
    try:
        compiled(out, *args)  # compiles on this first call
    except numba.core.errors.NumbaError as error:
        _COMPILED[key] = None
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        warnings.warn(f"{op}: numba could not compile {factory.__name__} for {kind} ({first}); "
                      "it runs as NumPy ufuncs instead", RuntimeWarning, stacklevel=3)
        return False
    _COMPILED[key] = compiled
    return True
