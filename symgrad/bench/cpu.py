"""``symgrad bench``: time emitted modules against PyTorch in one process, same thread count (the
reports and the suites' cases are :mod:`suite`'s).

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


#: glibc's heap kept by the process (``symgrad bench --heap kept``): freed memory is not given back to the
#: system (no trim) and arrays up to 32 MiB (glibc's largest mmap threshold) come from the heap, so a
#: call's fresh arrays reuse pages the last call freed instead of faulting in new ones (zeroed by the
#: kernel), as a caching allocator (jemalloc, tcmalloc, torch's on the GPU) would have them
KEPT_HEAP = {"MALLOC_TRIM_THRESHOLD_": str(1 << 40), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}


def heap_text() -> str:
    """How the children's heap is set (they inherit it): "glibc's default heap", or the glibc variables set."""
    env = os.environ
    set_ = [f"{k}={env[k]}" for k in sorted(env) if heap_variable(k)]
    if not set_:
        return "glibc's default heap"
    return ("heap kept (" if all(env.get(k) == v for k, v in KEPT_HEAP.items()) else "heap set (") + ", ".join(set_) + ")"


def heap_variable(name: str) -> bool:
    """A variable that sets glibc's heap."""
    return name.startswith("MALLOC_") or name == "GLIBC_TUNABLES"


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


def _torch_double(op, arrays, shapes, g, ggs, eager=None):
    """torch's double backward as a user computes it (a gradient penalty): the forward, the gradients
    with create_graph=True, and the gradients of Σ gg·gradient with respect to grad_output and each input."""
    import torch
    ref, _ = _reference(op, shapes, None, eager)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    g, ggs = torch.tensor(g, requires_grad=True), [torch.tensor(a) for a in ggs]

    def double_backward():
        grads = torch.autograd.grad(ref(op, *ts), ts, g, create_graph=True, allow_unused=True)
        total = sum((gg * grad).sum() for gg, grad in zip(ggs, grads) if grad is not None)
        torch.autograd.grad(total, [g] + ts, allow_unused=True)
    return double_backward


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
    if task.get("order") == 2:  # every gg given, as the torch side's Σ gg·gradient reads them all
        import numpy as np
        rng = np.random.default_rng(1)
        ggs = [rng.standard_normal(a.shape, dtype=a.dtype) for a in arrays]
        methods["double_backward"] = (lambda: module.double_backward(*ggs, g, *arrays),
                                      _torch_double(op, arrays, task["shapes"], g, ggs, eager=_eager(task)))
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
          program=None, dtype="float32", compile=None, memory=True, methods=None, order=1) -> dict:
    """Times and peak memory of the emitted module (``target`` "module") or torch.autograd.Function
    (``target`` "torch") against torch's own op, in child processes.  ``program``: a program of one's
    own (``--rule``, ``-f``, a padding mode), sent whole to the children; torch's side is its own
    autograd through the same statements as torch operations (see :func:`_reference`).  ``compile``
    (default: for a program's module): torch.compile's times too, what a user might pick instead of
    eager; ``memory=False``: no peak memory or first calls (the size sweep); ``methods``: those alone
    (``("forward+backward",)``); ``order=2``: the module's double_backward too, against torch's."""
    import symgrad
    from symgrad.emit import emit, emit_target
    built = program if program is not None else symgrad.ops.build(op_name, **params)
    is_program = isinstance(built, symgrad.ops.Program)
    task = {"op": op_name, "params": params, "shapes": shapes, "threads": threads, "repeats": repeats,
            "warmup": warmup, "mode": "time", "bind": bind, "target": target, "program": is_program, "dtype": dtype,
            "compile": is_program and target == "module" if compile is None else compile, "methods": methods,
            "order": order}
    if is_program:
        from symgrad.emit.program import emit_program
        from symgrad.reverse import derive_program
        from symgrad.second_order import derive_program_second_order
        d = derive_program(built)
        second = derive_program_second_order(d) if order == 2 else None
        task["source"] = emit_program(d, "numpy" if target == "module" else target, second=second)
        if program is not None:
            task.update(own=True, pickled=base64.b64encode(pickle.dumps(program)).decode(),
                        eager=emit_program(d, "torch"))
    else:
        d = symgrad.derive(built)
        task["source"] = emit(d) if target == "module" else emit_target(d, target)
    result = _child(task)
    result.update(dtype=dtype, heap=heap_text())
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


if __name__ == "__main__":
    task = json.loads(sys.stdin.read())
    print(json.dumps(run_timing(task) if task["mode"] == "time" else run_memory(task)))
