"""The configurations of the program families (softmax, log_softmax, cross_entropy, layer_norm, rms_norm,
batch_norm, attention): their edge classes, seeded random ones, and the smaller neighbours a discrepancy
is shrunk through.  The families' definitions are programs of several statements; a case holds their
shapes and parameters only (cases.py's :class:`Case`)."""
from __future__ import annotations

import numpy as np

from .cases import PROGRAMS, Case, changed

ROWS = ("softmax", "log_softmax", "cross_entropy", "layer_norm", "rms_norm")


def _attention(klass, b, lq, lk, e, ev, causal=False) -> Case:
    return Case("attention", klass, a_shape=(b, lq, e), b_shape=(b, lk, e), v_shape=(b, lk, ev), causal=causal)


def edge_cases(families) -> list:
    """A few configurations of each systematic class, for every program family asked for."""
    out = []
    for fam in [f for f in ROWS if f in families]:
        c = lambda klass, shape, **kw: Case(fam, klass, shape=shape, **kw)  # noqa: E731
        out += [c("rows", (3, 7)), c("one column", (4, 1)), c("leading axes", (2, 3, 5)),
                c("large values", (3, 6), scale=30.0), c("saturated rows", (2, 5), scale=1e4),
                c("long rows", (2, 120))]
        if fam == "cross_entropy":
            out += [c("reduction", (3, 4), reduction="sum"), c("reduction", (3, 4), reduction="none")]
    if "batch_norm" in families:
        c = lambda klass, shape, **kw: Case("batch_norm", klass, shape=shape, **kw)  # noqa: E731
        out += [c("channels", (4, 3)), c("channels", (3, 2, 5)), c("2-d", (2, 3, 4, 3)),
                c("large values", (4, 2, 3), scale=30.0)]
    if "attention" in families:
        for causal in (False, True):
            tag = "causal" if causal else "attention"
            out += [_attention(tag, 2, 3, 5, 4, 4, causal), _attention(tag, 1, 4, 4, 2, 5, causal),
                    _attention(f"{tag}, one key", 2, 1, 1, 3, 3, causal), _attention(f"{tag}, long keys", 1, 2, 40, 3, 3, causal)]
    return [c for c in out if c.valid()]


def random_cases(families, count: int, rng: np.random.Generator) -> list:
    """``count`` seeded random configurations over the program families (small sizes)."""
    out, fams = [], [f for f in families if f in PROGRAMS]
    while fams and len(out) < count:
        fam = fams[len(out) % len(fams)]  # in turn: every family gets its share
        # (values of a few units: saturated rows are the edge classes', whose truths are exact zeros)
        scale = float(rng.choice([1.0, 1.0, 3.0]))
        if fam == "attention":
            b, lq, lk, e, ev = (int(v) for v in rng.integers(1, 6, 5))
            ev = e if rng.random() < 0.5 else ev  # (JAX's attention takes values of the queries' width only)
            causal = bool(rng.random() < 0.5)
            case = _attention("random", b, min(lq, lk) if causal else lq, lk, e, ev, causal)
        elif fam == "batch_norm":
            shape = (int(rng.integers(1, 5)), int(rng.integers(1, 4)), *(int(v) for v in rng.integers(1, 5, int(rng.integers(0, 3)))))
            case = Case(fam, "random", shape=shape, scale=scale)
        else:
            shape = tuple(int(v) for v in rng.integers(1, 6, int(rng.integers(1, 3)))) + (int(rng.integers(1, 12)),)
            shape = shape if len(shape) >= 2 else (1,) + shape
            case = Case(fam, "random", shape=shape, scale=scale,
                        reduction=str(rng.choice(["mean", "sum", "none"])) if fam == "cross_entropy" else "mean")
        if case.valid():
            out.append(case)
    return out


def smaller(case: Case):
    """The neighbours a shrink tries: each axis one step (and half) smaller, values toward scale 1."""
    tries = []
    if case.family == "attention":
        (b, lq, e), lk, ev = case.a_shape, case.b_shape[1], case.v_shape[2]
        for axis, v in enumerate((b, lq, lk, e, ev)):
            for new in (1, v // 2, v - 1):
                if 1 <= new < v:
                    s = [b, lq, lk, e, ev]
                    s[axis] = new
                    tries.append(dict(a_shape=(s[0], s[1], s[3]), b_shape=(s[0], s[2], s[3]), v_shape=(s[0], s[2], s[4])))
        if case.causal:
            tries.append({"causal": False})
    else:
        for axis, v in enumerate(case.shape):
            for new in (1, v // 2, v - 1):
                if 1 <= new < v:
                    tries.append({"shape": case.shape[:axis] + (new,) + case.shape[axis + 1:]})
        if len(case.shape) > 2 and case.family != "batch_norm":
            tries.append({"shape": (int(np.prod(case.shape[:-1])), case.shape[-1])})
    if case.scale != 1.0:
        tries.append({"scale": 1.0})
    yield from changed(case, tries)
