"""Programs over rows (softmax, layer norm, attention) take any number of leading axes, as PyTorch
does: they are flattened into one before the statements run and restored after."""
import numpy as xp


#: the leading shape of a 0-d input taken along ``dim``
SCALAR = "0-d"


def _to_rows(op, names, arrays, ranks, dim=None):
    """Each array with axis ``dim`` moved last (when given) and its leading axes flattened into one
    (``ranks``: the rule's number of axes, the first standing for all leading ones); all arrays must
    share those leading axes.  Returns the arrays and the leading shape.

    >>> import numpy
    >>> rows, lead = _to_rows("softmax", ("x",), (numpy.zeros((2, 3, 4)),), (2,))
    >>> rows[0].shape, lead
    ((6, 4), (2, 3))
    """
    out, lead = [], None
    for name, a, rank in zip(names, arrays, ranks):
        if dim is not None:
            if not -max(a.ndim, 1) <= dim < max(a.ndim, 1):  # (a 0-d input takes -1 and 0, as torch)
                raise ValueError(f"{op}: dim {dim} is out of range for input {name} with {a.ndim} axes")
            if not a.ndim:  # a 0-d input, as torch takes it (softmax of a scalar is 1): one row of one
                out.append(a.reshape((1, 1)))
                lead = SCALAR
                continue
            a = xp.moveaxis(a, dim, -1)
        if a.ndim < rank - 1:
            raise ValueError(f"{op}: input {name} needs at least {rank - 1} axes, got shape {a.shape}")
        head = tuple(a.shape[:a.ndim - rank + 1])
        if lead is None:
            lead = head
        elif head != lead:
            raise ValueError(f"{op}: the leading axes of input {name} {head} differ from {names[0]}'s {lead}")
        size = 1
        for n in head:
            size *= n
        out.append(a.reshape((size,) + tuple(a.shape[len(head):])))
    return out, lead


def _from_rows(a, lead, dim=None):
    """``a`` with its first axis restored to the leading axes ``lead`` and, with ``dim``, its last
    axis moved back to ``dim`` (a 0-d input's result 0-d again)."""
    if lead is SCALAR:
        return a.reshape(())
    a = a.reshape(tuple(lead) + tuple(a.shape[1:]))
    return a if dim is None or not a.ndim else xp.moveaxis(a, -1, dim)
