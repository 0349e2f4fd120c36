"""The arrays an emitted module returns are the caller's to keep and write to."""
import numpy as xp


def _owned(a):
    """``a`` as an array (a NumPy scalar from a 0-d computation becomes a 0-d array) of its own: a copy
    when it is a read-only view or a broadcast (an axis of stride 0, every element of which is one
    memory location), so the caller may write to what it gets.

    >>> import numpy
    >>> _owned(numpy.broadcast_to(numpy.zeros(1), (3,))).flags.writeable
    True
    """
    a = xp.asarray(a)
    if not getattr(a.flags, "writeable", True) or any(step == 0 and n > 1 for step, n in zip(a.strides, a.shape)):
        return a.copy()
    return a
