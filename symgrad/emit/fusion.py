"""Row fusion: consecutive statements of a program that each compute one row of their result from
the same row of the tensors before them (a normalisation's mean, centred input, variance and
output; a softmax's exponentials, sum and quotient) run as one numba loop over the rows, so
a row is read from memory once and its intermediates stay in cache; an intermediate nothing after
the loop reads is kept one row at a time and never stored whole.

The emitter hands :func:`fuse` its code as :class:`Unit`\\ s in program order: a loop nest with its
NumPy fallback and the store into an adjoint, an alias (``dx = dxc``), or other code.  A run of row
nests over rows of the same extent, each reading what the run made only at its own row, becomes
one group; a nest that reads nothing the run made (a bias gradient's sum over the rows) moves
before it; anything else ends it.  The group tries the fused loop (``_rows`` in
:mod:`symgrad.runtime.numba.fused_rows`) and falls back to the members' NumPy code: a member's own loop
nest is then never called, and :func:`fuse` reports the nests that are."""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..naming import identifier
from ..printing.text import comment, size_code, tuple_code
from .loops import Nest, Ref


class _After:
    def __repr__(self):
        return "AFTER"


#: what a name holds when the open group computes it after its loop (an adjoint's NumPy sum)
AFTER = _After()


@dataclass(frozen=True)
class Unit:
    """One step of the emitted code: ``lines`` alone (the unfused code: nest call, fallback and
    store); with ``nest``, the loop nest ``nest_name`` computing ``out`` over ``extent`` rows, its
    result then stored into ``into`` (``add``: added to it by NumPy after the loop), and ``numpy``
    the same step without the nest (a fused group's fallback); with ``alias``, ``out`` is that name
    unchanged (and stored like a nest's)."""

    lines: tuple
    out: str = None
    nest: Nest = None
    nest_name: str = None
    numpy: tuple = ()
    text: str = ""
    shape: str = ""          # the result's shape, as code
    extent: object = None    # the result's first axis (a size)
    work: object = None      # elements the nest visits (sympy)
    into: str = None
    add: bool = False
    alias: str = None
    comment: tuple = ()      # comment lines before it
    row: str = None          # a row's shape, as code (results of two axes or more)
    step: object = None      # a pointwise step one CUDA kernel computes (emit/kernel_fusion.py)
    reads: frozenset = frozenset()  # the names its code reads that code before it binds (tensors, sizes)

    @property
    def fusable(self) -> bool:
        return self.nest is not None and self.nest.rows is not None


@dataclass
class Group:
    """The members of an open group and what its names hold: ``made[name]`` is the index of the
    member whose result the name holds, AFTER, or the name whose value from before the group it
    holds; a name not in it holds its own value from before the group."""

    members: list = field(default_factory=list)
    made: dict = field(default_factory=dict)
    read: set = field(default_factory=set)        # names the members read
    before: list = field(default_factory=list)    # units moved before the group
    needed: set = field(default_factory=set)      # members a NumPy sum after the loop reads

    def reads_ok(self, unit: Unit) -> bool:
        """Whether ``unit``'s nest reads what the group made only at its own row."""
        if self.members and unit.extent != self.members[0].extent:
            return False
        for name, row in zip(unit.nest.arrays, unit.nest.rows):
            holds = self.made.get(name)
            if holds is AFTER or (isinstance(holds, int) and not row):
                return False
        return True

    def independent(self, unit: Unit) -> bool:
        """Whether ``unit`` (a nest) can run before the group: it reads nothing the group made and
        binds no name the group binds or reads."""
        reads = set(unit.nest.arrays) | ({unit.into} if unit.add else set())
        binds = {unit.out, unit.into} - {None}
        return not (reads & set(self.made) or binds & (set(self.made) | self.read))

    def take(self, unit: Unit):
        if unit.add:  # ``into = into + out`` runs after the loop: it reads both results whole
            self.needed |= {h for h in (self.made.get(unit.into), self.made.get(unit.alias)) if isinstance(h, int)}
        self.members.append(unit)
        self.read |= set(unit.nest.arrays if unit.nest else (unit.alias,)) | ({unit.into} if unit.add else set())
        self.made.update(bound(unit, len(self.members) - 1, self.made))


def bound(unit: Unit, index: int, made: dict) -> dict:
    """The names ``unit`` binds and what each then holds (as in :class:`Group`'s ``made``)."""
    source = made.get(unit.alias, unit.alias) if unit.alias else index
    return {name: AFTER if name == unit.into and unit.add else source
            for name in (unit.out, unit.into) if name is not None}


def fuse(op: str, units: list, prefix: str, groups: list, live: set, called: set) -> list:
    """The lines of ``units`` with runs of row nests fused (each group's loop recorded in
    ``groups`` for the template, named after ``prefix``; the names of the loop nests the lines
    still call added to ``called``).  ``live``: the names the code after these lines reads; a
    member's result that nothing after its group reads, and that has more than one axis, is never
    stored whole: its loop keeps one row at a time."""
    chunks, group = [], Group()

    def close():
        nonlocal group
        chunks.append(group.before)
        chunks.append(group if sum(m.nest is not None for m in group.members) >= 2 else group.members)
        group = Group()

    for unit in units:
        if unit.fusable and group.reads_ok(unit) or unit.alias and group.members:
            group.take(unit)
        elif unit.nest is not None and group.members and group.independent(unit):
            group.before.append(unit)
        else:
            close()
            if unit.fusable:
                group.take(unit)
            else:
                chunks.append([unit])
    close()
    lines, found = [], []
    for chunk in reversed(chunks):  # from the end, so each group knows what is read after it
        if isinstance(chunk, Group):
            lines = _group_lines(op, chunk, prefix, found, live) + lines
            chunk = chunk.members
        else:
            lines = [line for u in chunk for line in u.comment + u.lines] + lines
            called |= {u.nest_name for u in chunk if u.nest is not None}
        live = live | reads(chunk)
    groups.extend(reversed(found))
    return lines


def reads(units) -> frozenset:
    """The names the code of ``units`` reads."""
    return frozenset().union(*(u.reads for u in units))


def _group_lines(op: str, group: Group, prefix: str, groups: list, live: set) -> list:
    """The call of the group's fused loop, then each member's store; its members' own code when
    the loop does not apply.  Members nothing in ``live`` holds keep one row at a time."""
    members = group.members
    nests = [m for m in members if m.nest is not None]
    held = {holds for name, holds in group.made.items() if name in live} | group.needed
    scratch = {k for k, m in enumerate(members) if m.nest is not None and k not in held and not m.add and m.row}
    if len(scratch) == len(nests):  # (the loop must store something: its last result)
        scratch.discard(max(scratch))
    name = f"{prefix}_{_ident(nests[0].out)}_to_{_ident(nests[-1].out)}"
    taken = {g["name"] for g in groups}
    name = next(f"{name}{k or ''}" for k in range(len(taken) + 1) if f"{name}{k or ''}" not in taken)
    inputs, scalars, body, elements, functions, pieces, rows, buffers = [], [], [], [], set(), set(), [], []
    store = {}  # a member (index among all) → what the loop calls its result: outK or rowK
    made = {}
    for index, m in enumerate(members):
        if m.nest is not None:
            k = len(elements)
            store[index] = f"row{k}" if index in scratch else f"out{len([i for i in store if i not in scratch])}"
            refs = []
            for array in m.nest.arrays:
                holds = made.get(array, array)
                if isinstance(holds, int):  # a result of the group: its row, or the whole array it stores
                    refs.append(Ref(store[holds], row=holds in scratch))
                else:
                    if holds not in inputs:
                        inputs.append(holds)
                    refs.append(Ref(f"_x{inputs.index(holds)}"))
            scalars += [s for s in m.nest.scalars if s not in scalars]
            body += [f"        {line}" for line in comment(m.text)]
            if index in scratch:  # (a scratch row and a reduction's summands: made once per chunk of rows)
                rows.append(m.row)
                buffers.append(f"row{k} = xp.empty(_r{len(rows) - 1})")
            buffer = f"_row{k}" if m.nest.buffer else None
            if buffer:
                buffers.append(f"{buffer} = xp.empty({m.nest.buffer})")
            # (the nest's first line, the prange over the rows, is the group's own)
            body += list(m.nest.render(Ref(store[index], row=index in scratch), tuple(refs), f"element{k}",
                                       buffer)[1:])
            elements.append((f"element{k}", m.nest))
            functions |= set(m.nest.functions)
            pieces |= set(m.nest.pieces)
        made.update(bound(m, index, made))
    outs = [store[i] for i in sorted(store) if i not in scratch]
    groups.append({"name": name, "text": ", ".join(m.out for m in nests), "elements": elements,
                   "functions": sorted(functions), "pieces": sorted(pieces),
                   "loop_args": ", ".join(outs + [f"_x{j}" for j in range(len(inputs))] + scalars +
                                          [f"_r{j}" for j in range(len(rows))]),
                   "body": body, "buffers": buffers})
    work = sp.Add(*[m.work for m in nests])
    kept = [m for i, m in enumerate(members) if m.nest is not None and i not in scratch]
    call = (f"_fused = _rows({op!r}, _{name}_rows, {tuple_code(inputs)}, {tuple_code(scalars + rows)}, "
            f"{tuple_code(m.shape for m in kept)}, {inputs[0]}.dtype, {size_code(work)})")
    rowwise = list(dict.fromkeys(members[i].into or members[i].out for i in sorted(scratch)))
    fused, k = [f"{held} = None  # kept a row at a time: nothing after reads it" for held in rowwise], 0
    for index, m in enumerate(members):  # (each member's comment once: before its own code, below)
        if index in scratch:
            continue
        if m.nest is not None:
            fused += stored(m, f"_fused[{k}]")
            k += 1
        else:
            fused += list(m.lines)
    own = [line for m in members for line in m.comment + (m.numpy if m.nest is not None else m.lines)]
    head = f"# {len(nests)} statements row by row in one loop ({', '.join(m.out for m in nests)}), else one by one"
    return [head, call, "if _fused is not None:"] + ["    " + line for line in fused] + \
        ["else:"] + ["    " + line for line in own]


def stored(m: Unit, value: str) -> list:
    """The line leaving ``value`` where ``m``'s result goes: its ``into`` (added to it with ``add``), else its ``out``."""
    return [assign(m.into or m.out, value, m.add and m.into is not None)]


def assign(name: str, value: str, add: bool = False) -> str:
    """``name = value``, or with ``add`` ``name = name + value`` (an adjoint's later contribution)."""
    return f"{name} = {name} + {value}" if add else f"{name} = {value}"


def _ident(text: str) -> str:
    return identifier(text).strip("_")
