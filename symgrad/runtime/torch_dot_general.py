"""``jax.lax.dot_general`` on torch tensors, for the torch target: one ``torch.matmul`` on the
operands permuted to (batch, free, contracted) and (batch, contracted, free); differentiable."""
import math

import torch as xp


def dot_general(lhs, rhs, contracting, batch):
    """jax.lax.dot_general: result axes are batch, lhs free, rhs free.

    >>> dot_general(xp.ones(2, 3), xp.ones(3, 4), ((1,), (0,)), ((), ())).shape
    torch.Size([2, 4])
    """
    (lc, rc), (lb, rb) = contracting, batch
    lf = [a for a in range(lhs.ndim) if a not in lc and a not in lb]
    rf = [a for a in range(rhs.ndim) if a not in rc and a not in rb]
    size = lambda a, axes: math.prod(a.shape[k] for k in axes)
    left = lhs.permute(list(lb) + lf + list(lc)).reshape(size(lhs, lb), size(lhs, lf), size(lhs, lc))
    right = rhs.permute(list(rb) + list(rc) + rf).reshape(size(rhs, rb), size(rhs, rc), size(rhs, rf))
    out = xp.matmul(left, right)
    return out.reshape([lhs.shape[a] for a in lb] + [lhs.shape[a] for a in lf] + [rhs.shape[a] for a in rf])
