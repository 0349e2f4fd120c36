"""The numba loops of an elementwise op's NumPy module: one element of each function as scalar
statements (runtime piece ``jit`` runs them; ``jit_<function>`` supplies float32 ``erf``, ``tanh``
and ``exp`` that LLVM vectorises)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy as sp

from ..printing.double import wide_statements
from ..printing.scalar import ElementPrinter, element_parts, element_statements

#: names the numba loop factories define or bind; a tensor with one of them gets no loop
RESERVED = {"_F", "_erf", "_tanh", "_exp", "math", "numba", "element", "loop", "out", "k", "single", "xp"}


@dataclass(frozen=True)
class Loop:
    """One elementwise function as a numba loop over the flat arrays ``params``."""

    params: str
    lines: tuple
    result: str
    reads: str         # the element reads, each widened to the loop's compute type _F
    functions: tuple   # the scalar functions it calls (erf, erfc, tanh, exp)
    wide: tuple = ()   # the element in double-double for float64 (printing.double), if it has such code
    wide_functions: tuple = ()  # the double-double functions those lines call

    @property
    def wide_binding(self) -> str:
        """The loop factory's line binding the compiled double-double functions the element calls."""
        names = ", ".join(f"_dd_{f}" for f in self.wide_functions)
        return f"{names} = map(_dd_compiled().get, {self.wide_functions!r})"


def _element_expr(forms, out: str):
    """The pointwise expression of an elementwise op's result in its tensors' names (one symbol per
    tensor), or None when a form is not a plain pointwise expression or a name would collide."""
    if not all(f.kind == "elementwise" and not (f.term.sums or f.term.guards or f.term.deltas) for f in forms):
        return None
    names = {a.base.name for f in forms for a in f.term.accesses}
    if names & RESERVED or any(n.startswith((out + "_s", out + "_w")) for n in names):
        return None
    return sp.Add(*[f.term.factor.xreplace({a: sp.Symbol(a.base.name) for a in f.term.accesses}) for f in forms])


def loop(forms, result: str, names: list):
    """The numba loop for one elementwise function of the arrays ``names``, or None without one: the
    element's statements in the loop's float type, and in double-double for float64 where the
    expression has such code."""
    expr = _element_expr(forms, result)
    if expr is None:
        return None
    printer = ElementPrinter()
    try:
        lines = element_statements(expr, result, printer)
    except ValueError:
        return None
    try:
        wide, wide_functions = wide_statements(expr, result)
    except ValueError:
        wide, wide_functions = (), ()
    return Loop(", ".join(names), tuple(lines), result, ", ".join(f"_F({name}[k])" for name in names),
                tuple(sorted(printer.used_functions)), tuple(wide), wide_functions)


@dataclass(frozen=True)
class Ref:
    """An array as a loop nest names it; ``row``: the loop holds one row of it at a time (the row
    being computed), read and written without the row index."""

    name: str
    row: bool = False

    def at(self, indices) -> str:
        if self.row:
            assert indices[0] == "_i0", (self.name, indices)  # a row is read at its own row only
            indices = indices[1:]
        return f"{self.name}[{', '.join(indices)}]"

    def extent(self, axis: int) -> str:
        return f"{self.name}.shape[{axis - self.row}]"


@dataclass(frozen=True)
class Nest:
    """An elementwise form list as one numba loop nest over the target's index space: ``element``
    takes the operands' values (``params``, each read at its own indices) and the sizes and
    constants the expression uses (``scalars``); ``render(out, arrays, element)`` writes the nest's
    loop lines for the names the caller gives the result, the arrays and the element function (a
    nest of its own: ``out``, ``_x0``, …, ``element``; a member of a fused row loop: its names
    there, rows held one at a time among them)."""

    params: str
    lines: tuple
    result: str
    arrays: tuple       # the arrays the nest reads, in argument order (tensor names)
    scalars: tuple      # the size symbols and constants it reads, in argument order
    render: Callable = None  # (out: Ref, arrays: tuple of Ref, element: str, buffer: str) -> the loop lines
    functions: tuple = ()
    rows: tuple = None  # per array, whether every read of it is at the row being computed (axis 0
    #                     read at the output's first index); None: the nest is not row by row (its
    #                     first loop is not the prange over the output's first axis)
    inlined: bool = False  # the element is one expression, written into the loop where it is read
    #                        (no element function)
    buffer: str = None  # a row reduction's summand row: its length, as code (a fused loop makes it once
    #                     per chunk of rows and passes its name to render)
    pieces: tuple = ()  # the runtime pieces its lines call besides the element's functions (a row's sum)

    @property
    def body(self) -> tuple:
        """The loop lines of the nest on its own (inside ``def loop(out, _x0, …)``)."""
        return self.render(Ref("out"), tuple(Ref(f"_x{k}") for k in range(len(self.arrays))), "element")

    @property
    def loop_args(self) -> str:
        return ", ".join([f"_x{k}" for k in range(len(self.arrays))] + list(self.scalars))


def nest(forms, result: str, out_vars: tuple, tensors: dict, target):
    """The loop nest computing ``forms`` (pointwise expressions, possibly masked) into ``target``'s
    index space, or None: a form that is not pointwise, a tensor seen through a split view, an
    expression reading an index itself, or no scalar code for a function in it."""
    if target.viewed or target.scalar or not forms or \
            not all(f.kind == "elementwise" and not (f.term.sums or f.term.deltas) for f in forms):
        return None
    guards = {f.term.guards for f in forms}
    if len(guards) != 1:
        return None
    (guards,) = guards
    accesses = sorted({a for f in forms for a in f.term.accesses}, key=sp.default_sort_key)
    if any(tensors[a.base.name].viewed for a in accesses):
        return None
    from ..forms.form import plain_reads
    reads = plain_reads(accesses, tensors)
    if reads is None or any(v not in out_vars for r in reads for v in r if v is not None):
        return None
    arrays = tuple(dict.fromkeys(a.base.name for a in accesses))
    if not arrays:
        return None  # a constant: nothing to loop over
    params = {a: sp.Symbol(f"_a{k}") for k, a in enumerate(accesses)}
    expr = sp.Add(*[f.term.factor for f in forms]).xreplace(params)
    loose = expr.free_symbols - set(params.values())
    if any(not s.is_positive for s in loose) or {str(s) for s in loose} & RESERVED:
        return None  # an index in the expression itself, or a name the factory binds
    scalars = tuple(sorted(str(s) for s in loose))
    printer = ElementPrinter()
    try:
        lines = element_statements(expr, result, printer)
        mask = " and ".join(printer.doprint(g.xreplace({v: sp.Symbol(f"_i{k}") for k, v in enumerate(out_vars)}))
                            for g in guards)
    except (ValueError, NotImplementedError):
        return None
    call = _element_call(expr, result, list(params.values()) + sorted(loose, key=str))
    index = {v: f"_i{k}" for k, v in enumerate(out_vars)}
    slot = {name: k for k, name in enumerate(arrays)}

    def render(out: Ref, refs: tuple, element: str, buffer: str = None) -> tuple:  # (no summand row to take)
        values = [f"_F({refs[slot[a.base.name]].at(['0' if v is None else index[v] for v in r])})"
                  for a, r in zip(accesses, reads)] + [f"_F({s})" for s in scalars]
        body, pad = _output_loops([index[v] for v in out_vars], out)
        store = out.at([index[v] for v in out_vars])
        return tuple(body + [f"{pad}{store} = {call(element, values)}" + (f" if {mask} else 0" if mask else "")])

    return Nest(", ".join(str(p) for p in params.values()) + "".join(f", {s}" for s in scalars), tuple(lines),
                result, arrays, scalars, render, tuple(sorted(printer.used_functions)),
                _row_reads(arrays, accesses, reads, out_vars[0]), call.inlined)


def _element_call(expr, result: str, symbols: list):
    """How a loop computes one element of ``expr`` from the values it reads (code, in the order of
    ``symbols``): the expression itself with the reads written in, where it is one expression; else
    a call of its element function (several statements: common subexpressions named once)."""
    temps, value = element_parts(expr, result)

    def call(element: str, values: list) -> str:
        if temps:
            return f"{element}({', '.join(values)})"
        return _ReadPrinter(dict(zip(symbols, values))).doprint(value)

    call.inlined = not temps
    return call


def max_nest(form, result: str, out_vars: tuple, tensors: dict, target):
    """A ``reduce_max`` form over the last axis of a plain read with the output's axes before it (a row's
    maximum: softmax's shift) as one numba loop nest: each row's maximum read off the row where it lies
    (runtime ``_row_max``, in the row's dtype, exact; NaN where the row holds one).  None otherwise (a
    bracket, several reduced axes, another layout: the form's array code)."""
    from ..forms.form import plain_reads
    term = form.term
    if form.kind != "reduce_max" or term.guards or len(term.sums) != 1 or target.viewed or target.scalar:
        return None
    read, (over, _, hi) = term.factor, term.sums[0]
    if not isinstance(read, sp.Indexed) or tensors[read.base.name].viewed:
        return None
    reads, dims = plain_reads([read], tensors), tensors[read.base.name].dims
    if reads is None or tuple(reads[0]) != tuple(out_vars) + (over,) or sp.simplify(dims[-1] - (hi + 1)) != 0:
        return None  # (the maximum over a whole row, read as the row's view)
    index = [f"_i{k}" for k in range(len(out_vars))]

    def render(out: Ref, refs: tuple, element: str, buffer: str = None) -> tuple:  # (no summand row)
        body, pad = _output_loops(index, out)
        row = refs[0].name if refs[0].row and len(index) == 1 else refs[0].at(index)  # the row, a view
        return tuple(body + [f"{pad}{out.at(index)} = _row_max({row})"])

    return Nest("", (), result, (read.base.name,), (), render, (), (True,), True, pieces=("numba/row_max",))


def _output_loops(indices, out: Ref) -> tuple:
    """``(lines, indent)``: a nest's loops over its output's axes (named ``indices``), the first over
    the rows in parallel, and the indentation of the body inside them."""
    lines, pad = [], "    "
    for k, name in enumerate(indices):
        lines.append(f"{pad}for {name} in {'numba.prange' if k == 0 else 'range'}({out.extent(k)}):")
        pad += "    "
    return lines, pad


def function_pieces(functions) -> set:
    """The runtime pieces that define the double-precision functions a loop calls (erfc beside erf)."""
    return {f"numba/{'erf' if f == 'erfc' else f}" for f in functions}


def _row_reads(arrays, accesses, reads, row) -> tuple:
    """Per array, whether every read of it takes axis 0 at the output's first index ``row``."""
    return tuple(all(r and r[0] == row for a, r in zip(accesses, reads) if a.base.name == name) for name in arrays)


class _ReadPrinter(ElementPrinter):
    """Element code with the symbols standing for array reads printed as the code reading them."""

    def __init__(self, reads: dict):
        super().__init__()
        self.reads = reads

    def _print_Symbol(self, expr):
        return self.reads[expr] if expr in self.reads else super()._print_Symbol(expr)


def reduction_nest(form, result: str, out_vars: tuple, tensors: dict, target):
    """A ``reduce_sum`` form with a pointwise summand as one numba loop nest: the summand computed
    element by element and added up in double precision, times the form's outer factor; no
    summand array.  Rows (the summed index innermost in memory) run in parallel over the kept
    indices, a row's summands added in vector lanes (runtime ``_sum``); columns (a kept index
    innermost) add row after row into a double-precision total.  None where a nest does not apply
    (as :func:`nest`)."""
    lay = form.layout
    if form.kind != "reduce_sum" or target.viewed or target.scalar or lay.get("narrow") or lay.get("mask"):
        return None  # (a narrowed or masked sum keeps its array code)
    inner, outer, sums = lay["inner"], lay["outer"] * form.fields["scale"], lay["sums"]
    from ..forms.form import plain_reads
    inner_reads = sorted(inner.atoms(sp.Indexed), key=sp.default_sort_key)
    outer_reads = sorted(outer.atoms(sp.Indexed), key=sp.default_sort_key)
    if any(tensors[a.base.name].viewed for a in inner_reads + outer_reads):
        return None
    vars_in, vars_out = plain_reads(inner_reads, tensors), plain_reads(outer_reads, tensors)
    if vars_in is None or vars_out is None:
        return None
    extents = {v: hi + 1 for v, _, hi in form.term.sums}
    inner_p = {a: sp.Symbol(f"_a{k}") for k, a in enumerate(inner_reads)}
    outer_p = {a: sp.Symbol(f"_b{k}") for k, a in enumerate(outer_reads)}
    summand, post = inner.xreplace(inner_p), outer.xreplace(outer_p)
    loose = (summand.free_symbols | post.free_symbols | set().union(*[sp.sympify(e).free_symbols
                                                                       for e in extents.values()])) \
        - set(inner_p.values()) - set(outer_p.values())
    if any(not s.is_positive for s in loose) or {str(s) for s in loose} & RESERVED:
        return None
    scalars = tuple(sorted(str(s) for s in loose))
    printer = ElementPrinter()
    try:
        lines = element_statements(summand, result, printer)
        printer.doprint(post)
        sizes = {v: printer.doprint(e).replace("_F(", "int(") for v, e in extents.items()}
    except (ValueError, NotImplementedError):
        return None
    call = _element_call(summand, result, list(inner_p.values()) + sorted(loose, key=str))
    arrays = tuple(dict.fromkeys(a.base.name for a in inner_reads + outer_reads))
    slot = {name: k for k, name in enumerate(arrays)}
    index = {**{v: f"_i{k}" for k, v in enumerate(out_vars)}, **{v: f"_s{k}" for k, v in enumerate(sums)}}
    outs = [index[v] for v in out_vars]
    widest = max(vars_in, key=lambda r: len([v for v in r if v is not None]))
    rows = [v for v in widest if v is not None][-1] in sums

    def render(out: Ref, refs: tuple, element: str, buffer: str = None) -> tuple:
        def read(a, r):
            return f"_F({refs[slot[a.base.name]].at(['0' if v is None else index[v] for v in r])})"
        values = [read(a, r) for a, r in zip(inner_reads, vars_in)] + [f"_F({s})" for s in scalars]
        finish = _ReadPrinter({outer_p[a]: read(a, r) for a, r in zip(outer_reads, vars_out)}).doprint(post)
        finish = result if post == 1 else f"{result} * ({finish})"
        if rows:
            body, pad = _output_loops(outs, out)
            body.append(f"{pad}_total = 0.0")
            for v in sums[:-1]:
                body.append(f"{pad}for {index[v]} in range({sizes[v]}):")
                pad += "    "
            last, size = index[sums[-1]], sizes[sums[-1]]  # the innermost summands as one row, for _sum
            row = buffer or "_row"  # (given: made by the caller, once for many rows)
            body += [f"{pad}_row = xp.empty({size})"] * (buffer is None) + [
                f"{pad}for {last} in range({size}):", f"{pad}    {row}[{last}] = {call(element, values)}",
                f"{pad}_total += _sum({row})"]
            pad = pad[:len(pad) - 4 * (len(sums) - 1)]
            body.append(f"{pad}{result} = _total")
            body.append(f"{pad}{out.at(outs)} = {finish}")
        else:
            body, pad = [], "    "
            body.append(f"{pad}_totals = xp.zeros({out.name}.shape)")
            for v in sums:
                body.append(f"{pad}for {index[v]} in range({sizes[v]}):")
                pad += "    "
            for k, v in enumerate(out_vars):
                body.append(f"{pad}for {index[v]} in range({out.extent(k)}):")
                pad += "    "
            body.append(f"{pad}_totals[{', '.join(outs)}] += {call(element, values)}")
            pad = "    "
            for k, v in enumerate(out_vars):
                body.append(f"{pad}for {index[v]} in range({out.extent(k)}):")
                pad += "    "
            body.append(f"{pad}{result} = _totals[{', '.join(outs)}]")
            body.append(f"{pad}{out.at(outs)} = {finish}")
        return tuple(body)

    params = ", ".join(str(p) for p in inner_p.values()) + "".join(f", {s}" for s in scalars)
    return Nest(params, tuple(lines), result, arrays, scalars, render, tuple(sorted(printer.used_functions)),
                _row_reads(arrays, inner_reads + outer_reads, vars_in + vars_out, out_vars[0]) if rows else None,
                call.inlined, sizes[sums[-1]] if rows else None, pieces=("numba/row_sum",) if rows else ())
