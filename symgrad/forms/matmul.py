"""``matmul``: a contraction of two tensors over shared summed indices, with batch indices they both
keep (``jax.lax.dot_general``); the ``einsum`` field says the same in ``numpy.einsum``'s terms."""
from __future__ import annotations

import string

import sympy as sp

from .. import naming
from ..printing.text import shape_code
from .form import Form, Kind, align, array_of, constant_scale, plain_reads, printed, scaled


def _einsum(reads, out_vars) -> str:
    """``numpy.einsum`` subscripts of the two operands and the result.  A size-1 axis read at 0 gets
    a letter of its own, which einsum sums over (one element: the same value); the result has the
    target's axes that an operand reads (the value is constant along the others: ``broadcast``)."""
    letters = {}
    spare = iter(reversed(string.ascii_letters))
    for v in [*out_vars, *(v for read in reads for v in read if v is not None)]:
        letters.setdefault(v, string.ascii_letters[len(letters)])
    spec = lambda vs: "".join(next(spare) if v is None else letters[v] for v in vs)
    read = {v for r in reads for v in r}
    return f"{spec(reads[0])},{spec(reads[1])}->{spec([v for v in out_vars if v in read])}"


def _result(pl, pr, sums, out_vars) -> list:
    """dot_general's result axes for operands reading ``pl`` and ``pr``: batch, lhs free, rhs free."""
    batch = [v for v in out_vars if v in pl and v in pr]
    contract = [v for v in pl if v in sums and v in pr]
    return batch + [v for v in pl if v not in contract and v not in batch] + \
        [v for v in pr if v not in contract and v not in batch]


class Matmul(Kind):
    name = "matmul"
    numeric_fields = ("scale",)

    def match(self, term, tensors, out_vars, target):
        scale, rest = constant_scale(term.factor)
        if term.guards or not isinstance(rest, sp.Mul) or len(rest.args) != 2:
            return None
        if not all(isinstance(a, sp.Indexed) for a in rest.args) or rest.args[0].base == rest.args[1].base:
            return None
        order = list(tensors)  # the op's inputs in order, then its output, then g
        lhs, rhs = sorted(rest.args, key=lambda a: order.index(a.base.name))
        reads = plain_reads([lhs, rhs], tensors)
        if reads is None:
            return None
        pl, pr = ([v for v in read if v is not None] for read in reads)
        sums = {v for v, _, _ in term.sums}
        if _result(pr, pl, sums, out_vars) == [v for v in out_vars if v in pl + pr] != _result(pl, pr, sums, out_vars):
            lhs, rhs, reads, pl, pr = rhs, lhs, reads[::-1], pr, pl  # the result in the target's order: no transpose
        if any(v not in sums and v not in out_vars for v in pl + pr):
            return None
        contract = [v for v in pl if v in sums and v in pr]
        if not contract:
            return None
        batch = [v for v in out_vars if v in pl and v in pr]
        fields = {
            "lhs": lhs.base.name, "rhs": rhs.base.name,
            "dimension_numbers": [[[reads[0].index(v) for v in contract], [reads[1].index(v) for v in contract]],
                                  [[reads[0].index(v) for v in batch], [reads[1].index(v) for v in batch]]],
            "einsum": _einsum(reads, out_vars), "scale": scale,
        }
        broadcast = [k for k, v in enumerate(out_vars) if v not in pl + pr]
        if broadcast and not target.scalar:  # target axes no operand reads: the einsum result lacks them
            fields["broadcast"] = broadcast
        operands = [{"tensor": lhs.base.name, "vars": reads[0]}, {"tensor": rhs.base.name, "vars": reads[1]}]
        return Form(self.name, fields, term, layout={"operands": operands})

    def code(self, form, target):
        sums = {v for v, _, _ in form.term.sums}
        left, right = form.layout["operands"]
        lines, names, kept = [], [], []
        for k, spec in enumerate((left, right)):
            other = right if spec is left else left
            drop = [a for a, v in enumerate(spec["vars"]) if v is None]
            own = [a for a, v in enumerate(spec["vars"]) if v in sums and v not in other["vars"]]
            name, read = naming.aligned(spec["tensor"], k), array_of(spec["tensor"], target.tensors)
            if own:
                read = f"{target.backend.xp}.sum({read}, axis={tuple(own)}, keepdims=True)"
            if drop or own:
                read += "[" + ", ".join("0" if a in drop + own else ":" for a in range(len(spec["vars"]))) + "]"
            lines.append(f"{name} = {read}")
            names.append(name)
            kept.append([v for a, v in enumerate(spec["vars"]) if a not in drop + own])
        contract = [v for v in kept[0] if v in sums and v in kept[1]]
        batch = [v for v in target.out_vars if v in kept[0] and v in kept[1]]
        dims = ((tuple(kept[0].index(v) for v in contract), tuple(kept[1].index(v) for v in contract)),
                (tuple(kept[0].index(v) for v in batch), tuple(kept[1].index(v) for v in batch)))
        result = batch + [v for v in kept[0] if v not in contract and v not in batch] \
            + [v for v in kept[1] if v not in contract and v not in batch]
        printer = target.backend.make_printer()
        out = target.out
        lines.append(f"{out} = {scaled(f'dot_general({names[0]}, {names[1]}, {dims[0]}, {dims[1]})', form.fields, printer)}")
        aligned = align(out, result, target.out_vars, target.backend)
        if not set(result) >= set(target.out_vars):
            lines.append(f"{out} = {target.backend.xp}.broadcast_to({aligned}, {shape_code(target.tensor.dims)})")
        elif aligned != out:
            lines.append(f"{out} = {aligned}")
        return printed(lines, printer, {"dot_general"})

    def describe(self, form, show=None):
        f = form.fields
        out = [f"contraction {f['einsum']} of {f['lhs']} with {f['rhs']} (one batched GEMM)"]
        if "broadcast" in f:
            out.append(f"constant along the target's axes {tuple(f['broadcast'])}, which the result is broadcast to")
        return out

    def formulation(self, form, backend, blockwise=False, jit=False):
        return f"{backend.matmul_runs} (dot_general)"


MATMUL = Matmul()
