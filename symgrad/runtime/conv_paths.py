"""The choice of path of a convolution with an undilated lhs, on the canonical layouts, shared by
the general entry (:mod:`conv`) and the plain one (:mod:`plain_conv`):

* fewer output positions than kernel taps (a weight gradient): one GEMM per output position
  (:func:`flat_shift._flat_shift_outputs`);
* else one GEMM per kernel tap on the flattened padded input (:func:`flat_shift._flat_shift_taps`),
  or the ``windows`` path the caller names (im2col, for batch groups or as the GPU's alternative).
"""
import math

import numpy as xp

from .crop_pad import _crop_and_pad
from .flat_shift import _flat_shift_outputs, _flat_shift_taps
from .layout import _to_layout


def _canonical(lhs, rhs, dimension_numbers):
    """lhs as (N, C, *spatial), rhs as (O, I, *spatial), and the spatial axes' letters."""
    lhs_spec, rhs_spec, _ = dimension_numbers
    spatial = "".join(c for c in rhs_spec if c not in "OI")
    return _to_layout(lhs, lhs_spec, "NC" + spatial), _to_layout(rhs, rhs_spec, "OI" + spatial), spatial


def _conv(lhs, rhs, window_strides, padding, rhs_dilation, groups, batch_groups=1, out=None, windows=None):
    """The convolution on the canonical layouts (NC..., OI...) with an undilated lhs: picks the path.
    ``windows``: the few-taps path where it is not one GEMM per tap (None: it is), called as
    windows(lhs, rhs, window_strides, pads, rhs_dilation, groups, batch_groups).  The result is
    written into ``out`` when it is given (a strided share of a larger output, for the output phases)."""
    crop, pads = zip(*(_crop_and_pad(n, lo, hi) for (lo, hi), n in zip(padding, lhs.shape[2:])))
    pads = list(pads)
    lhs = lhs[(slice(None), slice(None)) + crop]
    padded = tuple(q + lo + hi for q, (lo, hi) in zip(lhs.shape[2:], pads))
    kernel = rhs.shape[2:]
    span = tuple((k - 1) * d + 1 for k, d in zip(kernel, rhs_dilation))
    out_sp = tuple(max(0, (n - sp) // s + 1) for n, sp, s in zip(padded, span, window_strides))
    taps, outs = math.prod(kernel), math.prod(out_sp)
    if any(sp > n for sp, n in zip(span, padded)) or lhs.shape[1] == 0:  # no window, or nothing to sum: zeros
        result = xp.zeros((lhs.shape[0] // batch_groups, rhs.shape[0]) + out_sp, dtype=xp.result_type(lhs, rhs))
    elif outs < taps:  # loop over whichever is fewer; the weight-gradient case: the "kernel" is the image
        result = _flat_shift_outputs(lhs, rhs, pads, window_strides, rhs_dilation, groups, batch_groups)
    elif windows is None:
        return _flat_shift_taps(lhs, rhs, pads, window_strides, rhs_dilation, groups, out=out)
    else:
        result = windows(lhs, rhs, window_strides, pads, rhs_dilation, groups, batch_groups)
    if out is None:
        return result
    out[...] = result
    return out
