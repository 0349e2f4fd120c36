"""A kernel's groups moved between its axes (a grouped convolution's input gradient swaps in and
out channels within each group): array-library agnostic, so every target's modules share it."""
import numpy as xp


def regroup(a, groups, from_axis, to_axis):
    """Move the group factor (major part) of axis ``from_axis`` onto axis ``to_axis``."""
    shape = list(a.shape)
    a = a.reshape(shape[:from_axis] + [groups, shape[from_axis] // groups] + shape[from_axis + 1:])
    a = xp.moveaxis(a, from_axis, to_axis)  # the group factor, now at to_axis, just before that axis's sizes
    merged = list(a.shape)
    merged[to_axis:to_axis + 2] = [merged[to_axis] * merged[to_axis + 1]]
    return a.reshape(merged)
