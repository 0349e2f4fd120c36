"""``shift``: one tensor read at shifted (or reversed, or fixed) indices under bounds on the target's
indices, zero elsewhere: a slice of the operand copied into a zero array (``out[a:b] = x[a+c:b+c]``).
Padding statements are made of such terms: circular padding reads ``x[i − lo + L]`` below the
input, reflection ``x[lo − i]``, replication ``x[0]``; their adjoints fold the gradient back with
the same kind of term."""
from __future__ import annotations

import sympy as sp

from ..printing.text import shape_code, size_code
from .form import Form, Kind, align, array_of, constant_scale, index_bound, printed, scaled


def _axis(e, out_vars):
    """(var, coefficient, offset) of an index ``±v + c`` (var None for an index free of the target's)."""
    used = [v for v in out_vars if v in e.free_symbols]
    if not used:
        return (None, 0, e) if e.is_integer or e.free_symbols else (None, 0, e)
    if len(used) > 1:
        return None
    v = used[0]
    coef = sp.expand(e).coeff(v)
    if coef not in (1, -1) or (sp.expand(e - coef * v)).has(*out_vars):
        return None
    return v, int(coef), sp.expand(e - coef * v)


class Shift(Kind):
    name = "shift"
    numeric_fields = ("scale",)

    def match(self, term, tensors, out_vars, target):
        if term.sums or term.deltas:
            return None
        scale, read = constant_scale(term.factor)
        if not isinstance(read, sp.Indexed):
            return None
        axes = [_axis(e, out_vars) for e in read.indices]
        if any(a is None for a in axes):
            return None
        named = [a[0] for a in axes if a[0] is not None]
        if len(set(named)) != len(named) or all(a[1] == 1 and a[2] == 0 for a in axes) and not term.guards:
            return None  # a plain read with no bounds is elementwise
        bounds = [index_bound(g, out_vars) for g in term.guards]
        if any(b is None for b in bounds):
            return None
        fields = {"operand": read.base.name, "scale": scale,
                  "read": [str(e) for e in read.indices], "where": [str(g) for g in term.guards]}
        return Form(self.name, fields, term, layout={"axes": axes, "bounds": bounds, "read": read})

    def code(self, form, target):
        lay = form.layout
        read, axes = lay["read"], lay["axes"]
        source = target.tensors[read.base.name]
        dims = dict(zip(target.out_vars, target.tensor.dims))
        lows = {v: [sp.S.Zero] for v in target.out_vars}
        highs = {v: [dims[v]] for v in target.out_vars}  # exclusive
        for (v, coef, c), n in zip(axes, source.dims):
            if v is None:
                continue
            if coef == 1:   # 0 <= v + c < n
                lows[v].append(-c)
                highs[v].append(n - c)
            else:           # 0 <= c - v < n
                lows[v].append(c - n + 1)
                highs[v].append(c + 1)
        for v, lo, hi in lay["bounds"]:
            if lo is not None:
                lows[v].append(lo)
            if hi is not None:
                highs[v].append(hi + 1)
        lines, printer = [], target.backend.make_printer()
        out = target.out
        lines.append(f"{out} = {target.backend.new('zeros', shape_code(target.tensor.dims), read.base.name)}")
        names = {}
        for k, v in enumerate(target.out_vars):
            low = list(dict.fromkeys(sp.sympify(e) for e in lows[v]))
            high = list(dict.fromkeys(sp.sympify(e) for e in highs[v]))
            if low == [0] and high == [dims[v]]:
                names[v] = ("", "")  # the whole axis
                continue
            names[v] = (f"_lo{k}", f"_hi{k}")
            lines.append(f"_lo{k} = {size_code(low[0])}" if len(low) == 1 else
                         f"_lo{k} = max({', '.join(size_code(e) for e in low)})")
            lines.append(f"_hi{k} = {size_code(high[0])}" if len(high) == 1 else
                         f"_hi{k} = min({', '.join(size_code(e) for e in high)})")
        index, kept, flips = [], [], []
        for (v, coef, c) in axes:
            if v is None:
                index.append(size_code(c))
                continue
            lo, hi = names[v]
            if not lo:
                index.append(":")
            elif coef == 1:
                index.append(f"{lo} + {size_code(c)}:{hi} + {size_code(c)}" if c != 0 else f"{lo}:{hi}")
            else:
                index.append(f"{size_code(c)} - {hi} + 1:{size_code(c)} - {lo} + 1")
            if coef == -1:
                flips.append(len(kept))
            kept.append(v)
        src = f"{array_of(read.base.name, target.tensors)}[{', '.join(index)}]"
        if flips:
            src = target.backend.flipped(src, flips)
        src = align(src, kept, target.out_vars, target.backend)
        dest = ", ".join(f"{names[v][0]}:{names[v][1]}" for v in target.out_vars)
        condition = " and ".join(f"{names[v][1]} > {names[v][0]}" for v in target.out_vars if names[v][0])
        copy = target.backend.set_slice(out, dest, scaled(src, form.fields, printer))
        lines += [f"if {condition}:", f"    {copy}"] if condition else [copy]
        return printed(lines, printer)

    def describe(self, form, show=None):
        f = form.fields
        where = f" where {' and '.join(f['where'])}" if f["where"] else ""
        return [f"{f['operand']}[{', '.join(f['read'])}]{where}, zero elsewhere: a slice copied"]

    def formulation(self, form, backend, blockwise=False, jit=False):
        return "one slice copy into zeros"


SHIFT = Shift()
