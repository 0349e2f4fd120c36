"""Layer norm, RMS norm and batch norm (training statistics), as programs (definitions only).

Each normalises over the last axis or the last ``ndim`` axes (``layer_norm``, ``rms_norm``: inputs
``(..., D)`` or ``(..., D_1, ..., D_ndim)``, torch's ``normalized_shape``; every leading axis a row) or over the batch and spatial axes (``batch_norm``: ``(N, C, *spatial)``),
with PyTorch's functional signatures and defaults: ``layer_norm(x, weight, bias)`` with eps 1e-5,
``rms_norm(x, weight)`` with eps ``finfo(dtype).eps``, ``batch_norm(x, weight, bias)`` in training
mode with eps 1e-5 and the biased variance.
"""
from __future__ import annotations

import sympy as sp

from ..ir import SymgradError, Tensor, index, size
from ..program import Program, rule
from . import params as P


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


def _scaled(op: str, inputs: list, value, weight, bias, dims, indices):
    """``value · weight[indices] + bias[indices]``, each part where its flag is on (its input appended)."""
    if P.flag(op, "weight", weight):
        w = Tensor("weight", tuple(dims))
        inputs.append(w)
        value = value * w[tuple(indices)]
    if P.flag(op, "bias", bias):
        b = Tensor("bias", tuple(dims))
        inputs.append(b)
        value = value + b[tuple(indices)]
    return value


def _normalized(op: str, ndim):
    """The normalised axes' sizes, their indices and the summed indices: ``D``, ``d``, ``k`` for one
    axis (``normalized_shape`` of length 1), ``D_1, D_2``, ... for ``ndim`` trailing axes."""
    if not isinstance(ndim, int) or isinstance(ndim, bool) or not 1 <= ndim <= 4:
        raise SymgradError(f"{op}: ndim (the number of trailing axes normalised, len(normalized_shape)) must be "
                           f"1 to 4, got {ndim!r}")
    tags = [""] if ndim == 1 else [f"_{a + 1}" for a in range(ndim)]
    dims = [size(f"D{t}") for t in tags]
    return dims, [index(f"d{t}", D) for t, D in zip(tags, dims)], [index(f"k{t}", D) for t, D in zip(tags, dims)]


def _over(value, ks, dims):
    """Σ over the normalised axes of ``value``, divided by their count: the mean."""
    return sp.Sum(value, *[(k, 0, D - 1) for k, D in zip(ks, dims)]) / sp.Mul(*dims)


def layer_norm(eps=1e-5, weight=True, bias=True, ndim=1) -> Program:
    """y = (x − μ)/√(σ² + eps) · weight + bias over the last ``ndim`` axes (torch's normalized_shape).

    >>> [s.name for s in layer_norm().statements]
    ['mu', 'xc', 'var', 'r', 'y']
    """
    e = _eps("layer_norm", eps)
    dims, ds, ks = _normalized("layer_norm", ndim)
    N = size("N")
    n = index("n", N)
    x = Tensor("x", (N, *dims))
    mu, xc, var, r = Tensor("mu", (N,)), Tensor("xc", (N, *dims)), Tensor("var", (N,)), Tensor("r", (N,))
    y = Tensor("y", (N, *dims))
    inputs = [x]
    value = _scaled("layer_norm", inputs, xc[(n, *ds)] * r[n], weight, bias, dims, ds)
    params = {"eps": float(eps), "weight": bool(weight), "bias": bool(bias), **({"ndim": ndim} if ndim != 1 else {})}
    return Program("layer_norm", params, tuple(inputs), (
        rule(mu, (n,), _over(x[(n, *ks)], ks, dims)),
        rule(xc, (n, *ds), x[(n, *ds)] - mu[n]),
        rule(var, (n,), _over(xc[(n, *ks)] ** 2, ks, dims)),
        rule(r, (n,), 1 / sp.sqrt(var[n] + e)),
        rule(y, (n, *ds), value),
    ), leading=N)


def rms_norm(eps=None, weight=True, ndim=1) -> Program:
    """y = x / √(mean(x²) + eps) · weight over the last ``ndim`` axes (eps None: finfo(dtype).eps, as
    PyTorch)."""
    e = _eps("rms_norm", eps)
    dims, ds, ks = _normalized("rms_norm", ndim)
    N = size("N")
    n = index("n", N)
    x = Tensor("x", (N, *dims))
    r, y = Tensor("r", (N,)), Tensor("y", (N, *dims))
    inputs = [x]
    value = _scaled("rms_norm", inputs, x[(n, *ds)] * r[n], weight, False, dims, ds)
    constants = {e: "{xp}.finfo(x.dtype).eps"} if eps is None else {}
    params = {"eps": None if eps is None else float(eps), "weight": bool(weight), **({"ndim": ndim} if ndim != 1 else {})}
    return Program("rms_norm", params, tuple(inputs), (
        rule(r, (n,), 1 / sp.sqrt(_over(x[(n, *ks)] ** 2, ks, dims) + e)),
        rule(y, (n, *ds), value),
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
    value = _scaled("batch_norm", inputs, xc[(n, c, *i)] * r[c], weight, bias, [C], [c])
    return Program("batch_norm", {"ndim": ndim, "eps": float(eps), "weight": bool(weight), "bias": bool(bias)},
                   tuple(inputs), (
        rule(mu, (c,), sp.Sum(x[(n2, c, *i2)], *over) / count),
        rule(xc, (n, c, *i), x[(n, c, *i)] - mu[c]),
        rule(var, (c,), sp.Sum(xc[(n2, c, *i2)] ** 2, *over) / count),
        rule(r, (c,), 1 / sp.sqrt(var[c] + e)),
        rule(y, (n, c, *i), value),
    ))
