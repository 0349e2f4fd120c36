"""Convolutions as implicit GEMMs on the flattened padded input: one GEMM per kernel tap (the
forward, an input gradient) or one per output position (a weight gradient), with no im2col copy.

Output m of a window with stride s and kernel dilation d reads the padded input at s*m + d*t for
tap t.  Split into phases (every s-th, or d-th, position), each tap (or output position) is a
constant offset into the flattened phase, so a whole batch chunk is one GEMM per tap on a strided
view.  :mod:`conv` picks between these paths and the others.
"""
import math

import numpy as xp

from .accumulate import _SCRATCH, _accumulate, _sum_of_products
from .threads import _CHUNK_BYTES, _in_parallel, _split


def _positions(shape):
    """Every index tuple of ``shape``, in C order."""
    for flat in range(math.prod(shape)):
        index = []
        for n in reversed(shape):
            flat, k = divmod(flat, n)
            index.append(k)
        yield tuple(reversed(index))


def _flat_strides(shape):
    """Element strides of a C-ordered spatial block: moving one step along axis a moves this far."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.insert(0, step)
        step *= n
    return strides


def _batch_chunk(per_item_bytes):
    """How many batch items to process at once: enough to fill _CHUNK_BYTES, at least one."""
    if _CHUNK_BYTES is None:
        return None
    return max(1, _CHUNK_BYTES // max(per_item_bytes, 1))


def _flat_shift_taps(lhs, rhs, pads, window_strides, rhs_dilation, groups, out=None):
    """Few kernel taps (the forward, an input gradient): one GEMM per tap, no im2col copy.

    Output m reads the padded input at s*m + d*t for tap t: on the stride phase (d*t) mod s
    (padded[..., p::s]), at row m + (d*t) div s of that phase's grid, so every tap is a constant
    offset into its flattened phase.  With unit strides there is one phase, the padded input.
    The batch is taken in chunks that fit in cache.  Each chunk's phases (strided slices of the
    unpadded input) are copied into a buffer laid out channels first, then phases, then the images
    one after another, whose borders stay zero; so one GEMM per tap on a strided view covers the
    whole chunk.  Every tap accumulates into one output on a "wide" grid (the phase row length,
    across the images); the valid positions are then read out of it (into ``out`` when given),
    and the positions that straddle two images are dropped.  Neither the padded input nor the
    wide grid is ever made for the whole batch.
    """
    n, c = lhs.shape[:2]
    o, i = rhs.shape[:2]
    size, kernel = lhs.shape[2:], rhs.shape[2:]
    padded = tuple(q + lo + hi for q, (lo, hi) in zip(size, pads))
    out_sp = tuple((p - (k - 1) * d - 1) // s + 1 for p, k, d, s in zip(padded, kernel, rhs_dilation, window_strides))
    rows = tuple(m + (k - 1) * d // s for m, k, d, s in zip(out_sp, kernel, rhs_dilation, window_strides))
    strides, image = _flat_strides(rows), math.prod(rows)
    wide = sum((m - 1) * st for m, st in zip(out_sp, strides)) + 1
    dtype = xp.result_type(lhs, rhs)
    if out is None:
        out = xp.empty((n, o) + out_sp, dtype=dtype)
    phases, where = _on_phases(list(_positions(kernel)), rhs_dilation, window_strides, strides)
    taps = [(phase, offset, xp.ascontiguousarray(  # per tap its (G, O/G, I) weights; CuPy's GEMM needs positive strides
                rhs[(slice(None), slice(None)) + tap].reshape(groups, o // groups, i)))
            for tap, (phase, offset) in zip(_positions(kernel), where)]
    fills = _phase_fills(lhs, phases, window_strides, rows, pads)
    in_place = all(s == 1 for s in window_strides) and not any(lo or hi for lo, hi in pads)  # the input as it is
    step = _batch_chunk(o * image * out.itemsize) or n
    step, runs = _split(n, step)
    channels_first = (1, 0) + tuple(range(2, lhs.ndim))

    def work(begin, end):  # the chunks of items begin..end, with buffers of their own
        acc = xp.empty(o * ((step - 1) * image + wide), dtype=dtype)
        part = xp.empty_like(acc) if _SCRATCH else None
        buffer = None
        for start in range(begin, end, step):
            stop = min(end, start + step)
            items = stop - start
            if in_place and items == 1 and lhs[start, :1].flags.c_contiguous:  # one image, rows unit-stride: no buffer
                block = lhs[start:stop].transpose(channels_first)[:, None]
            else:
                if buffer is None or buffer.shape[2] != items:  # a new chunk length: a fresh zero border
                    buffer = xp.zeros((c, len(phases), items) + rows, dtype=lhs.dtype)
                block = buffer
                for k, view, interior in fills:
                    block[(slice(None), k, slice(None)) + interior] = view[start:stop].transpose(channels_first)
            flat = block.reshape(groups, i, len(phases), items * image)
            length = (items - 1) * image + wide
            total = acc[:o * length].reshape(groups, o // groups, length)
            scratch = None if part is None else part[:o * length].reshape(total.shape)
            products = [(weights, flat[:, :, phase, offset:offset + length]) for phase, offset, weights in taps]
            if i == 1:  # depthwise (unit inner dimension): broadcast products summed, not GEMMs
                _sum_of_products(products, total, scratch)
            else:
                for k, (weights, window) in enumerate(products):
                    _accumulate(xp.matmul, weights, window, total, scratch, k == 0)
            grid = total.reshape(o, length)
            out[start:stop] = xp.lib.stride_tricks.as_strided(
                grid, (items, o) + out_sp,
                (image * grid.itemsize, grid.strides[0]) + tuple(st * grid.itemsize for st in strides))

    _in_parallel(work, runs)
    return out


def _on_phases(points, scale, steps, strides):
    """Where the padded input's position scale*p (per axis) lies for each index tuple p of
    ``points``: on phase (scale*p) mod step, at row (scale*p) div step of that phase's grid (whose
    flattened ``strides`` are given).  Returns the phases met, in order, and per point (its phase's
    index, its offset in the flattened phase).  A tap t (scale: the kernel dilation, steps: the
    window strides) and an output m (scale: the window strides, steps: the kernel dilation) are
    both placed so."""
    phases, where = [], []
    for p in points:
        phase = tuple(a * x % b for x, a, b in zip(p, scale, steps))
        if phase not in phases:
            phases.append(phase)
        where.append((phases.index(phase), sum(a * x // b * st for x, a, b, st in zip(p, scale, steps, strides))))
    return phases, where


def _phase_fills(lhs, phases, steps, rows, pads):
    """How to copy the phases ``phases`` (offsets p into steps s) of the padded input into a
    buffer (..., phase, *rows) holding padded[..., p::s] in its first ``rows``: per phase with any
    input in it, (its index, a strided view of the unpadded ``lhs``, the buffer's interior that
    view fills).  The rest of the buffer is padding, left zero."""
    fills = []
    for k, phase in enumerate(phases):
        view, missing = _phase_window(lhs, phase, steps, rows, pads)
        if view is not None:
            fills.append((k, view, tuple(slice(lo, r - hi) for (lo, hi), r in zip(missing, rows))))
    return fills


def _phase_window(lhs, firsts, steps, rows, pads):
    """The padded input's positions first + step*v (v < rows) on each spatial axis, as a strided
    view of the unpadded ``lhs`` and the padding (lo, hi) >= 0 it lacks; (None, None) when they
    all fall in the padding.  ``pads`` is the padding the indices refer to."""
    cut, missing = [], []
    for first, s, r, (lo, _), q in zip(firsts, steps, rows, pads, lhs.shape[2:]):
        first -= lo  # as an index into lhs
        v0, v1 = max(0, -(first // s)), min(r - 1, (q - 1 - first) // s)  # the v inside lhs
        if v1 < v0:
            return None, None
        cut.append(slice(first + s * v0, first + s * v1 + 1, s))
        missing.append((v0, r - 1 - v1))
    return lhs[(slice(None), slice(None)) + tuple(cut)], missing




def _flat_shift_outputs(lhs, rhs, pads, window_strides, rhs_dilation, groups, batch_groups=1):
    """Few output positions (a weight gradient): loop over the outputs.

    Output m reads the padded input at s*m + d*t for tap t: on the phase (s*m) mod d
    (padded[..., p::d]), at row (s*m) div d + t of that phase's grid, so each output position is
    a constant offset into its flattened phase: one GEMM of the input against the kernel laid out
    on the phase grid (zeros between its rows).  With unit kernel dilation there is one phase, the
    padded input.  On the CPU that GEMM runs per contracted channel: the channel's images are
    split into their phases in one buffer and its kernel slice spread into another (both
    cache-sized, their zero borders kept from one channel to the next), read from cache by every
    output position; the channels are dealt out to the worker threads, each summing into its own
    partial result.  On the GPU the channels and the kernel's extent merge into one long inner
    dimension, so each output position is a single GEMM.
    """
    n, c = lhs.shape[:2]
    o, i = rhs.shape[:2]
    size, kernel = lhs.shape[2:], rhs.shape[2:]
    nsp = len(kernel)
    padded = tuple(q + lo + hi for q, (lo, hi) in zip(size, pads))
    out_sp = tuple((p - (k - 1) * d - 1) // s + 1 for p, k, d, s in zip(padded, kernel, rhs_dilation, window_strides))
    rows = tuple(s * (m - 1) // d + k for m, k, d, s in zip(out_sp, kernel, rhs_dilation, window_strides))
    strides, image = _flat_strides(rows), math.prod(rows)
    wide = sum((k - 1) * st for k, st in zip(kernel, strides)) + 1
    if batch_groups > 1:  # lhs batch split into groups, each meeting its own slice of rhs outputs
        groups, n = batch_groups, n // batch_groups
    out = xp.empty(out_sp + (groups, n, o // groups), dtype=xp.result_type(lhs, rhs))
    positions = list(_positions(out_sp))
    phases, where = _on_phases(positions, window_strides, rhs_dilation, strides)
    offsets = [(pos, phase, offset) for pos, (phase, offset) in zip(positions, where)]
    # the kernel (G, O/G, I, *k) with its output channels last, to fill the corner [0, k) of the grid
    kernels = rhs.reshape((groups, o // groups, i) + kernel).transpose((0, 2) + tuple(range(3, 3 + nsp)) + (1,))
    corner = (slice(None),) + tuple(slice(0, k) for k in kernel)
    if _CHUNK_BYTES is None:
        length = (i - 1) * image + wide  # the merged inner dimension, cut where the last kernel row ends
        images = xp.zeros((len(phases),) + lhs.shape[:2] + rows, dtype=lhs.dtype)
        for k, view, interior in _phase_fills(lhs, phases, rhs_dilation, rows, pads):
            images[(k, slice(None), slice(None)) + interior] = view
        flat = images.reshape(len(phases), groups, n, i * image) if batch_groups > 1 else \
            images.reshape(len(phases), n, groups, i * image).transpose(0, 2, 1, 3)  # (P, G, N, I*image)
        spread = xp.zeros((groups, i) + rows + (o // groups,), dtype=rhs.dtype)
        spread[(slice(None),) + corner] = kernels
        spread = spread.reshape(groups, i * image, o // groups)[:, :length]
        for pos, phase, offset in offsets:                                               # out[pos]: (G, N, O/G)
            _accumulate(xp.matmul, flat[phase][..., offset:offset + length], spread, out[pos], None, True)
        return _outputs_last(out, n, o, out_sp)
    to_groups = (1, 0) + tuple(range(2, 2 + nsp))
    in_place = all(d == 1 for d in rhs_dilation) and not any(lo or hi for lo, hi in pads) and rows == size

    def work(begin, end):  # the contracted channels begin..end, into a partial sum of their own
        total = out if begin == 0 else xp.empty_like(out)
        part = xp.empty_like(out[(0,) * nsp])
        images = None if in_place else xp.zeros((groups, n, len(phases)) + rows, dtype=lhs.dtype)  # zero border kept
        spread = xp.zeros((groups,) + rows + (o // groups,), dtype=rhs.dtype)
        for channel in range(begin, end):
            if batch_groups > 1:
                source = lhs[:, channel].reshape((groups, n) + size)                      # (G, N/G, *size)
            else:
                source = lhs[:, channel::i].transpose(to_groups)                            # (G, N, *size)
            if in_place:  # unpadded, every position read: no copy
                flat = source.reshape(groups, n, 1, image)
            else:
                for k, view, interior in _phase_fills(source, phases, rhs_dilation, rows, pads):
                    images[(slice(None), slice(None), k) + interior] = view
                flat = images.reshape(groups, n, len(phases), image)
            spread[corner] = kernels[:, channel]
            grid = spread.reshape(groups, image, o // groups)[:, :wide]
            for pos, phase, offset in offsets:
                _accumulate(xp.matmul, flat[:, :, phase, offset:offset + wide], grid, total[pos], part, channel == begin)
        return total

    for partial in _in_parallel(work, _split(i, 1)[1])[1:]:
        out += partial
    return _outputs_last(out, n, o, out_sp)


def _outputs_last(out, n, o, out_sp):
    """(*out, G, N, O/G), as the loop over output positions fills it, to (N, O, *out)."""
    nsp = len(out_sp)
    out = out.transpose((nsp + 1, nsp, nsp + 2) + tuple(range(nsp)))                     # (N, G, O/G, *out)
    return xp.ascontiguousarray(out).reshape((n, o) + out_sp)


