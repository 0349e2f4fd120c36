"""The CPU fast paths of the emitted modules against PyTorch, on the code paths the sweep's small
shapes do not reach by themselves (settings set in the emitted module, as a user would):
- batch chunks in the per-tap loop and channel chunks in the per-output-position loop (forced by
  shrinking the module's cache budget to one byte, so every chunk is a single batch item),
- no chunks at all (the CuPy modules' setting: the whole batch at once, and channels merged into
  one long inner dimension for weight gradients), with the CuPy modules' GEMM helpers making
  every GEMM as a cuBLAS call, cuBLAS emulated on host memory (tests/cublas_emulator.py),
- chunks of two with a ragged last one (sweep configurations with the batch made 5), so the
  per-chunk padding buffer is reused and then used in part (its zero borders must survive),
- batch chunks and weight-gradient channels dealt out to three worker threads, whatever this
  machine's BLAS has (and how the batch is split into their runs),
- blockwise elementwise evaluation over several blocks with a ragged last block, on two threads,
- float32 inputs on the suite's layer types, within 1e-5 of the float64 reference,
- strided windows by stride phases, their input gradients by output phases and their weight
  gradients by phases of the kernel dilation, on cases chosen to reach their corners (phases no
  tap falls on, dilations sharing a factor with the stride, groups, 1-3 spatial axes), under the
  default settings, one-item chunks on three threads, and the GPU's whole batch.
The runtime's convolution on lax-level calls, the worker pool and OMP_PROC_BIND's binding are
tested on the runtime modules themselves: tests/test_runtime.py.
"""

import numpy as np
import pytest

import symgrad
from symgrad.emit import emit

from conftest import needs_torch, sliced
from support import CONFIGS, GPU_CUBLAS, GPU_SETTING, PHASE_SETTINGS, module_for, run_config

CHUNKED = [c for c in CONFIGS if c[0] in ("conv1d", "conv2d", "conv3d") and c[2]["x"][0] >= 2][::4]
ELEMENTWISE = [c for c in CONFIGS if c[0] == "gelu"]


def _module(name, params):
    return module_for(name, tuple(sorted(params.items())))


@needs_torch
@pytest.mark.parametrize("name,params,shapes", sliced(CHUNKED, 2, ids=[f"{c[0]}-{k}" for k, c in enumerate(CHUNKED)]))
def test_batch_and_channel_chunks(monkeypatch, name, params, shapes):
    monkeypatch.setattr(_module(name, params), "_CHUNK_BYTES", 1)
    errors = run_config(name, params, shapes)
    assert max(errors.values()) <= 1e-10, errors


@needs_torch
@pytest.mark.parametrize("name,params,shapes", CHUNKED, ids=[f"{c[0]}-{k}" for k, c in enumerate(CHUNKED)])
def test_whole_batch_paths_as_on_the_gpu(monkeypatch, name, params, shapes):
    """The CuPy modules' formulation run through NumPy: no cache budget (whole-batch chunks, the
    merged long-K GEMM per output position), every GEMM made as the cuBLAS call the CuPy module
    makes (strided operands in place, beta = 1 accumulation), cuBLAS emulated."""
    module = _module(name, params)
    for key, value in GPU_SETTING.items():  # (a NumPy module of plain convolutions has no im2col: no _matmul)
        monkeypatch.setattr(module, key, value, raising=key != "_matmul")
    gemms = len(GPU_CUBLAS.calls)
    errors = run_config(name, params, shapes)
    assert max(errors.values()) <= 1e-10, errors
    assert len(GPU_CUBLAS.calls) > gemms and not GPU_CUBLAS.refused


RAGGED = [(name, params, dict(shapes, x=(5,) + tuple(shapes["x"][1:]))) for name, params, shapes in CHUNKED]


@needs_torch
@pytest.mark.parametrize("name,params,shapes", RAGGED, ids=[f"{c[0]}-{k}" for k, c in enumerate(RAGGED)])
def test_ragged_batch_chunks(monkeypatch, name, params, shapes):
    monkeypatch.setattr(_module(name, params), "_batch_chunk", lambda per_item_bytes: 2)
    errors = run_config(name, params, shapes)
    assert max(errors.values()) <= 1e-10, errors


def _on_three_threads(monkeypatch, name, params, shapes):
    """Run a configuration with three worker threads (whatever this machine's BLAS has) and batch
    chunks of one item; return the runs each split dealt out."""
    module = _module(name, params)
    monkeypatch.setattr(module, "_CHUNK_BYTES", 1)
    monkeypatch.setattr(module, "_workers", lambda: 3)
    runs, split = [], module._split
    def recorded(n, step):  # the splits dealt out to threads
        runs.append(split(n, step)[1])
        return split(n, step)

    monkeypatch.setattr(module, "_split", recorded)
    errors = run_config(name, params, shapes)
    assert max(errors.values()) <= 1e-10, errors
    assert all(len(parts) == min(3, parts[-1][1]) for parts in runs)
    return runs


@needs_torch
@pytest.mark.parametrize("name,params,shapes", RAGGED, ids=[f"{c[0]}-{k}" for k, c in enumerate(RAGGED)])
def test_threads_share_chunks_and_channels(monkeypatch, name, params, shapes):
    """Batch chunks dealt out to the threads, and the contracted channels of weight gradients
    summed from partial results (tiny layers may take im2col only, with no split)."""
    _on_three_threads(monkeypatch, name, params, shapes)


@needs_torch
def test_threads_on_a_resnet_layer(monkeypatch):
    """The forward, dx (per tap) and dw (per output position, over the 5 images) each split 1 + 2 + 2."""
    name, params, shapes = SUITE_LIKE[0]
    runs = _on_three_threads(monkeypatch, name, params, dict(shapes, x=(5, 8, 12, 12)))
    assert runs == [[(0, 1), (1, 3), (3, 5)]] * 3


@needs_torch
@pytest.mark.parametrize("name,params,shapes", ELEMENTWISE, ids=[f"gelu-{k}" for k in range(len(ELEMENTWISE))])
@pytest.mark.parametrize("threads", [1, 2])
def test_blockwise_elementwise(monkeypatch, name, params, shapes, threads):
    module = _module(name, params)
    monkeypatch.setattr(module, "_BLOCK", 7)
    monkeypatch.setattr(module, "_THREADS", threads)
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-5)):
        errors = run_config(name, params, shapes, dtype=dtype)
        assert max(errors.values()) <= tol, (dtype, errors)


PHASES = [  # (op, params, shapes): the forward's window stride > 1
    ("conv2d", {"stride": "2,3", "dilation": "2,1", "padding": "1:0,2:1", "groups": 2, "bias": True},
     {"x": (3, 4, 11, 13), "w": (6, 2, 3, 4), "b": (6,)}),
    ("conv1d", {"stride": "4", "dilation": "1", "padding": "1", "groups": 1, "bias": False},
     {"x": (2, 3, 17), "w": (5, 3, 2)}),  # kernel shorter than the stride: two phases get no tap
    ("conv1d", {"stride": "2", "dilation": "2", "padding": "3", "groups": 1, "bias": True},
     {"x": (2, 2, 15), "w": (3, 2, 4), "b": (3,)}),  # every tap on one phase
    ("conv3d", {"stride": "2,1,3", "dilation": "1,3,2", "padding": "0", "groups": 3, "bias": False},
     {"x": (2, 3, 7, 9, 10), "w": (3, 1, 3, 2, 2)}),  # depthwise, 3-d
]


@needs_torch
@pytest.mark.parametrize("setting", PHASE_SETTINGS)
@pytest.mark.parametrize("name,params,shapes", PHASES, ids=[f"{c[0]}-{k}" for k, c in enumerate(PHASES)])
def test_strided_windows_by_phases(monkeypatch, name, params, shapes, setting):
    """The forward reads its input by stride phase (taps on one shared grid), dx is computed by
    output phase, and dw reads the input by phases of the kernel dilation (the forward's stride)."""
    module = _module(name, params)
    for key, value in PHASE_SETTINGS[setting].items():
        monkeypatch.setattr(module, key, value)
    gemms = len(GPU_CUBLAS.calls)
    calls = []
    taps, outputs, transposed = module._flat_shift_taps, module._flat_shift_outputs, module._output_phases
    windows = module._im2col
    monkeypatch.setattr(module, "_flat_shift_taps", lambda *args, **kw: calls.append(("taps", args[3])) or taps(*args, **kw))
    monkeypatch.setattr(module, "_im2col", lambda *args: calls.append(("taps", args[2])) or windows(*args))
    monkeypatch.setattr(module, "_flat_shift_outputs", lambda *args: calls.append(("outputs", args[4])) or outputs(*args))
    monkeypatch.setattr(module, "_output_phases", lambda *args: calls.append(("dx", args[3])) or transposed(*args))
    errors = run_config(name, params, shapes)
    assert max(errors.values()) <= 1e-10, errors
    stride = tuple(int(s) for s in params["stride"].split(","))
    assert ("taps", stride) in calls and ("dx", stride) in calls
    assert ("outputs", stride) in calls or name == "conv1d"  # conv1d's short inputs give dw more outputs than taps
    assert (len(GPU_CUBLAS.calls) > gemms) == ("_accumulate" in PHASE_SETTINGS[setting]) and not GPU_CUBLAS.refused


def test_headers_name_the_phase_paths():
    """The module header says how each convolution runs: a strided layer's forward on its stride
    phases, dx by output phase, dw on the phases of the kernel dilation; a unit-stride layer's
    header mentions no phases."""
    def computed(params):
        source = emit(symgrad.derive(symgrad.ops.build("conv2d", **params)), jvp=False)
        header = source.split('"""')[1].splitlines()
        forward = [line for line in header if "recognised form: conv_general_dilated; computed by:" in line]
        return forward + [line for line in header if line.strip().startswith("computed by:")]
    forward, dx, dw, _ = computed({"stride": 2, "padding": 1, "dilation": 1, "groups": 1})
    assert "window-stride phases" in forward and "by output phase" in dx and "phases of the kernel dilation" in dw
    assert not any("phase" in line for line in computed({"stride": 1, "padding": 1, "dilation": 1, "groups": 1}))


def test_chunk_settings_are_what_the_paths_read():
    conv = _module(*CHUNKED[0][:2])
    gelu = _module(*ELEMENTWISE[0][:2])
    assert conv._CHUNK_BYTES == 1 << 20 and conv._batch_chunk(1 << 19) == 2 and conv._batch_chunk(1 << 30) == 1
    assert gelu._BLOCK > 1 and gelu._THREADS >= 1


SUITE_LIKE = [  # the benchmark layers, scaled down
    ("conv2d", {"stride": 1, "padding": 1, "dilation": 1, "groups": 1}, {"x": (2, 8, 12, 12), "w": (8, 8, 3, 3), "b": (8,)}),
    ("conv2d", {"stride": 2, "padding": 1, "dilation": 1, "groups": 1}, {"x": (2, 8, 12, 12), "w": (8, 8, 3, 3), "b": (8,)}),
    ("conv2d", {"stride": 1, "padding": 1, "dilation": 1, "groups": 8}, {"x": (2, 8, 12, 12), "w": (8, 1, 3, 3), "b": (8,)}),
    ("conv2d", {"stride": 1, "padding": 2, "dilation": 2, "groups": 1}, {"x": (2, 8, 12, 12), "w": (8, 8, 3, 3), "b": (8,)}),
    ("conv1d", {"stride": 1, "padding": 2, "dilation": 1, "groups": 1}, {"x": (2, 16, 40), "w": (16, 16, 5), "b": (16,)}),
    ("conv1d", {"stride": 1, "padding": "causal", "dilation": 1, "groups": 1}, {"x": (2, 16, 40), "w": (16, 16, 5), "b": (16,)}),
    ("matmul", {"a_shape": "B,M,K", "b_shape": "B,K,N"}, {"a": (3, 16, 8), "b": (3, 8, 12)}),
]


@needs_torch
@pytest.mark.parametrize("name,params,shapes", SUITE_LIKE, ids=[f"{c[0]}-{k}" for k, c in enumerate(SUITE_LIKE)])
def test_float32_within_1e5_of_float64(name, params, shapes):
    errors = run_config(name, params, shapes, dtype=np.float32)
    assert max(errors.values()) <= 1e-5, errors


def test_plain_convolutions_carry_no_transposed_path():
    """A NumPy module whose convolutions have no lhs dilation and no batch groups calls plain_conv
    and inlines neither the output phases nor im2col; a strided layer's (dx is transposed), a grouped
    layer's (dw has batch groups) and every CuPy module call the general entry."""
    def source(params, backend="numpy"):
        return emit(symgrad.derive(symgrad.ops.build("conv2d", **params)), backend, jvp=False)
    plain = source({"stride": 1, "padding": 1, "dilation": 2, "groups": 1})
    assert "def plain_conv(" in plain and "def conv_general_dilated(" not in plain
    assert "def _output_phases" not in plain and "def _im2col" not in plain
    for params, backend in (({"stride": 2, "padding": 1, "dilation": 1, "groups": 1}, "numpy"),
                            ({"stride": 1, "padding": 1, "dilation": 1, "groups": 2}, "numpy"),
                            ({"stride": 1, "padding": 1, "dilation": 1, "groups": 1}, "cupy")):
        general = source(params, backend)
        assert "def conv_general_dilated(" in general and "def _output_phases" in general and "def _im2col" in general
