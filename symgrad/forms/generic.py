"""``generic``: the named fallback when no closed form matches — a gather over the index grid of
the output and summed indices, guards as masks, a sum.  Always correct, never fast; the JSON and
the documents say when a gradient got it."""
from __future__ import annotations

import sympy as sp

from .. import naming
from ..ir import SymgradError, Tensor, Term
from ..printing.array import ArrayPrinter, array_code
from ..printing.text import shape_code, size_code
from .form import Form, Kind, array_of, printed


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


def index_mask(guards, vars_, extents, printer, backend, like: str) -> tuple:
    """``(lines, mask)``: index grids of the ``vars_`` (over ``extents``, one broadcast axis each)
    that ``guards`` use, and the guards as one boolean array expression over them.  ``backend``
    and ``like`` (an array's name) place the grids on that array's device (torch)."""
    names = {v: sp.Symbol(naming.index_var(v)) for v in vars_}
    lines = []
    for k, (v, n) in enumerate(zip(vars_, extents)):
        if any(v in g.free_symbols for g in guards):
            shape = ", ".join("-1" if a == k else "1" for a in range(len(vars_)))
            lines.append(f"{names[v]} = {backend.arange('0', size_code(n), like)}.reshape({shape},)")
    return lines, " & ".join(f"({guard_code(g.xreplace(names), printer)})" for g in guards)


def _read_key(read: sp.Indexed) -> tuple:
    """A tensor read by what it reads: ``x[N - j - 1]`` and ``x[-(-N + j + 1)]`` are one read."""
    return (read.base.label, tuple(sp.expand(i) for i in read.indices))


def generic_code(term: Term, out: str, target: Tensor, tensors, out_vars, printer=None, backend=None,
                 like=None) -> list:
    """Statements that gather over the full index grid (output and summed indices), mask the
    guards, and sum: any term, literally (the checks evaluate definitions and raw derivatives so).
    ``backend`` places the index grids (on the device of the first tensor read, for torch; of the
    array ``like`` for a term that reads none)."""
    grid = list(out_vars) + [v for v, _, _ in term.sums]
    pinned = _pinned(term, out_vars, grid)
    bounds = [(pinned[v], pinned[v]) if v in pinned else (0, d - 1) for v, d in zip(out_vars, target.dims)] + \
        [(lo, hi) for _, lo, hi in term.sums]
    names = {v: sp.Symbol(naming.index_var(v)) for v in grid}
    like = term.accesses[0].base.name if term.accesses else like
    ap = printer or ArrayPrinter()
    xp = ap.module
    arange = lambda lo, hi: backend.arange(size_code(lo), f"{size_code(hi)} + 1", like) if backend and like else \
        f"{xp}.arange({size_code(lo)}, {size_code(hi)} + 1)"
    lines = []
    for k, (v, (lo, hi)) in enumerate(zip(grid, bounds)):
        shape = ", ".join("-1" if a == k else "1" for a in range(len(grid)))
        lines.append(f"{names[v]} = {arange(lo, hi)}.reshape({shape},)")
    sub = lambda e: sp.sympify(e).xreplace(names)
    masks, mapping = [], {}
    for k, acc in enumerate(term.accesses):
        t = tensors[acc.base.name]
        idx = []
        for a, (e, dim) in enumerate(zip(acc.indices, t.dims)):
            num, den = sp.fraction(sp.together(sub(e)))
            at = f"{naming.gathered(acc.base.name, k)}_{a}"
            if den == 1:
                lines.append(f"{at} = {ap.doprint(num)} + 0 * {names[grid[0]]}"
                             if not num.free_symbols & set(names.values()) else f"{at} = {ap.doprint(num)}")
            else:
                lines.append(f"{at} = ({ap.doprint(num)}) // ({ap.doprint(den)})")
                masks.append(f"(({ap.doprint(num)}) % ({ap.doprint(den)}) == 0)")
            masks.append(f"({at} >= 0) & ({at} < {size_code(dim)})")
            idx.append(f"{xp}.clip({at}, 0, {size_code(dim)} - 1)")
        name = naming.gathered(acc.base.name, k)
        lines.append(f"{name} = {array_of(acc.base.name, tensors)}[{', '.join(idx)}]")
        mapping[_read_key(sub(acc))] = sp.Symbol(name)
    if not term.accesses and grid:  # guards on sizes alone are a Python bool: the grid makes the mask an array
        masks.append(f"({names[grid[0]]} >= {size_code(bounds[0][0])})")
    masks += [f"({guard_code(sub(g), ap)})" for g in term.guards]
    masks += [f"({ap.doprint(sub(a))} == {ap.doprint(sub(b))})" for a, b in term.deltas]
    factor = sub(term.factor).replace(lambda e: isinstance(e, sp.Indexed), lambda e: mapping.get(_read_key(e), e))
    valued = sorted(factor.free_symbols & set(names.values()), key=str)  # indices used as numbers (x[n] · n)
    if valued and backend and like:  # in the dtype of ``like`` first (an integer grid's sin is torch's float32)
        lines += [f"{v}_value = {v} * {backend.new('ones', '()', like)}" for v in valued]
        factor = factor.xreplace({v: sp.Symbol(f"{v}_value") for v in valued})
    value = array_code(factor, ap)
    if not term.accesses and backend and like:  # a value of sizes alone: in the dtype of ``like`` (torch's where
        value = f"{value} * {backend.new('ones', '()', like)}"  # of two Python numbers is its default float32)
    mask = " & ".join(masks) if masks else "True"
    axes = tuple(range(len(out_vars), len(grid)))
    extents = [hi - lo + 1 for lo, hi in bounds]
    lines.append(f"{out} = {xp}.broadcast_to({xp}.where({mask}, {value}, 0), {shape_code(extents)})")
    if axes:
        lines.append(f"{out} = {out}.sum(axis={axes})")
    if pinned:  # placed where the pinned indices are, 0 elsewhere
        at = []
        for k, v in enumerate(out_vars):
            if v in pinned:
                shape = ", ".join("-1" if a == k else "1" for a in range(len(out_vars)))
                lines.append(f"{names[v]} = {arange(0, target.dims[k] - 1)}.reshape({shape},)")
                at.append(f"({names[v]} == {size_code(pinned[v])})")
        lines.append(f"{out} = {xp}.broadcast_to({xp}.where({' & '.join(at)}, {out}, 0), {shape_code(target.dims)})")
    return lines


def _pinned(term: Term, out_vars, grid) -> dict:
    """The output indices a guard ``[c == j]`` pins to a value ``c`` of sizes alone (a constant-index
    read's gradient: ``x[n, 2]`` passes back at j = 2 only): their grid is that one value, and the
    result is placed there, not computed over the whole axis and masked."""
    pinned = {}
    for g in term.guards:
        if isinstance(g, sp.Eq):
            for v, c in ((g.lhs, g.rhs), (g.rhs, g.lhs)):
                if v in out_vars and v not in pinned and not sp.sympify(c).free_symbols & set(grid):
                    pinned[v] = c
                    break
    return pinned


class Generic(Kind):
    name = "generic"

    def match(self, term, tensors, out_vars, target):
        return Form(self.name, {"reason": "no closed form matched", "method": "gather + sum over index grids"}, term)

    def code(self, form, target):
        printer = target.backend.make_printer()
        lines = generic_code(form.term, target.out, target.tensor, target.tensors, target.out_vars, printer,
                             target.backend, target.like)
        return printed(lines, printer)

    def describe(self, form, show=None):
        f = form.fields
        return [f"generic: {f['reason']}; computed by {f['method']}"]

    def formulation(self, form, backend, blockwise=False, jit=False):
        return "gather loop over the derived index expression (no closed form recognised)"


GENERIC = Generic()
