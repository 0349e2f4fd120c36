"""The named historical bug classes: each a configuration of the path it was found in, run by every
audit, and reported present, absent, refused, not applicable here or not audited."""
from __future__ import annotations

from . import invariants
from .cases import Case
from .paths import Adapter
from .outcome import run_one


#: the historical bug classes as named configurations: (issue, what it was, path name prefix, case, dtype);
#: a prefix of None marks a class the audit cannot run yet, its case then saying why
HISTORICAL = [
    ("pytorch#51430", "torch.nn.grad.conv2d_weight wrong for groups > 1", "torch.nn.grad",
     Case("conv", "historical", 2, 2, 2, 2, 3, (6, 5), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))), "float64"),
    ("pytorch#50042", "depthwise stride-2 weight gradient", "F.conv*d autograd",
     Case("conv", "historical", 2, 2, 4, 1, 1, (9, 8), (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))), "float32"),
    ("pytorch#25101", "MKLDNN input gradient at stride 3, padding 1", "F.conv*d autograd (oneDNN on)",
     Case("conv", "historical", 2, 2, 1, 3, 4, (10, 11), (3, 3), (3, 3), (1, 1), ((1, 1), (1, 1))), "float32"),
    ("pytorch#13008", "nn.grad.conv2d_input refusing dilation", "torch.nn.grad",
     Case("conv", "historical", 2, 1, 1, 2, 2, (9, 9), (3, 3), (1, 1), (2, 2), ((0, 0), (0, 0))), "float64"),
    ("jax#563", "strided convolution Hessians", "lax.conv_general_dilated vjp of vjp",
     Case("conv_double", "historical", 2, 2, 1, 2, 3, (8, 9), (3, 2), (2, 2), (1, 1), ((1, 1), (0, 0))), "float64"),
    ("mlx#3800", "grouped strided conv2d VJP on Metal", "mlx",
     Case("conv", "historical", 2, 1, 2, 2, 2, (8, 8), (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))), "float32"),
    ("pytorch#175754", "layer_norm third-order derivatives silently wrong", "F.layer_norm third order",
     Case("layer_norm", "historical", shape=(3, 7)), "float64"),
    ("pytorch#196700", "layer_norm nested forward-mode second derivative has the wrong sign",
     "F.layer_norm forward-over-forward", Case("layer_norm", "historical", shape=(3, 7)), "float64"),
    ("pytorch#198119", "avg_pool backward with ceil_mode", "F.avg_pool*d autograd",
     Case("avg_pool", "historical", 2, 2, cin=3, length=(8, 9), kernel=(3, 3), stride=(2, 2), dilation=(1, 1),
          pads=((1, 1), (1, 1)), ceil_mode=True, count_include_pad=False), "float64"),
    ("pytorch#188344", "avg_pool backward with channels_last and padding", "F.avg_pool*d autograd",
     Case("avg_pool", "historical", 2, 2, cin=3, length=(7, 7), kernel=(3, 3), stride=(2, 2), dilation=(1, 1),
          pads=((1, 1), (1, 1)), layout="channels_last"), "float64"),
    ("jax#40344", "softmax JVP breaks translation invariance: the VJP does not sum to zero", "jax.nn.softmax vjp",
     Case("softmax", "historical", shape=(3, 7), scale=3.0), "float32"),
    ("jax#40384", "softmax drops a small float64 gradient component", "jax.nn.softmax vjp",
     Case("softmax", "historical", shape=(2, 6), scale=30.0), "float64"),
    ("jax#40386", "log_softmax drops a small float64 gradient component", "jax.nn.log_softmax vjp",
     Case("log_softmax", "historical", shape=(2, 6), scale=30.0), "float64"),
    ("jax#40409", "log_softmax gradient NaN on large float16 arrays", "jax.nn.log_softmax vjp",
     Case("log_softmax", "historical", shape=(1, 70000)), "float16"),
]


#: the second word of the historical cases' seeds (the budget's cases count from 0)
HISTORICAL_SEED = 10 ** 9


def historical(adapter: Adapter, dtypes, seed: int) -> list:
    """Per named bug: present (the path disagrees, or breaks a derived invariant), absent, refused, not
    applicable here (no such path in this framework), or not audited (with the reason)."""
    out = []
    for issue, what, prefix, case, dtype in HISTORICAL:
        if prefix is None:  # (case: why the audit cannot run it)
            out.append({"issue": issue, "what": what, "status": f"not audited: {case}", "paths": [], "case": None})
            continue
        paths = [p for p in adapter.paths if p.name.startswith(prefix) and p.applies(case)]
        if not paths:
            out.append({"issue": issue, "what": what, "status": "not applicable", "paths": [], "case": case})
            continue
        cache = {}
        runs = [run_one(p, case, dtype, (seed, HISTORICAL_SEED), cache) for p in paths]
        broken = [r for r in runs if any(invariants.beyond_rounding(*v) for v in r.details.get("invariants", {}).values())]
        status = ("present" if any(r.status == "mismatch" for r in runs) else
                  "present (an invariant broken)" if broken else
                  "refused" if any(r.status == "refused" for r in runs) else "absent")
        out.append({"issue": issue, "what": what, "status": status, "case": case, "dtype": dtype,
                    "paths": [(r.path, r.status, r.error, r.message) for r in runs]})
    return out
