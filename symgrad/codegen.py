"""Statements that compute each recognised form in NumPy; the templates hold the file around them.

Every form's code leaves an array in the target tensor's index-space (view) layout, so the terms
of one gradient add up before the final reshape to the real shape.
"""
from __future__ import annotations

import sympy as sp

from . import naming
from .forms import Form
from .ir import Op, SymgradError, Term
from .printing import ArrayPrinter, array_code, array_statements, c_code, element_statements, size_code


def shape_code(dims) -> str:
    return "(" + "".join(size_code(d) + ", " for d in dims) + ")"


def _align(src: str, vars_, out_vars) -> str:
    """Index/transpose/expand ``src`` (axes named ``vars_``, None = size-1 axis read at 0) to ``out_vars``."""
    code = src
    if any(v is None for v in vars_):
        code += "[" + ", ".join("0" if v is None else ":" for v in vars_) + "]"
    present = [v for v in vars_ if v is not None]
    order = sorted(range(len(present)), key=lambda k: list(out_vars).index(present[k]))
    if order != list(range(len(present))):
        code += ".transpose(" + ", ".join(map(str, order)) + ")"
    kept = {present[k] for k in order}
    if len(kept) != len(out_vars):
        code += "[" + ", ".join(":" if v in kept else "None" for v in out_vars) + "]"
    return code


def _array(name: str, tensors) -> str:
    """The array a form reads: the view when the tensor has split axes."""
    t = tensors[name]
    return naming.view(name) if len(t.split) != len(t.dims) else name


def _scaled(code: str, fields: dict, printer) -> str:
    """``code`` times the form's constant factor, when it has one other than 1."""
    scale = fields.get("scale", 1)
    return code if scale == 1 else f"{array_code(sp.sympify(scale), printer)} * {code}"


def conv_code(form: Form, out: str, target, tensors, printer=None) -> list:
    f = form.fields
    lhs_spec, rhs_spec, out_spec = f["dimension_numbers"]
    rhs = f["rhs"]
    lines = []
    rev = [rhs_spec.index(c) for c, r in zip([c for c in rhs_spec if c not in "OI"], f["rhs_reverse"]) if r]
    if rev or "rhs_regroup" in f:
        expr = rhs
        if rev:
            expr = f"xp.flip({expr}, axis={tuple(rev)})"
        if "rhs_regroup" in f:
            rg = f["rhs_regroup"]
            expr = f"regroup({expr}, {size_code(rg['groups'])}, {rg['from_axis']}, {rg['to_axis']})"
        lines.append(f"{rhs}_kernel = {expr}")
        rhs = f"{rhs}_kernel"
    seq = lambda xs: "(" + "".join(size_code(x) + ", " for x in xs) + ")"
    pads = "(" + "".join(f"({size_code(lo)}, {size_code(hi)}), " for lo, hi in f["padding"]) + ")"
    call = (f"conv_general_dilated({f['lhs']}, {rhs}, window_strides={seq(f['window_strides'])}, "
            f"padding={pads}, lhs_dilation={seq(f['lhs_dilation'])}, rhs_dilation={seq(f['rhs_dilation'])}, "
            f"dimension_numbers={tuple(f['dimension_numbers'])!r}, "
            f"feature_group_count={size_code(f['feature_group_count'])}, "
            f"batch_group_count={size_code(f['batch_group_count'])})")
    call = _scaled(call, f, printer)
    lines.append(f"{out} = {call}.reshape{shape_code(target.dims)}")
    return lines


def _c_bodies(factor):
    """The fused kernel's C bodies (double; float arithmetic for float32/float16), or None when C has
    no function for part of the expression (polygamma, Bessel functions): the array code then runs
    it, with cupyx.scipy.special."""
    try:
        return c_code(factor), c_code(factor, single=True)
    except (NotImplementedError, ValueError):
        return None


def elementwise_code(form: Form, out: str, target, tensors, out_vars, shaped: bool, printer=None) -> list:
    lines, mapping = [], {}
    for k, (acc, spec) in enumerate(zip(form.term.accesses, form.layout["operands"])):
        name = naming.aligned(spec["tensor"], k)
        code = _align(_array(spec["tensor"], tensors), spec["vars"], out_vars) if shaped else spec["tensor"]
        lines.append(f"{name} = {code}")
        mapping[acc] = sp.Symbol(name)
    bodies = _c_bodies(form.term.factor.xreplace(mapping)) \
        if getattr(printer, "fused_elementwise", False) and not shaped else None
    if bodies:
        params = ", ".join(f"T {m}" for m in mapping.values())
        args = ", ".join(str(m) for m in mapping.values())
        first = str(next(iter(mapping.values())))
        lines.append(f"body = {bodies[0]!r} if {first}.dtype == xp.float64 else {bodies[1]!r}")
        lines.append(f"{out} = fused({params!r}, body, {('symgrad_' + out)!r})({args})")
        return lines
    lines += array_statements(form.term.factor.xreplace(mapping), out, printer)
    if shaped and set(out_vars) - {v for s in form.layout["operands"] for v in s["vars"]}:
        lines.append(f"{out} = xp.broadcast_to({out}, {shape_code(target.dims)})")
    return lines


def reduce_code(form: Form, out: str, target, tensors, out_vars, printer=None) -> list:
    spec = form.layout["operands"][0]
    sums = {v for v, _, _ in form.term.sums}
    axes = tuple(form.fields["axes"])
    kept = [v for v in spec["vars"] if v is not None and v not in sums]
    value = _scaled(f"xp.sum({_array(spec['tensor'], tensors)}, axis={axes})", form.fields, printer)
    lines = [f"{out} = {value}"]
    lines.append(f"{out} = xp.broadcast_to({_align(out, kept, out_vars)}, {shape_code(target.dims)})")
    return lines


def matmul_code(form: Form, out: str, target, tensors, out_vars, printer=None) -> list:
    sums = {v for v, _, _ in form.term.sums}
    (l, r) = form.layout["operands"]
    lines, names, kept = [], [], []
    for k, spec in enumerate((l, r)):
        other = r if spec is l else l
        drop = [a for a, v in enumerate(spec["vars"]) if v is None]
        own = [a for a, v in enumerate(spec["vars"]) if v in sums and v not in other["vars"]]
        name, code = naming.aligned(spec["tensor"], k), _array(spec["tensor"], tensors)
        if own:
            code = f"xp.sum({code}, axis={tuple(own)}, keepdims=True)"
        if drop or own:
            code += "[" + ", ".join("0" if a in drop + own else ":" for a in range(len(spec["vars"]))) + "]"
        lines.append(f"{name} = {code}")
        names.append(name)
        kept.append([v for a, v in enumerate(spec["vars"]) if a not in drop + own])
    contract = [v for v in kept[0] if v in sums and v in kept[1]]
    batch = [v for v in out_vars if v in kept[0] and v in kept[1]]
    dims = ((tuple(kept[0].index(v) for v in contract), tuple(kept[1].index(v) for v in contract)),
            (tuple(kept[0].index(v) for v in batch), tuple(kept[1].index(v) for v in batch)))
    result = batch + [v for v in kept[0] if v not in contract and v not in batch] \
        + [v for v in kept[1] if v not in contract and v not in batch]
    value = _scaled(f"dot_general({names[0]}, {names[1]}, {dims[0]}, {dims[1]})", form.fields, printer)
    lines.append(f"{out} = {value}")
    lines.append(f"{out} = xp.broadcast_to({_align(out, result, out_vars)}, {shape_code(target.dims)})")
    return lines


def guard_code(g, printer) -> str:
    """A guard in exact integer arithmetic: ``a <= b`` with fractions becomes ``num(b − a) >= 0``."""
    if isinstance(g, (sp.Le, sp.Lt, sp.Ge, sp.Gt)) or (isinstance(g, sp.Eq) and not g.has(sp.Mod)):
        if isinstance(g, (sp.Ge, sp.Gt)):
            g = g.reversed
        num, den = sp.fraction(sp.together(g.rhs - g.lhs))
        if not den.is_positive:
            raise SymgradError(f"cannot decide the sign of {den} in guard {g}")
        rel = {sp.Le: ">=", sp.Lt: ">", sp.Eq: "=="}[type(g)]
        return f"{printer.doprint(sp.expand(num))} {rel} 0"
    return printer.doprint(g)


def generic_code(term: Term, out: str, target, tensors, out_vars, printer=None) -> list:
    """Gather over the full index grid (output and summed indices), mask the guards, sum."""
    grid = list(out_vars) + [v for v, _, _ in term.sums]
    bounds = [(0, d - 1) for d in target.dims] + [(lo, hi) for _, lo, hi in term.sums]
    names = {v: sp.Symbol(naming.index_var(v)) for v in grid}
    lines = []
    for k, (v, (lo, hi)) in enumerate(zip(grid, bounds)):
        shape = ", ".join("-1" if a == k else "1" for a in range(len(grid)))
        lines.append(f"{names[v]} = xp.arange({size_code(lo)}, {size_code(hi)} + 1).reshape({shape},)")
    ap = printer or ArrayPrinter({"fully_qualified_modules": True})
    sub = lambda e: sp.sympify(e).xreplace(names)
    masks, mapping = [], {}
    for k, acc in enumerate(term.accesses):
        t = tensors[acc.base.name]
        idx = []
        for a, (e, dim) in enumerate(zip(acc.indices, t.dims)):
            num, den = sp.fraction(sp.together(sub(e)))
            at = f"{naming.gathered(acc.base.name, k)}_{a}"
            if den == 1:
                lines.append(f"{at} = {ap.doprint(num)} + 0 * {names[grid[0]]}" if not num.free_symbols
                             else f"{at} = {ap.doprint(num)}")
            else:
                lines.append(f"{at} = ({ap.doprint(num)}) // ({ap.doprint(den)})")
                masks.append(f"(({ap.doprint(num)}) % ({ap.doprint(den)}) == 0)")
            masks.append(f"({at} >= 0) & ({at} < {size_code(dim)})")
            idx.append(f"xp.clip({at}, 0, {size_code(dim)} - 1)")
        name = naming.gathered(acc.base.name, k)
        lines.append(f"{name} = {_array(acc.base.name, tensors)}[{', '.join(idx)}]")
        mapping[sub(acc)] = sp.Symbol(name)
    masks += [f"({guard_code(sub(g), ap)})" for g in term.guards]
    masks += [f"({ap.doprint(sub(a))} == {ap.doprint(sub(b))})" for a, b in term.deltas]
    value = array_code(sub(term.factor).xreplace(mapping), ap)
    mask = " & ".join(masks) if masks else "True"
    axes = tuple(range(len(out_vars), len(grid)))
    extents = list(target.dims) + [hi - lo + 1 for _, lo, hi in term.sums]
    lines.append(f"{out} = xp.broadcast_to(xp.where({mask}, {value}, 0), {shape_code(extents)})")
    if axes:
        lines.append(f"{out} = {out}.sum(axis={axes})")
    return lines


def form_code(form: Form, out: str, target, tensors, out_vars, op: Op, printer=None) -> list:
    kind = form.kind
    if kind == "conv_general_dilated":
        return conv_code(form, out, target, tensors, printer)
    if kind == "elementwise":
        return elementwise_code(form, out, target, tensors, out_vars, not op.elementwise, printer)
    if kind == "reduce_sum":
        return reduce_code(form, out, target, tensors, out_vars, printer)
    if kind == "matmul":
        return matmul_code(form, out, target, tensors, out_vars, printer)
    if kind == "generic":
        return generic_code(form.term, out, target, tensors, out_vars, printer)
    raise SymgradError(f"{op.name}: no code generator for form {kind!r}")


#: names the numba loop factories define or bind; a tensor with one of them gets no loop
ELEMENT_RESERVED = {"_F", "_erf", "_tanh", "_exp", "math", "numba", "element", "loop", "out", "k"}


def element_code(forms, out: str):
    """Statements computing one element of an elementwise op's result, for the numba loops, or
    None when a form is not a plain pointwise expression or has no scalar code."""
    if not all(f.kind == "elementwise" and not (f.term.sums or f.term.guards or f.term.deltas) for f in forms):
        return None
    names = {a.base.name for f in forms for a in f.term.accesses}
    if names & ELEMENT_RESERVED or any(n.startswith(out + "_s") for n in names):
        return None
    expr = sp.Add(*[f.term.factor.xreplace({a: sp.Symbol(a.base.name) for a in f.term.accesses}) for f in forms])
    try:
        return element_statements(expr, out)
    except ValueError:
        return None


HELPERS = {"conv_general_dilated": ["conv_general_dilated", "gemm", "threads"], "matmul": ["dot_general", "gemm"]}


def helpers_for(forms) -> list:
    names = []
    for f in forms:
        for h in HELPERS.get(f.kind, []):
            if h not in names:
                names.append(h)
    return sorted(names)
