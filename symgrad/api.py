"""One call from a definition to a module you can call: :func:`module`."""
from __future__ import annotations

from .ir import Op, SymgradError
from .program import Program


def module(source, target: str = "numpy", order: int = 2, forward_mode: bool = False):
    """The emitted module of ``source`` — program text in the text syntax, a :class:`~symgrad.program.Program`
    or an :class:`~symgrad.ir.Op` — loaded and ready to call.  ``target``: ``numpy`` or ``cupy`` (a
    standalone module: ``forward``, ``backward``, ``vjp``, ``double_backward`` with ``order=2`` where it
    is derived, ``jvp``), ``torch`` (a native torch op, an autograd function over it and its functional
    wrapper) or ``jax`` (a ``jax.custom_jvp``, and a ``jax.custom_vjp`` as ``<name>_vjp``).  ``forward_mode``: the module of the Jacobian-vector
    product, derived as a program of its own (:mod:`symgrad.forward_mode`): its ``forward`` takes
    the inputs and one tangent per input and returns the outputs and their tangents.

    >>> m = module("input x[N]\\ny[n] = x[n] + x[n - 1]")
    >>> m.forward([1.0, 2.0, 3.0])  # x[-1] is outside x: that read is 0
    array([1., 3., 5.])
    """
    from .derive import derive
    from .emit import emit, emit_target, load
    from .emit.program import emit_program
    from .reverse import derive_program
    from .second_order import derive_program_second_order
    from .syntax import parse_program
    if target not in ("numpy", "cupy", "torch", "jax"):
        raise SymgradError(f"module: target must be numpy, cupy, torch or jax, got {target!r}")
    if order not in (1, 2):
        raise SymgradError(f"module: order must be 1 or 2, got {order!r}")
    if isinstance(source, str):
        source = parse_program(source)
    if forward_mode:
        from .forward_mode import jvp_program
        source = jvp_program(source)
    if isinstance(source, Op):
        d = derive(source)
        text = emit_target(d, target) if target in ("torch", "jax") else emit(d, target, order)
        return load(text, f"symgrad_{source.name}")
    if not isinstance(source, Program):
        raise SymgradError(f"module: give program text, a Program or an Op, got {type(source).__name__}")
    d, second, refused = derive_program(source), None, None
    if order == 2:
        try:
            second = derive_program_second_order(d)
        except SymgradError as exc:  # (a max whose gradient flows: double_backward says why it is not derived)
            refused = str(exc)
    return load(emit_program(d, target, second=second, second_refused=refused), f"symgrad_{source.name}")
