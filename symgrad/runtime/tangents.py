"""What an emitted module's ``jvp`` takes: one primal and one tangent per input, a tangent of None
being zero (as torch.func.jvp and jax.jvp take them)."""
import numpy as xp

from .inputs import _arrays


def _primals_and_tangents(op, names, primals, tangents):
    """``primals`` and ``tangents`` as two tuples of arrays, one per input (``names``), each tangent of
    its primal's shape (None: zeros); a TypeError or ValueError names the op and the input otherwise."""
    primals, tangents = tuple(primals), tuple(tangents)
    for what, values in (("primals", primals), ("tangents", tangents)):
        if len(values) != len(names):
            raise TypeError(f"{op}: jvp takes one of {what} per input ({', '.join(names)}), got {len(values)}")
    primals = tuple(_arrays(op, names, primals))
    out = []
    for name, primal, tangent in zip(names, primals, tangents):
        if tangent is None:
            out.append(xp.zeros(primal.shape, primal.dtype))
            continue
        tangent, = _arrays(op, (f"{name}'s tangent",), (tangent,))
        if tangent.shape != primal.shape:
            raise ValueError(f"{op}: the tangent of {name} must have {name}'s shape {primal.shape}, got {tangent.shape}")
        out.append(tangent)
    return primals, tuple(out)
