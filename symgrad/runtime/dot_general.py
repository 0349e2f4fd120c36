"""``jax.lax.dot_general`` for NumPy and CuPy arrays and torch tensors: the entry point of every matmul
form (the GEMM is :mod:`gemm`'s, or the CuPy or torch one of the same name)."""
import math

import numpy as xp

from .gemm import _matmul


def dot_general(lhs, rhs, contracting, batch):
    """jax.lax.dot_general: result axes are batch, lhs free, rhs free; one batched matmul.

    >>> import numpy
    >>> dot_general(numpy.ones((2, 3)), numpy.ones((3, 4)), ((1,), (0,)), ((), ())).shape
    (2, 4)
    """
    (lc, rc), (lb, rb) = contracting, batch
    lf = [a for a in range(lhs.ndim) if a not in lc and a not in lb]
    rf = [a for a in range(rhs.ndim) if a not in rc and a not in rb]
    size = lambda a, axes: math.prod(a.shape[k] for k in axes)
    batch_shape = [lhs.shape[a] for a in lb]
    moved = lambda a, order: xp.moveaxis(a, order, list(range(len(order))))  # noqa: E731  (transpose(order))
    left = moved(lhs, list(lb) + lf + list(lc)).reshape(size(lhs, lb), size(lhs, lf), size(lhs, lc))
    right = moved(rhs, list(rb) + list(rc) + rf).reshape(size(rhs, rb), size(rhs, rc), size(rhs, rf))
    out = _matmul(left, right)
    return out.reshape(batch_shape + [lhs.shape[a] for a in lf] + [rhs.shape[a] for a in rf])
