"""A stand-in framework for the audit's tests: convolution gradients by explicit loops (NumPy
only), with bugs that can be planted by name — the weight gradient of grouped convolutions reading
the wrong group, a transposed convolution cropped one element off, a float32 input gradient that
skips the last kernel tap.  The reproducer scripts import it as they would import torch."""
import itertools

import numpy as np


def _taps(case, x_shape, w_shape):
    """(n, f, out position, c, input channel, kernel tap, input position) of every product the
    convolution sums, in the padded-and-strided geometry of ``case``."""
    groups, out_len = case["groups"], case["out_length"]
    cin, cout = w_shape[1], w_shape[0] // groups
    for n, f, i in itertools.product(range(x_shape[0]), range(w_shape[0]), itertools.product(*map(range, out_len))):
        group = f // cout
        for c, r in itertools.product(range(cin), itertools.product(*map(range, w_shape[2:]))):
            pos = tuple(s * ii + d * rr - lo for s, ii, d, rr, (lo, _) in
                        zip(case["stride"], i, case["dilation"], r, case["pads"]))
            if all(0 <= p < L for p, L in zip(pos, x_shape[2:])):
                yield n, f, i, c, group * cin + c, r, pos


def conv_vjp(case, x, w, b, g, dtype):
    bug = case.get("bug")
    x, w, b, g = (np.asarray(a, dtype=dtype) for a in (x, w, b, g))
    y = np.zeros((x.shape[0], w.shape[0], *case["out_length"]), dtype=dtype)
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    y += b.reshape((1, -1) + (1,) * case["ndim"])
    for n, f, i, c, channel, r, pos in _taps(case, x.shape, w.shape):
        y[(n, f, *i)] += w[(f, c, *r)] * x[(n, channel, *pos)]
        if not (bug == "float32_tap" and dtype == "float32" and r[-1] == w.shape[-1] - 1):
            dx[(n, channel, *pos)] += g[(n, f, *i)] * w[(f, c, *r)]
        read = c if bug == "groups_weight" and case["groups"] > 1 else channel  # the planted bug: group 0's input
        dw[(f, c, *r)] += g[(n, f, *i)] * x[(n, read, *pos)]
    db = g.sum(axis=(0, *range(2, g.ndim)))
    return {"y": y, "x": dx, "w": dw, "b": db}


def conv_transpose_vjp(case, g, w, ggx, dtype):
    """The transposed convolution of g (the input gradient of the convolution) and its VJP."""
    g, w, ggx = (np.asarray(a, dtype=dtype) for a in (g, w, ggx))
    x_shape = (g.shape[0], w.shape[1] * case["groups"], *case["length"])
    y, dg, dw = np.zeros(x_shape, dtype=dtype), np.zeros_like(g), np.zeros_like(w)
    for n, f, i, c, channel, r, pos in _taps(case, x_shape, w.shape):
        y[(n, channel, *pos)] += g[(n, f, *i)] * w[(f, c, *r)]
        dg[(n, f, *i)] += ggx[(n, channel, *pos)] * w[(f, c, *r)]
        dw[(f, c, *r)] += ggx[(n, channel, *pos)] * g[(n, f, *i)]
    if case.get("bug") == "transpose_crop" and any(p > 0 for p in case["output_padding"]):
        y = np.roll(y, 1, axis=-1)  # the planted bug: the output window one element off
        y[..., 0] = 0
    return {"y": y, "g": dg, "w": dw}


_CALLS = {"flaky": 0}


def softmax_vjp(case, x, g, dtype):
    """softmax over the last axis and its VJP y ⊙ (g − Σ g ⊙ y), with the planted bugs: ``softmax_sum``
    drops the Σ term, ``softmax_shift`` adds 1e-13 of the largest value to every element of the input
    gradient (within tolerance, but no longer summing to 0 along the row), ``flaky`` drops the Σ term
    on every other call (a result that varies run to run)."""
    bug = case.get("bug")
    x, g = np.asarray(x, dtype=dtype), np.asarray(g, dtype=dtype)
    e = np.exp(x - x.max(-1, keepdims=True))
    y = e / e.sum(-1, keepdims=True)
    total = (g * y).sum(-1, keepdims=True)
    if bug == "flaky":
        _CALLS["flaky"] += 1
    if bug == "softmax_sum" or (bug == "flaky" and _CALLS["flaky"] % 2):
        total = 0 * total
    gx = y * (g - total)
    if bug == "softmax_shift":
        gx = gx + 1e-13 * np.abs(gx).max()
    return {"y": y, "x": gx}


def layer_norm_vjp(case, x, w, b, g, dtype):
    """layer_norm over the last axis and its VJP, with the planted bug ``layer_norm_mean``: the input
    gradient without the term through the mean, rstd·(ĝ − x̂·mean(ĝ·x̂)) instead of
    rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = g·w."""
    x, w, b, g = (np.asarray(a, dtype=dtype) for a in (x, w, b, g))
    mu = x.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + case["eps"])
    xhat = (x - mu) * rstd
    gh = g * w
    through_mean = 0 if case.get("bug") == "layer_norm_mean" else gh.mean(-1, keepdims=True)
    dx = rstd * (gh - through_mean - xhat * (gh * xhat).mean(-1, keepdims=True))
    axes = tuple(range(x.ndim - 1))
    return {"y": xhat * w + b, "x": dx, "weight": (g * xhat).sum(axes), "bias": g.sum(axes)}


def _windows(case, shape):
    """((n, c, output position), positions the window covers) of every pooling window of ``case``."""
    for n, c, i in itertools.product(range(shape[0]), range(shape[1]), itertools.product(*map(range, case["out_length"]))):
        axes = [[s * ii + d * r - p for r in range(k)] for s, ii, d, k, (p, _) in
                zip(case["stride"], i, case["dilation"], case["kernel"], case["pads"])]
        yield (n, c, *i), list(itertools.product(*axes))


def avg_pool_vjp(case, x, g, dtype):
    """torch's average pooling by loops, and its VJP, with the planted bug ``ceil_divisor``: the backward
    divides a window that ceil_mode clipped by the kernel size, not by the positions it covers."""
    x, g = np.asarray(x, dtype=dtype), np.asarray(g, dtype=dtype)
    y, dx = np.zeros(x.shape[:2] + tuple(case["out_length"]), dtype=dtype), np.zeros_like(x)
    lengths = x.shape[2:]
    for out, positions in _windows(case, x.shape):
        inside = [q for q in positions if all(0 <= v < L for v, L in zip(q, lengths))]
        padded = [q for q in positions if all(-p <= v < L + p for v, L, (p, _) in zip(q, lengths, case["pads"]))]
        divisor = case["divisor"] or len(padded if case["count_include_pad"] else inside)
        y[out] = sum(x[out[:2] + q] for q in inside) / divisor
        if case.get("bug") == "ceil_divisor" and case["count_include_pad"] and not case["divisor"]:
            divisor = len(positions)
        for q in inside:
            dx[out[:2] + q] += g[out] / divisor
    return {"y": y, "x": dx}


def max_pool_vjp(case, x, g, dtype):
    """torch's max pooling by loops (a window without input positions: -inf, no gradient), with the
    planted bug ``abort_empty``: such a window kills the process, as a write outside the buffer would."""
    x, g = np.asarray(x, dtype=dtype), np.asarray(g, dtype=dtype)
    y, dx = np.full(x.shape[:2] + tuple(case["out_length"]), -np.inf, dtype=dtype), np.zeros_like(x)
    for out, positions in _windows(case, x.shape):
        inside = [out[:2] + q for q in positions if all(0 <= v < L for v, L in zip(q, x.shape[2:]))]
        if not inside:
            if case.get("bug") == "abort_empty":
                import os
                os.abort()
            continue
        best = max(inside, key=lambda q: x[q])
        y[out] = x[best]
        dx[best] += g[out]
    return {"y": y, "x": dx}
