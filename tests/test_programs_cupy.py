"""Programs' CuPy modules: run over the NumPy stand-in for CuPy (tests/cublas_emulator.py: GEMMs
through the emulated cuBLAS, each CUDA kernel compiled by the host C compiler), every built-in
program gives the NumPy module's forward and gradients; on a GPU (tests/test_gpu.py) the same
against torch."""
import numpy as np
import pytest

from cublas_emulator import on_host, stand_in
from symgrad import ops
from symgrad.emit import load
from symgrad.emit.program import emit_program
from symgrad.reverse import derive_program
from test_programs import SWEEP, _builder_params, close, module

TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}
# one case per program and option
CASES = [c for k, c in enumerate(SWEEP) if k in {0, 4, 6, 9, 12, 13, 17, 20, 22, 23, 24, 27, 30, 31, 33, 34}]


def cupy_program(name, params, monkeypatch):
    """The program's CuPy module as emitted, loaded over the stand-in."""
    source = emit_program(derive_program(ops.build(name, **params)), "cupy")
    _, cublas = stand_in(monkeypatch)
    m = load(source, "cupy_program_on_host")
    on_host(m.__dict__, cublas)
    return m, source


@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=lambda t: t.__name__)
@pytest.mark.parametrize("name,params,shapes", CASES, ids=[f"{n}-{k}" for k, (n, _, _) in enumerate(CASES)])
def test_cupy_program_equals_numpy_program(monkeypatch, name, params, shapes, dtype):
    params = _builder_params(name, params)
    m, source = cupy_program(name, params, monkeypatch)
    reference = module(name, **params)
    rng = np.random.default_rng(11)
    arrays = [rng.standard_normal(s) for s in shapes]
    if name == "cross_entropy":
        t = np.exp(arrays[1])
        arrays[1] = t / t.sum(-1, keepdims=True)
    extra = (params["dim"],) if "dim" in params else ()
    want, pullback = reference.vjp(*arrays, *extra)
    got, cupy_pullback = m.vjp(*[a.astype(dtype) for a in arrays], *extra)
    assert got.dtype == dtype
    close(got, want, TOLERANCE[dtype])
    g = rng.standard_normal(np.shape(want))
    for a, b, x in zip(cupy_pullback(g.astype(dtype)), pullback(g), arrays):
        assert a.dtype == dtype and a.shape == x.shape
        close(a, b, TOLERANCE[dtype])


def test_cupy_program_runs_pointwise_statements_as_kernels(monkeypatch):
    """Each pointwise statement and contribution of softmax is one CUDA kernel; no numba, no NumPy."""
    _, source = cupy_program("softmax", {}, monkeypatch)
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["import functools", "import cupy as xp"] and "numba" not in source
    assert source.count("fused('T ") == 4  # u and y forward; du and dx backward
    assert "Backend: CuPy" in source


def test_cupy_program_mixed_dtypes(monkeypatch):
    """Inputs of several dtypes compute in their result type (one dtype for the kernels), and each
    gradient comes back in its input's dtype."""
    m, _ = cupy_program("layer_norm", {}, monkeypatch)
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((3, 5)).astype(np.float32), rng.standard_normal(5), rng.standard_normal(5)
    y, pullback = m.vjp(x, w, b)
    assert y.dtype == np.float64
    close(y, module("layer_norm").forward(x, w, b), 1e-6)
    dx, dw, db = pullback(np.ones((3, 5), np.float32))
    assert (dx.dtype, dw.dtype, db.dtype) == (np.float32, np.float64, np.float64)
