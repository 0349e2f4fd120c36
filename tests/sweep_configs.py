"""The configuration sweep shared by the CPU (and GPU) tests: ≥ 500 op/parameter/shape cases."""
import random

CONV_PADDINGS = ("int", "per_axis", "pairs", "same", "valid", "full", "causal")


def conv_configs(n: int, seed: int = 0):
    rng = random.Random(seed)
    out = []
    for k in range(n):
        ndim = rng.choice([1, 1, 2, 2, 2, 3])
        kernel = [rng.randint(1, 4) for _ in range(ndim)]
        stride = [rng.randint(1, 4) for _ in range(ndim)]    # stride > kernel happens
        dilation = [rng.randint(1, 3) for _ in range(ndim)]
        kind = CONV_PADDINGS[k % len(CONV_PADDINGS)]
        pads = [(0, 0)] * ndim  # total only matters for the smallest valid input size
        if kind == "int":
            p = rng.randint(0, 2)
            padding, pads = str(p), [(p, p)] * ndim
        elif kind == "per_axis":
            pads = [(p, p) for p in (rng.randint(0, 3) for _ in range(ndim))]
            padding = ",".join(str(lo) for lo, _ in pads)
        elif kind == "pairs":  # asymmetric, negative = crop
            pads = [(rng.randint(-1, 3), rng.randint(-2, 3)) for _ in range(ndim)]
            padding = ",".join(f"{lo}:{hi}" for lo, hi in pads)
        else:
            padding = kind
        if kind == "same":
            stride = [1] * ndim
        groups_kind = rng.choice(["one", "one", "two", "depthwise"])
        cin_g = rng.randint(1, 3)
        if groups_kind == "one":
            groups, cin, cout = 1, cin_g, rng.randint(1, 4)
        elif groups_kind == "two":
            groups, cin, cout = 2, 2 * cin_g, 2 * rng.randint(1, 2)
        else:
            groups = rng.randint(2, 4)
            cin, cout = groups, groups * rng.randint(1, 2)
        params = {"stride": ",".join(map(str, stride)), "dilation": ",".join(map(str, dilation)),
                  "padding": padding, "groups": groups, "bias": rng.random() < 0.7}
        spans = [d * (kk - 1) + 1 for d, kk in zip(dilation, kernel)]
        sizes = [max(rng.randint(max(1, sp - 2), sp + 6), sp - lo - hi, 1) if kind not in ("same", "full", "causal")
                 else rng.randint(1, sp + 6) for sp, (lo, hi) in zip(spans, pads)]
        x = (rng.randint(1, 2), cin, *sizes)
        w = (cout, cin // groups, *kernel)
        out.append((f"conv{ndim}d", params, {"x": x, "w": w, "b": (cout,)}))
    return out


def convolve_configs():
    out = []
    for mode in ("full", "same", "valid"):
        for lx in (1, 2, 5, 6, 9):
            for ly in (1, 2, 3, 4, 7, 10):
                out.append(("convolve", {"mode": mode}, {"x": (lx,), "y": (ly,)}))
    return out


MATMUL_PATTERNS = [
    ("B,M,K", "B,K,N", {"B": 3}), ("M,K", "K,N", {}), ("B,M,K", "K,N", {"B": 2}), ("M,K", "B,K,N", {"B": 2}),
    ("1,M,K", "B,K,N", {"B": 3}), ("B,M,K", "1,K,N", {"B": 3}), ("4,1,M,K", "3,K,N", {}),
    ("A,B,M,K", "A,1,K,N", {"A": 2, "B": 3}), ("K", "K,N", {}), ("M,K", "K", {}), ("K", "B,K,N", {"B": 2}),
    ("B,M,K", "K", {"B": 2}),
]


def _pattern_shape(pattern, sizes):
    return tuple(int(p) if p.isdigit() else sizes[p] for p in pattern.split(","))


def matmul_configs():
    rng = random.Random(3)
    out = []
    for a, b, fixed in MATMUL_PATTERNS:
        for _ in range(6):
            sizes = dict(fixed, M=rng.randint(1, 5), K=rng.randint(1, 5), N=rng.randint(1, 5))
            out.append(("matmul", {"a_shape": a, "b_shape": b},
                        {"a": _pattern_shape(a, sizes), "b": _pattern_shape(b, sizes)}))
    return out


def gelu_configs():
    out = []
    for approx in ("none", "tanh"):
        for shape in [(7,), (3, 5), (2, 3, 4), (1,), (4, 1, 3, 2), (64,), (5, 5), (2, 2, 2, 2, 2)]:
            out.append(("gelu", {"approximate": approx}, {"x": shape}))
    return out


def pool_configs():
    """Average pooling (a window sum: a depthwise convolution with a kernel of ones)."""
    rng = random.Random(5)
    out = []
    for k in range(12):
        ndim = 1 + k % 3
        kernel = [rng.randint(1, 3) for _ in range(ndim)]
        stride = [rng.randint(1, 3) for _ in range(ndim)]
        padding = [rng.randint(0, kk // 2) for kk in kernel]
        sizes = [rng.randint(kk, kk + 5) for kk in kernel]  # torch's avg_pool3d wants the unpadded input >= kernel
        params = {"kernel_size": ",".join(map(str, kernel)), "stride": ",".join(map(str, stride)),
                  "padding": ",".join(map(str, padding))}
        out.append((f"avg_pool{ndim}d", params, {"x": (rng.randint(1, 2), rng.randint(1, 3), *sizes)}))
    return out


def all_configs():
    return conv_configs(340) + convolve_configs() + matmul_configs() + gelu_configs() + pool_configs()
