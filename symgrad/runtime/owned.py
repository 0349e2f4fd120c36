"""The arrays an emitted module returns are the caller's to keep and write to."""


def _owned(a):
    """``a`` itself, or a copy of it when it is a read-only view or a broadcast (an axis of stride 0,
    every element of which is one memory location): the caller may write to what it gets.

    >>> import numpy
    >>> _owned(numpy.broadcast_to(numpy.zeros(1), (3,))).flags.writeable
    True
    """
    if not getattr(a.flags, "writeable", True) or any(step == 0 and n > 1 for step, n in zip(a.strides, a.shape)):
        return a.copy()
    return a
