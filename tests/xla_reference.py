"""A deliberately plain reference of XLA's ConvGeneralDilated, written from its definition with
explicit loops over output positions (small sizes only).  Independent of symgrad's emitted code."""
import itertools

import numpy as np


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                         dimension_numbers, feature_group_count=1, batch_group_count=1):
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    spatial = [c for c in rhs_spec if c not in "OI"]
    # add absent N / C / O / I axes as size 1
    for letter in "NC":
        if letter not in lhs_spec:
            lhs, lhs_spec = lhs[None], letter + lhs_spec
    for letter in "OI":
        if letter not in rhs_spec:
            rhs, rhs_spec = rhs[None], letter + rhs_spec
    lhs = np.transpose(lhs, [lhs_spec.index(c) for c in "NC" + "".join(spatial)])
    rhs = np.transpose(rhs, [rhs_spec.index(c) for c in "OI" + "".join(spatial)])
    n, c = lhs.shape[:2]
    o, i = rhs.shape[:2]
    in_sizes, k_sizes = lhs.shape[2:], rhs.shape[2:]
    # sizes of the dilated, padded input and of the output
    dil = [(s - 1) * d + 1 for s, d in zip(in_sizes, lhs_dilation)]
    padded = [s + lo + hi for s, (lo, hi) in zip(dil, padding)]
    span = [(k - 1) * d + 1 for k, d in zip(k_sizes, rhs_dilation)]
    out_sizes = [max(0, (p - sp) // st + 1) for p, sp, st in zip(padded, span, window_strides)]
    fg, bg = feature_group_count, batch_group_count
    out_n = n // bg
    out = np.zeros((out_n, o) + tuple(out_sizes))

    def read(b, ch, pos):
        idx = []
        for p, (lo, _), d, size in zip(pos, padding, lhs_dilation, in_sizes):
            q = p - lo
            if q < 0 or q % d or q // d >= size:
                return 0.0
            idx.append(q // d)
        return lhs[(b, ch) + tuple(idx)]

    o_per_group = o // (fg * bg)
    for b, f in itertools.product(range(out_n), range(o)):
        group = f // o_per_group
        fgroup, bgroup = (group, 0) if fg > 1 else (0, group)
        batch = bgroup * out_n + b
        for opos in itertools.product(*[range(s) for s in out_sizes]):
            acc = 0.0
            for ci in range(i):
                channel = fgroup * i + ci
                for kpos in itertools.product(*[range(k) for k in k_sizes]):
                    pos = [op * st + kp * d for op, st, kp, d in zip(opos, window_strides, kpos, rhs_dilation)]
                    acc += read(batch, channel, pos) * rhs[(f, ci) + kpos]
            out[(b, f) + opos] = acc
    canonical = "NC" + "".join(spatial)
    for letter in "NC":
        if letter not in out_spec:
            out = out[0] if canonical.index(letter) == 0 else out.take(0, axis=canonical.index(letter))
            canonical = canonical.replace(letter, "")
    return np.transpose(out, [canonical.index(ch) for ch in out_spec])
