"""Emit a standalone backward module from a derivation (:mod:`module`), with the runtime pieces it
calls inlined (:mod:`inline`) and elementwise functions as numba loops (:mod:`loops`).

>>> import symgrad
>>> from symgrad.emit import emit, load
>>> gelu = load(emit(symgrad.derive(symgrad.ops.gelu())))
>>> float(gelu.backward(1.0, 0.0)[0])
0.5
"""
from .module import emit, load, module_context

__all__ = ["emit", "load", "module_context"]
