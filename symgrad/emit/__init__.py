"""Emit a standalone backward module from a derivation (:mod:`module`), with the runtime pieces it
calls inlined (:mod:`inline`) and elementwise functions as numba loops (:mod:`loops`); or the same
derivation as a torch.autograd.Function or a jax.custom_vjp (:mod:`framework`).

>>> import symgrad
>>> from symgrad.emit import emit, load
>>> gelu = load(emit(symgrad.derive(symgrad.ops.gelu())))
>>> float(gelu.backward(1.0, 0.0)[0])
0.5
"""
from .framework import emit_target
from .module import emit, load, module_context

__all__ = ["emit", "emit_target", "load", "module_context"]
