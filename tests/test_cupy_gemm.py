"""The CuPy modules' GEMM helper (symgrad/runtime/cupy/gemm.py) on the CPU, cuBLAS emulated on host
memory (tests/cublas_emulator.py): which operand layouts it gives to cuBLAS in place (contiguous,
transposed, strided row windows as the per-tap GEMMs read them, a broadcast batch), that the
results and beta = 1 accumulation are right in float16/32/64, and that it leaves to cupy.matmul
what cuBLAS cannot read (no unit stride, overlapping rows, negative strides, mixed or integer
dtypes, more than one batch axis).  The matmul sweep and the matmul benchmark shapes run through
dot_general with these helpers, and every third sweep configuration runs through the emitted CuPy
module file itself, cupy stood in for by NumPy, its fused elementwise kernels (GELU, depthwise tap
sums) compiled by the host C compiler (tests/cuda_kernels_on_host.py).  Where NVRTC and CuPy's
headers are present, every kernel body those runs built is compiled for the GPU as CuPy compiles
it.  The conv paths run with the helpers in tests/test_fast_paths.py."""

import numpy as np
import pytest

import symgrad

from conftest import needs_torch, sliced
from cublas_emulator import cupy_helpers
from cuda_kernels_on_host import SEEN, gpu_compile_errors, needs_nvrtc
from support import CONFIGS, TOLERANCE, cupy_module, module_for, relative, run_config

RNG = np.random.default_rng(11)


def _normal(dtype, *shape):
    return RNG.standard_normal(shape).astype(dtype)


def _windows(t=np.float64):
    """A per-tap GEMM's operands: (G, O/G, I) weights against a window of the flattened phase
    buffer (G, I, P, items * image), rows P * items * image apart."""
    buffer = _normal(t, 2, 3, 2, 40)
    return _normal(t, 2, 4, 3), buffer[:, :, 1, 5:35]


IN_PLACE = {  # name: (a, b), each a GEMM cuBLAS reads where it lies
    "contiguous 2-d": lambda t: (_normal(t, 5, 7), _normal(t, 7, 3)),
    "contiguous batch": lambda t: (_normal(t, 4, 5, 7), _normal(t, 4, 7, 3)),
    "a transposed": lambda t: (_normal(t, 7, 5).T, _normal(t, 7, 3)),
    "b transposed": lambda t: (_normal(t, 4, 5, 7), _normal(t, 4, 3, 7).transpose(0, 2, 1)),
    "both transposed": lambda t: (_normal(t, 4, 7, 5).transpose(0, 2, 1), _normal(t, 4, 3, 7).transpose(0, 2, 1)),
    "row windows (a per-tap GEMM)": _windows,
    "a broadcast over the batch": lambda t: (_normal(t, 1, 5, 7), _normal(t, 4, 7, 3)),
    "b broadcast over the batch": lambda t: (_normal(t, 4, 5, 7), _normal(t, 1, 7, 3)),
    "one row": lambda t: (_normal(t, 1, 7), _normal(t, 7, 3)),
    "one column": lambda t: (_normal(t, 5, 7), _normal(t, 7, 1)),
    "inner length one": lambda t: (_normal(t, 5, 1), _normal(t, 1, 3)),
    "rows of a wider array": lambda t: (_normal(t, 5, 12)[:, 2:9], _normal(t, 7, 10)[:, 1:4]),
}
REFUSED = {  # name: (a, b), each left to cupy.matmul
    "no unit stride": lambda t: (_normal(t, 5, 14)[:, ::2], _normal(t, 7, 3)),
    "overlapping rows": lambda t: (np.lib.stride_tricks.sliding_window_view(_normal(t, 12), 7)[:5], _normal(t, 7, 3)),
    "negative strides": lambda t: (_normal(t, 5, 7)[::-1], _normal(t, 7, 3)),
    "mixed dtypes": lambda t: (_normal(np.float32, 5, 7), _normal(np.float64, 7, 3)),
    "integers": lambda t: (RNG.integers(-3, 4, (5, 7)), RNG.integers(-3, 4, (7, 3))),
    "two batch axes": lambda t: (_normal(t, 2, 3, 5, 7), _normal(t, 2, 3, 7, 3)),
}
@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=lambda t: t.__name__)
@pytest.mark.parametrize("case", IN_PLACE)
def test_gemm_reads_operands_in_place(case, dtype):
    helpers, cublas = cupy_helpers()
    a, b = IN_PLACE[case](dtype)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    got = helpers["_matmul"](a, b)
    assert got.dtype == dtype and got.shape == want.shape
    assert relative(got.astype(np.float64), want) <= TOLERANCE[dtype]
    start = _normal(dtype, *want.shape)
    total = start.copy()
    assert helpers["_gemm"](a, b, total, 1)  # beta = 1: added to what is there
    assert relative(total.astype(np.float64), start.astype(np.float64) + want) <= TOLERANCE[dtype]
    assert len(cublas.calls) == 2 and not cublas.refused


@pytest.mark.parametrize("case", REFUSED)
def test_gemm_leaves_to_matmul_what_cublas_cannot_read(case):
    helpers, cublas = cupy_helpers()
    a, b = REFUSED[case](np.float64)
    got = helpers["_matmul"](a, b)
    np.testing.assert_allclose(got, np.matmul(a, b), rtol=1e-6)
    assert not cublas.calls and len(cublas.refused) == (0 if a.ndim != b.ndim or a.dtype != b.dtype else 1)


def test_layouts_keep_their_strides():
    """The in-place cases are what their names say: not copies made contiguous."""
    a, b = _windows()
    assert b.strides[-2] // b.itemsize == 80 and b.strides[-1] == b.itemsize
    a, _ = IN_PLACE["a transposed"](np.float32)
    assert a.strides[-2] == a.itemsize and not a.flags.c_contiguous


def test_accumulate_adds_in_place_without_scratch():
    """A per-tap GEMM after the first adds into the total by cuBLAS's beta; a broadcast product and
    a GEMM cuBLAS cannot take go through a scratch result made for them."""
    helpers, cublas = cupy_helpers()
    accumulate = helpers["_accumulate"]
    weights, window = _windows()
    total = np.empty((2, 4, 30))
    accumulate(np.matmul, weights, window, total, None, True)
    accumulate(np.matmul, weights, window, total, None, False)
    np.testing.assert_allclose(total, 2 * np.matmul(weights, window), rtol=1e-12)
    assert len(cublas.calls) == 2
    scale, rows = _normal(np.float64, 2, 1, 1), _normal(np.float64, 2, 1, 30)
    depthwise = np.empty((2, 1, 30))
    accumulate(np.multiply, scale, rows, depthwise, None, True)
    accumulate(np.multiply, scale, rows, depthwise, None, False)
    np.testing.assert_allclose(depthwise, 2 * scale * rows, rtol=1e-12)
    a, b = REFUSED["integers"](np.float64)
    counts = np.ones((5, 3), dtype=a.dtype)
    accumulate(np.matmul, a, b, counts, None, False)
    np.testing.assert_array_equal(counts, 1 + a @ b)
    assert len(cublas.calls) == 2 and len(cublas.refused) == 1


MATMULS = [c for c in CONFIGS if c[0] == "matmul"] + [  # the benchmark's shapes, scaled down
    ("matmul", {"a_shape": "M,K", "b_shape": "K,N"}, {"a": (16, 24), "b": (24, 8)}),
    ("matmul", {"a_shape": "B,M,K", "b_shape": "B,K,N"}, {"a": (3, 16, 24), "b": (3, 24, 8)}),
]


@needs_torch
@pytest.mark.parametrize("name,params,shapes", MATMULS, ids=[f"matmul-{k}" for k in range(len(MATMULS))])
def test_matmul_through_cublas_as_on_the_gpu(monkeypatch, name, params, shapes):
    """dot_general with the CuPy modules' _matmul: every product a cuBLAS call on its operands as
    they lie (transposed views through the transpose flags), against PyTorch."""
    helpers, cublas = cupy_helpers()
    module = module_for(name, tuple(sorted(params.items())))
    monkeypatch.setattr(module, "_matmul", helpers["_matmul"])
    errors = run_config(name, params, shapes)
    assert max(errors.values()) <= 1e-10, errors
    assert cublas.calls and not cublas.refused


@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=lambda t: t.__name__)
@pytest.mark.parametrize("name,params,shapes", sliced(CONFIGS[::3], 12, ids=[f"{c[0]}-{k}" for k, c in enumerate(CONFIGS[::3])]))
def test_emitted_cupy_module_on_emulated_cupy(monkeypatch, name, params, shapes, dtype):
    """The CuPy module file as emitted (not only its helpers), run over NumPy with cuBLAS emulated:
    its forward and gradients in the dtype are the NumPy module's in float64 on the same values
    (float16: its GEMMs accumulating in float32, as on the GPU), every GEMM reached cuBLAS in
    place, and GELU ran as fused kernels."""
    module, cublas = cupy_module(name, params, monkeypatch)
    reference = module_for(name, tuple(sorted(params.items())))
    op = symgrad.ops.build(name, **params)
    rng = np.random.default_rng(5)
    args = [rng.standard_normal(shapes[t.name]).astype(dtype) for t in op.inputs]
    y = module.forward(*args)
    g = rng.standard_normal(y.shape).astype(dtype)
    wide = [a.astype(np.float64) for a in args]
    got_all = (y,) + tuple(module.backward(g, *args))
    want_all = (reference.forward(*wide),) + tuple(reference.backward(g.astype(np.float64), *wide))
    for got, want in zip(got_all, want_all):
        assert got.dtype == dtype and got.shape == want.shape
        assert relative(got.astype(np.float64), want) <= TOLERANCE[dtype]
    taps = sum(kernel.calls for kernel in getattr(module, "_PRODUCT_KERNELS", {}).values())  # depthwise taps
    pointwise = sum(kernel.calls for kernel in getattr(module, "_KERNELS", {}).values())
    assert not cublas.refused
    if name == "gelu":
        assert pointwise == 2 and not cublas.calls  # the forward and the gradient, one kernel each
    else:
        assert (cublas.calls or taps) and (taps or name != "convolve")  # convolve: one channel


@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=lambda t: t.__name__)
@pytest.mark.parametrize("taps", [1, 9, 16, 17, 40])
def test_depthwise_taps_summed_by_fused_kernels(taps, dtype):
    """A depthwise layer's taps: every product summed in one elementwise kernel per 16 taps (so 40
    taps take three, the later ones adding to the total), in float for float16/32 and double for
    float64; mixed dtypes go product by product."""
    helpers, _ = cupy_helpers()
    buffer = _normal(dtype, 3, 1, 90)
    products = [(_normal(dtype, 3, 1, 1), buffer[:, :, k:k + 40]) for k in range(taps)]
    total = np.full((3, 1, 40), np.nan, dtype)
    helpers["_sum_of_products"](products, total, None)
    want = sum(a.astype(np.float64) * b.astype(np.float64) for a, b in products)
    assert relative(total.astype(np.float64), want) <= TOLERANCE[dtype]
    kernels = helpers["_PRODUCT_KERNELS"]
    assert sum(kernel.calls for kernel in kernels.values()) == -(-taps // 16)
    assert all(kernel.compute == (np.float64 if dtype == np.float64 else np.float32) for kernel in kernels.values())
    mixed = [(a.astype(np.float32), b) for a, b in products] if dtype == np.float64 else []
    if mixed:
        helpers["_sum_of_products"](mixed, total, None)
        assert relative(total, want) <= 1e-6 and sum(kernel.calls for kernel in kernels.values()) == -(-taps // 16)


KERNEL_CASES = [  # every kind of fused kernel the modules build: GELU both ways, depthwise tap sums
    ("gelu", {"approximate": "none"}, {"x": (3, 5)}),
    ("gelu", {"approximate": "tanh"}, {"x": (7,)}),
    ("conv2d", {"stride": 1, "dilation": 1, "groups": 4, "padding": 1}, {"x": (2, 4, 6, 6), "w": (4, 1, 3, 3), "b": (4,)}),
    ("conv1d", {"stride": 1, "dilation": 1, "groups": 3, "padding": "same"}, {"x": (2, 3, 50), "w": (3, 1, 40), "b": (3,)}),
]


@needs_nvrtc
def test_every_fused_kernel_compiles_for_the_gpu(monkeypatch):
    """Every elementwise kernel body the CuPy modules build (those of the cases above in float16,
    float32 and float64, and any other the tests before this one ran), written as CuPy's
    generator writes it, compiles with NVRTC for the H100 (compute_90) against CuPy's own headers."""
    for name, params, shapes in KERNEL_CASES:
        module, _ = cupy_module(name, params, monkeypatch)
        op = symgrad.ops.build(name, **params)
        for dtype in TOLERANCE:
            args = [RNG.standard_normal(shapes[t.name]).astype(dtype) for t in op.inputs]
            y = module.forward(*args)
            module.backward(np.ones_like(y), *args)
    kernels = set(SEEN)
    assert {k[4] for k in kernels} == {"float16", "float32", "float64"}
    assert any("symgrad_sum_of_products" == k[3] for k in kernels) and any("erf" in k[2] for k in kernels)
    assert not gpu_compile_errors(kernels)
