"""The benchmark's other side is what a PyTorch user writes: torch's own call with every parameter
worked out before the timing, so the timed callable runs torch and nothing else (no SymPy, no
symgrad); its values are torch's op's."""
import sys

import numpy as np
import pytest

from conftest import needs_torch
from symgrad import ops
from symgrad.bench.suite import PROGRAM_SUITE, SUITE
from symgrad.bench.torch_side import torch_call
from symgrad.verify.reference import torch_reference

def _small(name, params, shapes):
    """The case at a size a unit test affords: every axis cut to at most 9 (the suite's parameters kept)."""
    small = {k: tuple(min(d, 9) for d in v) for k, v in shapes.items()}
    if params.get("groups", 1) > 1:  # depthwise: the channels as many as the groups
        small = {"x": (2, 4, 9, 8), "w": (4, 1, 3, 3), "b": (4,)}
        params = dict(params, groups=4)
    if name in ("conv1d", "conv_bias_gelu") or "conv" in name:
        c = small["x"][1]
        small["w"] = (small["w"][0], c // params.get("groups", 1), *small["w"][2:])
        small["b"] = (small["w"][0],)
    return params, small


def _cases():
    return [(label, op, params, shapes) for label, op, params, shapes in SUITE + PROGRAM_SUITE]


@needs_torch
@pytest.mark.parametrize("label,name,params,shapes", _cases(), ids=[c[0] for c in _cases()])
def test_the_timed_torch_call_runs_torch_alone_and_gives_torchs_values(label, name, params, shapes):
    import torch
    params, shapes = _small(name, params, shapes)
    op = ops.build(name, **params)
    call, note = torch_call(op, shapes)
    assert call is not None and note
    rng = np.random.default_rng(0)
    arrays = {t.name: rng.standard_normal(shapes[t.name]) for t in op.inputs}
    tensors = [torch.tensor(arrays[t.name]) for t in op.inputs]
    seen = set()

    def profile(frame, event, arg):
        if event == "call":
            seen.add(frame.f_globals.get("__name__", ""))
    sys.setprofile(profile)
    try:
        out = call(*tensors)
    finally:
        sys.setprofile(None)
    # (the closures of torch_side itself hold only torch calls: F.pad before a conv, the norms' arguments)
    assert not {m for m in seen if m.split(".")[0] in ("sympy", "symgrad") and m != "symgrad.bench.torch_side"}, \
        sorted(seen)
    want = torch_reference(op, arrays, np.ones(tuple(out.shape)))
    if want is not None:
        np.testing.assert_allclose(out.numpy(), want[0], rtol=1e-10, atol=1e-12)


@needs_torch
def test_asymmetric_padding_is_padded_and_said():
    op = ops.conv(1, stride=1, padding=[(1, 2)], dilation=1)
    call, note = torch_call(op, {"x": (1, 2, 7), "w": (3, 2, 3), "b": (3,)})
    assert note.startswith("F.pad + F.conv1d")
    op = ops.conv(2, stride=2, padding=1, dilation=1)
    assert torch_call(op, {"x": (1, 2, 7, 7), "w": (3, 2, 3, 3), "b": (3,)})[1] == "F.conv2d"


def test_the_programs_suite_gives_torch_compile_and_the_size_sweep(monkeypatch):
    """``bench --suite --programs``: each program's fwd+bwd against torch eager and torch.compile, then the
    size sweep (rows 64 ... 65,536 x width 64 ... 4,096, float32 and float64, each thread count), every
    cell filled (the timing children stood in for)."""
    from support import stand_in_bench
    from symgrad.bench import cpu, sweep
    calls = []
    monkeypatch.setattr(cpu, "bench", lambda *a, **k: calls.append((a, k)) or stand_in_bench(*a, **k))
    text = sweep.programs_suite(threads=(1, 2), repeats=3, progress=lambda line: None)
    head, table = text.split("## Size sweep", 1)
    assert "fwd+bwd / torch.compile's" in head and "| 1.20 (1.10-1.30) |" in head
    rows = [line for line in table.splitlines() if line.startswith("| ") and "rows x width" not in line and "---" not in line]
    assert len(rows) == len(sweep.SWEEP_PROGRAMS) * len(sweep.SWEEP_SIZES)
    assert all(line.count("1.00 (0.90-1.10)") == len(sweep.SWEEP_DTYPES) * 2 for line in rows)
    swept = [k for a, k in calls if k.get("memory") is False]
    assert {k["dtype"] for k in swept} == set(sweep.SWEEP_DTYPES) and all(k["compile"] is False for k in swept)
    assert {(64, 64), (65536, 64), (1024, 4096)} <= {a[2]["x"] for a, k in calls if k.get("memory") is False}


def test_each_timed_call_follows_an_untimed_call_of_its_own_side(monkeypatch):
    """A turn is untimed calls of one side, then its timed call: never straight after the other side's
    call (whose freed memory slowed torch's short calls up to 6x), warm-up turns first."""
    from symgrad.bench import cpu
    monkeypatch.setattr(cpu, "SETTLE", 0.0)  # (one untimed call per turn)
    log = []
    times = cpu._interleaved_times({"a": lambda: log.append("a"), "b": lambda: log.append("b")}, repeats=3, warmup=2)
    assert log == ["a", "b"] * 2 + ["a", "a", "b", "b"] * 3
    assert [len(v) for v in times.values()] == [3, 3]


def test_the_heap_setting_reaches_the_children_and_is_named(monkeypatch):
    """``--heap kept`` hands the children glibc's variables for a heap that keeps freed memory (torch's
    mkldnn convolution faults in 25 MiB of fresh pages per fwd+bwd under the default heap); ``--heap
    glibc`` removes every heap variable; the reports name what was set."""
    import os
    from symgrad.bench import cpu
    from symgrad.cli.bench import _set_heap
    monkeypatch.setattr(os, "environ", dict(os.environ, MALLOC_ARENA_MAX="2"))
    assert cpu.heap_text() == "heap set (MALLOC_ARENA_MAX=2)"
    _set_heap("kept")
    env = cpu._env(2)
    assert {k: env[k] for k in cpu.KEPT_HEAP} == cpu.KEPT_HEAP and "MALLOC_ARENA_MAX" not in env
    assert cpu.heap_text().startswith("heap kept (MALLOC_MMAP_THRESHOLD_=33554432")
    _set_heap(None)  # (default: as the environment sets it)
    assert cpu.heap_text().startswith("heap kept")
    _set_heap("glibc")
    assert not [k for k in cpu._env(1) if cpu.heap_variable(k)] and cpu.heap_text() == "glibc's default heap"
