"""The concrete sizes a random program (:mod:`.generate`) runs at, reproducible by seed: small (1 to a
few) or, with ``large``, with a tensor of at least 2^16 elements so the compiled loop nests and fused
rows run."""
from __future__ import annotations

import random

from .tree import Program, Reduce, size_value


def sizes(p: Program, seed: int, large: bool = False) -> dict:
    """Concrete values of the program's free sizes: 1 to 4 (5 to 9 where a construct needs more), or
    with ``large``, rows and columns so a tensor holds at least 2^16 elements (each statement's index
    grid kept under 2^22 points)."""
    rng = random.Random(seed * 7919 + 1)
    names = sorted(p.size_names())
    need = dict(p.minimum)
    for _ in range(200):
        values = {n: max(rng.choice((1, 2, 2, 3, 3, 4)), need.get(n, 1)) for n in names}
        if large and names:
            big = rng.sample(names, min(2, len(names)))
            values[big[0]] = max(values[big[0]], rng.choice((256, 512, 1024)))
            if len(big) > 1:
                values[big[1]] = max(values[big[1]], rng.choice((64, 128, 256)))
        if _fits(p, values, large):
            return values
    return {n: max(2, need.get(n, 1)) for n in names}


def _grid(p: Program, values: dict) -> list:
    """Points of each statement's index grid, and each tensor's element count."""
    from .tree import walk
    conc = p.concrete(values)
    out = []
    for s in p.statements:
        base = 1
        for e in s.dims:
            base *= max(size_value(e, conc), 0)
        extra = 1
        for node in walk(s.rhs):
            if isinstance(node, Reduce):
                for _, e, _ in node.over:
                    extra *= max(size_value(e, conc), 1)
        out.append((base * extra, base))
    for t in p.inputs:
        n = 1
        for e in t.dims:
            n *= size_value(e, conc)
        out.append((n, n))
    return out


def _fits(p: Program, values: dict, large: bool) -> bool:
    try:
        grid = _grid(p, values)
    except (KeyError, ZeroDivisionError):
        return False
    conc = p.concrete(values)
    if any(size_value(e, conc) < 1 for s in p.statements for e in s.dims):
        return False
    if large:
        return max(g for g, _ in grid) <= 2 ** 22 and max(n for _, n in grid) >= 2 ** 16
    return max(g for g, _ in grid) <= 4096


__all__ = ["sizes"]
