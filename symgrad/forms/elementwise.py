"""``elementwise``: a pointwise expression of tensor elements read at the target's own indices (no
sums, no guards): GELU and its gradient, a bias, the outer product of a matmul with a vector."""
from __future__ import annotations

import sympy as sp

from .. import naming
from ..printing.array import array_code, array_statements
from ..printing.scalar import c_code
from ..printing.text import shape_code, text
from .generic import guard_code, index_mask
from .kernels import KERNELS, recognise
from .form import Code, Form, Kind, align, array_of, plain_reads, printed, same_size


def _c_bodies(factor):
    """The fused kernel's C bodies (for float64; for float32/float16, the reads widened to double), or
    None when C has no function for part of the expression (polygamma, Bessel functions): the array
    code then runs it, with cupyx.scipy.special."""
    try:
        return c_code(factor), c_code(factor, widen=True)
    except (NotImplementedError, ValueError):
        return None


def mask_statements(guards, target, printer) -> list:
    """``target.out`` set to 0 where a guard on the target's indices fails (index grids, one where),
    and wholly where a guard on sizes alone fails (a Python bool: no array to take a where of)."""
    indexed = [g for g in guards if g.free_symbols & set(target.out_vars)]
    dims, out, lines = shape_code(target.tensor.dims), target.out, []
    if indexed:
        lines, mask = index_mask(indexed, target.out_vars, target.tensor.dims, printer, target.backend, out)
        lines.append(f"{out} = {printer.module}.where({mask}, {printer.module}.broadcast_to({out}, {dims}), 0)")
    sizes = [g for g in guards if g not in indexed]
    if sizes:
        holds = " and ".join(f"({guard_code(g, printer)})" for g in sizes)
        xp = printer.module
        lines.append(f"{out} = {out} if {holds} else {xp}.zeros_like({xp}.broadcast_to({out}, {dims}))")
    return lines


def _aligned(form) -> dict:
    """Each tensor read of the form -> the symbol naming its operand in the code (``x_1``)."""
    return {acc: sp.Symbol(naming.aligned(spec["tensor"], k))
            for k, (acc, spec) in enumerate(zip(form.term.accesses, form.layout["operands"]))}


def kernel(factor, backend):
    """The framework kernel computing ``factor`` on ``backend`` (:mod:`.kernels`), or None."""
    return recognise(factor, backend.name) if backend.name in KERNELS else None


class Elementwise(Kind):
    name = "elementwise"

    def match(self, term, tensors, out_vars, target):
        if any(lo == hi for _, lo, hi in term.sums):  # a sum over one value is that value (a scalar's axis)
            term = term.subs({v: lo for v, lo, hi in term.sums if lo == hi})
        if term.sums or any(not g.free_symbols <= set(out_vars) for g in term.guards):
            return None  # guards on the target's own indices are a mask (a causal mask)
        accesses = term.accesses
        reads = plain_reads(accesses, tensors)
        if reads is None or any(v not in out_vars for read in reads for v in read if v is not None):
            return None
        extent = dict(zip(out_vars, target.dims))
        for access, read in zip(accesses, reads):  # an axis longer or shorter than the target's (a guarded read)
            dims = tensors[access.base.name].dims
            if any(v is not None and not same_size(extent[v], d) for v, d in zip(read, dims)):
                return None
        operands = [{"tensor": a.base.name, "vars": read} for a, read in zip(accesses, reads)]
        fields = {"expr": term.factor, "operands": [a.base.name for a in accesses]}
        if term.guards:
            fields["mask"] = [text(g) for g in term.guards]
        return Form(self.name, fields, term, layout={"operands": operands})

    def code(self, form, target):
        lines, mapping = [], _aligned(form)
        for symbol, spec in zip(mapping.values(), form.layout["operands"]):
            read = align(array_of(spec["tensor"], target.tensors), spec["vars"], target.out_vars, target.backend) \
                if target.shaped else spec["tensor"]
            lines.append(f"{symbol} = {read}")
        factor = form.term.factor.xreplace(mapping)
        bodies = _c_bodies(factor) if target.backend.fused and self._one_kernel(form, factor, mapping, target) else None
        if bodies:
            params = ", ".join(f"T {m}" for m in mapping.values())
            args = ", ".join(str(m) for m in mapping.values())
            first = str(next(iter(mapping.values())))
            lines.append(f"body = {bodies[0]!r} if {first}.dtype == xp.float64 else {bodies[1]!r}")
            lines.append(f"{target.out} = fused({params!r}, body, {('symgrad_' + target.out)!r})({args})")
            return Code(tuple(lines), frozenset({"fused"}))
        printer = target.backend.make_printer()
        widen = target.backend.widen and not target.shaped  # an elementwise op's operands, in float64
        derived = [f"{m} = {target.backend.widen}({m})" for m in mapping.values()] if widen else []
        derived += array_statements(factor, target.out, printer)
        if not mapping and target.shaped:  # a constant: an array of it, of the target's shape
            ones = target.backend.new("ones", shape_code(target.tensor.dims), target.like or target.tensor.name)
            derived[-1] = f"{target.out} = {array_code(factor, printer)} * {ones}"
        if form.term.guards:
            derived += mask_statements(form.term.guards, target, printer)
        elif target.shaped and set(target.out_vars) - {v for s in form.layout["operands"] for v in s["vars"]}:
            derived.append(f"{target.out} = {printer.module}.broadcast_to({target.out}, {shape_code(target.tensor.dims)})")
        match = self._one_kernel(form, factor, mapping, target) and kernel(factor, target.backend)
        if not match:
            return printed(lines + derived, printer)
        # the framework's own kernel where it is trusted (forms/kernels.py), the derived expression elsewhere
        narrow, double = ("float('inf')" if b == float("inf") else repr(b) for b in match.bound)
        lines += [f"if _within({match.args[match.kernel.argument]}, {narrow}, {double}):",
                  f"    {target.out} = {match.call()}", "else:"] + [f"    {line}" for line in derived]
        return printed(lines, printer, {"within"})

    @staticmethod
    def _one_kernel(form, factor, mapping, target) -> bool:
        """Whether one CUDA kernel computes the form: an op's aligned operands, or a program
        statement's whose broadcast covers every axis of its target, reading nothing but them (no
        size in the expression, no mask)."""
        if not target.shaped:
            return True
        if not mapping or not factor.free_symbols <= set(mapping.values()):
            return False
        covered = {v for spec in form.layout["operands"] for v in spec["vars"]}
        return not form.term.guards and set(target.out_vars) <= covered

    def describe(self, form, show=None):
        mask = f", zero where not {' and '.join(form.fields['mask'])}" if "mask" in form.fields else ""
        return [f"pointwise expression (no sums){mask}"]

    def formulation(self, form, backend, blockwise=False, jit=False):
        if backend.fused:
            return "one fused elementwise kernel"
        loop = "one numba loop when numba is installed, else " if jit else ""
        blocks = " in cache-sized blocks" if blockwise else ""
        wide = "; float16/float32 computed in float64, rounded once" if blockwise or jit else ""
        if getattr(jit, "wide", ()):
            wide += "; float64 in double-double, rounded once"
        expression = f"{loop}{backend.expression_runs}{blocks}{wide}"
        match = not form.term.guards and kernel(form.term.factor.xreplace(_aligned(form)), backend)
        if match:
            arg = match.kernel.params.index(match.kernel.argument)
            return (f"{match.kernel.name} (the framework's fused kernel; SymPy proves it computes this expression) "
                    f"where every {form.layout['operands'][arg]['tensor']} is finite and within its range, "
                    f"else {expression}")
        return expression

ELEMENTWISE = Elementwise()
