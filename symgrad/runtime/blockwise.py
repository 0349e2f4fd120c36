"""Elementwise work of the NumPy modules over cache-sized blocks: one block's temporaries stay in
cache and the peak memory is the output plus a few blocks.  Threads are opt-in
(SYMGRAD_NUM_THREADS): a block is some 30 short ufunc calls, each taking the GIL back, and on the
machine we measured two threads were slower than one (see BENCHMARKS.md)."""
import concurrent.futures
import math
import os

import numpy as xp

_THREADS = max(1, int(os.environ.get("SYMGRAD_NUM_THREADS") or 1))
_BLOCK = 1 << 15 if _THREADS == 1 else 1 << 16  # float32 elements: 128 KiB per temporary, in L2


def _blockwise(fn, arrays, dtype):
    """fn(*arrays) for same-shaped arrays, computed block by block into one output array."""
    shape = arrays[0].shape
    size = math.prod(shape)
    if any(a.shape != shape for a in arrays) or size <= _BLOCK:
        return fn(*arrays)
    flat = [xp.ascontiguousarray(a).reshape(-1) for a in arrays]
    out = xp.empty(size, dtype=dtype)

    def run(start):
        out[start:start + _BLOCK] = fn(*(a[start:start + _BLOCK] for a in flat))

    starts = range(0, size, _BLOCK)
    if _THREADS > 1:
        with concurrent.futures.ThreadPoolExecutor(_THREADS) as pool:
            list(pool.map(run, starts))
    else:
        for start in starts:
            run(start)
    return out.reshape(shape)
