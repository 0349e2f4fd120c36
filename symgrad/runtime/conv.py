"""``jax.lax.conv_general_dilated`` (XLA semantics) for NumPy and CuPy arrays: the entry point a
convolution form calls where lhs is dilated or the batch grouped (a NumPy module whose convolutions
are all plain calls :mod:`plain_conv` instead; the CuPy modules call this one, whose im2col
alternative the GPU benchmark switches on).

lhs is dilated by inserting lhs_dilation-1 zeros between elements, then padded by (lo, hi) per
spatial axis (negative = crop); the kernel taps are rhs_dilation apart and the window moves by
window_strides.  Which path runs:

* lhs_dilation > 1 at unit window strides (a transposed convolution, the input gradient of a
  strided layer): by output phase, without zero insertion (:func:`_output_phases`);
* then as :func:`conv_paths._conv` chooses, with im2col windows and one GEMM per group
  (:func:`_im2col`) for the few-taps case of batch-grouped calls, or of every call with ``_IM2COL``
  set.
"""
import math

import numpy as xp

from .conv_paths import _canonical, _conv
from .flat_shift import _positions
from .gemm import _matmul
from .layout import _from_layout

# The few-taps case by one GEMM per kernel tap on the flattened input (False) or by im2col windows
# and one GEMM per group (True): the CPU measured the taps faster, and they copy no windows.
_IM2COL = False


def _tap_subset(rhs, taps, rhs_dilation, phase_strides):
    """The kernel's taps ``taps`` (per axis: evenly spaced tap indices) and their dilation in the
    coordinates of a phase, one phase step being ``phase_strides`` steps of the full grid."""
    step = [ts[1] - ts[0] if len(ts) > 1 else 1 for ts in taps]
    kernel = rhs[(slice(None), slice(None)) + tuple(slice(ts[0], ts[-1] + 1, st) for ts, st in zip(taps, step))]
    dilation = tuple(d * st // s if len(ts) > 1 else 1 for d, st, s, ts in zip(rhs_dilation, step, phase_strides, taps))
    return kernel, dilation


def _output_phases(lhs, rhs, padding, lhs_dilation, rhs_dilation, groups):
    """A transposed convolution (lhs_dilation > 1) without zero insertion, split by output phase.

    Output m reads the dilated input at ld*q + lo = m + rd*t, so the outputs of phase r
    (m = r + ld*u) meet only the taps with (r + rd*t - lo) divisible by ld: every
    ld/gcd(rd, ld)-th tap from the first one t0, which read q = c0 + u + (rd*step/ld)*j with
    c0 = (r + rd*t0 - lo)/ld.  Each phase is thus a unit-stride convolution of the undilated input
    (padded by -c0 in front, cropped where negative), written straight into out[..., r::ld].
    """
    n, o = lhs.shape[0], rhs.shape[0]
    size, kernel = lhs.shape[2:], rhs.shape[2:]
    out_sp = tuple((q - 1) * ld + 1 + lo + hi - (k - 1) * rd
                   for q, ld, (lo, hi), k, rd in zip(size, lhs_dilation, padding, kernel, rhs_dilation))
    dtype = xp.result_type(lhs, rhs)
    if any(m <= 0 for m in out_sp):  # nothing to compute: an empty result, as XLA gives
        return xp.zeros((n, o) + tuple(max(m, 0) for m in out_sp), dtype=dtype)
    out = xp.empty((n, o) + out_sp, dtype=dtype)
    for phase in _positions(tuple(min(ld, m) for ld, m in zip(lhs_dilation, out_sp))):  # the phases outputs fall on
        target = out[(Ellipsis,) + tuple(slice(r, None, ld) for r, ld in zip(phase, lhs_dilation))]
        taps = [[t for t in range(k) if (r + rd * t - lo) % ld == 0]
                for r, ld, (lo, _), rd, k in zip(phase, lhs_dilation, padding, rhs_dilation, kernel)]
        if not all(taps):  # no tap reaches these outputs
            target[...] = 0
            continue
        sub, dilation = _tap_subset(rhs, taps, rhs_dilation, lhs_dilation)
        pads = []
        for r, ld, (lo, _), rd, ts, dl, u, q in zip(phase, lhs_dilation, padding, rhs_dilation, taps, dilation,
                                                    target.shape[2:], size):
            first = (r + rd * ts[0] - lo) // ld  # the input read by output u = 0 at the first tap
            pads.append((-first, first + u + dl * (len(ts) - 1) - q))
        _conv(lhs, sub, (1,) * len(size), pads, dilation, groups, out=target, windows=_windows(1))
    return out


def _pad(lhs, pads):
    """lhs (N, C, *spatial) padded by (lo, hi) >= 0 per spatial axis, in the order its batch and
    channel axes lie in memory (a weight gradient's input has channels outermost), so the pad
    does not transpose."""
    if lhs.strides[0] < lhs.strides[1]:
        swap = (1, 0) + tuple(range(2, lhs.ndim))
        return xp.pad(lhs.transpose(swap), [(0, 0), (0, 0)] + list(pads)).transpose(swap)
    return xp.pad(lhs, [(0, 0), (0, 0)] + list(pads))


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                         dimension_numbers, feature_group_count=1, batch_group_count=1):
    """jax.lax.conv_general_dilated (XLA semantics) on NumPy or CuPy arrays (see the module's
    docstring for the paths).

    >>> import numpy
    >>> lhs, rhs = numpy.arange(5.0).reshape(1, 1, 5), numpy.ones((1, 1, 2))
    >>> conv_general_dilated(lhs, rhs, (1,), [(0, 0)], (1,), (1,), ("NCW", "OIW", "NCW"))
    array([[[1., 3., 5., 7.]]])
    """
    lhs, rhs, spatial = _canonical(lhs, rhs, dimension_numbers)
    out_spec = dimension_numbers[2]
    if _by_output_phases(window_strides, lhs_dilation, batch_group_count):
        return _from_layout(_output_phases(lhs, rhs, padding, lhs_dilation, rhs_dilation, feature_group_count),
                            "NC" + spatial, out_spec)
    if any(d != 1 for d in lhs_dilation):
        dilated = xp.zeros(lhs.shape[:2] + tuple((n - 1) * d + 1 for n, d in zip(lhs.shape[2:], lhs_dilation)),
                           dtype=lhs.dtype)
        dilated[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in lhs_dilation)] = lhs
        lhs = dilated
    return _from_layout(_conv(lhs, rhs, window_strides, padding, rhs_dilation, feature_group_count, batch_group_count,
                              windows=_windows(batch_group_count)), "NC" + spatial, out_spec)


def _by_output_phases(window_strides, lhs_dilation, batch_group_count):
    """Whether a call with lhs dilation runs by output phase (at unit window strides, without batch
    groups) rather than on a zero-inserted input."""
    return any(d != 1 for d in lhs_dilation) and all(s == 1 for s in window_strides) and batch_group_count == 1


def _windows(batch_groups):
    """The few-taps path for conv_paths._conv: im2col for batch groups or where _IM2COL asks for it,
    else None (one GEMM per tap)."""
    return _im2col if batch_groups != 1 or _IM2COL else None


def _im2col(lhs, rhs, window_strides, pads, rhs_dilation, groups, batch_groups):
    """im2col windows (sliding_window_view) and one batched GEMM per group: the grouped weight
    gradients with as many output positions as kernel taps."""
    nsp = lhs.ndim - 2
    kernel = rhs.shape[2:]
    span = tuple((k - 1) * d + 1 for k, d in zip(kernel, rhs_dilation))
    lhs = _pad(lhs, pads)
    out_sp = tuple((n - sp) // s + 1 for n, sp, s in zip(lhs.shape[2:], span, window_strides))
    windows = xp.lib.stride_tricks.sliding_window_view(lhs, span, axis=tuple(range(2, 2 + nsp)))
    windows = windows[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in window_strides)
                      + tuple(slice(None, None, d) for d in rhs_dilation)]
    n_total, c_total = lhs.shape[:2]
    o_total, i_size = rhs.shape[:2]
    groups_b, groups_f = batch_groups, groups
    groups = groups_b * groups_f
    nb = n_total // groups_b
    inner = math.prod(kernel) * i_size  # the GEMM's contracted length: taps x input channels
    positions = nb * math.prod(out_sp)
    # (B, Nb, F, I, *out, *k) -> (B, F, Nb, *out, I, *k): one GEMM per group
    windows = windows.reshape((groups_b, nb, groups_f, i_size) + out_sp + kernel)
    order = (0, 2, 1) + tuple(range(4, 4 + nsp)) + (3,) + tuple(range(4 + nsp, 4 + 2 * nsp))
    cols = xp.ascontiguousarray(windows.transpose(order).reshape(groups, positions, inner))  # the windows, copied once
    # contiguous (the GPU's GEMM reads it in place) also when rhs is a strided kernel (a phase's taps)
    kernels = xp.ascontiguousarray(rhs.reshape(groups, o_total // groups, inner))
    out = _matmul(cols, kernels.transpose(0, 2, 1))  # (G, Nb*out, O/G)
    out = out.reshape((groups_b, groups_f, nb) + out_sp + (o_total // groups,))
    out = out.transpose((2, 0, 1, 3 + nsp) + tuple(range(3, 3 + nsp)))
    return out.reshape((nb, o_total) + out_sp)
