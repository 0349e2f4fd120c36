"""Concrete input shapes: checked by the very statements the emitted module runs, then used to
make a derivation's sizes concrete (``--input-shape x=1,3,64``)."""
from __future__ import annotations

import numpy as np
import sympy as sp

from .emit import bind_code
from .ir import SymgradError


def parse_shapes(op, items) -> dict:
    """``["x=1,3,64", "w=16,3,3"]`` -> ``{"x": (1, 3, 64), ...}``; names must be inputs."""
    shapes = {}
    names = [t.name for t in op.inputs]
    for item in items or []:
        name, _, dims = item.partition("=")
        name = name.strip()
        if name not in names or not dims:
            raise SymgradError(f"{op.name}: --input-shape takes NAME=d0,d1,... with NAME one of "
                               f"{', '.join(names)}; got {item!r}")
        try:
            shape = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            raise SymgradError(f"{op.name}: input shape of {name} must be integers, got {dims!r}") from None
        if any(d < 0 for d in shape):
            raise SymgradError(f"{op.name}: input shape of {name} has a negative size: {shape}")
        shapes[name] = shape
    return shapes


def concrete_sizes(op, shapes: dict) -> dict:
    """Size symbol -> int for the given shapes, or SymgradError with the module's own message."""
    if not shapes:
        return {}
    if op.elementwise:
        return {}
    missing = [t.name for t in op.inputs if t.name not in shapes]
    if missing:
        raise SymgradError(f"{op.name}: give --input-shape for every input (missing {', '.join(missing)})")
    lines, sizes = bind_code(op)
    body = "\n".join("    " + line for line in lines)
    args = ", ".join(t.name for t in op.inputs)
    source = f"def _sizes({args}):\n{body}\n    return ({', '.join(map(str, sizes))},)\n"
    namespace = {}
    exec(compile(source, "<symgrad-shapes>", "exec"), namespace)
    arrays = [np.broadcast_to(np.empty((), np.float32), shapes[t.name]) for t in op.inputs]
    try:
        values = namespace["_sizes"](*arrays)
    except ValueError as exc:
        raise SymgradError(str(exc)) from None
    except NameError as exc:
        raise SymgradError(f"{op.name}: concrete shapes need concrete parameters too ({exc})") from None
    return dict(zip(sizes, (sp.Integer(v) for v in values)))
