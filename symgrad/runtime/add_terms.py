"""Adding a gradient's terms when one of them is an array the module just made."""
import numpy as xp


def _add_terms(fresh, *others):
    """fresh + others; the sum goes into ``fresh`` (an array this module just made) when it has
    the result's shape and dtype, which saves a full-size temporary."""
    total = fresh
    for other in others:
        if total.shape == xp.broadcast(total, other).shape and total.dtype == xp.result_type(total, other):
            total += other
        else:
            total = total + other
    return total
