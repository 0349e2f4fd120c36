"""The runtime modules (symgrad/runtime) as ordinary Python, imported and called directly, without
deriving or emitting anything:
- ``conv_general_dilated`` on lax-level calls against a loop reference of XLA's convolution
  (tests/xla_reference.py), under the settings the emitted modules run with: the default, one-item
  batch chunks on three worker threads, the GPU's whole-batch formulation with the CuPy GEMM helper
  (cuBLAS emulated on host memory), and im2col for the few-taps case: strided dilated windows,
  weight-gradient shapes with both stride and dilation, transposed convolutions with phases that
  meet no tap, negative padding, crops past an axis's end;
- ``dot_general`` against ``numpy.einsum``;
- the worker threads: how a batch is split, the pool kept between calls and made anew after a fork,
  OMP_PROC_BIND's binding, the serial fallback without threadpoolctl;
- the float32 special functions (``erf``, ``tanh`` of arrays; the numba loops' scalar ``erf``,
  ``tanh``, ``exp``) against float64 over the whole float32 range;
- how the emitter inlines them: every piece parses into code, imports and needs; the CuPy
  substitutes define every name the NumPy pieces are asked for; templates hold no static helper.
(The CuPy GEMM helper alone: tests/test_cupy_gemm.py.)
"""
import importlib
import math
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.special

import symgrad.backends
import symgrad.runtime
from symgrad.emit import inline
from symgrad.runtime import conv, dot_general, erf, tanh, threads
from cublas_emulator import runtime_module
from test_fast_paths import GPU_CUBLAS, PHASE_SETTINGS

RUNTIME = Path(symgrad.runtime.__file__).parent
PIECES = sorted(p.stem for p in RUNTIME.glob("*.py") if p.stem != "__init__")
#: the modules the NumPy modules inline (importable without cupy)
MODULES = [importlib.import_module(f"symgrad.runtime.{name}") for name in PIECES if name not in ("gemm_cupy", "fused")]


def apply_setting(monkeypatch, setting: dict):
    """Set each name of ``setting`` in every runtime module that has it: inlined, the modules share
    one namespace, so this is what setting it in an emitted module does."""
    for key, value in setting.items():
        holders = [m for m in MODULES if hasattr(m, key)]
        assert holders, key
        for module in holders:
            monkeypatch.setattr(module, key, value)


def _helper_cases():
    """lax-level calls of the emitted conv_general_dilated that the derived gradients reach only in
    part: transposed convolutions (lhs_dilation > 1) whose output phases meet no tap, one tap or
    taps sharing a factor with the dilation, with negative padding, and crops past an axis's end."""
    rng = np.random.default_rng(7)

    def draw(low, high, count):  # count integers in [low, high)
        return tuple(int(v) for v in rng.integers(low, high, count))

    cases = [  # (lhs shape, rhs shape, window_strides, padding, lhs_dilation, rhs_dilation, groups)
        ((2, 3, 5), (4, 3, 2), (1,), [(0, 0)], (4,), (1,), 1),            # ld > k: phases with no tap
        ((2, 3, 6), (4, 3, 3), (1,), [(-2, 3)], (2,), (2,), 1),           # ld divides rd: taps on one phase
        ((2, 4, 5, 4), (6, 2, 3, 2), (1, 1), [(1, -1), (2, 0)], (3, 2), (2, 3), 2),
        ((1, 2, 4), (3, 2, 2), (1,), [(-6, 5)], (1,), (1,), 1),           # the crop passes the far end
        ((1, 2, 4), (3, 2, 2), (1,), [(5, -6)], (1,), (1,), 1),           # the far crop eats the front padding
        ((1, 2, 3), (2, 2, 1), (2,), [(-5, 4)], (3,), (1,), 1),
    ]
    for _ in range(12):  # random strided windows with dilated kernels (the forward's and dw's phases)
        nsp, groups = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        size = draw(3, 12, nsp)
        kernel = draw(1, 5, nsp)
        strides = draw(1, 4, nsp)
        rd = draw(1, 4, nsp)
        pads = [draw(-2, 4, 2) for _ in range(nsp)]
        if any(q + lo + hi < (k - 1) * r + 1 for q, (lo, hi), k, r in zip(size, pads, kernel, rd)):
            continue
        cases.append(((2, 2 * groups) + size, (2 * groups, 2) + kernel, strides, pads, (1,) * nsp, rd, groups))
    for _ in range(12):  # weight-gradient shapes (fewer outputs than taps): window stride s, dilation d
        nsp, groups = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        out = draw(1, 4, nsp)
        strides = draw(1, 4, nsp)
        rd = draw(1, 4, nsp)
        kernel = draw(3, 7, nsp)
        pads = [draw(-1, 3, 2) for _ in range(nsp)]
        size = tuple(s * (m - 1) + (k - 1) * d + 1 - lo - hi + int(rng.integers(0, s))
                     for m, s, k, d, (lo, hi) in zip(out, strides, kernel, rd, pads))
        if min(size) < 1:
            continue
        cases.append(((2, 2 * groups) + size, (2 * groups, 2) + kernel, strides, pads, (1,) * nsp, rd, groups))
    for _ in range(12):  # random transposed convolutions, 1-2 spatial axes
        nsp, groups = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        size = draw(1, 6, nsp)
        kernel = draw(1, 4, nsp)
        ld = draw(2, 4, nsp)
        rd = draw(1, 4, nsp)
        pads = [draw(-2, 4, 2) for _ in range(nsp)]
        if any((q - 1) * l + 1 + lo + hi < (k - 1) * r + 1 for q, l, (lo, hi), k, r in zip(size, ld, pads, kernel, rd)):
            continue
        cases.append(((2, 2 * groups) + size, (2 * groups, 2) + kernel, (1,) * nsp, pads, ld, rd, groups))
    return cases


@pytest.mark.parametrize("setting", PHASE_SETTINGS)
@pytest.mark.parametrize("case", _helper_cases())
def test_conv_helper_against_loop_reference(monkeypatch, case, setting):
    import xla_reference
    lhs_shape, rhs_shape, strides, padding, ld, rd, groups = case
    rng = np.random.default_rng(3)
    lhs, rhs = rng.standard_normal(lhs_shape), rng.standard_normal(rhs_shape)
    spatial = "HWD"[:len(lhs_shape) - 2]
    numbers = ("NC" + spatial, "OI" + spatial, "NC" + spatial)
    apply_setting(monkeypatch, PHASE_SETTINGS[setting])
    gemms = len(GPU_CUBLAS.calls)
    want = xla_reference.conv_general_dilated(lhs, rhs, strides, padding, ld, rd, numbers, groups)
    got = conv.conv_general_dilated(lhs, rhs, strides, padding, ld, rd, numbers, groups)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert not GPU_CUBLAS.refused  # on the GPU every GEMM reads its operands in place
    assert len(GPU_CUBLAS.calls) == gemms or "_accumulate" in PHASE_SETTINGS[setting]


@pytest.mark.parametrize("contracting,batch,shapes", [
    (((1,), (0,)), ((), ()), ((4, 5), (5, 3))),
    (((2,), (1,)), ((0,), (0,)), ((2, 4, 5), (2, 5, 3))),
    (((0, 2), (1, 3)), ((), ()), ((3, 4, 5), (2, 3, 6, 5))),
    (((1,), (1,)), ((0,), (2,)), ((3, 4), (5, 4, 3))),
])
def test_dot_general_against_einsum(contracting, batch, shapes):
    rng = np.random.default_rng(1)
    lhs, rhs = (rng.standard_normal(s) for s in shapes)
    letters = iter("abcdefghij")
    names = [[next(letters) for _ in range(len(s))] for s in shapes]
    for a, b in zip(*contracting):
        names[1][b] = names[0][a]
    for a, b in zip(*batch):
        names[1][b] = names[0][a]
    free = [[n for k, n in enumerate(names[i]) if k not in contracting[i] and k not in batch[i]] for i in (0, 1)]
    out = [names[0][a] for a in batch[0]] + free[0] + free[1]
    spec = f"{''.join(names[0])},{''.join(names[1])}->{''.join(out)}"
    np.testing.assert_allclose(dot_general.dot_general(lhs, rhs, contracting, batch), np.einsum(spec, lhs, rhs),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
@pytest.mark.parametrize("n", [1, 2, 5, 9])
@pytest.mark.parametrize("step", [1, 2, 4, 16])
def test_split_deals_out_whole_chunks(monkeypatch, workers, n, step):
    monkeypatch.setattr(threads, "_workers", lambda: workers)
    size, runs = threads._split(n, step)
    assert 1 <= size <= step
    assert len(runs) == min(workers, n, -(-n // size)) and len(runs) == min(workers, n)  # every worker busy
    assert runs[0][0] == 0 and runs[-1][1] == n and all(a[1] == b[0] for a, b in zip(runs, runs[1:]))
    assert all(stop > start and (start % size == 0) for start, stop in runs)


def test_conv_modules_run_serially_without_threadpoolctl(monkeypatch):
    monkeypatch.setattr(threads, "threadpoolctl", None)
    assert threads._workers() == 1 and threads._split(8, 1) == (1, [(0, 8)])


def test_worker_pool_is_kept_and_made_anew_in_a_forked_child(monkeypatch):
    monkeypatch.setattr(threads, "_POOL", {})
    first = threads._pool(2)
    assert threads._pool(1) is first and threads._pool(2) is first  # kept from call to call
    assert threads._pool(3) is not first  # more threads wanted: a bigger pool
    bigger = threads._pool(3)
    monkeypatch.setattr(threads.os, "getpid", lambda: -1)  # as seen from a forked child
    assert threads._pool(2) is not bigger
    for pool in (first, bigger, threads._POOL["pool"]):
        pool.shutdown()


@pytest.mark.parametrize("value,bound", [("true", True), ("Spread", True), (" close ", True), ("false", False),
                                         ("", False), ("master", False), ("primary", False)])
def test_omp_proc_bind_values(monkeypatch, value, bound):
    """true/close/spread bind one thread to a CPU; false, unset and primary/master (every thread on
    the caller's CPU) do not."""
    monkeypatch.setenv("OMP_PROC_BIND", value)
    assert runtime_module("threads")._BIND is bound  # read when the module is loaded


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs thread affinity and two CPUs")
def test_bound_threads_run_on_a_cpu_each(monkeypatch):
    pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(threads, "_BIND", True)
    monkeypatch.setattr(threads, "_POOL", {})
    caller = os.sched_getaffinity(0)
    try:
        seen = threads._in_parallel(lambda start, stop: os.sched_getaffinity(0), [(0, 1), (1, 2)])
        assert seen == [{cpu} for cpu in sorted(caller)[:2]]
    finally:
        os.sched_setaffinity(0, caller)
        threads._POOL["pool"].shutdown()


def _grid(span):
    dense = np.linspace(-span, span, 1_200_001, dtype=np.float32)
    tiny_to_huge = np.float32(10.0) ** np.arange(-37.0, 38.0, 0.01, dtype=np.float32)
    return np.concatenate([dense, tiny_to_huge, -tiny_to_huge])


@pytest.mark.parametrize("function,span,reference", [(erf._erf, 6.0, scipy.special.erf), (tanh._tanh, 12.0, np.tanh)])
def test_float32_special_functions_against_float64(function, span, reference):
    z = _grid(span)
    got = function(z)
    assert got.dtype == np.float32
    want = reference(z.astype(np.float64))
    error = np.abs(got.astype(np.float64) - want)
    assert error.max() <= 5e-7, (error.max(), z[error.argmax()])
    normal = np.abs(z) >= 1e-30  # relative accuracy wherever x * P / Q stays a normal float32
    assert (error[normal] / np.abs(want[normal])).max() <= 2e-6
    assert np.array_equal(np.sign(got), np.sign(z))  # odd, and exactly 0 at 0
    assert np.isnan(function(np.float32(np.nan))) and function(np.float32(np.inf)) == 1.0
    z64 = np.linspace(-5, 5, 1001)
    assert np.array_equal(function(z64), reference(z64))  # float64: SciPy/NumPy unchanged, bit for bit


def test_erf_edges_and_float16():
    got = erf._erf(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3.9, 4.0, 50.0], dtype=np.float32))
    assert np.isnan(got[0]) and got[1:3].tolist() == [1.0, -1.0]
    assert got[3] == 0.0 and not np.signbit(got[3]) and np.signbit(got[4])
    assert abs(got[5] - math.erf(3.9)) <= 5e-7 and got[7] == got[6]
    assert erf._erf(np.float32(0.5)) == pytest.approx(math.erf(0.5), abs=5e-7)  # a scalar works too
    z = np.linspace(-5, 5, 1001)
    half = erf._erf(z.astype(np.float16))
    assert half.dtype == np.float32  # float16 is computed in float32
    assert np.abs(half - scipy.special.erf(z.astype(np.float16).astype(np.float64))).max() <= 5e-7


def _scalar_loop(function):
    numba = pytest.importorskip("numba")
    return numba.vectorize(["float32(float32)"])(lambda z: function(z))


@pytest.mark.parametrize("name,span,reference", [("erf", 6.0, scipy.special.erf), ("tanh", 12.0, np.tanh)])
def test_loop_scalars_erf_tanh(name, span, reference):
    """_erf32/_tanh32 (one element, in the numba loops) as accurate as the array functions, bit for
    bit equal to them, with the edges."""
    loop = _scalar_loop(getattr(importlib.import_module(f"symgrad.runtime.jit_{name}"), f"_{name}32"))
    z = np.concatenate([np.linspace(-span, span, 600_001, dtype=np.float32),
                        np.float32(10.0) ** np.arange(-37.0, 38.0, 0.01, dtype=np.float32)])
    z = np.concatenate([z, -z])
    got = loop(z)
    assert got.dtype == np.float32 and np.abs(got - reference(z.astype(np.float64))).max() <= 5e-7
    assert np.array_equal(got, {"erf": erf._erf, "tanh": tanh._tanh}[name](z))
    with np.errstate(invalid="ignore"):
        edges = loop(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=np.float32))
    assert np.isnan(edges[0]) and edges[1:3].tolist() == [1.0, -1.0]
    assert edges[3] == 0 and not np.signbit(edges[3]) and np.signbit(edges[4])


def test_loop_scalar_exp():
    """_exp32 (vectorisable, in the loops) within an ulp of float64 exp over the whole float32
    range: subnormal results, overflow to inf at FLT_MAX's logarithm, NaN, signed zero."""
    loop = _scalar_loop(importlib.import_module("symgrad.runtime.jit_exp")._exp32)
    z = np.concatenate([np.linspace(-110, 95, 2_000_001, dtype=np.float32),
                        np.float32(10.0) ** np.arange(-37.0, 38.0, 0.01, dtype=np.float32)])
    z = np.concatenate([z, -z])
    with np.errstate(over="ignore", invalid="ignore"):
        got, want = loop(z), np.exp(z.astype(np.float64))
        edges = loop(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 88.72283, 88.7229, -103.9], np.float32))
    assert got.dtype == np.float32
    normal = (want >= np.finfo(np.float32).tiny) & (want <= np.finfo(np.float32).max)
    assert (np.abs(got[normal] - want[normal]) / want[normal]).max() <= 1.2e-7  # one ulp is 1.19e-7
    small = want < np.finfo(np.float32).tiny
    assert np.abs(got[small] - want[small]).max() <= np.finfo(np.float32).smallest_subnormal
    assert np.isinf(got[want > np.finfo(np.float32).max]).all()
    assert np.isnan(edges[0]) and edges[1] == np.inf and edges[2] == 0 and edges[3] == edges[4] == 1
    assert np.isfinite(edges[5]) and edges[6] == np.inf and edges[7] == np.finfo(np.float32).smallest_subnormal


@pytest.mark.parametrize("name", PIECES)
def test_every_piece_is_inlinable(name):
    """Each runtime module parses into code, imports and sibling needs; it documents itself, and
    uses no ``__future__`` import (which an inlined file could not place first)."""
    source = (RUNTIME / f"{name}.py").read_text()
    assert source.startswith('"""') and "from __future__" not in source
    piece = inline.piece(name)
    assert piece.code and "import numpy as xp" not in piece.code and not any(
        line.startswith(("from .", "import ")) for line in piece.code.splitlines())
    compile(piece.code, name, "exec")


@pytest.mark.parametrize("substitutes", [{}, symgrad.backends.CUPY.substitutes], ids=["numpy", "cupy"])
def test_every_backend_resolves_every_piece(substitutes):
    """Every sibling import is satisfied for both backends (the CuPy substitutes define what the
    NumPy pieces are asked for), and the pieces come out dependencies first."""
    roots = [p for p in PIECES if p not in substitutes and p not in substitutes.values()]
    pieces = inline.closure(roots, substitutes)
    order = [p.name for p in pieces]
    assert len(order) == len(set(order)) and not set(order) & set(substitutes)
    for p in pieces:
        for module, _ in p.needs:
            assert order.index(substitutes.get(module, module)) < order.index(p.name)


def test_a_substitute_lacking_a_name_is_refused(monkeypatch):
    real = inline.piece
    monkeypatch.setattr(inline, "piece", lambda name: real(name) if name != "stream" else
                        inline.Piece(name, "", (), (), frozenset({"_split", "_in_parallel"})))
    with pytest.raises(ValueError, match="stream .*lacks _CHUNK_BYTES"):
        inline.closure(["flat_shift"], {"threads": "stream"})


def test_templates_hold_no_static_helper():
    """A def in a template takes a placeholder: static code belongs in symgrad/runtime."""
    templates = RUNTIME.parents[1] / "templates"
    defs = [(path.name, line) for path in templates.rglob("*.py.j2") for line in path.read_text().splitlines()
            if line.strip().startswith("def ")]
    assert defs and all("{{" in line for _, line in defs), defs
