"""Programs: an operator of several statements, each one index-notation rule defining one tensor
from the inputs and earlier tensors (softmax, layer norm, attention, conv → bias → GELU).

A :class:`Statement` is ``output[indices] = rhs`` as in an :class:`~symgrad.ir.Op`, or a
reduction by max (``over`` the indices the maximum runs over; ``rhs`` is the body), or marked
``stop`` (stop_gradient: the forward computes it, no adjoint flows back through it).  Inside a
rule two markers may appear and are hoisted into statements of their own by
:func:`symgrad.engine.program.normalise`: :class:`StopGradient` and :class:`MaxOver`; a ``Sum``
inside a non-linear function is hoisted the same way (it becomes its own statement).

Conventions: reads outside a tensor's range are zero (padding is a bracket, as in every rule); the
maximum's derivative is split evenly among tied maxima (as ``torch.amax`` and ``jax.numpy.max``
do), and brackets in a max's body restrict the range the maximum runs over (an element whose
bracket is 0 is left out, not taken as 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .ir import Op, SymgradError, Tensor, plain


class StopGradient(sp.Function):
    """``stop_gradient(e)``: the value of ``e``, through which no gradient flows (hoisted into a
    ``stop`` statement before anything is derived)."""

    nargs = 1

    @classmethod
    def eval(cls, value):
        if value.is_number:  # a constant passes no gradient anyway (and max/min can then compare it)
            return value
        return None

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def fdiff(self, argindex=1):
        return sp.S.Zero


class MaxOver(sp.Function):
    """``MaxOver(body, j, lo, hi)``: max over ``j`` in ``lo..hi`` of ``body`` (hoisted into a max
    statement before anything is derived)."""

    nargs = 4


class IndexMap(sp.Function):
    """A declared non-affine index map of an affine index ``e`` into ``0..n-1``, PyTorch's padding
    modes: :class:`Wrap` (circular), :class:`Reflect` (reflect), :class:`Clamp` (replicate).  A read
    ``x[Wrap(i - 1, L)]`` is expanded before anything is derived into the sum of its affine pieces
    under brackets (``pieces``), so its adjoint folds the gradient back onto the input."""

    nargs = 2

    @classmethod
    def pieces(cls, e, n) -> list:
        """``[(condition, affine index), …]`` covering every value of ``e``."""
        raise NotImplementedError


class Wrap(IndexMap):
    """``e mod n`` for e in [−n, 2n): circular padding."""

    @classmethod
    def pieces(cls, e, n):
        return [(sp.Lt(e, 0), e + n), (sp.And(sp.Le(0, e), sp.Lt(e, n)), e), (sp.Ge(e, n), e - n)]


class Reflect(IndexMap):
    """``e`` reflected at both ends without repeating the edge, for e in (−n, 2n − 1): reflect padding."""

    @classmethod
    def pieces(cls, e, n):
        return [(sp.Lt(e, 0), -e), (sp.And(sp.Le(0, e), sp.Lt(e, n)), e), (sp.Ge(e, n), 2 * n - 2 - e)]


class Clamp(IndexMap):
    """``e`` clamped to 0..n−1: replicate padding."""

    @classmethod
    def pieces(cls, e, n):
        return [(sp.Lt(e, 0), sp.S.Zero), (sp.And(sp.Le(0, e), sp.Lt(e, n)), e), (sp.Ge(e, n), n - 1)]


#: the padding modes by PyTorch's names
PADDING_MODES = {"circular": Wrap, "reflect": Reflect, "replicate": Clamp}


def max_over(body, *limits) -> sp.Expr:
    """``max_over(x[n, j], (j, 0, D - 1))``: the maximum over one or more index ranges."""
    for v, lo, hi in reversed(limits):
        body = MaxOver(body, plain(v), lo, hi)
    return body


@dataclass(frozen=True)
class Statement:
    """``output[indices] = rhs`` (``over`` empty), or ``output[indices] = max over `over` of rhs``.

    ``indices`` are ``Idx`` (one per output axis); ``over`` holds ``(symbol, lo, hi)`` with
    inclusive bounds; ``line`` is where the statement was written (text syntax), for errors;
    ``prefer``: summation variables its Kronecker deltas are solved for first (a gradient taken as a
    statement: the forward statement's indices, as when it was first derived).
    """

    output: Tensor
    indices: tuple
    rhs: sp.Expr
    over: tuple = ()
    stop: bool = False
    line: int = None
    prefer: tuple = ()

    @property
    def name(self) -> str:
        return self.output.name

    @property
    def reads(self) -> list:
        """The names of the tensors the statement reads, in a stable order."""
        return sorted({a.base.name for a in sp.sympify(self.rhs).atoms(sp.Indexed)})

    def where(self, program: str, k: int) -> str:
        """How errors name the statement: ``layer_norm, statement 3 (var)``, with its line if any."""
        at = f", line {self.line}" if self.line is not None else ""
        return f"{program}, statement {k + 1} ({self.name}{at})"


@dataclass
class Program:
    """An operator of several statements.

    ``inputs`` are the tensors the caller passes (every one gets a gradient); ``statements`` define
    the other tensors in order; ``outputs`` name the tensors returned (default: the last
    statement's).  ``output_sizes``/``requires`` as in :class:`~symgrad.ir.Op` (sizes the module
    computes from the inputs', and conditions on them).  ``leading``: a size symbol leading some
    inputs and the outputs that stands for any number of leading axes (flattened into one, as
    ``softmax`` or ``layer_norm`` take ``(..., D)``); ``dim``: the module takes a ``dim`` argument
    and moves that axis of those inputs last first (softmax over any axis); ``constants``: symbols
    the module binds from its inputs (``eps`` as ``{xp}.finfo(x.dtype).eps``), symbol -> code, ``{xp}``
    standing for what the module calls its array module;
    ``origin``: where its text came from (``--rule``, a file), None for a program built in Python.
    """

    name: str
    params: dict
    inputs: tuple
    statements: tuple
    outputs: tuple = ()
    output_sizes: dict = field(default_factory=dict)
    requires: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    leading: sp.Symbol = None
    dim: bool = False
    constants: dict = field(default_factory=dict)
    origin: str = None

    def __post_init__(self):
        self.statements = tuple(self.statements)
        self.inputs = tuple(self.inputs)
        if not self.outputs and self.statements:
            self.outputs = (self.statements[-1].name,)
        self.outputs = tuple(self.outputs)

    @property
    def tensors(self) -> dict:
        """Every tensor of the program by name: the inputs and each statement's output."""
        return {**{t.name: t for t in self.inputs}, **{s.name: s.output for s in self.statements}}

    def statement(self, name: str) -> Statement:
        for s in self.statements:
            if s.name == name:
                return s
        raise SymgradError(f"{self.name}: no statement defines {name!r}")

    def interface(self) -> Op:
        """The program as the shape checks see it: its inputs, its first output, its sizes (the leading
        axes may hold no rows: an empty batch, as in PyTorch)."""
        out = self.tensors[self.outputs[0]]
        return Op(self.name, dict(self.params), self.inputs, out, (), sp.S.Zero, dict(self.output_sizes),
                  list(self.requires), empty_ok=frozenset({self.leading} if self.leading is not None else ()))


def rule(output: Tensor, indices, rhs, stop: bool = False) -> Statement:
    """A statement ``output[indices] = rhs`` (Python builders; :mod:`symgrad.syntax` for text)."""
    return Statement(output, tuple(indices), sp.sympify(rhs), stop=stop)
