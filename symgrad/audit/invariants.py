"""Invariants of a gradient, derived from the op's definition rather than listed by hand.

Where the definition's output does not change when an input is shifted by a constant along some of
its axes (softmax along its row, layer_norm along its normalised axis, batch_norm over the batch and
spatial axes of a channel, attention's keys along the key axis), every gradient of that input sums
to zero along those axes: ⟨∂ℒ/∂x, v⟩ = 0 for every shift v.  :func:`derived` finds the smallest such
sets of axes by evaluating the definition (float64, literally) at standard-normal inputs of the
case's shapes and at shifted ones; :func:`violation` measures how far a framework's gradient is from the invariant, in ulps of
its dtype, which the report gives even where the values are within tolerance.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from . import truth
from .cases import Case

#: a shift leaves the output unchanged when it moves by less than this, relative to its magnitude
UNCHANGED = 1e-12
EPS = {"float64": 2.0 ** -52, "float32": 2.0 ** -23, "float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}


@dataclass(frozen=True)
class Invariant:
    input: str
    axes: tuple

    rank: int = 0

    def label(self) -> str:
        """The axes counted from the end (the same label for a row axis at any number of leading axes)."""
        return f"Σ ∂ℒ/∂{self.input} over axis {', '.join(str(a - self.rank) for a in self.axes)} = 0"


def _unchanged(case: Case, arrays: dict, y: np.ndarray, name: str, axes: tuple, rng) -> bool:
    """Whether shifting input ``name`` by random constants along ``axes`` leaves the output ``y`` (at
    ``arrays``) unchanged, twice."""
    scale = max(float(np.abs(y).max(initial=0.0)), 1e-300)
    shape = tuple(1 if a in axes else n for a, n in enumerate(np.shape(arrays[name])))
    for _ in range(2):
        shift = rng.standard_normal(shape) * max(float(np.abs(arrays[name]).max(initial=0.0)), 1.0)
        moved = truth.forward(case, dict(arrays, **{name: arrays[name] + shift}))
        if not np.all(np.isfinite(moved)) or float(np.abs(moved - y).max(initial=0.0)) > UNCHANGED * scale:
            return False
    return True


def derived(case: Case) -> list:
    """The smallest sets of axes along which a constant shift of an input leaves the output unchanged,
    found at standard-normal inputs of the case's shapes (saturated values would hide a change)."""
    rng = np.random.default_rng(0)
    case = dataclasses.replace(case, scale=1.0)
    arrays = truth.arrays_for(case, 0)
    out = []
    with np.errstate(all="ignore"):
        y = truth.forward(case, arrays)
        for name in truth._inputs(case):
            rank = np.ndim(arrays[name])
            found = []
            for size in range(1, rank + 1):
                for axes in itertools.combinations(range(rank), size):
                    if any(set(f) <= set(axes) for f in found):
                        continue  # implied by a smaller set
                    if _unchanged(case, arrays, y, name, axes, rng):
                        found.append(axes)
            out += [Invariant(name, axes, rank) for axes in found]
    return out


def violation(grad, invariant: Invariant, dtype: str, scale: float) -> tuple:
    """(ulps, n): max over the other axes of |Σ grad| / max(Σ |grad|, ``scale``) along the invariant's
    axes, in ulps of ``dtype``, and the number of elements each sum adds (``scale``: the case's largest
    expected magnitude, so that a gradient of rounding noise where the truth is 0 is not measured
    against itself).  A gradient whose every element is within k ulps of ``scale`` of a zero-sum one
    gives at most k·n."""
    if hasattr(grad, "detach"):
        grad = grad.detach().cpu().double()
    g = np.asarray(grad, dtype=np.float64)
    n = int(np.prod([g.shape[a] for a in invariant.axes])) if g.ndim == invariant.rank else 1
    if not np.all(np.isfinite(g)) or g.ndim != invariant.rank:
        return float("inf"), n
    total = np.abs(g.sum(axis=invariant.axes))
    size = np.maximum(np.abs(g).sum(axis=invariant.axes), scale)
    ratio = np.where(size > 0, total / np.where(size > 0, size, 1.0), 0.0)
    return float(ratio.max(initial=0.0)) / EPS[dtype], n


def beyond_rounding(ulps: float, n: int) -> bool:
    """A violation no rounding explains: more than 16 ulps per element summed."""
    return ulps > 16 * n
