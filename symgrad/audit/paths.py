"""The frameworks' gradient paths an audit runs, and what each is held to.

A :class:`Path` is standalone Python source defining ``run(case, arrays, dtype)`` that uses only the
framework and NumPy (the reproducer scripts copy it verbatim), the case families it applies to,
and which of the derived results it must reproduce.  An :class:`Adapter` is a framework's paths
with its name and version; tests build adapters with planted bugs the same way.
"""
from __future__ import annotations

import importlib
import platform
from dataclasses import dataclass, field

import numpy as np

from . import program_paths, truth
from .cases import Case

#: what a path's outputs are compared with: "vjp" (forward and first order), "transpose" (the
#: transposed convolution: forward = dx, its VJP = the second order of dx), "double" (double backward;
#: also H·v, a forward-over-reverse path's, and vHv = Σ gg·H·gg, a forward-over-forward path's), "third"
#: (the double backward's backward)
EXPECTS = ("vjp", "transpose", "double", "third")
#: the derivative order each kind of path is checked at (finite differences cross-check the truth there)
ORDER = {"vjp": 1, "transpose": 2, "double": 2, "third": 3}


@dataclass(frozen=True)
class Path:
    name: str
    families: tuple
    expects: str
    source: str
    options: dict = field(default_factory=dict)
    symmetric_padding: bool = False  # the API takes one non-negative padding per axis
    groups: bool = True               # the API takes groups
    excludes: tuple = ()              # (case field, value) pairs the API has no counterpart of

    def applies(self, case: Case) -> bool:
        return not self.why_not(case)

    def why_not(self, case: Case) -> str:
        """Why the path does not take ``case`` ("" where it does)."""
        if case.family not in self.families:
            return f"not a {'/'.join(self.families)} configuration"
        if case.conv and self.symmetric_padding and any(lo != hi or lo < 0 for lo, hi in case.pads):
            return "its API takes one non-negative padding per axis"
        if case.conv and not self.groups and case.groups != 1:
            return "its API takes no groups"
        for name, value in self.excludes:
            if getattr(case, name) == value:
                return f"its API has no {name} {value}"
        if self.expects == "transpose" and not all(0 <= p < max(s, d) for p, s, d in
                                                   zip(output_padding(case), case.stride, case.dilation)):
            return "no output_padding below max(stride, dilation) gives the input's length"
        return ""

    def function(self):
        namespace = {}
        exec(compile(self.source, f"<audit path {self.name}>", "exec"), namespace)
        return namespace["run"]


@dataclass(frozen=True)
class Adapter:
    name: str
    version: str
    paths: tuple


def output_padding(case: Case) -> tuple:
    """The output_padding that makes a transposed convolution's output the input's length."""
    return tuple(L - ((O - 1) * s - 2 * lo + d * (K - 1) + 1) for L, O, s, (lo, _), d, K in
                 zip(case.length, case.out_length(), case.stride, case.pads, case.dilation, case.kernel))


def expected(path: Path, case: Case, arrays: dict) -> dict:
    """The derived results the path's outputs are compared with, by output name."""
    if path.expects == "vjp":
        return {truth.output_name(case): truth.forward(case, arrays), **truth.first_order(case, arrays)}
    if path.expects == "transpose":
        second = truth.second_order(case, arrays)
        return {"y": truth.first_order(case, arrays)["x"], "g": second["x", "g"], "w": second["x", "w"]}
    if path.expects == "third":
        return truth.third_order(case, arrays)
    double = truth.double_backward(case, arrays)
    inputs = [k for k in double if k != "g"]
    return {**double, "vHv": np.array(sum(float(np.sum(arrays["gg" + k] * double[k])) for k in inputs))}


_TORCH_HEAD = '''import numpy as np
import torch
import torch.nn.functional as F


def tensor(a, dtype, layout="contiguous", grad=True):
    t = torch.tensor(a, dtype=getattr(torch, dtype))
    if layout == "channels_last" and t.dim() in (4, 5):
        t = t.to(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)
    elif layout == "strided":  # a view of every other element of a last axis twice as long
        wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
        wide[..., ::2] = t
        t = wide[..., ::2]
    return t.requires_grad_(grad)
'''

_TORCH_CONV_HEAD = _TORCH_HEAD + '''
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def conv(case, x, w, b):
    pads = [p for lo, hi in reversed(case["pads"]) for p in (lo, hi)]
    return CONV[case["ndim"]](F.pad(x, pads), w, b, stride=case["stride"], dilation=case["dilation"],
                              groups=case["groups"])
'''

TORCH_CONV = _TORCH_CONV_HEAD + '''

def run(case, arrays, dtype):
    x = tensor(arrays["x"], dtype, case.get("layout", "contiguous"))
    w, b = tensor(arrays["w"], dtype), tensor(arrays["b"], dtype)
    with torch.backends.mkldnn.flags(enabled=case["mkldnn"]):
        y = conv(case, x, w, b)
        gx, gw, gb = torch.autograd.grad(y, (x, w, b), torch.tensor(arrays["g"], dtype=y.dtype))
    return {"y": y, "x": gx, "w": gw, "b": gb}
'''

TORCH_NN_GRAD = _TORCH_CONV_HEAD + '''

def run(case, arrays, dtype):
    n, pad = case["ndim"], [lo for lo, hi in case["pads"]]
    x, w, g = (tensor(arrays[k], dtype, grad=False) for k in ("x", "w", "g"))
    args = (case["stride"], pad, case["dilation"], case["groups"])
    return {"x": getattr(torch.nn.grad, f"conv{n}d_input")(x.shape, w, g, *args),
            "w": getattr(torch.nn.grad, f"conv{n}d_weight")(x, w.shape, g, *args)}
'''

TORCH_CONV_TRANSPOSE = _TORCH_CONV_HEAD + '''

def run(case, arrays, dtype):
    pad = [lo for lo, hi in case["pads"]]
    g, w = tensor(arrays["g"], dtype), tensor(arrays["w"], dtype)
    with torch.backends.mkldnn.flags(enabled=case["mkldnn"]):
        y = CONV_TRANSPOSE[case["ndim"]](g, w, None, case["stride"], pad, case["output_padding"], case["groups"],
                                         case["dilation"])
        gg, gw = torch.autograd.grad(y, (g, w), torch.tensor(arrays["ggx"], dtype=y.dtype))
    return {"y": y, "g": gg, "w": gw}
'''

TORCH_CONV_DOUBLE = _TORCH_CONV_HEAD + '''

def run(case, arrays, dtype):
    x = tensor(arrays["x"], dtype, case.get("layout", "contiguous"))
    w, b, g = tensor(arrays["w"], dtype), tensor(arrays["b"], dtype), tensor(arrays["g"], dtype)
    with torch.backends.mkldnn.flags(enabled=case["mkldnn"]):
        first = torch.autograd.grad(conv(case, x, w, b), (x, w, b), g, create_graph=True)
        total = sum((f * tensor(arrays["gg" + k], dtype, grad=False)).sum() for f, k in zip(first, "xwb"))
        second = torch.autograd.grad(total, (g, x, w, b), allow_unused=True, materialize_grads=True)
    return dict(zip(("g", "x", "w", "b"), second))
'''

TORCH_MATMUL = _TORCH_HEAD + '''

def run(case, arrays, dtype):
    a, b = tensor(arrays["a"], dtype), tensor(arrays["b"], dtype)
    out = torch.matmul(a, b)
    ga, gb = torch.autograd.grad(out, (a, b), torch.tensor(arrays["g"], dtype=out.dtype).reshape(out.shape))
    return {"out": out, "a": ga, "b": gb}
'''

TORCH_GELU = _TORCH_HEAD + '''

def run(case, arrays, dtype):
    x = tensor(arrays["x"], dtype)
    y = F.gelu(x, approximate=case["approximate"])
    gx, = torch.autograd.grad(y, (x,), torch.tensor(arrays["g"], dtype=y.dtype).reshape(y.shape))
    return {"y": y, "x": gx}
'''


def torch_adapter() -> Adapter:
    torch = importlib.import_module("torch")
    conv = ("conv",)
    paths = []
    for mkldnn in (True, False):
        label = "oneDNN on" if mkldnn else "oneDNN off"
        paths += [Path(f"F.conv*d autograd ({label})", conv, "vjp", TORCH_CONV, {"mkldnn": mkldnn}),
                  Path(f"F.conv_transpose*d autograd ({label})", ("conv_transpose",), "transpose",
                       TORCH_CONV_TRANSPOSE, {"mkldnn": mkldnn}, symmetric_padding=True),
                  Path(f"conv double backward ({label})", ("conv_double",), "double", TORCH_CONV_DOUBLE,
                       {"mkldnn": mkldnn})]
    paths += [Path("torch.nn.grad.conv*d_input/_weight", conv, "vjp", TORCH_NN_GRAD, symmetric_padding=True),
              Path("torch.matmul autograd", ("matmul",), "vjp", TORCH_MATMUL),
              Path("F.gelu autograd", ("gelu",), "vjp", TORCH_GELU)]
    paths += program_paths.paths("torch", Path, _TORCH_HEAD)
    return Adapter("torch", torch.__version__, tuple(paths))


_JAX_HEAD = '''import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
from jax import lax

HIGHEST = lax.Precision.HIGHEST


def numbers(case):
    spatial = "DHW"[3 - case["ndim"]:]
    return ("NC" + spatial, "OI" + spatial, "NC" + spatial)


def conv(case):
    n = case["ndim"]
    return lambda x, w, b: lax.conv_general_dilated(
        x, w, case["stride"], [tuple(p) for p in case["pads"]], rhs_dilation=case["dilation"],
        dimension_numbers=numbers(case), feature_group_count=case["groups"], precision=HIGHEST) + b.reshape((1, -1) + (1,) * n)


def array(arrays, key, dtype):
    return jnp.asarray(arrays[key], dtype=dtype)
'''

JAX_CONV = _JAX_HEAD + '''

def run(case, arrays, dtype):
    y, vjp = jax.vjp(conv(case), *(array(arrays, k, dtype) for k in "xwb"))
    gx, gw, gb = vjp(array(arrays, "g", dtype))
    return {"y": y, "x": gx, "w": gw, "b": gb}
'''

JAX_CONV_DOUBLE = _JAX_HEAD + '''

def run(case, arrays, dtype):
    def first(x, w, b, g):
        return jax.vjp(conv(case), x, w, b)[1](g)
    _, vjp = jax.vjp(first, *(array(arrays, k, dtype) for k in ("x", "w", "b", "g")))
    gx, gw, gb, gg = vjp(tuple(array(arrays, "gg" + k, dtype) for k in "xwb"))
    return {"g": gg, "x": gx, "w": gw, "b": gb}
'''

JAX_CONV_TRANSPOSE = _JAX_HEAD + '''

def run(case, arrays, dtype):
    """The input gradient of the convolution as lax.conv_transpose (lhs dilated by the stride, the
    kernel flipped and its O/I axes swapped): padding d(K-1) - lo before, L - 1 - (O-1)s - lo' + d(K-1) after."""
    pads = []
    for L, O, K, s, d, (lo, hi) in zip(case["length"], case["out_length"], case["kernel"], case["stride"],
                                       case["dilation"], case["pads"]):
        before = d * (K - 1) - lo
        pads.append((before, L - 1 - (O - 1) * s - before + d * (K - 1)))
    f = lambda g, w: lax.conv_transpose(g, w, case["stride"], pads, rhs_dilation=case["dilation"],
                                        dimension_numbers=numbers(case), transpose_kernel=True, precision=HIGHEST)
    y, vjp = jax.vjp(f, array(arrays, "g", dtype), array(arrays, "w", dtype))
    gg, gw = vjp(array(arrays, "ggx", dtype))
    return {"y": y, "g": gg, "w": gw}
'''

JAX_MATMUL = _JAX_HEAD + '''

def run(case, arrays, dtype):
    out, vjp = jax.vjp(lambda a, b: jnp.matmul(a, b, precision=HIGHEST), array(arrays, "a", dtype), array(arrays, "b", dtype))
    ga, gb = vjp(array(arrays, "g", dtype).reshape(out.shape))
    return {"out": out, "a": ga, "b": gb}
'''

JAX_GELU = _JAX_HEAD + '''

def run(case, arrays, dtype):
    y, vjp = jax.vjp(lambda x: jax.nn.gelu(x, approximate=case["approximate"] == "tanh"), array(arrays, "x", dtype))
    gx, = vjp(array(arrays, "g", dtype).reshape(y.shape))
    return {"y": y, "x": gx}
'''

JAX_CONVOLVE = _JAX_HEAD + '''

def run(case, arrays, dtype):
    f = lambda x, y: jnp.convolve(x, y, mode=case["mode"], precision=HIGHEST)
    out, vjp = jax.vjp(f, array(arrays, "x", dtype), array(arrays, "y", dtype))
    gx, gy = vjp(array(arrays, "g", dtype))
    return {"out": out, "x": gx, "y": gy}
'''


def jax_adapter() -> Adapter:
    jax = importlib.import_module("jax")
    paths = (Path("lax.conv_general_dilated vjp", ("conv",), "vjp", JAX_CONV),
             Path("lax.conv_general_dilated vjp of vjp", ("conv_double",), "double", JAX_CONV_DOUBLE),
             Path("lax.conv_transpose (lhs_dilation) vjp", ("conv_transpose",), "transpose", JAX_CONV_TRANSPOSE,
                  groups=False),
             Path("jnp.matmul vjp", ("matmul",), "vjp", JAX_MATMUL),
             Path("jax.nn.gelu vjp", ("gelu",), "vjp", JAX_GELU),
             Path("jnp.convolve vjp", ("convolve",), "vjp", JAX_CONVOLVE))
    return Adapter("jax", jax.__version__, paths + tuple(program_paths.paths("jax", Path, _JAX_HEAD)))


ADAPTERS = {"torch": torch_adapter, "jax": jax_adapter}


def families(adapter: Adapter) -> tuple:
    return tuple(dict.fromkeys(f for p in adapter.paths for f in p.families))


def machine() -> str:
    return f"{platform.platform()}, Python {platform.python_version()}, {platform.processor() or platform.machine()}"
