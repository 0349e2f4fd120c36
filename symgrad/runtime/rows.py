"""Programs over rows (softmax, layer norm, attention) take any number of leading axes, as PyTorch
does: they are flattened into one before the statements run and restored after.  Inputs' leading
axes broadcast against each other (as torch's scaled_dot_product_attention's batch axes do); an
input's gradient is summed back over the axes it was broadcast along."""
import numpy as xp


#: the leading shape of a 0-d input taken along ``dim``
SCALAR = "0-d"


class Lead(tuple):
    """The leading shape the rows were flattened from, and each input's own leading shape (``heads``:
    name -> shape) where it was broadcast to it."""

    def __new__(cls, shape, heads):
        lead = super().__new__(cls, shape)
        lead.heads = heads
        return lead


def _leading(op, heads):
    """The shape the inputs' leading axes (``heads``: name -> shape) broadcast to; a ValueError naming
    each input's where they do not (the sizes check of symgrad/sizes.py asks the same before any array
    exists)."""
    shapes = set(heads.values())
    if len(shapes) == 1:  # nothing to broadcast (the common case; broadcast_shapes costs a small call's time)
        return shapes.pop()
    try:
        return tuple(xp.broadcast_shapes(*heads.values()))
    except (ValueError, RuntimeError):
        told = ", ".join(f"{name} {head}" for name, head in heads.items())
        raise ValueError(f"{op}: the leading axes of the inputs do not broadcast together: {told}") from None


def _to_rows(op, names, arrays, ranks, dim=None, exact=()):
    """Each array with axis ``dim`` moved last (when given; a 0-d array is one row of one, as torch
    takes it) and its leading axes flattened into one (``ranks``: the rule's number of axes, the
    first standing for all leading ones); the inputs' leading axes broadcast together, but for those
    named in ``exact`` (upstream gradients), which must have the others' (the output's) themselves.
    Returns the arrays and the leading shape (a :class:`Lead`; :data:`SCALAR` where all are 0-d).

    >>> import numpy
    >>> rows, lead = _to_rows("softmax", ("x",), (numpy.zeros((2, 3, 4)),), (2,))
    >>> rows[0].shape, lead
    ((6, 4), (2, 3))
    >>> rows, lead = _to_rows("attention", ("q", "k"), (numpy.zeros((4, 3, 8)), numpy.zeros((2, 4, 6, 8))), (3, 3))
    >>> [r.shape for r in rows], lead, lead.heads
    ([(8, 3, 8), (8, 6, 8)], (2, 4), {'q': (4,)})
    """
    moved, heads = [], {}
    for name, a, rank in zip(names, arrays, ranks):
        if dim is not None:
            if not -max(a.ndim, 1) <= dim < max(a.ndim, 1):  # (a 0-d input takes -1 and 0, as torch)
                raise ValueError(f"{op}: dim {dim} is out of range for input {name} with {a.ndim} axes")
            if not a.ndim:  # softmax of a scalar is 1
                a = a.reshape((1,))
            elif dim % a.ndim != a.ndim - 1:  # (already last: no view to make, as at the default dim=-1)
                a = xp.moveaxis(a, dim, -1)
        if a.ndim < rank - 1:
            raise ValueError(f"{op}: input {name} needs at least {rank - 1} axes, got shape {a.shape}")
        moved.append(a)
        heads[name] = tuple(a.shape[:a.ndim - rank + 1])
    scalar = dim is not None and not any(a.ndim for name, a in zip(names, arrays) if name not in exact)
    shape = _leading(op, {name: head for name, head in heads.items() if name not in exact})
    for name, a, given in zip(names, moved, arrays):
        if name in exact and (heads[name] != shape or scalar and given.ndim):
            want = _shape(SCALAR if scalar else shape, a.shape[len(heads[name]):], dim)
            raise ValueError(f"{op}: {name} must have the output's shape {want}, got {given.shape}")
    size = 1
    for n in shape:
        size *= n
    out = []
    for name, a in zip(names, moved):
        tail = tuple(a.shape[len(heads[name]):])
        if heads[name] != shape:
            a = xp.broadcast_to(a, shape + tail)
        out.append(a.reshape((size,) + tail))
    return out, SCALAR if scalar else Lead(shape, {name: head for name, head in heads.items() if head != shape})


def _shape(lead, tail, dim=None):
    """The shape :func:`_from_rows` gives rows of shape ``tail`` (an upstream gradient must have it).

    >>> _shape((2, 3), (4,), 1), _shape(SCALAR, (1,), -1)
    ((2, 4, 3), ())
    """
    if lead is SCALAR:
        return ()
    shape = tuple(lead) + tuple(tail)
    if dim is None or not shape or dim % len(shape) == len(shape) - 1:
        return shape
    at = dim % len(shape)
    return shape[:at] + shape[-1:] + shape[at:-1]


def _from_rows(a, lead, dim=None, of=None):
    """``a`` with its first axis restored to the leading axes ``lead`` and, with ``dim``, its last
    axis moved back to ``dim`` (a 0-d input's result 0-d again).  ``of``: the input whose gradient
    ``a`` is; summed over the leading axes that input was broadcast along."""
    if lead is SCALAR:
        return a.reshape(())
    tail = tuple(a.shape[1:])
    a = a.reshape(tuple(lead) + tail)
    head = getattr(lead, "heads", {}).get(of)
    if head is not None:
        extra = len(lead) - len(head)
        spread = tuple(range(extra)) + tuple(extra + k for k, n in enumerate(head) if n == 1 and lead[extra + k] != 1)
        a = a.sum(axis=spread).reshape(head + tail) if spread else a
    return a if dim is None or not a.ndim or dim % a.ndim == a.ndim - 1 else xp.moveaxis(a, -1, dim)
