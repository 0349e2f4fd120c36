"""What a jax-target module takes: anything ``jax.numpy.asarray`` takes, as real floating point."""
import jax.numpy as xp


def _arrays(op, names, values):
    """``values`` as jax arrays of real floats: integers and booleans promoted to the default float
    type (as true division promotes them), complex and other values refused with a TypeError naming
    the op and the input."""
    out = []
    for name, value in zip(names, values):
        a = xp.asarray(value)
        if xp.issubdtype(a.dtype, xp.integer) or a.dtype == xp.bool_:
            a = a.astype(xp.result_type(float))
        elif not xp.issubdtype(a.dtype, xp.floating):
            raise TypeError(f"{op}: input {name} must hold real floating-point numbers, got {a.dtype}")
        out.append(a)
    return out
