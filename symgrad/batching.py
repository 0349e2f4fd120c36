"""Batching rules, derived: which inputs a ``vmap`` batch axis can be folded into.

Mapping a program over a new batch axis ``B`` of some of its inputs can run the program once on
inputs whose first axis holds ``B`` times as many rows, when every statement treats that axis as
rows: a statement that reads a batched tensor indexes it (and nothing else) by its own first index
``n``, reads it at ``n`` on that axis, and the size of that axis appears nowhere else (no mean over
it, no output size computed from it, no condition on it).  Such a statement's output is batched
too; one that reads no batched tensor is the same for every batch element.  Convolution is that in
``x`` (``y[n, …]`` reads ``x[n, …]`` and ``w[f, …]``), not in ``w``; a layer norm is that in
``x`` over its rows.

:func:`folds` finds, for every set of batched inputs, the smallest set of inputs to fold (the
batched ones, plus any that must be broadcast over the batch to go with them), and which of the
program's results then carry the batch; the emitted vmap rule looks the call's batched inputs up
in that table and loops over the batch where the table has no entry.
"""
from __future__ import annotations

from itertools import combinations

import sympy as sp

from .ir import plain
from .program import Program

#: the most inputs whose subsets are tabulated (2**8 analyses); with more, the rule loops
MOST_INPUTS = 8


def _carried(program: Program, folded: frozenset) -> set | None:
    """The tensors that carry the batch when the inputs ``folded`` hold it along their first axis,
    or None when some statement does not treat that axis as rows."""
    tensors = program.tensors
    sizes = set()
    for name in folded:
        t = tensors[name]
        if not t.dims or (t.split and t.split[0] != 1) or not isinstance(t.dims[0], sp.Symbol):
            return None
        sizes.add(t.dims[0])
    if len(sizes) != 1:
        return None
    size = next(iter(sizes))
    others = [t for t in program.inputs if t.name not in folded]
    if any(size in sp.sympify(d).free_symbols for t in others for d in t.dims):
        return None
    conditions = [r[0] if isinstance(r, tuple) else r for r in program.requires]
    if any(size in sp.sympify(v).free_symbols for v in list(program.output_sizes.values()) + conditions):
        return None
    carrying = set(folded)
    for stmt in program.statements:
        rhs = plain(stmt.rhs)
        reads = rhs.atoms(sp.Indexed)
        if not any(a.base.name in carrying for a in reads):
            if any(size in sp.sympify(d).free_symbols for d in stmt.output.dims):
                return None
            continue
        row = plain(stmt.indices[0]) if stmt.indices else None
        if not isinstance(row, sp.Symbol) or stmt.output.dims[0] != size or size in rhs.free_symbols:
            return None
        if row in {plain(i) for i in stmt.over}:
            return None
        for a in reads:
            later = set().union(*(sp.sympify(i).free_symbols for i in a.indices[1:])) if len(a.indices) > 1 else set()
            if a.base.name in carrying:
                if a.indices[0] != row or row in later:
                    return None
            elif row in later | sp.sympify(a.indices[0]).free_symbols:
                return None
        rest = rhs.xreplace({a: sp.Dummy() for a in reads})
        if row in rest.free_symbols:
            return None
        carrying.add(stmt.name)
    return carrying


def folds(program: Program, results) -> dict:
    """``{batched inputs: (inputs folded, whether each of ``results`` carries the batch)}`` (names
    in input order) for every non-empty set of batched inputs that a fold serves; the smallest
    foldable superset is taken.  Empty when the program has more than :data:`MOST_INPUTS` inputs.

    >>> from symgrad import ops
    >>> from symgrad.forward_mode import op_program
    >>> table = folds(op_program(ops.build("conv2d", stride=1, padding=0, dilation=1)), ["y"])
    >>> table[("x",)], ("w",) in table
    ((('x',), (True,)), False)
    """
    names = [t.name for t in program.inputs]
    if len(names) > MOST_INPUTS:
        return {}
    valid = {}
    for size in range(1, len(names) + 1):
        for subset in combinations(names, size):
            carrying = _carried(program, frozenset(subset))
            if carrying is not None:
                valid[subset] = tuple(r in carrying for r in results)
    table = {}
    for size in range(1, len(names) + 1):
        for batched in combinations(names, size):
            for folded, carrying in valid.items():  # (smallest first: combinations by size)
                if set(batched) <= set(folded):
                    table[batched] = (folded, carrying)
                    break
    return table


__all__ = ["folds", "MOST_INPUTS"]
