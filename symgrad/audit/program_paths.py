"""The frameworks' paths for the program and spatial families: what a user of each framework writes for
softmax, log_softmax, cross_entropy (probability targets), layer_norm, rms_norm, batch_norm (training
statistics), scaled dot-product attention, average and max pooling and interpolation, differentiated by
the framework once (VJP), twice (double backward) and, for the programs, three times and in forward
mode.  Each path's source is standalone (the reproducers copy it): the framework's head (paths.py), the
family's ``forward(case, t)``, and a ``run`` that differentiates it."""
from __future__ import annotations

import functools

from .cases import EPS

#: (framework, family) -> the configurations its API has no counterpart of: (case field, value) pairs
EXCLUDES = {("jax", "interpolate"): (("mode", "nearest"), ("align_corners", True))}

INPUTS = {"avg_pool": ("x",), "max_pool": ("x",), "interpolate": ("x",), "softmax": ("x",), "log_softmax": ("x",), "cross_entropy": ("x", "t"), "layer_norm": ("x", "weight", "bias"),
          "rms_norm": ("x", "weight"), "batch_norm": ("x", "weight", "bias"), "attention": ("q", "k", "v")}

TORCH_FORWARD = {
    "avg_pool": ("F.avg_pool*d", '''def forward(case, t):
    divisor = {"divisor_override": case["divisor"]} if case["divisor"] else {}
    return getattr(F, f"avg_pool{case['ndim']}d")(t["x"], case["kernel"], case["stride"], [p for p, _ in case["pads"]],
                                                  ceil_mode=case["ceil_mode"], count_include_pad=case["count_include_pad"],
                                                  **divisor)
'''),
    "interpolate": ("F.interpolate", '''def forward(case, t):
    mode = {"linear": ("linear", "bilinear", "trilinear")[case["ndim"] - 1]}.get(case["mode"], case["mode"])
    corners = {"align_corners": case["align_corners"]} if case["mode"] == "linear" else {}
    if case.get("out_size"):
        return F.interpolate(t["x"], size=case["out_size"], mode=mode, **corners)
    return F.interpolate(t["x"], scale_factor=[float(f) for f in case["factor"]], mode=mode, **corners)
'''),
    "max_pool": ("F.max_pool*d", '''def forward(case, t):
    return getattr(F, f"max_pool{case['ndim']}d")(t["x"], case["kernel"], case["stride"], [p for p, _ in case["pads"]],
                                                  case["dilation"], ceil_mode=case["ceil_mode"])
'''),
    "softmax": ("F.softmax", "def forward(case, t):\n    return F.softmax(t['x'], dim=-1)\n"),
    "log_softmax": ("F.log_softmax", "def forward(case, t):\n    return F.log_softmax(t['x'], dim=-1)\n"),
    "cross_entropy": ("F.cross_entropy (probabilities)", '''def forward(case, t):
    """Classes on the last axis, every leading axis a row (torch takes them on axis 1: rows flattened)."""
    x, target = t["x"], t["t"]
    y = F.cross_entropy(x.reshape(-1, x.shape[-1]), target.reshape(-1, x.shape[-1]), reduction=case["reduction"])
    return y.reshape(x.shape[:-1]) if case["reduction"] == "none" else y
'''),
    "layer_norm": ("F.layer_norm", "def forward(case, t):\n    x = t['x']\n"
                                   "    return F.layer_norm(x, x.shape[-1:], t['weight'], t['bias'], eps=case['eps'])\n"),
    "rms_norm": ("F.rms_norm", "def forward(case, t):\n    x = t['x']\n"
                               "    return F.rms_norm(x, x.shape[-1:], t['weight'], eps=case['eps'])\n"),
    "batch_norm": ("F.batch_norm (training)", "def forward(case, t):\n    return F.batch_norm(t['x'], None, None, "
                                              "t['weight'], t['bias'], training=True, eps=case['eps'])\n"),
    "attention": ("F.scaled_dot_product_attention", '''from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"math": [SDPBackend.MATH], "flash": [SDPBackend.FLASH_ATTENTION]}


def forward(case, t):
    if case["backend"] == "default":  # the kernel torch picks
        return F.scaled_dot_product_attention(t["q"], t["k"], t["v"], is_causal=case["causal"])
    with sdpa_kernel(BACKENDS[case["backend"]]):
        return F.scaled_dot_product_attention(t["q"], t["k"], t["v"], is_causal=case["causal"])
'''),
}

TORCH_VJP = '''

def run(case, arrays, dtype):
    t = {k: tensor(arrays[k], dtype, case.get("layout", "contiguous") if k == "x" else "contiguous") for k in case["inputs"]}
    y = forward(case, t)
    grads = torch.autograd.grad(y, [t[k] for k in case["inputs"]], torch.tensor(arrays["g"], dtype=y.dtype).reshape(y.shape),
                                allow_unused=True, materialize_grads=True)
    return {"y": y, **dict(zip(case["inputs"], grads))}
'''

TORCH_DOUBLE = '''

def run(case, arrays, dtype):
    t = {k: tensor(arrays[k], dtype, case.get("layout", "contiguous") if k == "x" else "contiguous") for k in case["inputs"]}
    g = tensor(arrays["g"], dtype)
    y = forward(case, t)
    first = torch.autograd.grad(y, [t[k] for k in case["inputs"]], g.reshape(y.shape), create_graph=True,
                                allow_unused=True, materialize_grads=True)
    total = sum((f * tensor(arrays["gg" + k], dtype, grad=False)).sum() for f, k in zip(first, case["inputs"]))
    second = torch.autograd.grad(total, [g] + [t[k] for k in case["inputs"]], allow_unused=True, materialize_grads=True)
    return dict(zip(["g"] + list(case["inputs"]), second))
'''

TORCH_THIRD = '''

def run(case, arrays, dtype):
    """The double backward's backward: its results (∂/∂inputs, ∂/∂g) dotted with h<n>, differentiated
    with respect to the inputs, g and the gg<x> (create_graph all the way)."""
    t = {k: tensor(arrays[k], dtype) for k in case["inputs"]}
    g = tensor(arrays["g"], dtype)
    gg = {k: tensor(arrays["gg" + k], dtype) for k in case["inputs"]}
    y = forward(case, t)
    first = torch.autograd.grad(y, [t[k] for k in case["inputs"]], g.reshape(y.shape), create_graph=True,
                                allow_unused=True, materialize_grads=True)
    total = sum((f * gg[k]).sum() for f, k in zip(first, case["inputs"]))
    names = list(case["inputs"]) + ["g"]
    second = torch.autograd.grad(total, [t[k] for k in case["inputs"]] + [g], create_graph=True, allow_unused=True,
                                 materialize_grads=True)
    third_total = sum((s * tensor(arrays["h" + k], dtype, grad=False)).sum() for s, k in zip(second, names))
    wrt = [t[k] for k in case["inputs"]] + [g] + [gg[k] for k in case["inputs"]]
    third = torch.autograd.grad(third_total, wrt, allow_unused=True, materialize_grads=True)
    return dict(zip(names + ["gg" + k for k in case["inputs"]], third))
'''

TORCH_FORWARD_OVER_REVERSE = '''

def run(case, arrays, dtype):
    """H·v by torch.func: the JVP (forward mode) of the gradient of ℒ = Σ g·y, tangents gg<x>."""
    from torch.func import grad, jvp
    names = list(case["inputs"])
    primals = tuple(tensor(arrays[k], dtype, grad=False) for k in names)
    g = tensor(arrays["g"], dtype, grad=False)

    def loss(*a):
        y = forward(case, dict(zip(names, a)))
        return (y * g.reshape(y.shape)).sum()
    _, hv = jvp(grad(loss, argnums=tuple(range(len(names)))), primals,
                tuple(tensor(arrays["gg" + k], dtype, grad=False) for k in names))
    return dict(zip(names, hv))
'''

TORCH_FORWARD_OVER_FORWARD = '''

def run(case, arrays, dtype):
    """vHv by nested forward mode (torch.func.jvp of torch.func.jvp): Σ g·(second directional derivative of
    y along the tangents gg<x>)."""
    from torch.func import jvp
    names = list(case["inputs"])
    primals = tuple(tensor(arrays[k], dtype, grad=False) for k in names)
    tangents = tuple(tensor(arrays["gg" + k], dtype, grad=False) for k in names)
    f = lambda *a: forward(case, dict(zip(names, a)))
    _, second = jvp(lambda *a: jvp(f, a, tangents)[1], primals, tangents)
    return {"vHv": (second * tensor(arrays["g"], dtype, grad=False).reshape(second.shape)).sum()}
'''

_JAX_WINDOW = '''def window(case, x, init, op, **options):
    """lax.reduce_window over the case's windows: padding (p, p + extra) per axis, where ceil_mode's last
    window runs past the padded input by extra."""
    pads = [(0, 0), (0, 0)]
    for L, K, s, d, O, (p, _) in zip(case["length"], case["kernel"], case["stride"], case["dilation"],
                                     case["out_length"], case["pads"]):
        pads.append((p, p + max(0, (O - 1) * s + d * (K - 1) + 1 - (L + 2 * p))))
    return lax.reduce_window(x, jnp.array(init, x.dtype), op, (1, 1) + tuple(case["kernel"]),
                             (1, 1) + tuple(case["stride"]), pads, window_dilation=(1, 1) + tuple(case["dilation"]),
                             **options), pads
'''

JAX_FORWARD = {
    "avg_pool": ("lax.reduce_window (add) average", _JAX_WINDOW + '''

def forward(case, x):
    """The window sums divided by divisor_override, the window size, or the number of positions each window
    covers: in the padded input (count_include_pad) or in the input."""
    total, pads = window(case, x, 0, lax.add)
    if case["divisor"]:
        return total / case["divisor"]
    if case["count_include_pad"] and not case["ceil_mode"]:
        return total / np.prod(case["kernel"])
    padded = case["count_include_pad"]
    shape = x.shape[:2] + tuple(L + 2 * p * padded for L, (p, _) in zip(case["length"], case["pads"]))
    covered = [(0, 0), (0, 0)] + [(lo - lo * padded, hi - lo * padded) for lo, hi in pads[2:]]
    count = lax.reduce_window(jnp.ones(shape, x.dtype), jnp.array(0, x.dtype), lax.add, (1, 1) + tuple(case["kernel"]),
                              (1, 1) + tuple(case["stride"]), covered)
    return total / count
'''),
    "interpolate": ("jax.image.resize", '''def forward(case, x):
    """Half-pixel centres (torch's nearest-exact, and linear without align_corners); no antialiasing,
    which JAX applies by default when downsampling and torch does not."""
    method = {"nearest-exact": "nearest", "linear": "linear"}[case["mode"]]
    return jax.image.resize(x, x.shape[:2] + tuple(case["out_length"]), method=method, antialias=False)
'''),
    "max_pool": ("lax.reduce_window (max)", _JAX_WINDOW + '''

def forward(case, x):
    return window(case, x, -np.inf, lax.max)[0]
'''),
    "softmax": ("jax.nn.softmax", "def forward(case, x):\n    return jax.nn.softmax(x, axis=-1)\n"),
    "log_softmax": ("jax.nn.log_softmax", "def forward(case, x):\n    return jax.nn.log_softmax(x, axis=-1)\n"),
    "cross_entropy": ("cross-entropy by jax.nn.log_softmax", '''def forward(case, x, t):
    """optax.softmax_cross_entropy's formula: -(t * log_softmax(x)).sum(-1), then the reduction."""
    loss = -(t * jax.nn.log_softmax(x, axis=-1)).sum(-1)
    return {"mean": jnp.mean, "sum": jnp.sum, "none": lambda v: v}[case["reduction"]](loss)
'''),
    "layer_norm": ("jax.nn.standardize (layer norm)", "def forward(case, x, w, b):\n"
                   "    return jax.nn.standardize(x, axis=-1, epsilon=case['eps']) * w + b\n"),
    "rms_norm": ("rms norm by lax.rsqrt", "def forward(case, x, w):\n"
                 "    return x * lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + case['eps']) * w\n"),
    "batch_norm": ("jax.nn.standardize (batch norm)", '''def forward(case, x, w, b):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return jax.nn.standardize(x, axis=axes, epsilon=case["eps"]) * w.reshape(shape) + b.reshape(shape)
'''),
    "attention": ("jax.nn.dot_product_attention", '''def forward(case, q, k, v):
    """One head: JAX takes (batch, length, heads, features)."""
    return jax.nn.dot_product_attention(q[:, :, None], k[:, :, None], v[:, :, None], is_causal=case["causal"])[:, :, 0]
'''),
}

JAX_VJP = '''

def run(case, arrays, dtype):
    y, vjp = jax.vjp(lambda *a: forward(case, *a), *(array(arrays, k, dtype) for k in case["inputs"]))
    grads = vjp(array(arrays, "g", dtype).reshape(y.shape))
    return {"y": y, **dict(zip(case["inputs"], grads))}
'''

JAX_DOUBLE = '''

def run(case, arrays, dtype):
    def first(*a):
        *inputs, g = a
        y, vjp = jax.vjp(lambda *b: forward(case, *b), *inputs)
        return vjp(g.reshape(y.shape))
    _, vjp = jax.vjp(first, *(array(arrays, k, dtype) for k in list(case["inputs"]) + ["g"]))
    *grads, gg = vjp(tuple(array(arrays, "gg" + k, dtype) for k in case["inputs"]))
    return {"g": gg, **dict(zip(case["inputs"], grads))}
'''


JAX_THIRD = '''

def run(case, arrays, dtype):
    """The VJP of the double backward: cotangents h<n> for its results (∂/∂inputs, ∂/∂g)."""
    names = list(case["inputs"])

    def second(*a):
        inputs, g, gg = a[:len(names)], a[len(names)], a[len(names) + 1:]

        def first(*b):
            y, vjp = jax.vjp(lambda *c: forward(case, *c), *b[:-1])
            return vjp(b[-1].reshape(y.shape))
        _, vjp = jax.vjp(first, *inputs, g)
        *grads, dg = vjp(tuple(gg))
        return (*grads, dg)
    args = [array(arrays, k, dtype) for k in names + ["g"] + ["gg" + k for k in names]]
    _, vjp = jax.vjp(second, *args)
    out = vjp(tuple(array(arrays, "h" + k, dtype) for k in names + ["g"]))
    return dict(zip(names + ["g"] + ["gg" + k for k in names], out))
'''

JAX_FORWARD_OVER_REVERSE = '''

def run(case, arrays, dtype):
    """H·v: jax.jvp of jax.grad of ℒ = Σ g·y, tangents gg<x>."""
    names = list(case["inputs"])
    g = array(arrays, "g", dtype)

    def loss(*a):
        y = forward(case, *a)
        return jnp.sum(y * g.reshape(y.shape))
    primals = tuple(array(arrays, k, dtype) for k in names)
    _, hv = jax.jvp(jax.grad(loss, argnums=tuple(range(len(names)))), primals,
                    tuple(array(arrays, "gg" + k, dtype) for k in names))
    return dict(zip(names, hv))
'''

JAX_FORWARD_OVER_FORWARD = '''

def run(case, arrays, dtype):
    """vHv by nested forward mode (jax.jvp of jax.jvp) along the tangents gg<x>, dotted with g."""
    names = list(case["inputs"])
    primals = tuple(array(arrays, k, dtype) for k in names)
    tangents = tuple(array(arrays, "gg" + k, dtype) for k in names)
    f = lambda *a: forward(case, *a)
    _, second = jax.jvp(lambda *a: jax.jvp(f, a, tangents)[1], primals, tangents)
    return {"vHv": jnp.sum(second * array(arrays, "g", dtype).reshape(second.shape))}
'''


def paths(framework: str, path_class, head: str) -> list:
    """The program and spatial families' paths of ``framework`` ("torch" or "jax"): a VJP each; a double
    backward but for max_pool; third order and forward mode for the programs (attention in torch: the
    kernel torch picks and the math kernel)."""
    if framework == "torch":
        forwards, vjp, double, third = TORCH_FORWARD, TORCH_VJP, TORCH_DOUBLE, TORCH_THIRD
        over_reverse, over_forward, func = TORCH_FORWARD_OVER_REVERSE, TORCH_FORWARD_OVER_FORWARD, "torch.func"
    else:
        forwards, vjp, double, third = JAX_FORWARD, JAX_VJP, JAX_DOUBLE, JAX_THIRD
        over_reverse, over_forward, func = JAX_FORWARD_OVER_REVERSE, JAX_FORWARD_OVER_FORWARD, "jax"
    verb = "autograd" if framework == "torch" else "vjp"
    out = []
    for family, (name, forward) in forwards.items():
        options = {"inputs": INPUTS[family], "eps": EPS}
        variants = [("", {})]
        if framework == "torch" and family == "attention":
            variants = [(" (kernel torch picks)", {"backend": "default"}), (" (math kernel)", {"backend": "math"})]
        new = functools.partial(path_class, excludes=EXCLUDES.get((framework, family), ()))
        for label, extra in variants:
            source = head + "\n\n" + forward
            settings = {**options, **extra}
            out += [new(f"{name} {verb}{label}", (family,), "vjp", source + vjp, settings)]
            if family == "max_pool":  # (a maximum's second order is not derived: its selector is not a rule)
                continue
            out += [new(f"{name} double backward{label}", (family,), "double", source + double, settings)]
            if family in ("avg_pool", "interpolate"):  # (linear: its third order and forward-over-forward are 0)
                continue
            out += [new(f"{name} third order{label}", (family,), "third", source + third, settings),
                    new(f"{name} forward-over-reverse ({func}){label}", (family,), "double", source + over_reverse,
                        settings),
                    new(f"{name} forward-over-forward ({func}){label}", (family,), "double", source + over_forward,
                        settings)]
    return out
