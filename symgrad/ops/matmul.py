"""numpy.matmul with batch broadcasting, as index notation.

Shapes are patterns: names are sizes, the integer 1 marks a broadcast axis.  ``a = "B,M,K"``,
``b = "K,N"`` gives ``out[β, m, n] = Σ_k a[β, m, k] · b[k, n]``.  Rank-1 operands follow numpy:
a vector ``a`` is a row (its axis is contracted), a vector ``b`` a column.
"""
from __future__ import annotations

import sympy as sp

from ..ir import Op, SymgradError, Tensor, index
from . import params as P


def matmul(a_shape=None, b_shape=None) -> Op:
    """Batched matmul with NumPy's broadcasting and rank-1 operands (``matmul("4,1,M,K", "3,K,N")``).

    >>> matmul().output.dims
    (B, M, N)
    """
    a = P.shape_pattern("matmul", "a_shape", a_shape, "B,M,K")
    b = P.shape_pattern("matmul", "b_shape", b_shape, "B,K,N")
    ka = a[-1]
    kb = b[0] if len(b) == 1 else b[-2]
    if ka != kb:
        raise SymgradError(f"matmul: contracted sizes differ: a_shape ends in {ka}, b_shape has {kb} "
                           "(a's last axis must match b's second-to-last)")
    k = index("k", ka)
    m = index("m", a[-2]) if len(a) >= 2 else None
    nn = index("n", b[-1]) if len(b) >= 2 else None
    batch_a, batch_b = list(a[:-2]), list(b[:-2])
    nb = max(len(batch_a), len(batch_b))
    batch_a = [sp.Integer(1)] * (nb - len(batch_a)) + batch_a
    batch_b = [sp.Integer(1)] * (nb - len(batch_b)) + batch_b
    out_batch, idx_a, idx_b, beta = [], [], [], []
    for ax, (da, db) in enumerate(zip(batch_a, batch_b)):
        if da != 1 and db != 1 and da != db:
            raise SymgradError(f"matmul: batch axis {ax} does not broadcast: {da} vs {db}")
        dim = db if da == 1 else da
        v = index(f"beta_{ax + 1}" if nb > 1 else "beta", dim)  # not "b": that is an input
        out_batch.append(dim)
        beta.append(v)
        idx_a.append(0 if da == 1 else v)
        idx_b.append(0 if db == 1 else v)
    # drop the leading padded axes that the operand does not have
    idx_a = idx_a[nb - len(a[:-2]):]
    idx_b = idx_b[nb - len(b[:-2]):]
    A, B = Tensor("a", a), Tensor("b", b)
    ia = (*idx_a, m, k) if m is not None else (k,)
    ib = (*idx_b, k, nn) if nn is not None else (k,)
    out_idx = tuple(beta) + ((m,) if m is not None else ()) + ((nn,) if nn is not None else ())
    out_dims = tuple(out_batch) + ((a[-2],) if m is not None else ()) + ((b[-1],) if nn is not None else ())
    rhs = sp.Sum(A[ia] * B[ib], (k, 0, ka - 1))
    scalar = not out_idx  # vector · vector: numpy returns a 0-d array, seen here as one axis of size 1
    if scalar:
        out_idx, out_dims = (index("u", 1),), (sp.Integer(1),)
    sizes = {d for d in (*a, *b) if isinstance(d, sp.Symbol)}
    return Op(name="matmul", params={"a_shape": ",".join(map(str, a)), "b_shape": ",".join(map(str, b))},
              inputs=(A, B), output=Tensor("out", out_dims, scalar=scalar), indices=out_idx, rhs=rhs,
              empty_ok=frozenset(sizes))  # numpy: a zero-size axis gives an empty product, K = 0 zeros
