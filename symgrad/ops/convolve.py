"""numpy.convolve(x, y, mode) for 1-D x, y: a true convolution (the kernel runs backwards).

    out[k] = Σ_r x[k + off − r] · y[r] · [0 ≤ k + off − r < Lx]

``off`` places the window inside the 'full' result: 0 for full, (min(Lx, Ly) − 1) // 2 for same,
min(Lx, Ly) − 1 for valid.  The full result is symmetric in x and y, which is why numpy may swap
the operands; min/max keep this one definition valid for either order.
"""
from __future__ import annotations

import sympy as sp

from ..ir import Bracket, Op, SymgradError, Tensor, in_range, index, size

MODES = ("full", "same", "valid")


def convolve(mode: str = "full") -> Op:
    """numpy.convolve semantics; both operands are inputs.

    >>> convolve("same").params["mode"]
    'same'
    """
    mode = mode.strip().lower() if isinstance(mode, str) else mode
    if mode not in MODES:
        raise SymgradError(f"convolve: mode must be one of {', '.join(MODES)}, got {mode!r}")
    Lx, Ly, O = size("L_x"), size("L_y"), size("O")
    shorter, longer = sp.Min(Lx, Ly), sp.Max(Lx, Ly)
    off, out = {"full": (0, Lx + Ly - 1),
                "same": (sp.floor((shorter - 1) / 2), longer),
                "valid": (shorter - 1, longer - shorter + 1)}[mode]
    k, r = index("k", O), index("r", Ly)
    x, y = Tensor("x", (Lx,)), Tensor("y", (Ly,))
    pos = k + off - r
    rhs = sp.Sum(x[pos] * Bracket(in_range(pos, Lx)) * y[r], (r, 0, Ly - 1))
    return Op(name="convolve", params={"mode": mode}, inputs=(x, y), output=Tensor("out", (O,)),
              indices=(k,), rhs=rhs, output_sizes={O: out})
