"""``symgrad bench``: time emitted modules against PyTorch in one process, same thread count.

Thread counts must be fixed before NumPy's BLAS starts, so each measurement runs in a child
process with OPENBLAS/OMP/MKL/NUMBA thread variables set (and ``torch.set_num_threads``).  Peak memory is
the child's peak resident set above its baseline after the inputs are made, per method; the first call
(forward + backward) in a fresh process is timed there too, the emitted module's with an empty cache
of compiled loops (cold) and with the cache that run made.
"""
from __future__ import annotations

import base64
import functools
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time

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


def _env(threads: int, bind: bool = False) -> dict:
    """The child's environment: ``threads`` for every library; with ``bind``, OMP_PROC_BIND=true,
    which binds torch's OpenMP threads and the emitted modules' worker threads one to a CPU (else
    the variable is removed, so neither side binds)."""
    env = dict(os.environ)
    for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[key] = str(threads)
    env.pop("OMP_PROC_BIND", None)
    if bind:
        env["OMP_PROC_BIND"] = "true"
    return env


def _child(task: dict, module: str = "symgrad.bench.cpu", cache: str = None) -> dict:
    """Run ``task`` in a fresh ``python -m module`` with the task's thread counts (``cache``: the emitted
    modules' cache directory, SYMGRAD_CACHE_DIR); its last line of output.  The task goes in on standard
    input (it holds the emitted modules' source: one command-line argument may not exceed 128 KiB)."""
    env = _env(task["threads"], task.get("bind", False))
    if cache:
        env["SYMGRAD_CACHE_DIR"] = cache
    if task["mode"] == "memory":  # every array its own mapping (see run_memory)
        env.update(MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    proc = subprocess.run([sys.executable, "-m", module], input=json.dumps(task), env=env, capture_output=True,
                          text=True)
    if proc.returncode:
        from ..ir import SymgradError
        raise SymgradError("bench: " + proc.stderr.strip().splitlines()[-1] if proc.stderr else "bench child failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _setup(task):
    """The op, the emitted module (source made by the parent: no SymPy work here) and the inputs, in the
    task's dtype (float32 unless it says)."""
    import numpy as np
    import symgrad
    from symgrad.emit import load
    op = pickle.loads(base64.b64decode(task["pickled"])) if task.get("own") else \
        symgrad.ops.build(task["op"], **task["params"])
    module = load(task["source"])
    rng = np.random.default_rng(0)
    dtype = np.dtype(task.get("dtype", "float32"))
    arrays = [rng.standard_normal(task["shapes"][t.name], dtype=dtype) for t in op.inputs]
    return op, module, arrays


SETTLE = 0.1  # seconds of untimed calls before each timed one (see _interleaved_times)


def _interleaved_times(pairs: dict, repeats: int, warmup: int, pause: float = 0.0) -> dict:
    """Times of each function, the functions taking turns within every repeat.

    Taking turns puts both sides of a comparison under the same machine conditions (a shared VM's
    speed drifts over seconds).  Each turn is ``SETTLE`` seconds of untimed calls of that side (at least
    one), then the timed call: it runs as in a loop of its own, not straight after the other library's
    call, whose freed memory and caches it would inherit (torch's softmax 1024 x 1024 fwd+bwd took
    1.0-6.0 ms called right after the emitted module's, 0.8-1.0 ms called after itself).  ``warmup``
    turns of one call each come first.  ``pause`` seconds of sleep before each turn let the other
    library's spinning worker threads stop (BENCHMARKS.md says what was measured without them).
    """
    for _ in range(warmup):
        for fn in pairs.values():
            fn()
    times = {key: [] for key in pairs}
    for _ in range(repeats):
        for key, fn in pairs.items():
            if pause:
                time.sleep(pause)
            settled = time.perf_counter() + SETTLE
            fn()
            while time.perf_counter() < settled:
                fn()
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return times


def _quartiles(values) -> tuple:
    """(lower quartile, median, upper quartile) by nearest rank."""
    v = sorted(values)
    return v[len(v) // 4], v[len(v) // 2], v[(3 * len(v)) // 4]


def _warm_blas():
    """One 1024-square SGEMM before any timing: until a process has run one large SGEMM, OpenBLAS
    ran small ones about 3x slower on the reference machine (BENCHMARKS.md); this measures the
    steady state."""
    import numpy as np
    a = np.ones((1024, 1024), np.float32)
    a @ a


GAUGE = (64, 64, 3364)  # M, K, N of the gauge SGEMM: the ResNet layer's per-tap product


def _gauge(pause: float) -> dict:
    """GFLOP/s of one fixed SGEMM (``GAUGE``) in NumPy's BLAS and in torch, at the child's thread
    count (torch's set already): what the machine gave each library at that moment, before and
    after the timings."""
    import numpy as np
    import torch
    m, k, n = GAUGE
    a, b, c = np.ones((m, k), np.float32), np.ones((k, n), np.float32), np.empty((m, n), np.float32)
    ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
    rates = {}
    for name, fn in (("numpy", lambda: np.matmul(a, b, out=c)), ("torch", lambda: torch.mm(ta, tb, out=tc))):
        time.sleep(pause)
        fn()
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.05:
            fn()
            count += 1
        rates[name] = 2 * m * k * n * count / (time.perf_counter() - start) / 1e9
    return rates


def _reference(op, shapes, module=None, eager=None):
    """``(f(op, *tensors), what it calls)``: torch's own op as a user writes it, every parameter worked
    out before (bench/torch_side.py), or with ``module`` (a torch-target module) the emitted Function.
    A program of one's own has no torch function: ``eager`` (its torch-target module) gives its statements
    as torch operations, which torch's autograd differentiates itself (the Function's forward called
    directly)."""
    from symgrad.bench.torch_side import torch_call
    if module is not None:
        function = getattr(module, op.name)
        return (lambda op, *ts: function(*ts)), "the emitted Function"
    if eager is not None:
        return (lambda op, *ts: eager._forward(*ts)[0][0]), "torch operations of the same statements"
    call, note = torch_call(op, shapes)
    return (lambda op, *ts: call(*ts)), note


def _eager(task):
    """The torch-target module whose statements are torch's side for a program of one's own, or None."""
    from symgrad.emit import load
    return load(task["eager"], "eager") if task.get("own") else None


def _torch_fns(op, arrays, threads, shapes, module=None, eager=None, compiled=False):
    """forward, per-input gradient and forward+backward callables of torch's op (or of the emitted
    Function in ``module``; ``compiled``: of torch.compile's, inductor on the CPU), the upstream gradient,
    and what torch's side calls."""
    import torch
    torch.set_num_threads(threads)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ref, note = _reference(op, shapes, module, eager)
    if compiled:
        function = torch.compile(functools.partial(ref, op))
        ref = lambda op, *ts: function(*ts)  # noqa: E731
    graph = ref(op, *ts)  # built once: a gradient's time is its backward alone
    g = torch.ones_like(graph)

    def forward():
        with torch.no_grad():
            ref(op, *[t.detach() for t in ts])

    def grad(k):
        return lambda: torch.autograd.grad(graph, [ts[k]], g, retain_graph=True)

    def forward_backward():
        torch.autograd.grad(ref(op, *ts), ts, g)
    return forward, grad, forward_backward, g.detach().numpy(), note


def run_timing(task: dict) -> dict:
    """Child side: times of the emitted module and of torch, per method, taking turns."""
    op, module, arrays = _setup(task)
    _warm_blas()
    reps, warm = task["repeats"], task["warmup"]
    t_fwd, t_grad, t_bwd, g, note = _torch_fns(op, arrays, task["threads"], task["shapes"], eager=_eager(task))
    pause = 0.2 if task["threads"] > 1 else 0.0
    out = {"emitted": {}, "torch": {}, "ratio": {}, "gauge": [_gauge(pause)], "torch_call": note}
    compiled = _compiled(task, op, arrays, out) if task.get("compile") else {}
    if task.get("program") and task.get("target") == "module":  # forward, and vjp + pullback (a training step)
        def step():
            y, pullback = module.vjp(*arrays)
            pullback(g)
        methods = {"forward": (lambda: module.forward(*arrays), t_fwd), "forward+backward": (step, t_bwd)}
    elif task.get("target") == "torch":  # the emitted Function under torch's autograd, against torch's own op
        e_fwd, e_grad, e_bwd, _, _ = _torch_fns(op, arrays, task["threads"], task["shapes"], module)
        methods = {"forward": (e_fwd, t_fwd), **{f"d{t.name}": (e_grad(k), t_grad(k)) for k, t in enumerate(op.inputs)},
                   "forward+backward": (e_bwd, t_bwd)}
    else:
        methods = {"forward": (lambda: module.forward(*arrays), t_fwd)}
        for k, t in enumerate(op.inputs):
            fn = getattr(module, f"grad_{t.name}")
            methods[f"d{t.name}"] = ((lambda fn=fn: fn(g, *arrays)), t_grad(k))
        methods["forward+backward"] = (lambda: (module.forward(*arrays), module.backward(g, *arrays)), t_bwd)
    for key in task.get("methods") or methods:
        emitted, torch_fn = methods[key]
        sides = {"emitted": emitted, "torch": torch_fn, **({"compiled": compiled[key]} if key in compiled else {})}
        times = _interleaved_times(sides, reps, warm, pause=pause)
        for side in sides:
            out.setdefault(side, {})[key] = _quartiles(times[side])[1]
        # the ratio of each turn's pair: drift of the machine over the run cancels within a pair
        out["ratio"][key] = _quartiles([e / t for e, t in zip(times["emitted"], times["torch"])])
        if "compiled" in sides:
            out.setdefault("ratio_compiled", {})[key] = _quartiles([e / c for e, c in zip(times["emitted"],
                                                                                          times["compiled"])])
    out["gauge"].append(_gauge(pause))
    return out


def _compiled(task, op, arrays, out) -> dict:
    """torch.compile's forward and forward+backward of torch's side, compiled now (outside the timings);
    none where it cannot compile (no C++ compiler, an operation inductor refuses): ``out`` says why."""
    try:
        c_fwd, _, c_bwd, _, _ = _torch_fns(op, arrays, task["threads"], task["shapes"], eager=_eager(task),
                                          compiled=True)
        c_fwd()
        c_bwd()
    except Exception as exc:  # torch._dynamo and inductor raise many kinds
        text = str(exc).strip()
        out["compile_error"] = text.splitlines()[0] if text else type(exc).__name__
        return {}
    return {"forward": c_fwd, "forward+backward": c_bwd}


def _gauge_text(result) -> str:
    """'numpy 166/168, torch 140/139': GFLOP/s of the gauge SGEMM before/after the timings."""
    return ", ".join(f"{lib} {'/'.join(f'{g[lib]:.0f}' for g in result['gauge'])}" for lib in ("numpy", "torch"))


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_memory(task: dict) -> dict:
    """Child side (a fresh process per side): peak resident set above the baseline for one forward +
    backward, after one untimed call of the same (numba compiles, thread pools start, caches the code
    keeps fill: all that counts in the baseline).  The child runs with glibc's mmap threshold fixed at
    64 KiB (``_env``), so every array is its own mapping, returned when freed: the warm-up's freed
    memory cannot be reused unseen by the measured call, which glibc's sliding threshold allowed
    (conv2d stride 2 reported 1.2 MiB where dx alone is 3.1).

    Linux: writing 5 to /proc/self/clear_refs resets the peak (VmHWM) to the current RSS.
    """
    op, module, arrays = _setup(task)
    _warm_blas()
    if task["method"] == "torch" or task.get("target") == "torch":
        import torch
        torch.set_num_threads(task["threads"])
        ref, _ = _reference(op, task["shapes"], module if task["method"] == "emitted" else None, _eager(task))
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        g = torch.ones_like(ref(op, *[t.detach() for t in ts]))
        run = lambda: torch.autograd.grad(ref(op, *ts), ts, g)
    elif task.get("program") and task.get("target") == "module":
        import numpy as np
        g = np.ones(module.forward(*arrays).shape, arrays[0].dtype)
        run = lambda: module.vjp(*arrays)[1](g)
    else:
        import numpy as np
        g = np.ones(module.forward(*arrays).shape, arrays[0].dtype)
        run = lambda: (module.forward(*arrays), module.backward(g, *arrays))
    start = time.perf_counter()
    run()  # the warm-up: the first call in this process
    first = time.perf_counter() - start
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = _status_kib("VmRSS")
    run()
    return {"peak_mib": (_status_kib("VmHWM") - base) / 1024, "first_s": first}


def bench(op_name, params, shapes, threads=1, repeats=7, warmup=2, bind=False, target="module",
          program=None, dtype="float32", compile=None, memory=True, methods=None) -> dict:
    """Times and peak memory of the emitted module (``target`` "module") or torch.autograd.Function
    (``target`` "torch") against torch's own op, in child processes.  ``program``: a program of one's
    own (``--rule``, ``-f``, a padding mode), sent whole to the children; torch's side is its own
    autograd through the same statements as torch operations (see :func:`_reference`).  ``compile``
    (default: for a program's module): torch.compile's times too, what a user might pick instead of
    eager; ``memory=False``: no peak memory or first calls (the size sweep); ``methods``: those alone
    (``("forward+backward",)``)."""
    import symgrad
    from symgrad.emit import emit, emit_target
    built = program if program is not None else symgrad.ops.build(op_name, **params)
    is_program = isinstance(built, symgrad.ops.Program)
    task = {"op": op_name, "params": params, "shapes": shapes, "threads": threads, "repeats": repeats,
            "warmup": warmup, "mode": "time", "bind": bind, "target": target, "program": is_program, "dtype": dtype,
            "compile": is_program and target == "module" if compile is None else compile, "methods": methods}
    if is_program:
        from symgrad.emit.program import emit_program
        from symgrad.reverse import derive_program
        d = derive_program(built)
        task["source"] = emit_program(d, "numpy" if target == "module" else target)
        if program is not None:
            task.update(own=True, pickled=base64.b64encode(pickle.dumps(program)).decode(),
                        eager=emit_program(d, "torch"))
    else:
        d = symgrad.derive(built)
        task["source"] = emit(d) if target == "module" else emit_target(d, target)
    result = _child(task)
    result["dtype"] = dtype
    if not memory:
        return result
    cache = tempfile.mkdtemp(prefix="symgrad-bench-")  # empty: the emitted module's first call compiles
    try:
        for method in ("emitted", "torch"):
            memory = _child(dict(task, mode="memory", method=method), cache=cache)
            result[method].update(peak_mib=memory["peak_mib"], first_s=memory["first_s"])
        cached = _child(dict(task, mode="memory", method="emitted"), cache=cache)  # the loops the first one cached
        result["emitted"]["first_cached_s"] = cached["first_s"]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return result


def format_result(name, threads, result, bind=False) -> str:
    keys = [k for k in result["emitted"] if k not in ("peak_mib", "first_s", "first_cached_s")]
    dtype = "" if result.get("dtype", "float32") == "float32" else f", {result['dtype']}"
    lines = [f"{name} ({threads} thread{'s' if threads > 1 else ''}{', bound' if bind else ''}{dtype}); torch's side: "
             f"{result.get('torch_call', 'torch')}"]
    lines.append(f"  {'gauge SGEMM':18s} {'x'.join(map(str, GAUGE))} (M, K, N) GFLOP/s before/after: {_gauge_text(result)}")
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
        r = bench(op, params, shapes, threads=t, repeats=repeats, bind=bind, target=target)
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
            f"numpy {numpy.__version__} ({_blas_kernels()}), numba {versions['numba']} (elementwise loops), torch {versions['torch']}; median of {repeats} runs after warm-up, both sides with the "
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


if __name__ == "__main__":
    task = json.loads(sys.stdin.read())
    print(json.dumps(run_timing(task) if task["mode"] == "time" else run_memory(task)))
