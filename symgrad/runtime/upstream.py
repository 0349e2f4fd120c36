"""An upstream gradient of a program over rows, as its pullback takes it (a standalone module's: the
frameworks check their own): the caller's shape checked first, then made rows as the output was."""
import numpy as xp

from .rows import _shape, _to_rows


def _upstream(op, name, a, lead, tail, dim=None, of=None):
    """``a``, the upstream gradient ``name`` of an output made of rows of shape ``tail``, as rows of the
    leading axes ``lead``; a ValueError unless it has the output's shape (the gradient of input ``of``:
    that input's, broadcast to ``lead`` here as the input was)."""
    head = getattr(lead, "heads", {}).get(of)
    want = _shape(lead if head is None else head, tail, dim)
    if a.shape != want:
        what = f"the shape of {of}" if of else "the output's shape"
        raise ValueError(f"{op}: {name} must have {what} {want}, got {a.shape}")
    if head is not None:
        a = xp.broadcast_to(a, _shape(lead, tail, dim))
    return _to_rows(op, (name,), (a,), (len(tail) + 1,), dim)[0][0]
