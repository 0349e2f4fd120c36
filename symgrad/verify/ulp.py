"""Accuracy in units in the last place: an elementwise op's emitted forward and gradient, and
PyTorch's, against the op's own definition evaluated with mpmath at rising precision until two
precisions agree, over the whole finite range of float16, float32 and float64 (log-spaced
magnitudes of both signs, subnormals, the largest finite values, ±inf), with upstream gradients of
1e-4 .. 1e4.

Beyond |x| = 1e4, where 1 + tanh(u) would need more digits than there are atoms, and at ±∞, the
reference is the definition's limit or asymptote at ±∞ (SymPy's limit of the definition itself, not
of the emitted expression).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..derive import derive
from ..emit import emit, load
from ..ir import SymgradError

#: beyond this magnitude the reference is the definition's behaviour at ±∞
FAR = 1e4
GRADS = (1e-4, 1e-2, 1.0, 1e2, 1e4)


@dataclass
class Scan:
    """Per (dtype, quantity): the worst ulp error of ours and of torch, and the points where ours is
    worse than ``max(torch's, allowance)``."""

    op: str
    rows: list = field(default_factory=list)   # (dtype, quantity, points, worst ours (x), worst torch (x), worse)


def points(dtype, count: int) -> np.ndarray:
    """``count`` magnitudes log-spaced from the smallest subnormal to the largest finite value, both
    signs, dense where GELU turns (0.01 .. 12), with 0 and ±inf."""
    info = np.finfo(dtype)
    with np.errstate(over="ignore"):
        spread = np.geomspace(float(info.smallest_subnormal), float(info.max), count)
    turn = np.linspace(0.01, 12.0, count)
    magnitudes = np.concatenate([spread, turn, [float(info.max), float(info.smallest_subnormal)]])
    with np.errstate(over="ignore"):
        values = np.concatenate([magnitudes, -magnitudes, [0.0, np.inf, -np.inf]]).astype(dtype)
    return np.unique(values)


def _definition(op):
    """(h, s): the op's definition as a function of one symbol."""
    (x,) = op.inputs
    s = sp.Symbol("s", real=True)
    reads = op.rhs.atoms(sp.Indexed)
    return op.rhs.xreplace({a: s for a in reads}), s


class _Reference:
    """The definition h(s) (or its derivative) as a function of a float, to double precision and beyond."""

    PRECISIONS = (40, 160, 640, 2560)  # digits: the last is enough for every cancellation short of the far tail

    def __init__(self, h, s):
        self.h, self.s = h, s
        self.f = sp.lambdify(s, h, "mpmath")
        self.far = {}

    def __call__(self, value):
        if not np.isfinite(value) or abs(value) > FAR:
            return self._far(float(value))
        import mpmath
        previous = None
        for digits in self.PRECISIONS:
            with mpmath.workdps(digits):
                current = self.f(mpmath.mpf(float(value)))
            if previous is not None and current != 0 and abs(current - previous) <= abs(current) * mpmath.mpf(10) ** -25:
                break
            previous = current
        return sp.Float(current, 30) if current != 0 else sp.Integer(0)

    def _far(self, value):
        """h far out or at ±∞: its limit, or its asymptote a·s + b (limits computed once per side)."""
        sign = 1 if value > 0 else -1
        if sign not in self.far:
            infinity = sp.oo * sign
            limit = sp.limit(self.h, self.s, infinity)
            if limit.is_finite:
                self.far[sign] = (limit, None)
            else:
                a = sp.limit(self.h / self.s, self.s, infinity)
                self.far[sign] = (limit, (a, sp.limit(self.h - a * self.s, self.s, infinity)))
        limit, line = self.far[sign]
        if line is None or not np.isfinite(value):
            return limit
        return line[0] * sp.Float(value, 30) + line[1]


def ulps(got: float, want, dtype) -> float:
    """|got − want| in units of the last place of ``dtype`` at ``want`` (0 when both are the same
    infinity; inf when one is and the other is not, or got is NaN)."""
    info = np.finfo(dtype)
    if want in (sp.oo, -sp.oo) or abs(want) > float(info.max) * (1 + 2.0 ** -(info.nmant + 1)):
        return 0.0 if got == (np.inf if want > 0 else -np.inf) else np.inf
    if not np.isfinite(got):
        return np.inf
    w = float(want)
    with np.errstate(over="ignore"):
        spacing = float(np.spacing(np.abs(np.asarray(w, dtype=dtype))))
    return abs(got - w) / max(spacing, float(info.smallest_subnormal))


def scan(op, dtypes=(np.float16, np.float32, np.float64), count: int = 200, grads=GRADS,
         allowance: dict = None) -> Scan:
    """Scan ``op`` (an elementwise op of one input) in each dtype; ``allowance`` per dtype name: how
    many ulps ours may show where torch shows fewer (default 1)."""
    if not op.elementwise or len(op.inputs) != 1:
        raise SymgradError(f"check {op.name}: --ulp scans elementwise ops of one input; {op.name} is not one")
    from .reference import REFERENCES
    module = load(emit(derive(op)), f"{op.name}_ulp")
    h, s = _definition(op)
    forward, gradient_of = _Reference(h, s), _Reference(sp.diff(h, s), s)
    torch_fn = REFERENCES.get(op.name)
    result = Scan(op.name)
    for dtype in dtypes:
        name = np.dtype(dtype).name
        allow = (allowance or {}).get(name, 1.0)
        xs = points(dtype, count)
        want_f = [forward(v) for v in xs]
        want_d = [gradient_of(v) for v in xs]
        with np.errstate(all="ignore"):
            ours_f = module.forward(xs)
            theirs = _torch(torch_fn, op, xs, grads) if torch_fn else None
        rows = [("forward", [(ours_f[k], want_f[k], theirs[0][k] if theirs else None, xs[k]) for k in range(xs.size)])]
        gradient = []
        for gi, g in enumerate(grads):
            gv = np.full(xs.shape, g, dtype=dtype)
            with np.errstate(all="ignore"):
                (ours_d,) = module.backward(gv, xs)
            g_exact = sp.Float(float(np.asarray(g, dtype)), 30)
            gradient += [(ours_d[k], g_exact * want_d[k], theirs[1][gi][k] if theirs else None, (xs[k], g))
                         for k in range(xs.size)]
        rows.append(("gradient", gradient))
        for quantity, entries in rows:
            worst_ours, worst_theirs, worse = (0.0, None), (0.0, None), []
            for got, want, other, where in entries:
                a = ulps(float(got), want, dtype)
                b = ulps(float(other), want, dtype) if other is not None else None
                worst_ours = max(worst_ours, (a, where), key=lambda t: t[0])
                if b is not None:
                    x = where[0] if isinstance(where, tuple) else where
                    if np.isfinite(x):  # at ±inf torch gives NaN: said apart in the report
                        worst_theirs = max(worst_theirs, (b, where), key=lambda t: t[0])
                    if a > max(b, allow):
                        worse.append((where, a, b))
            result.rows.append((name, quantity, len(entries), worst_ours, worst_theirs if torch_fn else None, worse))
    return result


def _torch(fn, op, xs, grads):
    """PyTorch's forward and its gradient for each upstream gradient, at ``xs`` (its own dtype)."""
    try:
        import torch
    except ImportError:
        return None
    t = torch.tensor(xs, requires_grad=True)
    y = fn(op, t)
    outs = [torch.autograd.grad(y, t, torch.full_like(t, g), retain_graph=True)[0].numpy() for g in grads]
    return y.detach().numpy(), outs


def report(result: Scan) -> str:
    """The scan as a table: worst ulps of ours and torch's per dtype and quantity, and where ours
    is worse than torch's (beyond the allowance)."""
    head = (f"{'dtype':8s} {'quantity':9s} {'points':>6s}  {'symgrad max ulp (at)':32s}  {'torch, finite x (at)':32s}  "
            "worse than torch")
    lines = [f"{result.op}: error in ulps against the definition (mpmath, rising precision); at ±inf torch "
             "gives NaN", head, "-" * len(head)]
    show = lambda w: "-" if w is None else f"{w[0]:.3g} ({_where(w[1])})"
    for dtype, quantity, n, ours, theirs, worse in result.rows:
        lines.append(f"{dtype:8s} {quantity:9s} {n:6d}  {show(ours):32s}  {show(theirs):32s}  {len(worse)}")
    return "\n".join(lines)


def _where(where) -> str:
    if where is None:
        return "-"
    if isinstance(where, tuple):
        return f"x={float(where[0]):.4g}, g={where[1]:g}"
    return f"x={float(where):.4g}"
