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
- the numba loops' double-precision scalar ``erf``, ``erfc``, ``tanh``, ``exp`` and the arrays'
  ``erfc`` against 50-digit values;
- how the emitter inlines them: every piece parses into code, imports and needs; each backend's
  own pieces (its folder) define every name the shared pieces are asked for; templates hold no
  static helper.
(The CuPy GEMM helper alone: tests/test_cupy_gemm.py.)
"""
import importlib
import os
from pathlib import Path

import mpmath
import numpy as np
import pytest

import symgrad.runtime
from symgrad.emit import inline
from symgrad.templating import template_dir
from symgrad.runtime import conv, dot_general, erfc, threads
from cublas_emulator import runtime_module
from support import GPU_CUBLAS, PHASE_SETTINGS

RUNTIME = Path(symgrad.runtime.__file__).parent
PIECES = sorted(p.relative_to(RUNTIME).with_suffix("").as_posix() for p in RUNTIME.rglob("*.py") if p.stem != "__init__")
#: the backends with pieces of their own, each a folder of symgrad/runtime
BACKENDS = ("cupy", "torch", "jax")
#: the frameworks a runtime piece may import; a piece of one that is not installed is left out
OPTIONAL = ("cupy", "jax", "torch")


def _importable(name: str):
    """The runtime module ``name``, or None where it needs an optional framework that is missing."""
    try:
        return importlib.import_module(f"symgrad.runtime.{name.replace('/', '.')}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in OPTIONAL:
            return None
        raise


#: the modules the NumPy modules inline, and those of the frameworks that are installed
MODULES = [m for m in (_importable(name) for name in PIECES if not name.startswith("cupy/")) if m is not None]


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


def test_array_erfc_keeps_the_far_tail():
    """The NumPy modules' erfc (the stable exact GELU computes with it) in float64 against 50-digit
    values: a few ulps out to erfc(26.5) = 1e-307, where SciPy's exp(-z*z) loses hundreds; 2 to the
    left, NaN kept, other dtypes SciPy's."""
    z = np.concatenate([np.linspace(-6, 26.5, 6001), np.geomspace(1e-300, 0.5, 200)])
    mpmath.mp.dps = 40
    want = np.array([float(mpmath.erfc(v)) for v in z])
    got = erfc._erfc(z)
    assert _relative(got, want).max() <= 8 * np.finfo(np.float64).eps
    edges = erfc._erfc(np.array([np.nan, np.inf, -np.inf, 0.0, 40.0]))
    assert np.isnan(edges[0]) and edges[1:].tolist() == [0.0, 2.0, 1.0, 0.0]
    assert erfc._erfc(np.float32(1.0)).dtype == np.float32


def _scalar_loop(function, given_exp=False):
    """``function`` as a compiled ufunc; ``given_exp``: erf and erfc, given exp(-z²) as a loop gives it."""
    numba = pytest.importorskip("numba")
    from symgrad.runtime.numba.exp import _exp64
    if given_exp:
        return numba.vectorize(["float64(float64)"])(lambda z: function(z, _exp64(-(z * z))))
    return numba.vectorize(["float64(float64)"])(lambda z: function(z))


def _relative(got, want):
    tiny = np.finfo(np.float64).tiny
    return np.abs(got - want) / np.maximum(np.abs(want), tiny)


@pytest.mark.parametrize("name,reference,bound", [
    ("_erf64", lambda z: [mpmath.erf(v) for v in z], 5e-16),
    ("_erfc64", lambda z: [mpmath.erfc(v) for v in z], 4e-10),   # past 8: Cephes' P/Q beyond its fit
    ("_tanh64", lambda z: [mpmath.tanh(v) for v in z], 5e-16),
    ("_exp64", lambda z: [mpmath.exp(v) for v in z], 3e-16),
])
def test_loop_scalars_in_double_precision(name, reference, bound):
    """The loops' double-precision erf, erfc, tanh and exp (vectorisable: no libm calls) against
    50-digit values over their whole range, with the edges: erfc keeps its relative accuracy in the
    far tail, exp reaches subnormal results and overflows to inf, NaN stays NaN."""
    module = {"_erf64": "erf", "_erfc64": "erf", "_tanh64": "tanh", "_exp64": "exp"}[name]
    loop = _scalar_loop(getattr(importlib.import_module(f"symgrad.runtime.numba.{module}"), name), module == "erf")
    span = {"_exp64": (-740, 709), "_erfc64": (-6, 26)}.get(name, (-20, 20))
    z = np.concatenate([np.linspace(*span, 4001), np.geomspace(1e-300, 1, 200), -np.geomspace(1e-300, 1, 200)])
    z = z[(z >= span[0]) & (z <= span[1])]
    mpmath.mp.dps = 40
    want = np.array([float(v) for v in reference(z)])
    got = loop(z)
    normal = np.abs(want) >= np.finfo(np.float64).tiny
    assert _relative(got[normal], want[normal]).max() <= bound
    with np.errstate(over="ignore", invalid="ignore"):
        edges = loop(np.array([np.nan, np.inf, -np.inf, 0.0]))
    assert np.isnan(edges[0])
    assert edges[1:].tolist() == {"_erf64": [1.0, -1.0, 0.0], "_erfc64": [0.0, 2.0, 1.0],
                                  "_tanh64": [1.0, -1.0, 0.0], "_exp64": [np.inf, 0.0, 1.0]}[name]


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


@pytest.mark.parametrize("backend", ("numpy",) + BACKENDS)
def test_every_backend_resolves_every_piece(backend):
    """Every sibling import is satisfied for each backend (a backend's own piece defines what the
    shared piece of its name is asked for), and the pieces come out dependencies first, no other
    backend's among them.  The roots: for NumPy and CuPy every piece but the other backends', for a
    framework target its own pieces and the shared ones they stand in for."""
    others = tuple(f"{b}/" for b in BACKENDS if b != backend)
    roots = [p for p in PIECES if not p.startswith(others)]
    if backend in ("torch", "jax"):
        roots = [p for p in roots if p.startswith(f"{backend}/") or f"{backend}/{p}" in PIECES]
    pieces = inline.closure(roots, backend)
    order = [p.name for p in pieces]
    assert len(order) == len(set(order)) and not any(name.startswith(others) for name in order)
    for p in pieces:
        for module, _ in p.needs:
            assert order.index(inline.resolve(module, backend)) < order.index(p.name)
    assert backend == "numpy" or any(name.startswith(f"{backend}/") for name in order)


def test_a_backend_piece_lacking_a_name_is_refused(monkeypatch):
    real = inline.piece
    monkeypatch.setattr(inline, "piece", lambda name: real(name) if name != "cupy/threads" else
                        inline.Piece(name, "", (), (), frozenset({"_split", "_in_parallel"})))
    with pytest.raises(ValueError, match="cupy/threads .*lacks _CHUNK_BYTES"):
        inline.closure(["flat_shift"], "cupy")


def test_templates_hold_no_static_helper():
    """A function in a template takes a placeholder: static code belongs in symgrad/runtime.  The
    methods of the framework targets' classes (autograd.Function, nn.Module) have the names and
    signatures torch requires; their bodies are one or two lines that delegate (a nested function whose
    signature takes placeholders, a loop factory's loop, is per-op code)."""
    templates = template_dir()
    defs, methods = [], []
    for path in templates.rglob("*.py.j2"):
        lines = path.read_text().splitlines()
        for k, line in enumerate(lines):
            if line.startswith("def "):
                defs.append((path.name, line))
            elif line.startswith("    def "):
                body = []
                for b in lines[k + 1:]:
                    if not (b.startswith("        ") or b.startswith("{%")):
                        break
                    body += [b] if b.startswith("        ") else []
                methods.append((path.name, line, len(body)))
    assert defs and all("{{" in line for _, line in defs), defs
    assert methods and all(n <= 2 or "__init__" in line or "{{" in line for _, line, n in methods), methods


def test_batched_matmul_dealt_to_worker_threads():
    """gemm_numpy._matmul splits a batch of GEMMs across the worker threads (BLAS on one thread in
    each): the same values as numpy.matmul, for float32 and mixed dtypes, with one or two threads."""
    pytest.importorskip("threadpoolctl")
    import threadpoolctl
    from symgrad.runtime.gemm import _matmul
    rng = np.random.default_rng(0)
    for a, b in ((rng.standard_normal((5, 7, 3)).astype(np.float32), rng.standard_normal((5, 3, 4)).astype(np.float32)),
                 (rng.standard_normal((3, 2, 6)), rng.standard_normal((3, 6, 2)).astype(np.float32)),
                 (rng.standard_normal((1, 4, 4)), rng.standard_normal((1, 4, 4))),
                 (rng.standard_normal((4, 3)), rng.standard_normal((3, 2)))):
        for count in (1, 2):
            with threadpoolctl.threadpool_limits(count, user_api="blas"):
                got = _matmul(a, b)
            want = np.matmul(a, b)
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-6 if got.dtype == np.float32 else 1e-14)
