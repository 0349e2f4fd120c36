"""An elementwise op's function over whole arrays: one compiled loop (:mod:`numba.jit`) where it
applies, else NumPy over cache-sized blocks (:mod:`blockwise`)."""
import math

import numpy as xp

from ..blockwise import _blockwise
from .jit import _JIT_MIN, _jit_ok, _run


def _elementwise(op, block, loop, arrays, dtype, wide=None):
    """block(*arrays) by the numba loop ``loop(single)`` makes when it applies (see :mod:`numba.jit`), else by
    _blockwise; ``op`` names the operator in warnings.  ``wide``: the block computed in
    double-double, which a float64 result takes instead (the loop does the same for float64).

    A loop numba cannot compile (a function it does not know, in an op of your own) is dropped
    with a warning that says why, and that function then always takes the NumPy path.
    """
    shape, kind = arrays[0].shape, arrays[0].dtype
    if wide is not None and dtype == xp.float64:
        block = wide
    if (dtype != kind or math.prod(shape) < _JIT_MIN or any(a.shape != shape or a.dtype != kind for a in arrays)
            or not _jit_ok(loop, kind)):
        return _blockwise(block, arrays, dtype)
    out = xp.empty(math.prod(shape), dtype=kind)
    flat = [xp.ascontiguousarray(a).reshape(-1) for a in arrays]
    if not _run(op, loop, kind, out, flat):
        return _blockwise(block, arrays, dtype)
    return out.reshape(shape)
