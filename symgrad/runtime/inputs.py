"""What an emitted module takes: anything ``asarray`` takes (arrays, lists, scalars, objects with
``__array__`` such as CPU torch tensors), as real floating-point arrays."""
import numpy as xp


def _arrays(op, names, values):
    """``values`` as arrays of real floats, in order: integers and booleans promoted to float64 (as
    NumPy's true division promotes them), never truncated; complex, text and object values refused
    with a TypeError naming the op and the input."""
    out = []
    for name, value in zip(names, values):
        if isinstance(value, xp.ndarray):
            a = value
        else:
            try:
                a = xp.asarray(value)
            except (RuntimeError, TypeError, ValueError) as error:  # a torch tensor that requires grad, ragged lists
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise TypeError(f"{op}: input {name} is not an array of numbers ({first}); pass an array "
                                "(a torch tensor: tensor.detach())") from None
        kind = a.dtype.kind
        if kind in "biu":
            a = a.astype(xp.float64)
        elif kind != "f":
            what = {"c": "complex numbers (the elements are real)", "U": "text", "S": "bytes",
                    "O": "Python objects"}.get(kind, f"dtype {a.dtype}")
            raise TypeError(f"{op}: input {name} must hold real numbers, got {what}: {type(value).__name__}")
        out.append(a)
    return out
