"""GPU: every configuration of the CPU sweep through the emitted CuPy modules, compared with the
NumPy modules and with PyTorch on the GPU (float64 ≤ 1e-10; float32 ≤ 1e-5 with TF32 off), and
every fourth in float16 (≤ 1e-2 of float64).  Skipped cleanly where CuPy or a GPU is missing (CI
has neither); tests/test_cupy_gemm.py runs the CuPy module files over NumPy on the CPU."""
import functools
import importlib.util

import numpy as np
import pytest

import symgrad
from symgrad.emit import emit, load
from symgrad.verify.reference import REFERENCES
from sweep_configs import all_configs
from support import SWEEP as PROGRAM_SWEEP, builder_params, torch_case


def _gpu_ready():
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _gpu_ready(), reason="CuPy with a CUDA GPU is not available")
CONFIGS = all_configs()


@functools.lru_cache(maxsize=None)
def modules(name, frozen):
    d = symgrad.derive(symgrad.ops.build(name, **dict(frozen)))
    return load(emit(d, "numpy"), "cpu_mod"), load(emit(d, "cupy"), "gpu_mod")


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max(initial=0.0) / max(np.abs(b).max(initial=0.0), 1e-300)


def torch_gpu(op, arrays, g):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ts = [torch.tensor(arrays[t.name], device="cuda", requires_grad=True) for t in op.inputs]
    out = REFERENCES[op.name](op, *ts)
    out.backward(torch.tensor(g, device="cuda"))
    return out.detach().cpu().numpy(), [t.grad.cpu().numpy() for t in ts]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,params,shapes", CONFIGS, ids=[f"{c[0]}-{k}" for k, c in enumerate(CONFIGS)])
def test_cupy_matches_numpy_and_torch(name, params, shapes, dtype):
    import cupy
    op = symgrad.ops.build(name, **params)
    cpu, gpu = modules(name, tuple(sorted(params.items())))
    rng = np.random.default_rng(0)
    arrays = {t.name: rng.standard_normal(shapes[t.name]) for t in op.inputs}
    args = [arrays[t.name].astype(dtype) for t in op.inputs]
    y = gpu.forward(*[cupy.asarray(a) for a in args])
    g = rng.standard_normal(y.shape)
    grads = gpu.backward(cupy.asarray(g.astype(dtype)), *[cupy.asarray(a) for a in args])
    tol = 1e-10 if dtype == "float64" else 1e-5
    want_y = cpu.forward(*[arrays[t.name] for t in op.inputs])
    want = cpu.backward(g, *[arrays[t.name] for t in op.inputs])
    ref_y, ref = torch_gpu(op, arrays, g)
    assert str(y.dtype) == dtype and rel(y.get(), want_y) <= tol and rel(y.get(), ref_y) <= tol
    for t, got, w, r in zip(op.inputs, grads, want, ref):
        assert isinstance(got, cupy.ndarray) and str(got.dtype) == dtype
        assert rel(got.get(), w) <= tol, (t.name, "numpy", rel(got.get(), w))
        assert rel(got.get(), r) <= tol, (t.name, "torch", rel(got.get(), r))


@pytest.mark.parametrize("name,params,shapes", CONFIGS[::4], ids=[f"{c[0]}-{k}" for k, c in enumerate(CONFIGS[::4])])
def test_cupy_float16_near_float64(name, params, shapes):
    """float16 through the CuPy modules (GEMMs accumulating in float32 on tensor cores, fused
    kernels computing in double) within 1e-2 of the NumPy module in float64 on the same values."""
    import cupy
    op = symgrad.ops.build(name, **params)
    cpu, gpu = modules(name, tuple(sorted(params.items())))
    rng = np.random.default_rng(1)
    args = [rng.standard_normal(shapes[t.name]).astype(np.float16) for t in op.inputs]
    y = gpu.forward(*[cupy.asarray(a) for a in args])
    g = rng.standard_normal(y.shape).astype(np.float16)
    grads = gpu.backward(cupy.asarray(g), *[cupy.asarray(a) for a in args])
    wide = [a.astype(np.float64) for a in args]
    want = (cpu.forward(*wide),) + tuple(cpu.backward(g.astype(np.float64), *wide))
    for got, w in zip((y,) + tuple(grads), want):
        assert str(got.dtype) == "float16" and rel(got.get(), w) <= 1e-2


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,params,shapes", PROGRAM_SWEEP, ids=[f"{c[0]}-{k}" for k, c in enumerate(PROGRAM_SWEEP)])
def test_cupy_programs_match_torch(name, params, shapes, dtype):
    """Every case of the programs' sweep through the emitted CuPy program module on the GPU: forward
    and gradients against torch autograd on the GPU (TF32 off)."""
    import cupy
    import torch
    from symgrad.emit.program import emit_program
    from symgrad.reverse import derive_program
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    m = load(emit_program(derive_program(symgrad.ops.build(name, **builder_params(name, params))), "cupy"), "gpu_prog")
    arrays, function, extra = torch_case(name, params, shapes)
    ts = [torch.tensor(a.astype(dtype), device="cuda", requires_grad=True) for a in arrays]
    out = function(*ts)
    g = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(dtype)
    grads = torch.autograd.grad(out, ts, torch.tensor(g, device="cuda"))
    y, pullback = m.vjp(*[cupy.asarray(a.astype(dtype)) for a in arrays], *extra)
    tol = 1e-10 if dtype == "float64" else 1e-4
    assert isinstance(y, cupy.ndarray) and y.dtype == dtype
    assert rel(cupy.asnumpy(y), out.detach().cpu().numpy()) <= tol
    for got, want in zip(pullback(cupy.asarray(g)), grads):
        assert isinstance(got, cupy.ndarray)
        assert rel(cupy.asnumpy(got), want.cpu().numpy()) <= tol
