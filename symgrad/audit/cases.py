"""The configurations an audit tries: the systematic edge classes, seeded random ones, and the
smaller neighbours a discrepancy is shrunk through (the named historical bugs are in run.py).

A :class:`Case` holds numbers only (no SymPy): the op family, its sizes and parameters, and the
memory layout the framework gets its input in.  Shapes and the op's parameters follow from it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Case:
    """One configuration.  Convolutions: ``ndim``, batch ``n``, ``groups``, channels per group
    ``cin``/``cout``, per spatial axis ``length``, ``kernel``, ``stride``, ``dilation`` and ``pads``
    (lo, hi; negative crops).  matmul: ``a_shape``/``b_shape``; gelu: ``shape``, ``approximate``,
    ``scale`` of the values; convolve: ``length`` (Lx, Ly) and ``mode``.  ``layout`` is how the
    framework receives the first input: contiguous, channels_last or a strided view.  Pooling
    (avg_pool, max_pool): ``ndim``, ``n``, channels ``cin``, ``length``, ``kernel``, ``stride``,
    ``dilation`` (max_pool), symmetric ``pads`` as (p, p) per axis, ``ceil_mode``, and avg_pool's
    ``count_include_pad`` and ``divisor`` (0: none, as torch's divisor_override=None).  interpolate:
    ``ndim``, ``n``, ``cin``, ``length``, ``mode`` (nearest, nearest-exact, linear), the output size
    ``out_size`` or an integer ``factor`` per axis, ``align_corners``."""

    family: str
    klass: str
    ndim: int = 1
    n: int = 1
    groups: int = 1
    cin: int = 1
    cout: int = 1
    length: tuple = ()
    kernel: tuple = ()
    stride: tuple = ()
    dilation: tuple = ()
    pads: tuple = ()
    a_shape: tuple = ()
    b_shape: tuple = ()
    shape: tuple = ()
    approximate: str = "none"
    scale: float = 1.0
    mode: str = "full"
    layout: str = "contiguous"
    v_shape: tuple = ()
    causal: bool = False
    reduction: str = "mean"
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor: int = 0
    out_size: tuple = ()
    factor: tuple = ()
    align_corners: bool = False

    @property
    def conv(self) -> bool:
        return self.family.startswith("conv") and self.family != "convolve"

    @property
    def spatial(self) -> bool:
        """A pooling or interpolation family (spatial_cases.py)."""
        return self.family in SPATIAL

    @property
    def program(self) -> bool:
        """A family whose definition is a program (program_cases.py; max_pool: one max statement)."""
        return self.family in PROGRAMS or self.family == "max_pool"

    def out_length(self) -> tuple:
        """The output length per spatial axis (a convolution's, or torch's pooling with ``ceil_mode``:
        rounded up where the last window starts inside the input or its left padding; an interpolation's)."""
        if self.family == "interpolate":
            return self.out_size or tuple(f * L for f, L in zip(self.factor, self.length))
        out = []
        for L, K, s, d, (lo, hi) in zip(self.length, self.kernel, self.stride, self.dilation, self.pads):
            span = L + lo + hi - d * (K - 1) - 1
            out.append((min((span + s - 1) // s, (L + lo - 1) // s) if self.ceil_mode else span // s) + 1)
        return tuple(out)

    def valid(self) -> bool:
        if self.family == "interpolate":
            return (min(self.n, self.cin, *self.length, *self.out_length()) >= 1 and len(self.length) == self.ndim
                    and (not self.align_corners or self.mode == "linear"))
        if self.spatial:
            effective = [d * (K - 1) + 1 for K, d in zip(self.kernel, self.dilation)]
            return (min(self.n, self.cin, *self.length, *self.kernel, *self.stride, *self.dilation) >= 1
                    and all(0 <= 2 * lo <= K and lo == hi for (lo, hi), K in zip(self.pads, self.kernel))
                    and all(o >= 1 for o in self.out_length())
                    and (self.ceil_mode or all(L + 2 * lo >= e for L, (lo, _), e in
                                               zip(self.length, self.pads, effective))))
        if self.conv:
            return (all(v >= 1 for v in (*self.length, *self.kernel, *self.stride, *self.dilation))
                    and self.n >= 0 and min(self.groups, self.cin, self.cout) >= 1
                    and all(o >= 1 for o in self.out_length())
                    and all(L + lo + hi >= 0 for L, (lo, hi) in zip(self.length, self.pads)))
        if self.family == "convolve":
            return min(self.length) >= 1
        if self.family == "attention":
            return min(self.a_shape + self.b_shape + self.v_shape) >= 1 and (not self.causal or self.a_shape[1] <= self.b_shape[1])
        if self.program:
            return len(self.shape) >= 2 and min(self.shape) >= 1
        return True

    def shapes(self) -> dict:
        if self.spatial:
            return {"x": (self.n, self.cin, *self.length)}
        if self.family == "attention":
            return {"q": self.a_shape, "k": self.b_shape, "v": self.v_shape}
        if self.program:
            return {"x": self.shape, **PROGRAMS[self.family](self.shape)}
        if self.conv:
            return {"x": (self.n, self.groups * self.cin, *self.length),
                    "w": (self.groups * self.cout, self.cin, *self.kernel), "b": (self.groups * self.cout,)}
        if self.family == "matmul":
            return {"a": self.a_shape, "b": self.b_shape}
        if self.family == "gelu":
            return {"x": self.shape}
        return {"x": (self.length[0],), "y": (self.length[1],)}

    def op_params(self) -> tuple:
        """(registered op name, its parameters) of the symgrad op this case evaluates."""
        if self.family == "interpolate":
            given = {"size": self.out_size} if self.out_size else {"scale_factor": self.factor}
            return "interpolate", {"ndim": self.ndim, "mode": self.mode, "align_corners": self.align_corners, **given}
        if self.spatial:
            params = {"kernel_size": self.kernel, "stride": self.stride, "padding": tuple(lo for lo, _ in self.pads),
                      "ceil_mode": self.ceil_mode}
            if self.family == "max_pool":
                params["dilation"] = self.dilation
            elif self.divisor:
                params["divisor_override"] = self.divisor
            else:
                params["count_include_pad"] = self.count_include_pad
            return f"{self.family}{self.ndim}d", params
        if self.conv:
            return f"conv{self.ndim}d", {"stride": self.stride, "dilation": self.dilation, "groups": self.groups,
                                         "padding": ",".join(f"{lo}:{hi}" for lo, hi in self.pads)}
        if self.family == "matmul":
            return "matmul", {"a_shape": _pattern(self.a_shape, "a"), "b_shape": _pattern(self.b_shape, "b")}
        if self.family == "gelu":
            return "gelu", {"approximate": self.approximate}
        if self.program:
            return self.family, {"softmax": {}, "log_softmax": {}, "cross_entropy": {"reduction": self.reduction},
                                 "layer_norm": {"eps": EPS}, "rms_norm": {"eps": EPS},
                                 "batch_norm": {"ndim": len(self.shape) - 2, "eps": EPS},
                                 "attention": {"is_causal": self.causal}}[self.family]
        return "convolve", {"mode": self.mode}

    def as_dict(self) -> dict:
        """The case as the reproducer scripts and the JSON report see it (plain Python values)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if v not in ((), "")}
        if self.conv or self.spatial:
            out["out_length"] = self.out_length()
        return out

    def label(self) -> str:
        if self.family == "interpolate":
            given = f"size {self.out_size}" if self.out_size else f"scale_factor {self.factor}"
            return (f"interpolate x{self.shapes()['x']} {given} {self.mode}" + ", align_corners" * self.align_corners
                    + (f", {self.layout}" if self.layout != "contiguous" else ""))
        if self.spatial:
            options = [f"dilation {self.dilation}"] if self.family == "max_pool" else []
            options += ["ceil_mode"] * self.ceil_mode + ["count_include_pad=False"] * (not self.count_include_pad)
            options += [f"divisor_override {self.divisor}"] * bool(self.divisor)
            options += [self.layout] * (self.layout != "contiguous")
            return (f"{self.family}{self.ndim}d x{self.shapes()['x']} kernel {self.kernel} stride {self.stride} padding "
                    f"{tuple(lo for lo, _ in self.pads)}" + "".join(", " + o for o in options))
        if self.conv:
            return (f"conv{self.ndim}d x{self.shapes()['x']} w{self.shapes()['w']} stride {self.stride} dilation "
                    f"{self.dilation} pads {self.pads} groups {self.groups}"
                    + (f" {self.layout}" if self.layout != "contiguous" else ""))
        if self.family == "matmul":
            return f"matmul a{self.a_shape} b{self.b_shape}"
        if self.family == "gelu":
            return f"gelu({self.approximate}) x{self.shape} scale {self.scale:g}"
        if self.family == "attention":
            return f"attention{' causal' if self.causal else ''} q{self.a_shape} k{self.b_shape} v{self.v_shape}"
        if self.program:
            said = f" reduction {self.reduction}" if self.family == "cross_entropy" else ""
            return f"{self.family} x{self.shape}{said}" + (f" scale {self.scale:g}" if self.scale != 1 else "")
        return f"convolve x({self.length[0]},) y({self.length[1]},) mode {self.mode}"


#: the program families (their definitions are programs: symgrad/ops/softmax.py, norm.py, attention.py),
#: each with the shapes of its inputs after x (x's shape given); attention's are its own
PROGRAMS = {"softmax": lambda s: {}, "log_softmax": lambda s: {}, "cross_entropy": lambda s: {"t": s},
            "layer_norm": lambda s: {"weight": s[-1:], "bias": s[-1:]}, "rms_norm": lambda s: {"weight": s[-1:]},
            "batch_norm": lambda s: {"weight": s[1:2], "bias": s[1:2]}, "attention": None}
#: the pooling and interpolation families (spatial_cases.py): avg_pool's and interpolate's definitions are
#: ops, max_pool's a program of one max
SPATIAL = ("avg_pool", "max_pool", "interpolate")
#: the norms' eps in the audit (rms_norm's default, finfo(dtype).eps, would make the definition depend on the dtype)
EPS = 1e-5


def _pattern(shape, which) -> str:
    """matmul's shape pattern for concrete sizes: batch axes as numbers, the matrix axes named."""
    names = {"a": ("M", "K"), "b": ("K", "N")}[which]
    if len(shape) == 1:
        return "K"
    batch = [str(v) for v in shape[:-2]]
    return ",".join(batch + list(names))


def _conv(klass, ndim, n, groups, cin, cout, length, kernel, stride, dilation, pads, family="conv", layout="contiguous"):
    per = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,) * ndim  # noqa: E731
    pads = tuple(tuple(p) for p in pads) if isinstance(pads, (tuple, list)) and pads and isinstance(pads[0], (tuple, list)) \
        else ((pads, pads),) * ndim
    return Case(family, klass, ndim, n, groups, cin, cout, per(length), per(kernel), per(stride), per(dilation), pads,
                layout=layout)


def _padding(mode, kernel, dilation) -> tuple:
    """(lo, hi) of the string paddings, per axis (stride 1 for 'same')."""
    out = []
    for K, d in zip(kernel, dilation):
        total = d * (K - 1)
        out.append({"same": (total // 2, total - total // 2), "valid": (0, 0), "full": (total, total),
                    "causal": (total, 0)}[mode])
    return tuple(out)


def edge_cases(families) -> list:
    """The systematic classes, a few configurations each, for every convolution rank."""
    out = []
    for ndim in (1, 2, 3):
        L, K = {1: (11, 3), 2: (7, 3), 3: (5, 2)}[ndim]
        for fam in [f for f in ("conv", "conv_transpose", "conv_double") if f in families]:
            c = lambda klass, **kw: _conv(klass, ndim, **{**dict(n=2, groups=1, cin=2, cout=3, length=L,  # noqa: E731
                                                              kernel=K, stride=1, dilation=1, pads=0), **kw},
                                         family=fam)
            out += [c("stride > kernel", stride=K + 2, length=L + 4), c("stride > kernel", stride=K + 1, kernel=1),
                    c("stride and dilation share a factor", stride=2, dilation=2, length=L + 4),
                    c("stride and dilation share a factor", stride=3, dilation=3, length=L + 8),
                    c("trailing inputs never read", stride=2, length=L + 1 if (L + 1 - K) % 2 else L + 2),
                    c("trailing inputs never read", stride=3, dilation=2, length=L + 5),
                    c("asymmetric padding", pads=tuple((1, 0) if a % 2 == 0 else (0, 2) for a in range(ndim))),
                    c("negative padding", pads=tuple((-1, 1) if a % 2 == 0 else (2, -1) for a in range(ndim)), length=L + 2),
                    c("same", pads=_padding("same", (K,) * ndim, (1,) * ndim)),
                    c("same", dilation=2, pads=_padding("same", (K,) * ndim, (2,) * ndim), length=L + 2),
                    c("valid"), c("full", pads=_padding("full", (K,) * ndim, (1,) * ndim)),
                    c("causal", pads=_padding("causal", (K,) * ndim, (1,) * ndim)),
                    c("groups", groups=2), c("groups", groups=3, cin=1, cout=2, dilation=2, length=L + 2),
                    c("depthwise", groups=4, cin=1, cout=1), c("depthwise", groups=3, cin=1, cout=2),
                    c("groups x stride", groups=2, stride=2, length=L + 2),
                    c("groups x stride", groups=4, cin=1, cout=1, stride=2, pads=1),
                    c("size-1 axes", n=1, cin=1, cout=1, length=K, kernel=K), c("size-1 axes", kernel=1, length=1),
                    c("empty batch", n=0), c("large padding", pads=K + 2),
                    c("large padding", pads=tuple((K + 3, -1) for _ in range(ndim)), length=L + 2)]
            if ndim >= 2 and fam == "conv":
                out += [c("channels_last", layout="channels_last"), c("channels_last", layout="channels_last", stride=2),
                        c("non-contiguous", layout="strided", groups=2)]
            elif fam == "conv":
                out += [c("non-contiguous", layout="strided")]
    if "matmul" in families:
        for a, b in [((3, 4), (4, 5)), ((4,), (4,)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)),
                     ((1, 3, 4), (2, 4, 5)), ((2, 3, 0), (2, 0, 4)), ((3, 0), (0, 2))]:
            out.append(Case("matmul", "broadcasting" if len(a) != len(b) or 1 in a[:-2] + b[:-2] else
                            ("empty axes" if 0 in a + b else "matmul"), a_shape=a, b_shape=b))
    if "gelu" in families:
        for approximate in ("none", "tanh"):
            for scale, klass in ((1.0, "gelu"), (6.0, "gelu tails"), (30.0, "large values")):
                out.append(Case("gelu", klass, shape=(4, 33), approximate=approximate, scale=scale))
    if "convolve" in families:
        for mode in ("full", "same", "valid"):
            for lx, ly in ((7, 3), (3, 7), (6, 4), (1, 5), (5, 5)):
                out.append(Case("convolve", f"convolve {mode}", length=(lx, ly), mode=mode))
    return [c for c in out if c.valid()]


def random_cases(families, count: int, rng: np.random.Generator) -> list:
    """``count`` seeded random configurations over the families (small sizes)."""
    out, fams = [], list(families)
    while len(out) < count:
        fam = fams[int(rng.integers(len(fams)))]
        if fam in ("conv", "conv_transpose", "conv_double"):
            ndim = int(rng.choice([1, 1, 2, 2, 3]))
            K = tuple(int(v) for v in rng.integers(1, 4 if ndim < 3 else 3, ndim))
            d = tuple(int(v) for v in rng.integers(1, 3, ndim))
            s = tuple(int(v) for v in rng.integers(1, 4, ndim))
            pads = tuple((int(rng.integers(-1, 3)), int(rng.integers(-1, 3))) for _ in range(ndim))
            L = tuple(int(v) for v in rng.integers(1, {1: 14, 2: 9, 3: 6}[ndim], ndim))
            L = tuple(max(l, dk * (k - 1) + 1 - lo - hi) for l, k, dk, (lo, hi) in zip(L, K, d, pads))
            groups = int(rng.choice([1, 1, 2, 3]))
            case = Case(fam, "random", ndim, int(rng.integers(1, 3)), groups, int(rng.integers(1, 3)),
                        int(rng.integers(1, 3)), L, K, s, d, pads,
                        layout=str(rng.choice(["contiguous"] * 4 + ["strided"] + (["channels_last"] if ndim > 1 else []))))
        elif fam == "matmul":
            m, k, n = (int(v) for v in rng.integers(1, 6, 3))
            batch = [tuple(int(v) for v in rng.choice([1, 2, 3], int(rng.integers(0, 3))))]
            other = tuple(1 if rng.random() < 0.3 else v for v in batch[0])
            a = (*batch[0], m, k) if rng.random() < 0.9 else (k,)
            b = (*other, k, n) if rng.random() < 0.9 else (k,)
            case = Case("matmul", "random", a_shape=a, b_shape=b)
        elif fam == "gelu":
            case = Case("gelu", "random", shape=(int(rng.integers(1, 40)),), approximate=str(rng.choice(["none", "tanh"])),
                        scale=float(rng.choice([1.0, 3.0, 10.0])))
        else:
            case = Case("convolve", "random", length=(int(rng.integers(1, 12)), int(rng.integers(1, 12))),
                        mode=str(rng.choice(["full", "same", "valid"])))
        if case.valid():
            out.append(case)
    return out


def count_steps(case: Case, keys) -> list:
    """Changes setting each count ``keys`` names (batch, channels) to 1, and to one less."""
    return [{key: v} for key in keys for v in dict.fromkeys((1, getattr(case, key) - 1)) if 1 <= v < getattr(case, key)]


def axis_steps(case: Case, key: str, low: int = 1, half: bool = False) -> list:
    """Changes setting one axis of the tuple ``case.<key>`` to ``low`` (to half, with ``half``) and to one
    less, each kept where it stays at or above ``low``."""
    values, out = getattr(case, key), []
    for a, v in enumerate(values):
        for new in dict.fromkeys((low, v // 2, v - 1) if half else (low, v - 1)):
            if low <= new < v:
                out.append({key: values[:a] + (new,) + values[a + 1:]})
    return out


def changed(case: Case, tries):
    """The valid configurations, other than ``case``, that the changes ``tries`` make of it, in order."""
    for change in tries:
        new = dataclasses.replace(case, **change)
        if new.valid() and new != case:
            yield new


def smaller(case: Case):
    """The neighbours a shrink tries, simplest first: each size, parameter and padding one step
    toward its smallest value (layouts toward contiguous)."""
    tries = []
    if case.conv:
        tries += count_steps(case, ("n", "cin", "cout"))
        if case.groups > 1:
            tries += [{"groups": 1}, {"groups": case.groups - 1}]
        for key in ("stride", "dilation", "kernel", "length"):
            tries += axis_steps(case, key)
        for a, (lo, hi) in enumerate(case.pads):
            for new in ((0, hi), (lo, 0), (lo - (lo > 0) + (lo < 0), hi), (lo, hi - (hi > 0) + (hi < 0))):
                if new != (lo, hi):
                    tries.append({"pads": case.pads[:a] + (new,) + case.pads[a + 1:]})
        if case.ndim > 1:
            tries.append({"ndim": case.ndim - 1, **{k: getattr(case, k)[:-1] for k in
                                                    ("length", "kernel", "stride", "dilation", "pads")},
                          "layout": "contiguous" if case.layout == "channels_last" else case.layout})
        if case.layout != "contiguous":
            tries.append({"layout": "contiguous"})
    elif case.family == "matmul":
        for key in ("a_shape", "b_shape"):
            shape = getattr(case, key)
            for a, v in enumerate(shape):
                if v > 1:
                    tries.append({key: shape[:a] + (1,) + shape[a + 1:]})
    elif case.family == "gelu":
        n = case.shape[0] if len(case.shape) == 1 else int(np.prod(case.shape))
        tries += [{"shape": (max(1, n // 2),)}, {"shape": (n - 1,)}] if n > 1 else []
    else:
        lx, ly = case.length
        tries += [{"length": (lx - 1, ly)}, {"length": (lx, ly - 1)}]
    yield from changed(case, tries)

