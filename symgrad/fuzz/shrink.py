"""Shrinking: a failing program cut down, one step at a time, to one that still fails the same way
(same status, same check): statements dropped or cut off, sub-expressions replaced by one of their
parts or by a number, inputs nobody reads dropped, sizes made smaller.  Greedy, first step that
keeps the failure wins, until no step does (or the budget of checks is spent)."""
from __future__ import annotations

from dataclasses import replace

from .tree import (Bin, Brk, Fn, Neg, Num, Pow, Program, Read, Reduce, Statement, Stop, children, walk,
                   with_children)


def _reads(e) -> set:
    return {n.tensor for n in walk(e) if isinstance(n, Read)}


def _declared(s: Statement) -> Statement:
    return replace(s, out=tuple((v, e, True) for v, e, _ in s.out))


def _subexpressions(e, path=()):
    """Every node of ``e`` with the path of child positions leading to it."""
    yield path, e
    for k, c in enumerate(children(e)):
        yield from _subexpressions(c, path + (k,))


def _put(e, path, new):
    if not path:
        return new
    kids = list(children(e))
    kids[path[0]] = _put(kids[path[0]], path[1:], new)
    return with_children(e, tuple(kids))


def _simpler(node) -> list:
    """What a node may be replaced by: its parts (not a reduction's body, whose indices would leave
    their scope), or a number."""
    out = []
    if not isinstance(node, Reduce):
        out += [c for c in children(node)]
    if isinstance(node, (Bin, Fn, Pow, Neg, Stop, Brk, Reduce, Read)):
        out.append(Num("2"))
    return out


def candidates(p: Program, sizes: dict):
    """Programs (and sizes) one step smaller than ``p``, the biggest cuts first."""
    st = list(p.statements)
    # cut the program after a statement (it becomes the output)
    for k in range(len(st) - 1):
        kept = [replace(s, output=False) for s in st[:k + 1]]
        yield replace(p, statements=tuple(kept)), sizes
    # drop a statement nothing later reads
    for k, s in enumerate(st):
        later = set().union(*[_reads(t.rhs) for t in st[k + 1:]]) if k + 1 < len(st) else set()
        if len(st) > 1 and s.name not in later:
            yield replace(p, statements=tuple(st[:k] + st[k + 1:])), sizes
    # every output but the last unmarked
    if sum(s.output for s in st) > 1:
        yield replace(p, statements=tuple(replace(s, output=False) for s in st)), sizes
    # declare every output index (so a read may go without its range being lost)
    if any(not d for s in st for _, _, d in s.out):
        yield replace(p, statements=tuple(_declared(s) for s in st)), sizes
    # sub-expressions replaced by simpler ones
    for k, s in enumerate(st):
        for path, node in _subexpressions(s.rhs):
            for new in _simpler(node):
                rhs = _put(s.rhs, path, new)
                yield replace(p, statements=tuple(st[:k] + [replace(s, rhs=rhs)] + st[k + 1:])), sizes
    # inputs nobody reads
    read = set().union(*[_reads(s.rhs) for s in st])
    for t in p.inputs:
        if t.name not in read and len(p.inputs) > 1:
            yield replace(p, inputs=tuple(u for u in p.inputs if u.name != t.name)), sizes
    # smaller sizes
    for name, value in sorted(sizes.items()):
        for smaller in sorted({1, 2, value // 2, value - 1}):
            if 1 <= smaller < value:
                yield p, {**sizes, name: smaller}


def shrink(p: Program, sizes: dict, fails, budget: int = 300) -> tuple:
    """The smallest ``(program, sizes)`` found for which ``fails(program, sizes)`` still holds."""
    spent = 0
    improved = True
    while improved and spent < budget:
        improved = False
        for q, qs in candidates(p, sizes):
            if spent >= budget:
                break
            spent += 1
            try:
                ok = fails(q, qs)
            except Exception:  # noqa: BLE001 — a candidate the test cannot even build: not smaller, skip it
                ok = False
            if ok:
                p, sizes, improved = q, qs, True
                break
    return p, sizes


__all__ = ["candidates", "shrink"]
