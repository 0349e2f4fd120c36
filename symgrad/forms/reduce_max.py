"""``reduce_max``: a max statement's value, the maximum of one tensor over some of its axes (the
stable softmax's row maximum), elements whose brackets are 0 left out; and its tie-splitting
selector ``sel`` (1/count at the maxima, 0 elsewhere), through which its gradient flows (the
derivative of the max, split evenly among ties, as ``torch.amax`` and ``jax.numpy.max`` do).

Not recognised from a term (a max is no sum of products): :func:`max_form` makes it from the
statement."""
from __future__ import annotations

import sympy as sp

from ..ir import Bracket, Term, plain
from ..printing.text import shape_code
from .form import Code, Form, Kind, align, array_of, plain_reads, printed
from .generic import index_mask


def max_form(stmt, tensors) -> Form:
    """The ``reduce_max`` form of a max statement (its body: brackets times one plain read)."""
    guards = tuple(c for b in sp.Mul.make_args(stmt.rhs) if isinstance(b, Bracket)
                   for c in sorted(sp.And.make_args(b.args[0]), key=sp.default_sort_key))  # hash-free order
    read = next(a for a in sp.Mul.make_args(stmt.rhs) if isinstance(a, sp.Indexed))
    term = Term(read, sums=tuple(stmt.over), guards=guards)
    out_vars = () if stmt.output.scalar else tuple(plain(i) for i in stmt.indices)  # a scalar: over every axis
    over = [v for v, _, _ in stmt.over]
    reads = plain_reads([read], tensors)[0]
    return Form("reduce_max", {"operand": read.base.name, "axes": [k for k, v in enumerate(reads) if v in over]},
                term, layout={"vars": reads, "grid": out_vars + tuple(over)})


class ReduceMax(Kind):
    name = "reduce_max"

    def match(self, term, tensors, out_vars, target):
        return None  # made from max statements only (max_form)

    def grid(self, form, target, printer) -> list:
        """``_body``: the operand over the grid (output axes, then the reduced ones), -inf where a
        bracket is 0."""
        vars_, grid, xp = form.layout["vars"], form.layout["grid"], target.backend.xp
        lines = [f"_body = {align(array_of(form.fields['operand'], target.tensors), vars_, grid, target.backend)}"]
        extents = list(target.tensor.dims if not target.tensor.scalar else []) + [hi + 1 for _, _, hi in form.term.sums]
        if set(grid) - set(vars_):  # an output axis the operand lacks: the maximum is the same along it
            lines.append(f"_body = {xp}.broadcast_to(_body, {shape_code(extents)})")
        if form.term.guards:
            grids, mask = index_mask(form.term.guards, grid, extents, printer, target.backend, "_body")
            lines += grids + [f"_body = {xp}.where({mask}, _body, -{xp}.inf)"]
        return lines

    def code(self, form, target):
        printer = target.backend.make_printer()
        axes = tuple(range(len(form.layout["grid"]) - len(form.term.sums), len(form.layout["grid"])))
        lines = self.grid(form, target, printer) + [f"{target.out} = {target.backend.xp}.amax(_body, axis={axes})"]
        if target.tensor.scalar:
            lines.append(f"{target.out} = {target.out}.reshape(())")
        return printed(lines, printer)

    def selector(self, form, target, value: str) -> Code:
        """Statements leaving the selector in ``target.out``, the max being ``value``."""
        printer = target.backend.make_printer()
        n = len(form.term.sums)
        axes = tuple(range(len(form.layout["grid"]) - n, len(form.layout["grid"])))
        xp = target.backend.xp
        widened = f"{xp}.reshape({value}, tuple({value}.shape) + (1,) * {n})"
        lines = self.grid(form, target, printer) + [
            f"{target.out} = (_body == {widened}) * {xp}.ones_like(_body)",  # in the operand's dtype, on its device
            f"{target.out} = {target.out} / {target.out}.sum(axis={axes}, keepdims=True)"]
        return printed(lines, printer)

    def describe(self, form, show=None):
        f = form.fields
        left = " (elements whose bracket is 0 left out)" if form.term.guards else ""
        return [f"maximum of {f['operand']} over axes {tuple(f['axes'])}{left}; its gradient is split evenly "
                "among tied maxima"]

    def formulation(self, form, backend, blockwise=False, jit=False):
        return f"one reduction ({backend.xp}.amax); the backward's selector one comparison"


REDUCE_MAX = ReduceMax()
