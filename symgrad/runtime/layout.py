"""A convolution operand between its dimension numbers' layout and the canonical one (N, C, spatial
or O, I, spatial): axis moves and unit axes only, so NumPy, CuPy and torch share it."""
import numpy as xp


def _to_layout(a, spec, canonical):
    """Permute ``a`` (axes named by ``spec``) to ``canonical``; absent N/C/O/I axes become size 1."""
    for letter in canonical:
        if letter not in spec:
            a = a[None]
            spec = letter + spec
    order = [spec.index(letter) for letter in canonical]
    return xp.moveaxis(a, order, list(range(len(order))))


def _from_layout(a, canonical, spec):
    """Inverse of _to_layout: drop the unit axes ``spec`` lacks, then permute to ``spec``."""
    for letter in canonical[:2]:
        if letter not in spec:
            a = a[(slice(None),) * canonical.index(letter) + (0,)]
            canonical = canonical.replace(letter, "")
    order = [canonical.index(letter) for letter in spec]
    return xp.moveaxis(a, order, list(range(len(order))))
