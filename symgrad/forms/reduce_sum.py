"""``reduce_sum``: one tensor summed over some of its axes, times a constant (a bias gradient)."""
from __future__ import annotations

import sympy as sp

from ..printing.text import shape_code
from .form import Code, Form, Kind, align, array_of, constant_scale, plain_reads, printed, scaled


class ReduceSum(Kind):
    name = "reduce_sum"
    numeric_fields = ("axes", "scale")

    def match(self, term, tensors, out_vars, target):
        scale, rest = constant_scale(term.factor)
        if not term.sums or term.guards or not isinstance(rest, sp.Indexed):
            return None
        reads = plain_reads([rest], tensors)
        sums = {v for v, _, _ in term.sums}
        if reads is None or set(v for v in reads[0] if v is not None) - sums - set(out_vars):
            return None
        if sums - set(reads[0]):
            return None  # a sum over a variable nothing reads: a count, not a reduction
        axes = [k for k, v in enumerate(reads[0]) if v in sums or v is None]
        return Form(self.name, {"operand": rest.base.name, "axes": axes, "scale": scale}, term,
                    layout={"operands": [{"tensor": rest.base.name, "vars": reads[0]}]})

    def code(self, form, target) -> Code:
        spec = form.layout["operands"][0]
        sums = {v for v, _, _ in form.term.sums}
        kept = [v for v in spec["vars"] if v is not None and v not in sums]
        printer = target.backend.make_printer()
        value = scaled(f"xp.sum({array_of(spec['tensor'], target.tensors)}, axis={tuple(form.fields['axes'])})",
                       form.fields, printer)
        out = target.out
        aligned = align(out, kept, target.out_vars, target.backend)
        return printed([f"{out} = {value}", f"{out} = {aligned}" if set(kept) >= set(target.out_vars) else
                        f"{out} = xp.broadcast_to({aligned}, {shape_code(target.tensor.dims)})"], printer)

    def describe(self, form, show=None):
        f = form.fields
        return [f"sum of {f['operand']} over axes {tuple(f['axes'])}"]

    def formulation(self, form, backend, blockwise=False, jit=False):
        return "one reduction (xp.sum)"


REDUCE_SUM = ReduceSum()
