"""Layer norm, RMS norm and batch norm (training statistics), as programs (definitions only).

Each normalises over the last axis (``layer_norm``, ``rms_norm``: inputs ``(..., D)``, every
leading axis a row) or over the batch and spatial axes (``batch_norm``: ``(N, C, *spatial)``),
with PyTorch's functional signatures and defaults: ``layer_norm(x, weight, bias)`` with eps 1e-5,
``rms_norm(x, weight)`` with eps ``finfo(dtype).eps``, ``batch_norm(x, weight, bias)`` in training
mode with eps 1e-5 and the biased variance.
"""
from __future__ import annotations

import sympy as sp

from ..ir import SymgradError, Tensor, index, size
from ..program import Program, rule


def _eps(op: str, eps):
    if eps is None:
        return sp.Symbol("eps", positive=True)  # the module binds it to finfo(dtype).eps
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise SymgradError(f"{op}: eps must be a number, got {eps!r}") from None
    if not value > 0:
        raise SymgradError(f"{op}: eps must be > 0, got {eps!r}")
    return sp.Rational(repr(value))


def _affine(op: str, flag, name: str) -> bool:
    if not isinstance(flag, (bool, int)) and flag not in ("true", "false"):
        raise SymgradError(f"{op}: {name} must be true or false, got {flag!r}")
    return flag in (True, 1, "true")


def _scaled(op: str, inputs: list, value, weight, bias, dim, index):
    """``value · weight[index] + bias[index]``, each part where its flag is on (its input appended)."""
    if _affine(op, weight, "weight"):
        w = Tensor("weight", (dim,))
        inputs.append(w)
        value = value * w[index]
    if _affine(op, bias, "bias"):
        b = Tensor("bias", (dim,))
        inputs.append(b)
        value = value + b[index]
    return value


def layer_norm(eps=1e-5, weight=True, bias=True) -> Program:
    """y = (x − μ)/√(σ² + eps) · weight + bias over the last axis.

    >>> [s.name for s in layer_norm().statements]
    ['mu', 'xc', 'var', 'r', 'y']
    """
    e = _eps("layer_norm", eps)
    N, D = size("N"), size("D")
    n, d, k = index("n", N), index("d", D), index("k", D)
    x = Tensor("x", (N, D))
    mu, xc, var, r = Tensor("mu", (N,)), Tensor("xc", (N, D)), Tensor("var", (N,)), Tensor("r", (N,))
    y = Tensor("y", (N, D))
    inputs = [x]
    value = _scaled("layer_norm", inputs, xc[n, d] * r[n], weight, bias, D, d)
    return Program("layer_norm", {"eps": float(eps), "weight": bool(weight), "bias": bool(bias)}, tuple(inputs), (
        rule(mu, (n,), sp.Sum(x[n, k], (k, 0, D - 1)) / D),
        rule(xc, (n, d), x[n, d] - mu[n]),
        rule(var, (n,), sp.Sum(xc[n, k] ** 2, (k, 0, D - 1)) / D),
        rule(r, (n,), 1 / sp.sqrt(var[n] + e)),
        rule(y, (n, d), value),
    ), leading=N)


def rms_norm(eps=None, weight=True) -> Program:
    """y = x / √(mean(x²) + eps) · weight over the last axis (eps None: finfo(dtype).eps, as PyTorch)."""
    e = _eps("rms_norm", eps)
    N, D = size("N"), size("D")
    n, d, k = index("n", N), index("d", D), index("k", D)
    x = Tensor("x", (N, D))
    r, y = Tensor("r", (N,)), Tensor("y", (N, D))
    inputs = [x]
    value = _scaled("rms_norm", inputs, x[n, d] * r[n], weight, False, D, d)
    constants = {e: "xp.finfo(x.dtype).eps"} if eps is None else {}
    return Program("rms_norm", {"eps": None if eps is None else float(eps), "weight": bool(weight)}, tuple(inputs), (
        rule(r, (n,), 1 / sp.sqrt(sp.Sum(x[n, k] ** 2, (k, 0, D - 1)) / D + e)),
        rule(y, (n, d), value),
    ), leading=N, constants=constants)


def batch_norm(ndim: int = 1, eps=1e-5, weight=True, bias=True) -> Program:
    """Training-mode batch norm over (N, C, *spatial) with ``ndim`` spatial axes (0..3): the batch
    statistics (biased variance) normalise; running statistics are the caller's."""
    if not isinstance(ndim, int) or not 0 <= ndim <= 3:
        raise SymgradError(f"batch_norm: ndim must be 0, 1, 2 or 3 spatial axes, got {ndim!r}")
    e = _eps("batch_norm", eps)
    N, C = size("N"), size("C")
    L = [size(n) for n in (["L"] if ndim == 1 else [f"L_{a + 1}" for a in range(ndim)])]
    n, c = index("n", N), index("c", C)
    i = [index(v, l) for v, l in zip(["i"] if ndim == 1 else [f"i_{a + 1}" for a in range(ndim)], L)]
    n2 = index("n2", N)
    i2 = [index(f"{v}2", l) for v, l in zip([str(a.label) for a in i], L)]
    x = Tensor("x", (N, C, *L))
    count = N * sp.Mul(*L)
    mu, xc, var, r = Tensor("mu", (C,)), Tensor("xc", (N, C, *L)), Tensor("var", (C,)), Tensor("r", (C,))
    y = Tensor("y", (N, C, *L))
    over = [(n2, 0, N - 1), *[(a, 0, l - 1) for a, l in zip(i2, L)]]
    inputs = [x]
    value = _scaled("batch_norm", inputs, xc[(n, c, *i)] * r[c], weight, bias, C, c)
    return Program("batch_norm", {"ndim": ndim, "eps": float(eps), "weight": bool(weight), "bias": bool(bias)},
                   tuple(inputs), (
        rule(mu, (c,), sp.Sum(x[(n2, c, *i2)], *over) / count),
        rule(xc, (n, c, *i), x[(n, c, *i)] - mu[c]),
        rule(var, (c,), sp.Sum(xc[(n2, c, *i2)] ** 2, *over) / count),
        rule(r, (c,), 1 / sp.sqrt(var[c] + e)),
        rule(y, (n, c, *i), value),
    ))
