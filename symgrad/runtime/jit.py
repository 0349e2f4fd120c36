"""Elementwise functions of the NumPy modules as compiled loops, when numba is installed.

Each elementwise function runs as one loop (the emitted module's ``_*_loop`` factories): a single
pass over memory, vectorised by LLVM and spread over numba's threads (NUMBA_NUM_THREADS,
numba.set_num_threads), where the NumPy path makes a ufunc pass per operation (some 30 for a GELU
gradient).  A loop is compiled once per dtype and process, on first use (about half a second).
Every loop computes in double precision and rounds once on the store: float32 loops call the
double-precision functions of :mod:`jit_erf`, :mod:`jit_tanh` and :mod:`jit_exp`, which LLVM can
vectorise; float64 loops call C's libm.  Arrays under _JIT_MIN elements, of other dtypes (float16
included), or of differing shapes or dtypes take the NumPy path (:mod:`blockwise`), as does
everything without numba or with NUMBA_DISABLE_JIT set (the loops would then run in Python).
"""
import math
import warnings

import numpy as xp

from .blockwise import _blockwise

try:
    import numba
except ImportError:
    numba = None
# scalar helpers are compiled lazily, into the loops that call them
_inline = numba.njit(inline="always") if numba is not None else (lambda function: function)
_JIT_MIN = 1 << 16
_COMPILED = {}


def _elementwise(op, block, loop, arrays, dtype):
    """block(*arrays) by the numba loop ``loop(single)`` makes when it applies (see above), else by
    _blockwise; ``op`` names the operator in warnings.

    A loop numba cannot compile (a function it does not know, in an op of your own) is dropped
    with a warning that says why, and that function then always takes the NumPy path.
    """
    shape, kind = arrays[0].shape, arrays[0].dtype
    key = (loop, kind)
    compiled = _COMPILED.get(key, False)  # False: not compiled yet; None: numba could not compile it
    if (numba is None or numba.config.DISABLE_JIT or kind not in (xp.float32, xp.float64) or dtype != kind
            or math.prod(shape) < _JIT_MIN or any(a.shape != shape or a.dtype != kind for a in arrays)
            or compiled is None):
        return _blockwise(block, arrays, dtype)
    out = xp.empty(math.prod(shape), dtype=kind)
    flat = [xp.ascontiguousarray(a).reshape(-1) for a in arrays]
    if compiled is not False:
        compiled(out, *flat)
        return out.reshape(shape)
    compiled = numba.njit(parallel=True)(loop(kind == xp.float32))
    try:
        compiled(out, *flat)  # compiles on this first call
    except numba.core.errors.NumbaError as error:
        _COMPILED[key] = None
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        warnings.warn(f"{op}: numba could not compile {loop.__name__} for {kind} ({first}); "
                      "it runs as NumPy ufuncs instead", RuntimeWarning, stacklevel=3)
        return _blockwise(block, arrays, dtype)
    _COMPILED[key] = compiled
    return out.reshape(shape)
