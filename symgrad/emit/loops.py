"""The numba loops of an elementwise op's NumPy module: one element of each function as scalar
statements (runtime piece ``jit`` runs them; ``jit_<function>`` supplies float32 ``erf``, ``tanh``
and ``exp`` that LLVM vectorises)."""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from ..printing.double import wide_statements
from ..printing.scalar import ElementPrinter, element_statements

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
class Nest:
    """An elementwise form list as one numba loop nest over the target's index space: ``element``
    takes the operands' values (``params``, each read at its own indices) and the sizes and
    constants the expression uses (``scalars``); ``body`` is the nest itself."""

    params: str
    lines: tuple
    result: str
    arrays: tuple       # the arrays the nest reads, in argument order (tensor names)
    scalars: tuple      # the size symbols and constants it reads, in argument order
    body: tuple         # the loop lines (inside ``def loop(out, …)``)
    functions: tuple
    rows: tuple = None  # per array, whether every read of it is at the row being computed (axis 0
    #                     read at the output's first index); None: the nest is not row by row (its
    #                     first loop is not the prange over the output's first axis)

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
    index = {v: f"_i{k}" for k, v in enumerate(out_vars)}
    arg = {name: f"_x{k}" for k, name in enumerate(arrays)}
    values = ", ".join([f"_F({arg[a.base.name]}[{', '.join('0' if v is None else index[v] for v in r)}])"
                        for a, r in zip(accesses, reads)] + [f"_F({s})" for s in scalars])
    body, pad = [], "    "
    for k, v in enumerate(out_vars):
        body.append(f"{pad}for {index[v]} in {'numba.prange' if k == 0 else 'range'}(out.shape[{k}]):")
        pad += "    "
    store = f"out[{', '.join(index[v] for v in out_vars)}]"
    if mask:
        body += [f"{pad}{store} = element({values}) if {mask} else 0"]
    else:
        body += [f"{pad}{store} = element({values})"]
    return Nest(", ".join(str(p) for p in params.values()) + "".join(f", {s}" for s in scalars), tuple(lines),
                result, arrays, scalars, tuple(body), tuple(sorted(printer.used_functions)),
                _row_reads(arrays, accesses, reads, out_vars[0]))


def _row_reads(arrays, accesses, reads, row) -> tuple:
    """Per array, whether every read of it takes axis 0 at the output's first index ``row``."""
    return tuple(all(r and r[0] == row for a, r in zip(accesses, reads) if a.base.name == name) for name in arrays)


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
        post_code = printer.doprint(post)
        sizes = {v: printer.doprint(e).replace("_F(", "int(") for v, e in extents.items()}
    except (ValueError, NotImplementedError):
        return None
    arrays = tuple(dict.fromkeys(a.base.name for a in inner_reads + outer_reads))
    arg = {name: f"_x{k}" for k, name in enumerate(arrays)}
    index = {**{v: f"_i{k}" for k, v in enumerate(out_vars)}, **{v: f"_s{k}" for k, v in enumerate(sums)}}
    read = lambda a, r: f"_F({arg[a.base.name]}[{', '.join('0' if v is None else index[v] for v in r)}])"
    values = ", ".join([read(a, r) for a, r in zip(inner_reads, vars_in)] + [f"_F({s})" for s in scalars])
    finish = post_code
    for a, r in zip(outer_reads, vars_out):
        finish = re.sub(rf"\b{outer_p[a]}\b", read(a, r), finish)
    finish = result if post == 1 else f"{result} * ({finish})"
    store = ", ".join(index[v] for v in out_vars)
    widest = max(vars_in, key=lambda r: len([v for v in r if v is not None]))
    rows = [v for v in widest if v is not None][-1] in sums
    body, pad = [], "    "
    if rows:
        for k, v in enumerate(out_vars):
            body.append(f"{pad}for {index[v]} in {'numba.prange' if k == 0 else 'range'}(out.shape[{k}]):")
            pad += "    "
        body.append(f"{pad}_total = 0.0")
        for v in sums[:-1]:
            body.append(f"{pad}for {index[v]} in range({sizes[v]}):")
            pad += "    "
        last, size = index[sums[-1]], sizes[sums[-1]]  # the innermost summands as one row, for _sum
        body += [f"{pad}_row = xp.empty({size})", f"{pad}for {last} in range({size}):",
                 f"{pad}    _row[{last}] = element({values})", f"{pad}_total += _sum(_row)"]
        pad = pad[:len(pad) - 4 * (len(sums) - 1)]
        body.append(f"{pad}{result} = _total")
        body.append(f"{pad}out[{store}] = {finish}")
    else:
        body.append(f"{pad}_totals = xp.zeros(out.shape)")
        for v in sums:
            body.append(f"{pad}for {index[v]} in range({sizes[v]}):")
            pad += "    "
        for k, v in enumerate(out_vars):
            body.append(f"{pad}for {index[v]} in range(out.shape[{k}]):")
            pad += "    "
        body.append(f"{pad}_totals[{store}] += element({values})")
        pad = "    "
        for k, v in enumerate(out_vars):
            body.append(f"{pad}for {index[v]} in range(out.shape[{k}]):")
            pad += "    "
        body.append(f"{pad}{result} = _totals[{store}]")
        body.append(f"{pad}out[{store}] = {finish}")
    params = ", ".join(str(p) for p in inner_p.values()) + "".join(f", {s}" for s in scalars)
    return Nest(params, tuple(lines), result, arrays, scalars, tuple(body), tuple(sorted(printer.used_functions)),
                _row_reads(arrays, inner_reads + outer_reads, vars_in + vars_out, out_vars[0]) if rows else None)
