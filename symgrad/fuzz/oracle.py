"""The arbiter: where symgrad and the reference disagree, the program's definition evaluated with
50-digit numbers (:func:`.evaluate.mp_outputs`) decides.  Values are compared element by element;
gradients along the direction in which the two disagree, by central finite differences of the
high-precision forward (a step of 1e-15 leaves ~1e-30 of truncation error), so a bug of the
reference is never counted against the engine.

For ``F`` the program (inputs ``x``, outputs ``y``) and upstream gradients ``g``:

* backward ``J(x)ᵀg`` along ``v``:  ``d/dε ⟨g, F(x + εv)⟩``;
* double backward ``∇_(g, x) ⟨gg, J(x)ᵀg⟩ = ∇_(g, x) ⟨g, J(x)·gg⟩`` along ``(w, v)``:
  ``d/dδ ⟨w, F(x + δ·gg)⟩ + d²/dε dδ ⟨g, F(x + εv + δ·gg)⟩``.
"""
from __future__ import annotations

import mpmath
import numpy as np

from .evaluate import mp_outputs

DIGITS = 50
STEP = "1e-15"
STEP2 = "1e-12"


def _mp(a):
    a = np.asarray(a, dtype=np.float64)
    return np.vectorize(lambda v: mpmath.mpf(float(v)), otypes=[object])(a) if a.size else a.astype(object)


def _inner(a, b) -> mpmath.mpf:
    """⟨a, b⟩ of two arrays (mpmath or float) in high precision."""
    a, b = np.asarray(a, dtype=object).ravel(), np.asarray(b, dtype=object).ravel()
    total = mpmath.mpf(0)
    for p, q in zip(a, b):
        total += mpmath.mpf(p) * mpmath.mpf(q)
    return total


class Arbiter:
    """The definition of ``program`` at ``sizes`` and ``arrays`` (float64), in high precision."""

    def __init__(self, program, sizes: dict, arrays: dict):
        self.program, self.sizes = program, sizes
        self.names = list(arrays)
        self.arrays = arrays

    def outputs(self, moves=()) -> list:
        """The outputs at ``x + Σ step·direction`` over ``moves`` of ``(directions by input, step)``."""
        with mpmath.workdps(mpmath.mp.dps):
            arrays = {n: _mp(a) for n, a in self.arrays.items()}
            for directions, step in moves:
                for n, d in directions.items():
                    arrays[n] = arrays[n] + _mp(d) * step
            return mp_outputs(self.program, self.sizes, arrays)

    def forward(self) -> list:
        """The outputs as float64 (rounded once from 50 digits)."""
        with mpmath.workdps(DIGITS):
            return [np.vectorize(float, otypes=[float])(y) if np.size(y) else np.zeros(np.shape(y))
                    for y in self.outputs()]

    def _loss(self, weights: list, moves: list) -> mpmath.mpf:
        """``⟨weights, F(x + Σ step·direction)⟩``."""
        return sum((_inner(w, y) for w, y in zip(weights, self.outputs(moves))), mpmath.mpf(0))

    def backward(self, g: list, v: dict) -> float:
        """``⟨Jᵀg, v⟩`` by central differences at 50 digits."""
        with mpmath.workdps(DIGITS):
            h = mpmath.mpf(STEP)
            plus = self._loss(g, [(v, h)])
            minus = self._loss(g, [(v, -h)])
            return float((plus - minus) / (2 * h))

    def double_backward(self, g: list, gg: dict, w: list, v: dict) -> float:
        """The double backward's projection on ``(w, v)`` (``w`` over the outputs' upstream gradients,
        ``v`` over the inputs)."""
        with mpmath.workdps(DIGITS + 20):
            h, k = mpmath.mpf(STEP2), mpmath.mpf(STEP2)
            first = (self._loss(w, [(gg, h)]) - self._loss(w, [(gg, -h)])) / (2 * h)
            corners = [self._loss(g, [(v, a * h), (gg, b * k)]) for a in (1, -1) for b in (1, -1)]
            mixed = (corners[0] - corners[1] - corners[2] + corners[3]) / (4 * h * k)
            return float(first + mixed)


def judge(ours, theirs, truth, scale=None) -> str:
    """Which of two projections the truth bears out: 'ours' (the reference erred), 'theirs' (symgrad
    erred: the reference is right or ten times closer), 'both' (each within rounding of the truth),
    'alike' (both off, neither ten times closer, or where the truth is 0 to float64's resolution a
    hundred times: a value float64 cannot resolve, as a gradient that is 0 by cancellation is the
    rounding of what cancels, in whatever direction, amplified by whatever divides it) or 'neither' (a
    projection that is not a number).  ``scale``: what an error is
    relative to — the larger gradient's norm times the direction's (a projection on the difference can
    be small by cancellation, its rounding not); by default the largest of the three."""
    scale = max(scale or 0, abs(ours), abs(theirs), abs(truth), 1e-300)
    eo, et = abs(ours - truth) / scale, abs(theirs - truth) / scale
    if eo <= 1e-7 and et <= 1e-7:
        return "both"
    if eo <= 1e-7 or eo * 10 < et:
        return "ours"
    if et <= 1e-7:
        return "theirs"
    noise = abs(truth) <= 1e-7 * min(abs(ours), abs(theirs))  # the truth is 0 to float64: both are rounding
    if eo <= (100 if noise else 10) * et:
        return "alike"
    return "theirs" if et * 10 < eo else "neither"


__all__ = ["Arbiter", "judge"]
