"""``reduce_sum``: a pointwise expression summed over some axes, times what does not depend on
them: a bias gradient (one tensor summed), a mean (``Σ_k x[n, k] / D``), a variance
(``Σ_k xc[n, k]²``), the adjoint of a normaliser (``(1/s[n]²) · Σ_j e[n, j]·g[n, j]``).  Computed
as the summand over the grid of the axes it reads, one ``xp.sum``, and the outer factor."""
from __future__ import annotations

import sympy as sp

from ..printing.array import array_statements
from ..printing.text import shape_code, size_code
from ..printing.text import text as expr_text
from .elementwise import mask_statements
from .form import Form, Kind, align, array_of, constant_scale, index_bound, plain_reads, printed, scaled


def _aligned(expr, specs, grid, target, stem: str):
    """Statements binding each read of ``expr`` aligned to ``grid``, and ``expr`` over those names."""
    lines, mapping = [], {}
    for k, (acc, spec) in enumerate(specs):
        name = f"_{stem}{k}"
        lines.append(f"{name} = {align(array_of(spec['tensor'], target.tensors), spec['vars'], grid, target.backend)}")
        mapping[acc] = sp.Symbol(name)
    return lines, expr.xreplace(mapping)


class ReduceSum(Kind):
    name = "reduce_sum"
    numeric_fields = ("axes", "scale")

    def match(self, term, tensors, out_vars, target):
        scale, rest = constant_scale(term.factor)
        if not term.sums:
            return None
        sums = [v for v, lo, _ in term.sums]
        if any(lo != 0 for _, lo, _ in term.sums):
            return None
        narrow, mask = {}, []  # guards: bounds on a summed index narrow its range; others mask the result
        for g in term.guards:
            bound = index_bound(g, sums)
            edges = set().union(*[sp.sympify(e).free_symbols for e in (bound or ())[1:] if e is not None])
            if bound is not None and edges & set(out_vars):  # [j < n]: a bound that moves with the output index
                return None
            if bound is not None and isinstance(rest, sp.Indexed):
                v, lo, hi = bound
                was = narrow.get(v, (None, None))
                narrow[v] = (lo if lo is not None else was[0], hi if hi is not None else was[1])
            elif g.free_symbols & set(sums):
                return None
            else:  # on the output's indices, or on sizes alone ([2 < N] of a read x[2, d]): masks the result
                mask.append(g)
        args = sp.Mul.make_args(rest)
        inner = sp.Mul(*[a for a in args if a.free_symbols & set(sums)])
        outer = sp.Mul(*[a for a in args if not a.free_symbols & set(sums)])
        accesses = sorted(inner.atoms(sp.Indexed), key=sp.default_sort_key)
        reads = plain_reads(accesses, tensors)
        if not accesses or reads is None or plain_reads(sorted(outer.atoms(sp.Indexed), key=sp.default_sort_key),
                                                         tensors) is None:
            return None
        used = {v for read in reads for v in read if v is not None}
        if used - set(sums) - set(out_vars) or set(sums) - used or (outer.free_symbols & set(sums)):
            return None  # a sum over a variable nothing reads is a count, not a reduction
        if outer.atoms(sp.Indexed) and any(v not in out_vars for a in outer.atoms(sp.Indexed) for v in a.indices
                                           if isinstance(v, sp.Symbol)):
            return None
        single = isinstance(inner, sp.Indexed)
        if single:  # one tensor summed where it lies: its axes
            fields = {"operand": inner.base.name, "axes": [k for k, v in enumerate(reads[0]) if v in sums or v is None],
                      "scale": scale}
        else:
            fields = {"summand": expr_text(inner), "over": [str(v) for v in sums], "scale": scale}
        widest = max(reads, key=lambda r: len([v for v in r if v is not None]))
        grid = [v for v in widest if v is not None]  # the largest operand's own axis order: no transposed reads
        grid += [v for v in out_vars if v in used and v not in grid] + [v for v in sums if v not in grid]
        if outer != 1:
            fields["times"] = expr_text(outer)
        if narrow or mask:
            fields["where"] = [expr_text(g) for g in term.guards]
        operands = [{"tensor": a.base.name, "vars": r} for a, r in zip(accesses, reads)]
        return Form(self.name, fields, term, layout={"operands": operands, "inner": inner, "outer": outer,
                                                     "grid": grid, "sums": sums, "narrow": narrow, "mask": mask})

    def code(self, form, target):
        lay = form.layout
        printer = target.backend.make_printer()
        out, sums, grid, xp = target.out, lay["sums"], lay["grid"], target.backend.xp
        inner, specs = lay["inner"], lay["operands"]
        if isinstance(inner, sp.Indexed):  # one tensor: sum it where it lies (over the narrowed ranges)
            spec = specs[0]
            kept = [v for v in spec["vars"] if v is not None and v not in sums]
            extents = {v: hi + 1 for v, _, hi in form.term.sums}
            cut = []
            for v in spec["vars"]:
                lo, hi = lay["narrow"].get(v, (None, None))
                cut.append(":" if lo is None and hi is None else
                           f"{'' if lo is None else f'max({size_code(lo)}, 0)'}:"
                           f"{'' if hi is None else f'max(min({size_code(hi)} + 1, {size_code(extents[v])}), 0)'}")
            operand = array_of(spec['tensor'], target.tensors)
            operand += f"[{', '.join(cut)}]" if any(c != ":" for c in cut) else ""
            lines = [f"{out} = {xp}.sum({operand}, axis={tuple(form.fields['axes'])})"]
        else:
            lines, value = _aligned(inner, list(zip(sorted(inner.atoms(sp.Indexed), key=sp.default_sort_key), specs)),
                                    grid, target, "summand")
            lines += array_statements(value, out, printer)
            kept = [v for v in grid if v not in sums]
            axes = tuple(k for k, v in enumerate(grid) if v in sums)
            lines.append(f"{out} = {xp}.sum({out}, axis={axes})")
        if form.fields["scale"] != 1:
            lines.append(f"{out} = {scaled(out, form.fields, printer)}")
        aligned = align(out, kept, target.out_vars, target.backend)
        if aligned != out:
            lines.append(f"{out} = {aligned}")
        outer, covered = lay["outer"], set(kept)
        if outer != 1:
            reads = sorted(outer.atoms(sp.Indexed), key=sp.default_sort_key)
            vars_ = plain_reads(reads, target.tensors)
            more, value = _aligned(outer, [(a, {"tensor": a.base.name, "vars": v}) for a, v in zip(reads, vars_)],
                                   target.out_vars, target, "outer")
            lines += more + array_statements(value * sp.Symbol(out), out, printer)
            covered |= {v for read in vars_ for v in read if v is not None}
        if lay["mask"]:
            lines += mask_statements(lay["mask"], target, printer)
        elif not covered >= set(target.out_vars):
            lines.append(f"{out} = {xp}.broadcast_to({out}, {shape_code(target.tensor.dims)})")
        return printed(lines, printer)

    def describe(self, form, show=None):
        f = form.fields
        times = f" times {f['times']}" if "times" in f else ""
        times += f", where {' and '.join(f['where'])}" if "where" in f else ""
        if "operand" in f:
            return [f"sum of {f['operand']} over axes {tuple(f['axes'])}{times}"]
        return [f"sum of {f['summand']} over {', '.join(f['over'])}{times}"]

    def formulation(self, form, backend, blockwise=False, jit=False):
        return f"one reduction ({backend.xp}.sum)" + (" of the summand over its grid" if "summand" in form.fields else "")


REDUCE_SUM = ReduceSum()
