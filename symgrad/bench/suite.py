"""``symgrad bench``'s reports: one run's lines (:func:`format_result`) and the suites, their standard
cases timed one by one (:func:`cpu.bench`, each in child processes) and written as BENCHMARKS.md's
tables (:func:`suite`; the programs' size sweep is :mod:`sweep`)."""
from __future__ import annotations

import os

from . import cpu
from .cpu import GAUGE, SETTLE

#: the standard cases (``symgrad bench --suite``): (label, op, parameters, input shapes)
SUITE = [
    ("resnet 3x3", "conv2d", {"stride": 1, "padding": 1, "dilation": 1, "groups": 1},
     {"x": (8, 64, 56, 56), "w": (64, 64, 3, 3), "b": (64,)}),
    ("stride 2", "conv2d", {"stride": 2, "padding": 1, "dilation": 1, "groups": 1},
     {"x": (8, 128, 28, 28), "w": (128, 128, 3, 3), "b": (128,)}),
    ("depthwise 3x3", "conv2d", {"stride": 1, "padding": 1, "dilation": 1, "groups": 64},
     {"x": (8, 64, 56, 56), "w": (64, 1, 3, 3), "b": (64,)}),
    ("dilated d=2", "conv2d", {"stride": 1, "padding": 2, "dilation": 2, "groups": 1},
     {"x": (8, 64, 56, 56), "w": (64, 64, 3, 3), "b": (64,)}),
    ("conv1d k=5", "conv1d", {"stride": 1, "padding": 2, "dilation": 1, "groups": 1},
     {"x": (16, 256, 1024), "w": (256, 256, 5), "b": (256,)}),
    ("causal conv1d k=5", "conv1d", {"stride": 1, "padding": "causal", "dilation": 1, "groups": 1},
     {"x": (16, 256, 1024), "w": (256, 256, 5), "b": (256,)}),
    ("matmul 16x512^3", "matmul", {"a_shape": "B,M,K", "b_shape": "B,K,N"},
     {"a": (16, 512, 512), "b": (16, 512, 512)}),
    ("gelu 2^23", "gelu", {"approximate": "none"}, {"x": (1 << 23,)}),
]
#: programs (``symgrad bench --suite --programs``): the shapes issue 18 names
PROGRAM_SUITE = [
    ("layer_norm 8192x1024", "layer_norm", {}, {"x": (8192, 1024), "weight": (1024,), "bias": (1024,)}),
    ("softmax 8192x1024", "softmax", {}, {"x": (8192, 1024)}),
    ("conv->bias->GELU resnet 3x3", "conv_bias_gelu", {"stride": 1, "padding": 1, "dilation": 1, "groups": 1},
     {"x": (8, 64, 56, 56), "w": (64, 64, 3, 3), "b": (64,)}),
    ("attention B*H=64 T=512 D=64", "attention", {}, {"q": (64, 512, 64), "k": (64, 512, 64), "v": (64, 512, 64)}),
]


def _gauge_text(result) -> str:
    """'numpy 166/168, torch 140/139': GFLOP/s of the gauge SGEMM before/after the timings."""
    return ", ".join(f"{lib} {'/'.join(f'{g[lib]:.0f}' for g in result['gauge'])}" for lib in ("numpy", "torch"))


def format_result(name, threads, result, bind=False) -> str:
    keys = [k for k in result["emitted"] if k not in ("peak_mib", "first_s", "first_cached_s")]
    dtype = "" if result.get("dtype", "float32") == "float32" else f", {result['dtype']}"
    lines = [f"{name} ({threads} thread{'s' if threads > 1 else ''}{', bound' if bind else ''}{dtype}); torch's side: "
             f"{result.get('torch_call', 'torch')}"]
    lines.append(f"  {'gauge SGEMM':18s} {'x'.join(map(str, GAUGE))} (M, K, N) GFLOP/s before/after: {_gauge_text(result)}")
    lines.append(f"  {'heap':18s} {result['heap']}")
    for k in keys:
        e, t = result["emitted"][k], result["torch"][k]
        low, mid, high = result["ratio"][k]
        lines.append(f"  {k:18s} emitted {e * 1e3:9.2f} ms   torch {t * 1e3:9.2f} ms   ratio {mid:5.2f} "
                     f"(quartiles {low:.2f}-{high:.2f})")
        if k in result.get("ratio_compiled", {}):
            low, mid, high = result["ratio_compiled"][k]
            lines.append(f"  {'':18s} {'':26s}torch.compile {result['compiled'][k] * 1e3:9.2f} ms   ratio {mid:5.2f} "
                         f"(quartiles {low:.2f}-{high:.2f})")
    if result.get("compile_error"):
        lines.append(f"  torch.compile: not timed ({result['compile_error']})")
    if "peak_mib" not in result["emitted"]:  # (memory=False)
        return "\n".join(lines)
    em, tm = result["emitted"]["peak_mib"], result["torch"]["peak_mib"]
    lines.append(f"  {'peak memory':18s} emitted {em:9.1f} MiB  torch {tm:9.1f} MiB  ratio {em / max(tm, 1e-9):5.2f}")
    lines.append(f"  {'first call':18s} emitted {result['emitted']['first_s']:.2f} s cold, "
                 f"{result['emitted']['first_cached_s']:.2f} s cached   torch {result['torch']['first_s']:.2f} s "
                 "(forward + backward, a fresh process)")
    return "\n".join(lines)


#: minutes the suite took on the 2-core reference VM at 9 repeats, per (case, thread setting)
MINUTES_PER_RUN = 1.0


def suite(threads=(1, 2), repeats=9, progress=print, target="module", programs: bool = False) -> str:
    """Every case of SUITE (PROGRAM_SUITE with ``programs``) at each thread count (2+ threads also
    bound), as the Markdown table of BENCHMARKS.md; ``progress`` gets a line before the runs and after
    each one.  ``target`` "torch" times the emitted torch.autograd.Functions instead of the NumPy modules."""
    import platform
    import numpy
    cases = PROGRAM_SUITE if programs else SUITE
    runs = [(case, t, bind) for case in cases for t in threads for bind in ((False, True) if t > 1 else (False,))]
    progress(f"bench: {len(cases)} cases x {len(runs) // len(cases)} thread settings = {len(runs)} runs, about "
             f"{round(len(runs) * MINUTES_PER_RUN * repeats / 9)} minutes on a 2-core machine")
    rows = []
    for k, ((name, op, params, shapes), t, bind) in enumerate(runs, start=1):
        r = cpu.bench(op, params, shapes, threads=t, repeats=repeats, bind=bind, target=target)
        progress(f"[{k}/{len(runs)}] " + format_result(name, t, r, bind))
        rows.append((name, f"{t} bound" if bind else str(t), r))
    versions = {}
    for name in ("torch", "numba"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = "not installed"
    what = "emitted NumPy modules" if target == "module" else "emitted torch.autograd.Functions (--target torch)"
    what = "emitted program modules (vjp + pullback)" if programs and target == "module" else what
    command = "symgrad bench --suite" + ("" if target == "module" else " --target torch") + (" --programs" if programs else "")
    head = [f"# Benchmarks: {what} vs PyTorch (CPU, float32)", "",
            f"Measured by `{command}` on {platform.machine()} with {os.cpu_count()} cores, "
            f"numpy {numpy.__version__} ({_blas_kernels()}), {cpu.heap_text()}, numba {versions['numba']} (elementwise loops), torch {versions['torch']}; median of {repeats} runs after warm-up, both sides with the "
            "same thread count, the two sides taking turns run by run: each turn is (with 2+ threads, 0.2 s of sleep, "
            f"so neither library's spinning worker threads steal the cores, then) {SETTLE:g} s of untimed calls of that "
            "side (at least one) and the timed call, which so runs as in a loop of its own, not straight after the other "
            "library's call (whose freed memory slowed torch's short calls up to 6x); after one large NumPy "
            "SGEMM (see `_warm_blas` in symgrad/bench/cpu.py). Ratio = emitted time / torch time (lower is better; < 1 means faster than torch), "
            "the median over the runs of each run's pair (the two sides of one turn), so drift between turns cancels; "
            "fwd+bwd also gives the quartiles of those pair ratios, the spread the machine gave. "
            "Torch's per-gradient time is one `autograd.grad` call for that input on a graph built once; "
            "fwd+bwd is a forward under autograd plus the full backward. Peak memory: the child process's peak "
            "resident set above its baseline once inputs exist (for torch, including its allocator's caching). "
            "First call: forward + backward in a fresh process, the emitted module's with no cached compiled loops "
            "(cold) and with the ones that run cached, then torch's. "
            f"Gauge: GFLOP/s of one {'x'.join(map(str, GAUGE))} (M, K, N) SGEMM in each library, in the timing "
            "child, before/after its timings: what the machine gave each side (a 2-thread NumPy gauge near the "
            "1-thread one means the second core was not there for that case). Rows '2 bound' run with "
            "OMP_PROC_BIND=true in the child: torch's OpenMP threads and the emitted modules' worker threads are "
            "bound one to a CPU; unbound, on the 2-vCPU reference VM (its kernel booted with sched_vcpu_pack) the "
            "two threads of a short convolution often shared one vCPU, the other idle; OpenMP's spinning threads "
            "escape that, the emitted modules' sleeping workers do not.", "",
            "| case | threads | forward | " + " | ".join(["grads (each)"] * (not programs) + ["fwd+bwd"]
                                                     + ["fwd+bwd / torch.compile's"] * programs
                                                     + ["peak mem", "first call (cold / cached / torch)", "gauge"])
            + " |", "| --- " * 8 + "|"]
    for name, t, r in rows:
        e, tr = r["emitted"], r["torch"]
        ratio = r["ratio"]
        grads = ", ".join(f"{k} {ratio[k][1]:.2f}" for k in e if k.startswith("d"))
        low, mid, high = ratio["forward+backward"]
        grads = f" {_compiled_text(r)} |" if programs else f" {grads} |"
        middle = f" {mid:.2f} ({low:.2f}-{high:.2f}) |"
        middle = f"{grads}{middle}" if not programs else f"{middle}{grads}"
        head.append(f"| {name} | {t} | {ratio['forward'][1]:.2f} |{middle} "
                    f"{e['peak_mib'] / max(tr['peak_mib'], 1e-9):.2f} ({e['peak_mib']:.0f} / {tr['peak_mib']:.0f} MiB) | "
                    f"{e['first_s']:.2f} / {e['first_cached_s']:.2f} / {tr['first_s']:.2f} s | {_gauge_text(r)} |")
    return "\n".join(head) + "\n"


def _blas_kernels() -> str:
    """Which kernels NumPy's BLAS runs (OpenBLAS picks them per CPU unless OPENBLAS_CORETYPE names
    some: AVX2's run SGEMM at about half the speed of AVX-512's on the reference VM)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS kernels not known: no threadpoolctl"
    found = [f"{i['internal_api']} {i['architecture']} kernels" for i in threadpool_info()
             if i.get("user_api") == "blas" and i.get("architecture")]
    pinned = os.environ.get("OPENBLAS_CORETYPE")
    return (", ".join(found) or "BLAS kernels not reported") + (f", OPENBLAS_CORETYPE={pinned} set" if pinned else "")


def _compiled_text(result, key: str = "forward+backward") -> str:
    """The emitted module's time over torch.compile's, with quartiles; why not, where it was not timed."""
    if key not in result.get("ratio_compiled", {}):
        return f"not timed ({result['compile_error']})" if result.get("compile_error") else "not timed"
    low, mid, high = result["ratio_compiled"][key]
    return f"{mid:.2f} ({low:.2f}-{high:.2f})"
