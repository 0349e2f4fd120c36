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
