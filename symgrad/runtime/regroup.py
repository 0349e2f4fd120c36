"""A kernel's groups moved between its axes (a grouped convolution's input gradient swaps in and
out channels within each group): array-library agnostic, so every target's modules share it."""
import numpy as xp


def regroup(a, groups, from_axis, to_axis):
    """Move the group factor (major part) of axis ``from_axis`` onto axis ``to_axis``."""
    shape = list(a.shape)
    a = a.reshape(shape[:from_axis] + [groups, shape[from_axis] // groups] + shape[from_axis + 1:])
    target = to_axis + (1 if to_axis > from_axis else 0)
    dest = target - 1 if target > from_axis else target
    a = xp.moveaxis(a, from_axis, dest)
    merged = list(a.shape)
    merged[dest:dest + 2] = [merged[dest] * merged[dest + 1]]
    return a.reshape(merged)
