"""The configurations of the pooling and interpolation families (avg_pool with ceil_mode,
count_include_pad and divisor_override; max_pool with padding, dilation and ceil_mode; interpolate's
nearest, nearest-exact and linear modes by size or scale factor, align_corners): their edge classes,
seeded random ones, and the smaller neighbours a discrepancy is shrunk through (cases.py's :class:`Case`)."""
from __future__ import annotations

import numpy as np

from .cases import SPATIAL, Case, axis_steps, changed, count_steps


def _pool(family, klass, ndim, length, kernel, stride=None, pad=0, dilation=1, n=2, channels=3, **kw) -> Case:
    per = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,) * ndim  # noqa: E731
    return Case(family, klass, ndim, n=n, cin=channels, length=per(length), kernel=per(kernel),
                stride=per(kernel if stride is None else stride), dilation=per(dilation),
                pads=tuple((p, p) for p in per(pad)), **kw)


def _clipped(L, K, s, p) -> int:
    """The smallest length from ``L`` up whose ceil_mode output has a last window running past the padded input."""
    while (L + 2 * p - K) % s == 0:
        L += 1
    return L


def edge_cases(families) -> list:
    """A few configurations of each systematic class of the families asked for, on 1, 2 and 3 axes."""
    out = []
    for ndim in (1, 2, 3):
        L, K = {1: (11, 3), 2: (7, 3), 3: (5, 2)}[ndim]
        if "avg_pool" in families:
            c = lambda klass, **kw: _pool("avg_pool", klass, ndim, **{"length": L, "kernel": K, **kw})  # noqa: E731
            out += [c("windows", stride=1), c("windows", stride=K + 1, length=L + 3),
                    c("padding", stride=2, pad=K // 2),
                    c("ceil_mode (pytorch#198119)", stride=2, pad=1, length=_clipped(L, K, 2, 1), ceil_mode=True),
                    c("ceil_mode (pytorch#198119)", stride=2, length=_clipped(L, K, 2, 0), ceil_mode=True),
                    c("ceil_mode, count_include_pad=False", stride=2, pad=1, length=_clipped(L, K, 2, 1), ceil_mode=True,
                      count_include_pad=False),
                    c("count_include_pad=False", stride=1, pad=K // 2, count_include_pad=False),
                    c("window longer than the input (ceil_mode)", stride=2, length=K - 1, kernel=K, ceil_mode=True),
                    c("size-1 axes", n=1, channels=1, length=K),
                    c("non-contiguous", stride=2, pad=K // 2, layout="strided")]
            if ndim >= 2:  # (torch's avg_pool1d takes no divisor_override)
                out += [c("divisor_override", stride=2, pad=1, divisor=5), c("divisor_override", stride=1, divisor=-2),
                        c("channels_last and padding (pytorch#188344)", stride=2, pad=1, layout="channels_last"),
                        c("channels_last and padding (pytorch#188344)", stride=1, pad=K // 2, layout="channels_last",
                          count_include_pad=False),
                        c("channels_last and padding (pytorch#188344)", stride=2, pad=1, layout="channels_last",
                          length=_clipped(L, K, 2, 1), ceil_mode=True)]
        if "max_pool" in families:
            c = lambda klass, **kw: _pool("max_pool", klass, ndim, **{"length": L, "kernel": K, **kw})  # noqa: E731
            out += [c("windows", stride=1), c("windows", stride=K + 1, length=L + 3),
                    c("padding", stride=2, pad=K // 2), c("dilation", stride=1, dilation=2, length=L + 2),
                    c("dilation", stride=2, dilation=2, pad=K // 2, length=L + 1),
                    c("ceil_mode", stride=2, pad=1, length=_clipped(L, K, 2, 1), ceil_mode=True),
                    c("a window in the padding only", kernel=2, stride=1, dilation=2, pad=1, length=1),
                    c("size-1 axes", n=1, channels=1, length=K),
                    c("non-contiguous", stride=2, pad=K // 2, layout="strided")]
            if ndim >= 2:
                out += [c("channels_last and padding", stride=2, pad=1, layout="channels_last"),
                        c("channels_last and padding", stride=2, pad=1, layout="channels_last",
                          length=_clipped(L, K, 2, 1), ceil_mode=True)]
        if "interpolate" in families:
            out += _interpolations(ndim, {1: 5, 2: 4, 3: 3}[ndim])
    return [c for c in out if c.valid()]


def _resample(klass, ndim, length, mode, size=None, factor=None, align_corners=False, layout="contiguous", n=2,
              channels=2) -> Case:
    per = lambda v: () if v is None else tuple(v) if isinstance(v, (tuple, list)) else (v,) * ndim  # noqa: E731
    return Case("interpolate", klass, ndim, n=n, cin=channels, length=per(length), mode=mode, out_size=per(size),
                factor=per(factor), align_corners=align_corners, layout=layout)


def _interpolations(ndim: int, L: int) -> list:
    """interpolate's classes on ``ndim`` axes of length ``L``: each mode up and down by size (ratios
    whose source positions fall between inputs and on them), by scale factor, one output, the same
    size, channels_last and strided inputs."""
    c = lambda klass, mode, **kw: _resample(f"{mode} {klass}", ndim, kw.pop("length", L), mode, **kw)  # noqa: E731
    modes = ("nearest", "nearest-exact", "linear")
    out = []
    for make in (lambda m: c("up", m, size=2 * L + 1), lambda m: c("down", m, size=L - 2, length=2 * L),
                 lambda m: c("scale_factor", m, factor=2), lambda m: c("down", m, size=3, length=5 if ndim < 3 else 4),
                 lambda m: c("scale_factor", m, factor=3, length=L - 1), lambda m: c("one output", m, size=1),
                 lambda m: c("same size", m, size=L)):
        out += [make(mode) for mode in modes]  # (the modes in turn: a small budget reaches each)
    out += [c("align_corners", "linear", size=2 * L + 1, align_corners=True),
            c("align_corners", "linear", size=L - 1, align_corners=True, length=2 * L),
            c("align_corners", "linear", size=1, align_corners=True),
            c("align_corners", "linear", factor=2, align_corners=True),
            c("non-contiguous", "linear", size=2 * L - 1, layout="strided"),
            c("non-contiguous", "nearest", size=2 * L - 1, layout="strided")]
    if ndim >= 2:
        out += [c("channels_last", "linear", size=2 * L - 1, layout="channels_last"),
                c("channels_last", "nearest", factor=2, layout="channels_last")]
    return out


def random_cases(families, count: int, rng: np.random.Generator) -> list:
    """``count`` seeded random configurations over the pooling families, in turn (small sizes)."""
    out, fams = [], [f for f in families if f in SPATIAL]
    while fams and len(out) < count:
        fam = fams[len(out) % len(fams)]
        ndim = int(rng.choice([1, 1, 2, 2, 3]))
        if fam == "interpolate":
            out.append(_random_resample(ndim, rng))
            continue
        K = tuple(int(v) for v in rng.integers(1, 4 if ndim < 3 else 3, ndim))
        d = tuple(int(v) for v in rng.integers(1, 3, ndim)) if fam == "max_pool" else (1,) * ndim
        s = tuple(int(v) for v in rng.integers(1, 4, ndim))
        pad = tuple(int(rng.integers(0, k // 2 + 1)) for k in K)
        L = tuple(int(v) for v in rng.integers(1, {1: 14, 2: 9, 3: 6}[ndim], ndim))
        options = {"ceil_mode": bool(rng.random() < 0.5)}
        if fam == "avg_pool":
            if ndim > 1 and rng.random() < 0.2:
                options["divisor"] = int(rng.choice([-3, 2, 5, 7]))
            else:
                options["count_include_pad"] = bool(rng.random() < 0.6)
        layout = str(rng.choice(["contiguous"] * 4 + ["strided"] + (["channels_last"] if ndim > 1 else [])))
        case = _pool(fam, "random", ndim, L, K, s, pad, d, n=int(rng.integers(1, 3)), channels=int(rng.integers(1, 4)),
                     layout=layout, **options)
        if case.valid():
            out.append(case)
    return out


def _random_resample(ndim: int, rng: np.random.Generator) -> Case:
    mode = str(rng.choice(["nearest", "nearest-exact", "linear", "linear"]))
    top = {1: 12, 2: 7, 3: 4}[ndim]
    L = tuple(int(v) for v in rng.integers(1, top, ndim))
    by_factor = rng.random() < 0.3
    size = None if by_factor else tuple(int(v) for v in rng.integers(1, 2 * top, ndim))
    factor = tuple(int(v) for v in rng.integers(1, 4, ndim)) if by_factor else None
    layout = str(rng.choice(["contiguous"] * 4 + ["strided"] + (["channels_last"] if ndim > 1 else [])))
    return _resample("random", ndim, L, mode, size, factor, mode == "linear" and bool(rng.random() < 0.3), layout,
                     n=int(rng.integers(1, 3)), channels=int(rng.integers(1, 3)))


def smaller(case: Case):
    """The neighbours a shrink tries, simplest first: batch and channels, then each axis's size,
    parameter and padding one step toward its smallest value, the options off, fewer axes."""
    if case.family == "interpolate":
        yield from _smaller_resample(case)
        return
    tries = count_steps(case, ("n", "cin"))
    for key in ("stride", "dilation", "kernel", "length"):
        tries += axis_steps(case, key)
    for a, (p, _) in enumerate(case.pads):
        for new in (0, p - 1):
            if 0 <= new < p:
                tries.append({"pads": case.pads[:a] + ((new, new),) + case.pads[a + 1:]})
    if case.ceil_mode:
        tries.append({"ceil_mode": False})
    if case.divisor:
        tries.append({"divisor": 0})
    if not case.count_include_pad:
        tries.append({"count_include_pad": True})
    tries += _fewer_axes(case, ("length", "kernel", "stride", "dilation", "pads"),
                         {"divisor": 0} if case.ndim == 2 else {})  # (avg_pool1d has no divisor_override)
    yield from changed(case, tries)


def _fewer_axes(case: Case, keys, extra=None) -> list:
    """Changes dropping one spatial axis (any: the one left may hold the bug), a channels_last layout
    made contiguous; then the layout alone made contiguous."""
    layout = "contiguous" if case.layout == "channels_last" else case.layout
    tries = [{"ndim": case.ndim - 1, "layout": layout, **(extra or {}),
              **{k: getattr(case, k)[:drop] + getattr(case, k)[drop + 1:] for k in keys if getattr(case, k)}}
             for drop in range(case.ndim if case.ndim > 1 else 0)]
    return tries + ([{"layout": "contiguous"}] if case.layout != "contiguous" else [])


def _smaller_resample(case: Case):
    """An interpolation's neighbours: batch and channels, each input and output length one step (and
    half) smaller, the factor toward 1, fewer axes, a contiguous layout."""
    tries = count_steps(case, ("n", "cin"))
    for key in ("length", "out_size", "factor"):
        tries += axis_steps(case, key, half=True)
    yield from changed(case, tries + _fewer_axes(case, ("length", "out_size", "factor")))
