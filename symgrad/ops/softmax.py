"""Softmax, log-softmax and cross-entropy with logits, as programs (definitions only).

The row maximum is subtracted before ``exp`` and read through stop_gradient: the value is the
same (softmax is invariant to a shift), no ``exp`` overflows at logits of ±1e4, and the gradient
is exact because the shift's own contributions cancel.  Inputs ``(..., D)``: every leading axis is
a row (``N``), and ``dim`` picks the axis, as ``torch.nn.functional.softmax(x, dim=-1)``.
"""
from __future__ import annotations

import sympy as sp

from ..ir import SymgradError, Tensor, index, size
from ..program import Program, max_over, rule

REDUCTIONS = ("mean", "sum", "none")


def _shifted(name: str):
    """x (N, D), its row maximum m (stop_gradient) and the statements so far."""
    N, D = size("N"), size("D")
    n, j = index("n", N), index("j", D)
    x = Tensor("x", (N, D))
    m = Tensor("m", (N,))
    return N, D, n, j, x, m, rule(m, (n,), max_over(x[n, j], (j, 0, D - 1)), stop=True)


def softmax() -> Program:
    """y = exp(x − m) / Σ exp(x − m), over the last axis (``dim`` at run time).

    >>> [s.name for s in softmax().statements]
    ['m', 'u', 's', 'y']
    """
    N, D, n, j, x, m, first = _shifted("softmax")
    k = index("k", D)
    u, s, y = Tensor("u", (N, D)), Tensor("s", (N,)), Tensor("y", (N, D))  # not "e": Euler's number in documents
    return Program("softmax", {}, (x,), (
        first,
        rule(u, (n, j), sp.exp(x[n, j] - m[n])),
        rule(s, (n,), sp.Sum(u[n, k], (k, 0, D - 1))),
        rule(y, (n, j), u[n, j] / s[n]),
    ), leading=N, dim=True, notes=["The known closed form of its gradient is y ⊙ (g − Σ g ⊙ y)"])


def log_softmax() -> Program:
    """y = x − m − log Σ exp(x − m), over the last axis (``dim`` at run time)."""
    N, D, n, j, x, m, first = _shifted("log_softmax")
    k = index("k", D)
    s, y = Tensor("s", (N,)), Tensor("y", (N, D))
    return Program("log_softmax", {}, (x,), (
        first,
        rule(s, (n,), sp.Sum(sp.exp(x[n, k] - m[n]), (k, 0, D - 1))),
        rule(y, (n, j), x[n, j] - m[n] - sp.log(s[n])),
    ), leading=N, dim=True, notes=["The known closed form of its gradient is g − softmax(x) Σ g"])


def cross_entropy(reduction: str = "mean") -> Program:
    """torch.nn.functional.cross_entropy(x, t) with class probabilities ``t`` (N, C) as the target
    (class indices: pass their one-hot rows); ``reduction`` mean (over N) | sum | none."""
    reduction = reduction.strip().lower() if isinstance(reduction, str) else reduction
    if reduction not in REDUCTIONS:
        raise SymgradError(f"cross_entropy: reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    N, C, n, c, x, m, first = _shifted("cross_entropy")
    k = index("k", C)
    t = Tensor("t", (N, C))
    lse, per_row = Tensor("lse", (N,)), Tensor("loss", (N,))
    statements = [
        first,
        rule(lse, (n,), m[n] + sp.log(sp.Sum(sp.exp(x[n, k] - m[n]), (k, 0, C - 1)))),
        rule(per_row, (n,), -sp.Sum(t[n, c] * (x[n, c] - lse[n]), (c, 0, C - 1))),
    ]
    if reduction != "none":
        total = Tensor("y", (1,), scalar=True)
        nn = index("n2", N)
        scale = 1 / N if reduction == "mean" else 1
        statements.append(rule(total, (index("o", 1),), scale * sp.Sum(per_row[nn], (nn, 0, N - 1))))
    return Program("cross_entropy", {"reduction": reduction}, (x, t), tuple(statements))
