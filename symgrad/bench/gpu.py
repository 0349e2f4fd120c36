"""``symgrad bench --backend cupy``: emitted CuPy modules against PyTorch (cuDNN/cuBLAS) on the GPU.

Times are CUDA-event times (warm-up, then the median of many runs), TF32 off on both sides.
Achieved TFLOP/s and GB/s use the op's ideal work (each input read once, each output written
once); the roofline floor is max(work / the dtype's peak FLOP/s, bytes / measured copy bandwidth).
"""
from __future__ import annotations

import math

SUITE = [
    ("resnet 3x3", "conv2d", {"stride": 1, "padding": 1, "dilation": 1, "groups": 1},
     {"x": (64, 64, 56, 56), "w": (64, 64, 3, 3), "b": (64,)}),
    ("stride 2", "conv2d", {"stride": 2, "padding": 1, "dilation": 1, "groups": 1},
     {"x": (64, 128, 28, 28), "w": (128, 128, 3, 3), "b": (128,)}),
    ("depthwise 3x3", "conv2d", {"stride": 1, "padding": 1, "dilation": 1, "groups": 256},
     {"x": (64, 256, 56, 56), "w": (256, 1, 3, 3), "b": (256,)}),
    ("dilated d=2", "conv2d", {"stride": 1, "padding": 2, "dilation": 2, "groups": 1},
     {"x": (64, 64, 56, 56), "w": (64, 64, 3, 3), "b": (64,)}),
    ("conv1d k=5", "conv1d", {"stride": 1, "padding": 2, "dilation": 1, "groups": 1},
     {"x": (64, 256, 4096), "w": (256, 256, 5), "b": (256,)}),
    ("matmul 4096^3", "matmul", {"a_shape": "M,K", "b_shape": "K,N"}, {"a": (4096, 4096), "b": (4096, 4096)}),
    ("matmul 32x1024^3", "matmul", {"a_shape": "B,M,K", "b_shape": "B,K,N"},
     {"a": (32, 1024, 1024), "b": (32, 1024, 1024)}),
    ("gelu 2^28", "gelu", {"approximate": "none"}, {"x": (1 << 28,)}),
]
# Peak dense TFLOP/s by dtype, H100 SXM datasheet (the H200 has the same): float16 on tensor cores
# (the GEMMs accumulate in float32 there), float32 without tensor cores (no TF32), float64 on its
# tensor cores.  The roofline floor of a float16 case uses the float16 peak, not float32's.
PEAK_TFLOPS = {"float16": 989.0, "float32": 67.0, "float64": 67.0}


def roofline(work: dict, dtype: str, bandwidth: float) -> dict:
    """The floor of each pass: max(FLOPs / peak FLOP/s for the dtype, bytes / copy bandwidth)."""
    peak = PEAK_TFLOPS[dtype] * 1e12
    return {k: max(flops / peak, io / bandwidth) for k, (flops, io) in work.items()}


def _events_median(fn, repeats=30, warmup=5):
    import cupy
    for _ in range(warmup):
        fn()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    times.sort()
    return times[len(times) // 2]


def copy_bandwidth() -> float:
    """Measured device-to-device copy bandwidth, bytes read + written per second."""
    import cupy
    a = cupy.empty(1 << 28, dtype=cupy.float32)
    b = cupy.empty_like(a)
    t = _events_median(lambda: b.__setitem__(slice(None), a), repeats=10)
    return 2 * a.nbytes / t


def work(op, shapes, itemsize) -> dict:
    """Ideal FLOPs and bytes of the forward and of the whole backward."""
    size = lambda s: math.prod(s)
    if op.name.startswith("conv"):
        x, w = shapes["x"], shapes["w"]
        from ..sizes import concrete_sizes
        sizes = concrete_sizes(op, shapes)
        out = [int(s.subs(sizes)) for s in op.output.shape]
        flops = 2 * size(out) * size(w[1:])
        io = itemsize * (size(x) + size(w) + size(out))
        return {"forward": (flops, io), "backward": (2 * flops, itemsize * (2 * size(x) + 2 * size(w) + size(out)))}
    if op.name == "matmul":
        a, b = shapes["a"], shapes["b"]
        flops = 2 * size(a) * b[-1]
        io = itemsize * (size(a) + size(b) + size(a[:-1]) * b[-1])
        return {"forward": (flops, io), "backward": (2 * flops, 2 * io)}
    n = size(shapes["x"])
    return {"forward": (20 * n, 2 * n * itemsize), "backward": (40 * n, 3 * n * itemsize)}


def _gemms_to_matmul(module):
    """Leave the module's GEMMs to cupy.matmul (its cuBLAS route refused): the formulation before
    the direct cuBLAS calls, for an A/B on the same shapes.  The module's runtime pieces share its
    namespace, so setting its ``_gemm`` reroutes them all."""
    if hasattr(module, "_gemm"):
        module._gemm = lambda a, b, out, beta: False


def _on_gpu(op, module, shapes, dtype):
    """The timing's inputs on the GPU (normal draws in ``dtype``), an upstream gradient of ones,
    the same memory as torch tensors, torch's reference and its forward without autograd; TF32 off
    on both sides, cuDNN's autotuning on."""
    import cupy
    import torch
    from ..verify.reference import REFERENCES
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    arrays = [cupy.random.standard_normal(shapes[t.name], dtype=cupy.float32).astype(dtype) for t in op.inputs]
    g = cupy.ones(module.forward(*arrays).shape, dtype=dtype)
    ts = [torch.from_dlpack(a).requires_grad_(True) for a in arrays]
    ref = REFERENCES[op.name]

    def torch_forward():
        with torch.no_grad():
            ref(op, *[t.detach() for t in ts])
    return arrays, g, ts, torch.from_dlpack(g), ref, torch_forward


def bench_gpu(op_name, params, shapes, dtype="float32", repeats=30, gemm="cublas", conv_path="taps") -> dict:
    import cupy
    import torch
    from .. import derive, ops
    from ..emit import emit, load
    op = ops.build(op_name, **params)
    module = load(emit(derive(op), "cupy"))
    if gemm == "matmul":
        _gemms_to_matmul(module)
    if conv_path == "im2col" and hasattr(module, "_IM2COL"):
        module._IM2COL = True
    arrays, g, ts, tg, ref, torch_forward = _on_gpu(op, module, shapes, dtype)
    graph = ref(op, *ts)  # built once: the backward is timed alone

    def torch_backward():
        torch.autograd.grad(graph, ts, tg, retain_graph=True)

    res = {"emitted": {}, "torch": {}}
    res["emitted"]["forward"] = _events_median(lambda: module.forward(*arrays), repeats)
    res["torch"]["forward"] = _events_median(torch_forward, repeats)
    res["emitted"]["backward"] = _events_median(lambda: module.backward(g, *arrays), repeats)
    res["torch"]["backward"] = _events_median(torch_backward, repeats)
    itemsize = cupy.dtype(dtype).itemsize
    bw = copy_bandwidth()
    res["work"] = work(op, shapes, itemsize)
    res["floor"] = roofline(res["work"], dtype, bw)
    res["copy_bandwidth"] = bw
    res["route"] = f"{gemm}, {conv_path}" if op.name.startswith("conv") else gemm
    return res


def bench_gpu_program(name, params, shapes, dtype="float32", repeats=30) -> dict:
    """A program's CuPy module against torch on the GPU: forward alone, and a training step
    (vjp + pullback against a forward under autograd + the full backward)."""
    import torch
    from .. import ops
    from ..emit import load
    from ..emit.program import emit_program
    from ..reverse import derive_program
    program = ops.build(name, **params)
    module = load(emit_program(derive_program(program), "cupy"))
    arrays, g, ts, tg, ref, torch_forward = _on_gpu(program, module, shapes, dtype)
    res = {"emitted": {}, "torch": {}}
    res["emitted"]["forward"] = _events_median(lambda: module.forward(*arrays), repeats)
    res["torch"]["forward"] = _events_median(torch_forward, repeats)
    res["emitted"]["forward+backward"] = _events_median(lambda: module.vjp(*arrays)[1](g), repeats)
    res["torch"]["forward+backward"] = _events_median(lambda: torch.autograd.grad(ref(program, *ts), ts, tg), repeats)
    return res


def format_program_result(name, dtype, r) -> str:
    lines = [f"{name} ({dtype})"]
    for k in ("forward", "forward+backward"):
        e, t = r["emitted"][k], r["torch"][k]
        lines.append(f"  {k:16s} emitted {e * 1e3:8.3f} ms  torch {t * 1e3:8.3f} ms  ratio {e / t:5.2f}")
    return "\n".join(lines)


def _timed(runs, time_run, describe, progress):
    """[(case name, dtype, result)] of ``time_run(*run)`` for each run (a run starts with its suite case
    and dtype), a progress line after each, CuPy's memory pool emptied between them; and the GPU's name."""
    import cupy
    rows = []
    for k, run in enumerate(runs, start=1):
        (name, *_), dt = run[0], run[1]
        result = time_run(*run)
        progress(f"[{k}/{len(runs)}] " + describe(name, dt, result))
        rows.append((name, dt, result))
        cupy.get_default_memory_pool().free_all_blocks()
    return rows, cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()


def program_suite(dtypes=("float32",), progress=print) -> str:
    """The programs' suite (the CPU's shapes, bench/suite.py PROGRAM_SUITE) on the GPU, as a Markdown table."""
    from .suite import PROGRAM_SUITE
    runs = [(case, dt) for case in PROGRAM_SUITE for dt in dtypes]
    progress(f"bench: {len(runs)} GPU program runs")
    rows, dev = _timed(runs, lambda case, dt: bench_gpu_program(*case[1:], dt), format_program_result, progress)
    head = [f"## GPU, programs: emitted CuPy program modules vs PyTorch, {dev}", "",
            "Measured by `symgrad bench --backend cupy --suite --programs`: CUDA-event medians, TF32 off on both "
            "sides. Ratio = emitted / torch. Forward+backward: `vjp` + pullback against a forward under autograd "
            "plus `autograd.grad` of every input. The CuPy modules run each pointwise statement and contribution as "
            "one CUDA kernel and the rest as CuPy's array functions (no fusion across statements yet).", "",
            "| case | dtype | fwd ms (torch) | fwd ratio | fwd+bwd ms (torch) | fwd+bwd ratio |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name, dt, r in rows:
        e, t = r["emitted"], r["torch"]
        head.append(f"| {name} | {dt} | {e['forward'] * 1e3:.3f} ({t['forward'] * 1e3:.3f}) | "
                    f"{e['forward'] / t['forward']:.2f} | {e['forward+backward'] * 1e3:.3f} "
                    f"({t['forward+backward'] * 1e3:.3f}) | {e['forward+backward'] / t['forward+backward']:.2f} |")
    return "\n".join(head) + "\n"


def format_result(name, dtype, r) -> str:
    lines = [f"{name} ({dtype}; GEMMs by {r['route']}; copy bandwidth {r['copy_bandwidth'] / 1e12:.2f} TB/s)"]
    for k in ("forward", "backward"):
        e, t = r["emitted"][k], r["torch"][k]
        flops, io = r["work"][k]
        lines.append(f"  {k:9s} emitted {e * 1e3:8.3f} ms  torch {t * 1e3:8.3f} ms  ratio {e / t:5.2f}  "
                     f"{flops / e / 1e12:6.1f} TFLOP/s  {io / e / 1e9:7.0f} GB/s  floor {r['floor'][k] * 1e3:7.3f} ms")
    return "\n".join(lines)


def suite(dtypes=("float32",), gemms=("cublas",), conv_paths=("taps",), progress=print) -> str:
    """Every case of SUITE in each dtype and route, as a Markdown table; ``progress`` gets a line per run."""
    runs = [(case, dt, gemm, path) for case in SUITE for dt in dtypes for gemm in gemms
            for path in (conv_paths if case[1].startswith("conv") else conv_paths[:1])]
    progress(f"bench: {len(runs)} GPU runs, about {len(runs) // 2 + 1} minutes")
    rows, dev = _timed(runs, lambda case, dt, gemm, path: bench_gpu(*case[1:], dt, gemm=gemm, conv_path=path),
                       format_result, progress)
    head = [f"## GPU: emitted CuPy modules vs PyTorch (cuDNN / cuBLAS), {dev}", "",
            "CUDA-event medians, TF32 off on both sides. Ratio = emitted / torch. Torch's backward is one "
            "`autograd.grad` over all inputs on a graph built once. Floor = roofline (peak TFLOP/s of the dtype, H100 SXM "
            "datasheet: fp16 989, fp32 67 without TF32; measured copy bandwidth).", "",
            "| case | dtype | route | fwd ms (torch) | fwd ratio | bwd ms (torch) | bwd ratio | bwd TFLOP/s | bwd GB/s "
            "| bwd floor ms |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, dt, r in rows:
        e, t = r["emitted"], r["torch"]
        f, b = r["work"]["backward"]
        head.append(f"| {name} | {dt} | {r['route']} | {e['forward'] * 1e3:.3f} ({t['forward'] * 1e3:.3f}) | "
                    f"{e['forward'] / t['forward']:.2f} | {e['backward'] * 1e3:.3f} ({t['backward'] * 1e3:.3f}) | "
                    f"{e['backward'] / t['backward']:.2f} | {f / e['backward'] / 1e12:.1f} | "
                    f"{b / e['backward'] / 1e9:.0f} | {r['floor']['backward'] * 1e3:.3f} |")
    return "\n".join(head) + "\n"
