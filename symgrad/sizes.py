"""Every size, one place: the statements that read an op's sizes from its inputs' shapes and check
them (emitted into every module as ``_sizes``), and :func:`concrete_sizes`, which runs those same
statements for given shapes (the CLI's ``--input-shape``, the checks, the benchmarks).  The output
sizes themselves are the op's definition (``Op.output_sizes``)."""
from __future__ import annotations

import math
import re

import numpy as np
import sympy as sp

from .ir import Op, SymgradError
from .program import Program
from .printing.text import shape_code, size_code
from .runtime.rows import _leading


def shape_text(t) -> str:
    """A tensor's shape as people write it: ``(N, C_in, L)``, ``(C_out,)``."""
    return str(tuple(sp.Symbol(str(d)) if not d.is_Integer else int(d) for d in t.shape)).replace("'", "")


def _symbols(op: Op) -> dict:
    """Name -> symbol for every size symbol the op uses (to read its ``requires`` messages)."""
    syms = set()
    for t in (*op.inputs, op.output):
        for d in t.dims:
            syms |= d.free_symbols
    for e in op.output_sizes.values():
        syms |= e.free_symbols
    for c, _ in op.requires:
        syms |= c.free_symbols
    return {s.name: s for s in syms}


def bind_statements(op: Op, bound=(), checked=(), shown=None, ranked=None) -> tuple:
    """``(lines, symbols)``: Python statements that read every size symbol from the input arrays
    (named as the inputs), raise ``ValueError`` naming the op, the input and the expected shape where
    they do not fit, and compute the output sizes; and the symbols they bind, in order.  Symbols in
    ``bound`` are taken as given (names in scope); the inputs named in ``checked`` are left out (the
    caller has checked their shapes: a JVP's tangents, each of its primal's shape).  ``shown``: the
    names the messages give the op and inputs where the caller knows them by others (a double
    backward's: ``softmax double_backward``, ``grad_output`` for the backward program's ``ybar``); the
    inputs in ``ranked`` (name -> how) have their rank already (a program's rows: runtime/rows.py makes
    them), and the messages say how a shape they show was made from the caller's."""
    say = _say(shown)
    ranked = ranked or {}
    got = lambda name: f"{{{name}.shape}}" + (f" {ranked[name]}" if name in ranked else "")  # noqa: E731
    lines, bound, later = [], list(bound), []
    origins = {}  # size symbol -> (input, axis) it is read from
    for t in op.inputs:
        if t.name in checked:
            continue
        want = shape_text(t)
        if t.name not in ranked:
            lines.append(f"if {t.name}.ndim != {len(t.shape)}:")
            lines.append(f'    raise ValueError(f"{say(op.name)}: input {say(t.name)} must have shape {want}, got {{{t.name}.shape}}")')
        if t.scalar:  # one element, read through its one index axis
            continue
        for axis, run in enumerate([t.dims[a] for a in r] for r in t.runs):
            if sp.Mul(*run).free_symbols & set(op.output_sizes):  # an output's size (a gradient's upstream
                later.append((t, axis, run))                     # taken as an input): checked once computed
                continue
            unknown = [d for d in run if d.is_Symbol and d not in bound]
            known = sp.Mul(*[d for d in run if d not in unknown])
            if len(unknown) > 1:
                raise SymgradError(f"{op.name}: emitting code needs concrete values for {', '.join(map(str, unknown))}")
            if unknown:
                u = unknown[0]
                origins[u] = (t, axis)
                if known == 1:
                    lines.append(f"{u} = {t.name}.shape[{axis}]")
                else:
                    lines.append(f"{u} = {t.name}.shape[{axis}] // {size_code(known)}")  # (SymInt-safe: no divmod)
                    lines.append(f"if {t.name}.shape[{axis}] % {size_code(known)}:")
                    lines.append(f'    raise ValueError(f"{say(op.name)}: axis {axis} of input {say(t.name)} ({{{t.name}.shape[{axis}]}}) '
                                 f'is not a multiple of {known}: {say(t.name)} must have shape {want}, {known} groups of '
                                 f'{u}; got {got(t.name)}")')
                if u != op.batch and u not in op.empty_ok:
                    lines.append(f"if {u} < 1:")
                    lines.append(f'    raise ValueError(f"{say(op.name)}: input {say(t.name)} must have shape {want} with '
                                 f'{u} >= 1, got {got(t.name)}")')
                bound.append(u)
            else:
                lines += _axis_check(op, t, axis, run, origins, say, got)
    for sym, expr in op.output_sizes.items():
        lines.append(f"{sym} = {size_code(expr)}")
        bound.append(sym)
    for t, axis, run in later:
        lines += _axis_check(op, t, axis, run, origins, say, got)
    names = _symbols(op)
    for cond, message in op.requires:
        text = re.sub(r"\{([^{}]*)\}", lambda m: "{" + size_code(sp.sympify(m.group(1), locals=names)) + "}", message)
        lines.append(f"if not ({size_code(cond.lhs)} >= {size_code(cond.rhs)}):")
        lines.append(f"    raise ValueError(f{text!r})")
    for sym in op.output_sizes:
        lines.append(f"if {sym} < 1:")
        lines.append(f'    raise ValueError(f"{say(op.name)}: output size {sym} = {{{sym}}} < 1 for these shapes")')
    return lines, bound


def _say(shown):
    """name -> the name a message gives it (``shown``'s where it has one)."""
    return lambda name: (shown or {}).get(name, name)


def _axis_check(op: Op, t, axis: int, run, origins: dict, say, got) -> list:
    """The statements raising ValueError where axis ``axis`` of input ``t`` is not the size ``run`` says
    (and where a size in it was read from another input, which axis of which: a channels-last input
    shows up as the wrong size of the next one); ``got``: a shape as the messages show it."""
    value = sp.Mul(*run)
    named = "" if value.is_Integer else f"{value} = "  # which size it is: C_in, per group
    read = [(s, *origins[s]) for s in sorted(value.free_symbols, key=str) if s in origins and origins[s][0] != t]
    where = "".join(f", read from axis {a} of {say(src.name)}, whose shape {got(src.name)} is taken as "
                    f"{shape_text(src)}" for s, src, a in read)
    return [f"if {t.name}.shape[{axis}] != {size_code(value)}:",
            f'    raise ValueError(f"{say(op.name)}: input {say(t.name)} must have shape {shape_text(t)}, '
            f'got {got(t.name)} (axis {axis} should be {named}{{{size_code(value)}}}{where})")']


def grad_output_statements(op: Op, name: str, shown=None) -> list:
    """Statements that raise ``ValueError`` unless the upstream gradient ``name`` has the output's
    shape (an elementwise op's: its first input's), the sizes being bound already (``shown``: as
    :func:`bind_statements`)."""
    say = _say(shown)
    if op.elementwise:
        first = op.inputs[0].name
        return [f"if {name}.shape != {first}.shape:",
                f'    raise ValueError(f"{say(op.name)}: {say(name)} must have the shape of {say(first)} {{{first}.shape}}, '
                f'got {{{name}.shape}}")']
    want = shape_code(op.output.shape)
    return [f"if {name}.shape != {want}:",
            f'    raise ValueError(f"{say(op.name)}: {say(name)} must have shape {shape_text(op.output)} = {{{want}}}, '
            f'got {{{name}.shape}}")']


def grad_output_reads(op: Op) -> set:
    """The arrays :func:`grad_output_statements` reads besides the upstream gradient (an elementwise
    op's first input, whose shape it must have)."""
    return {op.inputs[0].name} if op.elementwise else set()


def concrete_sizes(op: Op, shapes: dict, known: dict = None) -> dict:
    """Size symbol -> value for inputs of the given ``shapes`` (name -> tuple), by the very statements
    the emitted module runs; a SymgradError with the module's own message where they do not fit.
    ``known`` gives values to symbolic parameters (a stride ``s`` evaluated at 2) first.  An
    elementwise op's size symbol is the number of elements.

    >>> from symgrad import ops
    >>> concrete_sizes(ops.conv(1, stride=2, padding=0, dilation=1), {"x": (1, 3, 9), "w": (4, 3, 3), "b": (4,)})[
    ...     sp.Symbol("O", integer=True, positive=True)]
    4
    """
    if isinstance(op, Program):  # a program's sizes are read from its inputs as an op's are
        shapes = row_shapes(op, shapes)
        op = op.interface()
    if not shapes:
        return {}
    missing = [t.name for t in op.inputs if t.name not in shapes]
    if missing:
        raise SymgradError(f"{op.name}: give --input-shape for every input (missing {', '.join(missing)})")
    known = dict(known or {})
    if op.elementwise:
        return {**known, **{d: sp.Integer(math.prod(shapes[t.name])) for t in op.inputs for d in t.dims}}
    lines, symbols = bind_statements(op, bound=list(known))
    body = "\n".join("    " + line for line in lines)
    args = ", ".join(t.name for t in op.inputs)
    source = f"def _sizes({args}):\n{body}\n    return ({''.join(f'{s}, ' for s in symbols)})\n"
    namespace = {str(s): int(v) for s, v in known.items()}
    exec(compile(source, "<symgrad-sizes>", "exec"), namespace)
    arrays = [np.broadcast_to(np.empty((), np.float32), shapes[t.name]) for t in op.inputs]
    try:
        values = namespace["_sizes"](*arrays)
    except ValueError as exc:
        raise SymgradError(str(exc)) from None
    except NameError as exc:
        raise SymgradError(f"{op.name}: concrete shapes need concrete parameters too ({exc})") from None
    return {s: sp.Integer(v) for s, v in zip(symbols, values)}


def row_shapes(program: Program, shapes: dict) -> dict:
    """``shapes`` as a program over rows sees them: the leading axes of its row inputs (those whose
    first axis is the program's ``leading`` size) broadcast together and flattened into one axis, as
    the emitted module does (runtime/rows.py).

    >>> from symgrad import ops
    >>> row_shapes(ops.build("attention"), {"q": (2, 4, 64, 16), "k": (4, 64, 16), "v": (1, 4, 64, 8)})
    {'q': (8, 64, 16), 'k': (8, 64, 16), 'v': (8, 64, 8)}
    """
    rows = {t.name: len(t.dims) for t in program.inputs
            if program.leading is not None and t.dims and t.dims[0] == program.leading and t.name in shapes}
    if not rows or any(len(shapes[n]) < rank - 1 for n, rank in rows.items()):
        return shapes  # (a shape too short for its rule is refused by the sizes check, by name)
    heads = {n: tuple(shapes[n][:len(shapes[n]) - rank + 1]) for n, rank in rows.items()}
    try:
        size = math.prod(_leading(program.name, heads))
    except ValueError as exc:
        raise SymgradError(str(exc)) from None
    return {n: (size,) + tuple(s[len(heads[n]):]) if n in rows else tuple(s) for n, s in shapes.items()}


def parse_shapes(op, items) -> dict:
    """``["x=1,3,64", "w=16,3,3"]`` -> ``{"x": (1, 3, 64), ...}``; names must be inputs."""
    shapes = {}
    names = [t.name for t in op.inputs]
    for item in items or []:
        name, _, dims = item.partition("=")
        name = name.strip()
        if name not in names or not dims:
            raise SymgradError(f"{op.name}: --input-shape takes NAME=d0,d1,... with NAME one of "
                               f"{', '.join(names)}; got {item!r}")
        try:
            shape = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            raise SymgradError(f"{op.name}: input shape of {name} must be integers, got {dims!r}") from None
        if any(d < 0 for d in shape):
            raise SymgradError(f"{op.name}: input shape of {name} has a negative size: {shape}")
        shapes[name] = shape
    return shapes
