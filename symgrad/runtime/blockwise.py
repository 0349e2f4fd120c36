"""Elementwise work of the NumPy modules over cache-sized blocks: one block's temporaries stay in
cache and the peak memory is the output plus a few blocks.  float16 and float32 are computed in
float64 and rounded once at the end (PyTorch computes float16 in float32 the same way): the
thresholds of an expression's guarded branches are float64 numbers.  Threads are opt-in
(SYMGRAD_NUM_THREADS): a block is some 30 short ufunc calls, each taking the GIL back, and on the
machine we measured two threads were slower than one (see BENCHMARKS.md)."""
import concurrent.futures
import math
import os

import numpy as xp

_THREADS = max(1, int(os.environ.get("SYMGRAD_NUM_THREADS") or 1))
_BLOCK = 1 << 15 if _THREADS == 1 else 1 << 16  # float32 elements: 128 KiB per temporary, in L2


#: the precision elementwise work computes in, by input dtype ("opmath"): one rounding, at the end
_OPMATH = {xp.dtype(xp.float16): xp.float64, xp.dtype(xp.float32): xp.float64}


def _computed(fn, arrays):
    """fn(*arrays) in the wider precision of _OPMATH, its intermediate overflows and invalid values
    (an expression's guarded branches, selected away) not warned about."""
    with xp.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return fn(*(a.astype(_OPMATH[a.dtype]) if a.dtype in _OPMATH else a for a in arrays))


def _blockwise(fn, arrays, dtype):
    """fn(*arrays) for same-shaped arrays, computed block by block (each in the wider precision of
    _OPMATH) into one output array of ``dtype``."""
    shape = arrays[0].shape
    size = math.prod(shape)
    if any(a.shape != shape for a in arrays) or size <= _BLOCK:
        return _computed(fn, arrays).astype(dtype, copy=False)
    flat = [xp.ascontiguousarray(a).reshape(-1) for a in arrays]
    out = xp.empty(size, dtype=dtype)

    def run(start):
        out[start:start + _BLOCK] = _computed(fn, [a[start:start + _BLOCK] for a in flat])

    starts = range(0, size, _BLOCK)
    if _THREADS > 1:
        with concurrent.futures.ThreadPoolExecutor(_THREADS) as pool:
            list(pool.map(run, starts))
    else:
        for start in starts:
            run(start)
    return out.reshape(shape)
