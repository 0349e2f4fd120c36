"""How the NumPy modules' compiled loops run, when numba is installed: each compiled once per dtype,
on first use, and kept (:func:`_run`); :mod:`numba.elementwise`, :mod:`numba.nests` and
:mod:`numba.fused_rows` call them.

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
import warnings

import numpy as xp

from .cache import _on_disk

try:
    import numba
except ImportError:
    numba = None
# scalar helpers are compiled lazily, into the loops that call them
_inline = numba.njit(inline="always") if numba is not None else (lambda function: function)
# Fewer elements take the NumPy path: a compiled loop is faster at every size (docs/performance.md), but
# its first call compiles it (about a second, once per machine), which a one-off tiny call would not repay.
_JIT_MIN = 1 << 10
_COMPILED = {}


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
