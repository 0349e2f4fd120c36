"""GPU: every configuration of the CPU sweep through the emitted CuPy modules, compared with the
NumPy modules and with PyTorch on the GPU (float64 ≤ 1e-10; float32 ≤ 1e-5 with TF32 off).
Skipped cleanly where CuPy or a GPU is missing (CI has neither)."""
import functools
import importlib.util

import numpy as np
import pytest

import symgrad
from symgrad.emit import emit, load
from symgrad.reference import REFERENCES
from sweep_configs import all_configs


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
