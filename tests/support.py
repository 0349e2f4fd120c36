"""What several test files share: running the command line, the program sweep and its torch
counterparts, the op sweep's modules and runner, finite differences of a rule, a recognised
convolution form applied as a user pastes it, the bench stand-in and the GPU settings the fast
paths run under.  Test files import from here, never from each other."""
import ast
import functools

import numpy as np
import sympy as sp

import symgrad
from symgrad import ops
from symgrad.cli import main
from symgrad.emit import emit, load
from symgrad.emit.program import emit_program
from symgrad.engine.diff import forward_terms
from symgrad.ir import plain
from symgrad.reverse import derive_program
from symgrad.sizes import concrete_sizes
from symgrad.verify.evaluate import evaluate
from symgrad.verify.reference import torch_reference

import xla_reference
from conftest import HAS_JAX
from cublas_emulator import cupy_helpers, on_host, stand_in
from sweep_configs import all_configs


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def imports_of(src):
    names = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module)
    return names


_PROGRAM_MODULES = {}


def program_module(name, **params):
    key = (name, tuple(sorted(params.items())))
    if key not in _PROGRAM_MODULES:
        _PROGRAM_MODULES[key] = load(emit_program(derive_program(ops.build(name, **params)), jvp=False))
    return _PROGRAM_MODULES[key]


def close(got, want, tol):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(np.abs(want).max(initial=0), np.abs(got).max(initial=0), 1e-3)
    assert got.shape == want.shape
    assert np.abs(got - want).max(initial=0) / scale <= tol, (np.abs(got - want).max(), scale)


def torch_case(name, params, shapes, seed=0):
    """(inputs, torch function, extra module arguments) of one sweep case."""
    import torch.nn.functional as F
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    extra = ()
    if name == "softmax":
        dim = params.get("dim", -1)
        return arrays, lambda x: F.softmax(x, dim), (dim,)
    if name == "log_softmax":
        dim = params.get("dim", -1)
        return arrays, lambda x: F.log_softmax(x, dim), (dim,)
    if name == "cross_entropy":
        t = np.exp(arrays[1])
        arrays[1] = t / t.sum(-1, keepdims=True)
        return arrays, lambda x, t: F.cross_entropy(x, t, reduction=params.get("reduction", "mean")), extra
    if name == "layer_norm":
        return arrays, lambda x, w, b: F.layer_norm(x, tuple(w.shape), w, b), extra
    if name == "rms_norm":
        eps = float(np.finfo(np.float32).eps) if params.get("eps32") else None
        return arrays, lambda x, w: F.rms_norm(x, tuple(w.shape), w, eps=eps), extra
    if name == "batch_norm":
        return arrays, lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), extra
    if name == "attention":
        return arrays, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=params.get("is_causal", False)), extra
    if name == "conv_bias_gelu":
        conv = {1: F.conv1d, 2: F.conv2d}[params.get("ndim", 2)]
        return arrays, lambda x, w, b: F.gelu(conv(x, w, b, stride=params.get("stride", 1),
                                                   padding=params.get("padding", 0),
                                                   dilation=params.get("dilation", 1), groups=params.get("groups", 1)),
                                              approximate=params.get("approximate", "none")), extra
    if name == "depthwise_separable":
        def block(x, wd, bd, wp, bp):
            h = F.conv2d(x, wd, bd, stride=params.get("stride", 1), padding=params.get("padding", 0),
                         groups=x.shape[1])
            return F.conv2d(h, wp, bp)
        return arrays, block, extra
    raise KeyError(name)


SWEEP = [
    ("softmax", {}, [(4, 7)]), ("softmax", {}, [(2, 3, 5)]), ("softmax", {}, [(1, 1)]), ("softmax", {}, [(6,)]),
    ("softmax", {"dim": 0}, [(3, 4, 2)]), ("softmax", {"dim": 1}, [(3, 1, 2)]),
    ("log_softmax", {}, [(4, 7)]), ("log_softmax", {}, [(2, 1, 3)]), ("log_softmax", {"dim": 0}, [(5, 2)]),
    ("cross_entropy", {}, [(4, 5), (4, 5)]), ("cross_entropy", {}, [(1, 1), (1, 1)]),
    ("cross_entropy", {"reduction": "sum"}, [(3, 4), (3, 4)]), ("cross_entropy", {"reduction": "none"}, [(3, 4), (3, 4)]),
    ("layer_norm", {}, [(4, 8), (8,), (8,)]), ("layer_norm", {}, [(2, 3, 5), (5,), (5,)]),
    ("layer_norm", {}, [(3, 1), (1,), (1,)]), ("layer_norm", {}, [(1, 6), (6,), (6,)]),
    ("rms_norm", {}, [(4, 8), (8,)]), ("rms_norm", {}, [(2, 1, 3), (3,)]), ("rms_norm", {}, [(1, 1), (1,)]),
    ("batch_norm", {}, [(4, 3, 5), (3,), (3,)]), ("batch_norm", {}, [(2, 1, 1), (1,), (1,)]),
    ("batch_norm", {"ndim": 2}, [(2, 3, 4, 2), (3,), (3,)]), ("batch_norm", {"ndim": 0}, [(5, 4), (4,), (4,)]),
    ("attention", {}, [(2, 5, 4), (2, 6, 4), (2, 6, 3)]), ("attention", {}, [(2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5)]),
    ("attention", {}, [(1, 1, 1), (1, 1, 1), (1, 1, 1)]),
    ("attention", {"is_causal": True}, [(2, 5, 4), (2, 5, 4), (2, 5, 3)]),
    ("attention", {"is_causal": True}, [(3, 4, 2), (3, 6, 2), (3, 6, 2)]),
    ("attention", {"is_causal": True}, [(1, 1, 3), (1, 4, 3), (1, 4, 2)]),
    ("conv_bias_gelu", {"stride": 2, "padding": 1}, [(2, 3, 9, 8), (4, 3, 3, 3), (4,)]),
    ("conv_bias_gelu", {"approximate": "tanh", "dilation": 2}, [(1, 2, 7, 7), (3, 2, 2, 3), (3,)]),
    ("conv_bias_gelu", {"groups": 2, "padding": 2}, [(2, 4, 5, 5), (6, 2, 3, 3), (6,)]),
    ("conv_bias_gelu", {"ndim": 1, "stride": 3}, [(1, 1, 10), (1, 1, 4), (1,)]),
    ("depthwise_separable", {"kernel_size": 3, "padding": 1}, [(2, 3, 9, 8), (3, 1, 3, 3), (3,), (5, 3, 1, 1), (5,)]),
    ("depthwise_separable", {"kernel_size": 3, "stride": 2}, [(1, 1, 7, 7), (1, 1, 3, 3), (1,), (2, 1, 1, 1), (2,)]),
    # normalized_shape of several axes (after the rest: other suites pick cases of this list by position)
    ("layer_norm", {"ndim": 2}, [(3, 4, 5), (4, 5), (4, 5)]), ("layer_norm", {"ndim": 3}, [(2, 2, 3, 2), (2, 3, 2), (2, 3, 2)]),
    ("rms_norm", {"ndim": 2}, [(2, 3, 4, 5), (4, 5)]),
]


def builder_params(name, params):
    defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1} if name == "conv_bias_gelu" else {}
    return {**defaults, **{k: v for k, v in params.items() if k != "dim"}}


CONFIGS = all_configs()


@functools.lru_cache(maxsize=None)
def module_for(name, frozen):
    return load(emit(symgrad.derive(symgrad.ops.build(name, **dict(frozen))), order=1, jvp=False))  # (second order,
    # forward mode: their own tests)


def rel(a, b):
    scale = max(np.abs(b).max(initial=0.0), 1e-300)
    return np.abs(np.asarray(a, np.float64) - b).max(initial=0.0) / scale


def run_config(name, params, shapes, dtype=np.float64, seed=0):
    op = symgrad.ops.build(name, **params)
    module = module_for(name, tuple(sorted(params.items())))
    rng = np.random.default_rng(seed)
    arrays = {t.name: rng.standard_normal(shapes[t.name]) for t in op.inputs}
    args = [arrays[t.name].astype(dtype) for t in op.inputs]
    y = module.forward(*args)
    g = rng.standard_normal(y.shape)
    grads = module.backward(g.astype(dtype), *args)
    ref_y, ref_grads = torch_reference(op, arrays, g)
    assert y.shape == ref_y.shape and y.dtype == dtype
    errors = {"forward": rel(y, ref_y)}
    for t, got, want in zip(op.inputs, grads, ref_grads):
        assert got.shape == want.shape, (t.name, got.shape, want.shape)
        assert got.dtype == dtype
        errors[t.name] = rel(got, want)
    return errors


def sizes_for(op, values, arrays):
    """Sizes read from the arrays, with the op's symbolic parameters evaluated at ``values``."""
    syms = set()
    for e in [op.rhs, *op.output_sizes.values(), *(d for t in op.inputs for d in t.dims)]:
        syms |= sp.sympify(e).free_symbols
    return concrete_sizes(op, {n: a.shape for n, a in arrays.items()}, {s: values[s.name] for s in syms if s.name in values})


def fd_gradient(op, tensors, sizes, arrays, wrt, g, eps):
    out_vars = tuple(plain(i) for i in op.indices)
    f = lambda arr: evaluate(forward_terms(op), op.output, tensors, out_vars, sizes, arr)
    x = arrays[wrt]
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        grad[idx] = np.sum(g * (f(dict(arrays, **{wrt: plus})) - f(dict(arrays, **{wrt: minus})))) / (2 * eps)
    return grad


NUMERIC = ("window_strides", "padding", "lhs_dilation", "rhs_dilation", "feature_group_count", "batch_group_count")


def resolve(value, sizes):
    """Size expressions in a form (e.g. "L - 2*O + 2") evaluated at concrete sizes."""
    if isinstance(value, list):
        return [resolve(v, sizes) for v in value]
    if isinstance(value, str):
        syms = {k: sp.Symbol(k, integer=True, positive=True) for k in sizes}
        return int(sp.sympify(value, locals=syms).subs({syms[k]: v for k, v in sizes.items()}))
    return value


def apply_form(form, arrays, sizes, conv):
    """Evaluate a conv_general_dilated form exactly as a user would paste it."""
    f = {k: resolve(v, sizes) if k in NUMERIC else v for k, v in form.items()}
    rhs = arrays[f["rhs"]]
    spatial = [k for k, c in enumerate(f["dimension_numbers"][1]) if c not in "OI"]
    rhs = np.flip(rhs, axis=tuple(a for a, r in zip(spatial, f["rhs_reverse"]) if r))
    if "rhs_regroup" in f:
        rg = f["rhs_regroup"]
        shape = list(rhs.shape)
        groups, src, dst = rg["groups"], rg["from_axis"], rg["to_axis"]
        rhs = rhs.reshape(shape[:src] + [groups, shape[src] // groups] + shape[src + 1:])
        rhs = np.moveaxis(rhs, src, dst if dst < src else dst)
        merged = list(rhs.shape)
        at = dst if dst < src else dst
        merged[at:at + 2] = [merged[at] * merged[at + 1]]
        rhs = rhs.reshape(merged)
    return np.asarray(conv(arrays[f["lhs"]], np.ascontiguousarray(rhs), f["window_strides"],
                           [tuple(p) for p in f["padding"]], f["lhs_dilation"], f["rhs_dilation"],
                           tuple(f["dimension_numbers"]), feature_group_count=f["feature_group_count"],
                           batch_group_count=f["batch_group_count"]))


def conv_impls():
    impls = [("loop reference", xla_reference.conv_general_dilated)]
    if HAS_JAX:
        import jax
        jax.config.update("jax_enable_x64", True)
        impls.append(("jax", jax.lax.conv_general_dilated))
    return impls


def stand_in_bench(op_name, params, shapes, threads=1, repeats=7, warmup=2, bind=False, target="module",
                   program=None, dtype="float32", compile=None, memory=True, methods=None, order=1):
    """What symgrad.bench.cpu.bench returns, without the timing children (torch.compile's times for a
    program, as bench gives them; double_backward's with ``order=2``)."""
    import symgrad
    methods = list(methods or ["forward", "dx", "forward+backward"] + (["double_backward"] if order == 2 else []))
    times = {m: 1e-3 for m in methods}
    memory = dict(peak_mib=1.0, first_s=2.0, first_cached_s=0.3) if memory else {}
    result = {"emitted": dict(times, **memory), "torch": dict(times, **({k: memory[k] for k in ("peak_mib", "first_s")}
                                                                       if memory else {})),
              "ratio": {m: (0.9, 1.0, 1.1) for m in methods},
              "gauge": [{"numpy": 100.0, "torch": 100.0}] * 2, "dtype": dtype, "heap": "glibc's default heap"}
    if compile or (compile is None and op_name in symgrad.ops.PROGRAMS and target == "module"):
        result.update(compiled=dict(times), ratio_compiled={m: (1.1, 1.2, 1.3) for m in methods})
    return result


GPU_HELPERS, GPU_CUBLAS = cupy_helpers()


# the CuPy modules' setting: the whole batch at once, and their GEMM helpers (cuBLAS emulated)
GPU_SETTING = {"_CHUNK_BYTES": None, "_SCRATCH": False,
               **{name: GPU_HELPERS[name] for name in ("_accumulate", "_matmul", "_sum_of_products")}}


PHASE_SETTINGS = {  # module settings the phase paths run under: chunks, threads, the GPU's formulation
    "default": {},
    "one-item chunks, three threads": {"_CHUNK_BYTES": 1, "_workers": lambda: 3},
    "whole batch, cuBLAS emulated (GPU)": GPU_SETTING,
    "im2col for the few-taps case (the GPU's alternative)": dict(GPU_SETTING, _IM2COL=True),
}


TOLERANCE = {np.float16: 1e-2, np.float32: 1e-5, np.float64: 1e-12}


def relative(got, want):
    """The largest error relative to the largest reference value."""
    return np.abs(got - want).max(initial=0.0) / max(np.abs(want).max(initial=0.0), 1e-300)


def cupy_module(name, params, monkeypatch):
    """The emitted CuPy module itself, loaded over the NumPy stand-in for cupy (its GEMMs through
    the emulated cuBLAS, its fused kernels compiled by the host C compiler)."""
    # (forward mode on the GPU: test_programs_cupy.py)
    source = emit(symgrad.derive(symgrad.ops.build(name, **params)), "cupy", jvp=False)
    _, cublas = stand_in(monkeypatch)
    module = load(source, "cupy_module_on_host")
    on_host(module.__dict__, cublas)
    return module, cublas
