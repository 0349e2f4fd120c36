"""Programs' CuPy modules: run over the NumPy stand-in for CuPy (tests/cublas_emulator.py: GEMMs
through the emulated cuBLAS, each CUDA kernel compiled by the host C compiler), every built-in
program gives the NumPy module's forward and gradients; on a GPU (tests/test_gpu.py) the same
against torch."""
import numpy as np
import pytest

from cublas_emulator import on_host, stand_in
from cuda_kernels_on_host import SEEN, gpu_compile_errors, needs_nvrtc
from symgrad import ops
from symgrad.emit import load
from symgrad.emit.program import emit_program
from symgrad.reverse import derive_program
from support import SWEEP, builder_params, close, program_module

TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}
# one case per program and option
CASES = [c for k, c in enumerate(SWEEP) if k in {0, 4, 6, 9, 12, 13, 17, 20, 22, 23, 24, 27, 30, 31, 33, 34}]


def cupy_program(name, params, monkeypatch, jvp=False):
    """The program's CuPy module as emitted, loaded over the stand-in (``jvp``: with forward mode)."""
    source = emit_program(derive_program(ops.build(name, **params)), "cupy", jvp=jvp)
    _, cublas = stand_in(monkeypatch)
    m = load(source, "cupy_program_on_host")
    on_host(m.__dict__, cublas)
    return m, source


@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=lambda t: t.__name__)
@pytest.mark.parametrize("name,params,shapes", CASES, ids=[f"{n}-{k}" for k, (n, _, _) in enumerate(CASES)])
def test_cupy_program_equals_numpy_program(monkeypatch, name, params, shapes, dtype):
    params = builder_params(name, params)
    m, source = cupy_program(name, params, monkeypatch)
    reference = program_module(name, **params)
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


@pytest.mark.parametrize("name,shapes", [("softmax", [(5, 7)]), ("layer_norm", [(4, 6), (6,), (6,)])])
def test_cupy_program_jvp_equals_numpy(monkeypatch, name, shapes):
    """Forward mode on the GPU module: its jvp (the JVP program's CUDA kernels) as the NumPy module's."""
    from symgrad import api
    m, _ = cupy_program(name, {}, monkeypatch, jvp=True)
    reference = api.module(ops.build(name), order=1)
    rng = np.random.default_rng(12)
    arrays, tangents = [rng.standard_normal(s) for s in shapes], [rng.standard_normal(s) for s in shapes]
    for got, want in zip(m.jvp(arrays, tangents), reference.jvp(arrays, tangents)):
        close(got, want, 1e-12)


def test_cupy_program_runs_pointwise_statements_as_kernels(monkeypatch):
    """softmax's pointwise statements are one CUDA kernel each (u and y, a sum between them), and its
    backward's run of pointwise steps is one kernel: ∂ℒ/∂u through y, through s, and ∂ℒ/∂x through u,
    dx = (dy/s + ds)·u, with du kept in the kernel (nothing after reads it); no numba, no NumPy."""
    _, source = cupy_program("softmax", {}, monkeypatch)
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["import functools", "import cupy as xp"] and "numba" not in source
    assert source.count("fused('T ") == 3
    assert ("fused('T p0, T p1, T p2, T p3', body, 'symgrad_backward_du_to_dx', 'T _o0')"
            "(dy, s[:, None], ds[:, None], u, _o0)") in source
    assert "# 3 pointwise steps in one CUDA kernel (du, dx)" in source
    assert "du = " not in source.split("def _pullback")[1].split("def vjp")[0]
    assert "Backend: CuPy" in source


def test_cupy_program_mixed_dtypes(monkeypatch):
    """Inputs of several dtypes compute in their result type (one dtype for the kernels), and each
    gradient comes back in its input's dtype."""
    m, _ = cupy_program("layer_norm", {}, monkeypatch)
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((3, 5)).astype(np.float32), rng.standard_normal(5), rng.standard_normal(5)
    y, pullback = m.vjp(x, w, b)
    assert y.dtype == np.float64
    close(y, program_module("layer_norm").forward(x, w, b), 1e-6)
    dx, dw, db = pullback(np.ones((3, 5), np.float32))
    assert (dx.dtype, dw.dtype, db.dtype) == (np.float32, np.float64, np.float64)


@needs_nvrtc
def test_fused_program_kernels_compile_for_the_gpu(monkeypatch):
    """The kernels that fuse runs of pointwise steps (several outputs, each step's value a local in
    a block of its own), run here over the stand-in in float16, float32 and float64, compile with
    NVRTC as CuPy compiles them."""
    for name, params, shapes in [("softmax", {}, [(3, 5)]), ("cross_entropy", {}, [(3, 4), (3, 4)]),
                                 ("conv_bias_gelu", {"stride": 1, "padding": 1, "dilation": 1, "groups": 1},
                                  [(1, 2, 5, 5), (3, 2, 3, 3), (3,)])]:
        m, _ = cupy_program(name, params, monkeypatch)
        for dtype in (np.float16, np.float32, np.float64):
            arrays = [np.random.default_rng(1).standard_normal(s).astype(dtype) for s in shapes]
            y, pullback = m.vjp(*arrays)
            pullback(np.ones(np.shape(y), dtype))
    fused = {k for k in set(SEEN) if "_to_" in k[3]}  # these and any an earlier test ran
    assert {k[3] for k in fused} >= {"symgrad_backward_du_to_dx", "symgrad_forward_y_to_z"}
    assert {k[4] for k in fused} == {"float16", "float32", "float64"}
    assert not gpu_compile_errors(fused)
