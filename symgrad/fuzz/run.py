"""One random program through symgrad and against the reference: its text parsed, derived (second
order included) and emitted, then the module's forward, backward, vjp, double_backward and float32
results, and the torch and JAX targets' values, gradients and second-order gradients, each held to
PyTorch autograd through the program's own evaluation (:mod:`.evaluate`) by a :class:`.checker.Checker`;
a disagreement goes to the high-precision arbiter (:mod:`.oracle`), which says whose error it is.

A :class:`Result` says ``ok``, ``wrong`` (a number the arbiter refutes), ``crash`` (an exception
that is not a clear refusal), ``refused`` (a :class:`~symgrad.ir.SymgradError`), ``hang`` (past the
time limit) or ``reference`` (the reference erred, symgrad did not), with the check and a detail.
"""
from __future__ import annotations

import signal
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..ir import SymgradError
from .checker import Checker, Failure, f64, gap, show, torch_grads
from .evaluate import torch_values

class Hang(BaseException):  # not an Exception: code that catches every error must not catch it
    pass


@dataclass
class Result:
    seed: int
    large: bool
    text: str
    sizes: dict
    status: str = "ok"
    check: str = ""
    detail: str = ""
    derive_seconds: float = 0.0
    seconds: float = 0.0
    tags: frozenset = frozenset()
    notes: list = field(default_factory=list)
    index: int = 0


@contextmanager
def time_limit(seconds: float):
    """Raise :class:`Hang` in this (main) thread after ``seconds``."""
    if not seconds:
        yield
        return

    def fire(signum, frame):
        raise Hang(f"past {seconds:g} s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# the checks -----------------------------------------------------------------------------------------

def _module_checks(c: Checker, module, second: bool):
    arrays = [c.arrays[n] for n in c.inputs]
    one = len(c.outputs) == 1
    c.result.check = "forward"
    ys = module.forward(*arrays)
    ys = [ys] if one else list(ys)
    c.values_agree("forward", ys)
    c.result.check = "backward"
    grads = module.backward(c.g[0] if one else tuple(c.g), *arrays)
    c.grads_agree("backward", list(grads))
    c.result.check = "vjp"
    out, pullback = module.vjp(*arrays)
    out = [out] if one else list(out)
    again = pullback(*c.g)
    for a, b in zip(out, ys):
        if gap(a, b) > 0:
            raise Failure("wrong", "vjp", f"vjp's output differs from forward's: {show(a, b)}")
    for a, b in zip(again, grads):
        if gap(a, b) > 0:
            raise Failure("wrong", "vjp", f"the pullback differs from backward: {show(a, b)}")
    if second:
        c.result.check = "double_backward"
        results = module.double_backward(*[c.gg[n] for n in c.inputs], *c.g, *arrays)
        c.seconds_agree("double_backward", list(results))
    c.result.check = "float32"
    _float32(c, module)


def _float32(c: Checker, module):
    arrays = [c.arrays[n].astype(np.float32) for n in c.inputs]
    one = len(c.outputs) == 1
    with np.errstate(all="ignore"):
        ys = module.forward(*arrays)
        ys = [ys] if one else list(ys)
        for y in ys:
            if np.asarray(y).dtype != np.float32:
                raise Failure("wrong", "float32", f"an output of dtype {np.asarray(y).dtype} for float32 inputs")
        g32 = [g.astype(np.float32) for g in c.g]
        grads = module.backward(g32[0] if one else tuple(g32), *arrays)
    runs = [_torch32(c, arrays, g32, einsum) for einsum in (False, True)]
    c.float32_agree("float32 forward", ys, [y for y, _ in runs], c.values, scale=arrays)
    c.float32_agree("float32 backward", list(grads), [g for _, g in runs], c.grads, scale=c.g)


def _torch32(c: Checker, arrays: list, g32: list, einsum: bool) -> tuple:
    """Torch's float32 outputs and gradients (float64 arrays) for the program evaluated with or without
    ``torch.einsum`` for its contractions."""
    import torch
    xs, values = torch_values(c.tree, c.sizes, dict(zip(c.inputs, arrays)), torch.float32, grad=True, einsum=einsum)
    ys32 = [values[o] for o in c.outputs]
    g32t = torch_grads(ys32, [xs[n] for n in c.inputs], [torch.tensor(g) for g in g32])
    return [f64(y) for y in ys32], [f64(g) if g is not None else np.zeros(c.arrays[n].shape)
                                     for g, n in zip(g32t, c.inputs)]


def _torch_checks(c: Checker, module, name: str):
    import torch
    f = getattr(module, name)
    xs = [torch.tensor(c.arrays[n], requires_grad=True) for n in c.inputs]
    c.result.check = "torch forward"
    ys = f(*xs)
    ys = [ys] if len(c.outputs) == 1 else list(ys)
    c.values_agree("torch forward", [f64(y) for y in ys])
    c.result.check = "torch backward"
    gt = [torch.tensor(g, requires_grad=True) for g in c.g]
    firsts = torch_grads(ys, xs, gt, create_graph=True)
    c.grads_agree("torch backward", [f64(f) if f is not None else np.zeros(c.arrays[n].shape)
                                     for f, n in zip(firsts, c.inputs)])
    c.result.check = "torch double backward"
    live = [(g, c.gg[n]) for g, n in zip(firsts, c.inputs) if g is not None and g.requires_grad]
    if live:
        seconds = torch.autograd.grad([g for g, _ in live], gt + xs, [torch.tensor(v) for _, v in live],
                                      allow_unused=True)
    else:
        seconds = [None] * (len(gt) + len(xs))
    c.seconds_agree("torch double backward", [f64(s) if s is not None else np.zeros(np.shape(x.detach()))
                                              for s, x in zip(seconds, gt + xs)])


def _jax_checks(c: Checker, module, name: str):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    f = getattr(module, name)
    xs = [jnp.asarray(c.arrays[n]) for n in c.inputs]
    one = len(c.outputs) == 1
    c.result.check = "jax forward"
    ys, pull = jax.vjp(f, *xs)
    c.values_agree("jax forward", [np.asarray(y) for y in ([ys] if one else ys)])
    c.result.check = "jax backward"
    gs = [jnp.asarray(g) for g in c.g]
    c.grads_agree("jax backward", [np.asarray(a) for a in pull(gs[0] if one else tuple(gs))])
    c.result.check = "jax double backward"

    def first(g, *x):
        return jax.vjp(f, *x)[1](g)
    _, pull2 = jax.vjp(first, gs[0] if one else tuple(gs), *xs)
    dg, *dx = pull2(tuple(jnp.asarray(c.gg[n]) for n in c.inputs))
    dg = [dg] if one else list(dg)
    c.seconds_agree("jax double backward", [np.asarray(a) for a in dg + dx])


def check(tree, sizes: dict, seed: int, large: bool = False, targets=("numpy", "torch", "jax"),
          timeout: float = 60.0) -> Result:
    """Every check of ``tree`` at ``sizes`` (inputs drawn from ``seed``); never raises."""
    from ..emit import load
    from ..emit.program import emit_program
    from ..reverse import derive_program
    from ..second_order import derive_program_second_order
    from ..syntax import parse_program
    text = tree.text()
    result = Result(seed, large, text, dict(sizes), tags=tree.tags)
    start = time.perf_counter()
    try:
        with time_limit(timeout):
            result.check = "derive"
            program = parse_program(text, name="fuzz")
            d = derive_program(program)
            result.check = "derive second order"
            try:
                second = derive_program_second_order(d)
            except SymgradError as exc:
                second = None
                result.notes.append(f"no double_backward: {exc}")
            result.check = "emit"
            source = emit_program(d, second=second)
            result.derive_seconds = time.perf_counter() - start
            module = load(source, "fuzz_numpy")
            others = {t: load(emit_program(d, t, second=second), f"fuzz_{t}") for t in targets if t != "numpy"}
        with time_limit(timeout * (4 if large else 1)):
            result.check = "reference"
            c = Checker(tree, sizes, seed, result)
            if "numpy" in targets:
                _module_checks(c, module, second is not None)
            if "torch" in others:
                _torch_checks(c, others["torch"], "fuzz")
            if "jax" in others:
                _jax_checks(c, others["jax"], "fuzz")
        result.check = ""
    except Failure as exc:
        result.status, result.check, result.detail = exc.status, exc.check, exc.detail
    except Hang as exc:
        result.status, result.detail = "hang", str(exc)
    except SymgradError as exc:
        result.status, result.detail = "refused", str(exc)
    except Exception as exc:  # noqa: BLE001 — every other exception is a crash to report
        result.status = "crash"
        result.detail = f"{type(exc).__name__}: {exc}\n{_where(exc)}"
    if result.status == "ok" and any("reference is off" in n for n in result.notes):
        result.status = "reference"
    result.seconds = time.perf_counter() - start
    return result


def _where(exc) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    inner = [f for f in frames if "symgrad" in f.filename or f.filename.startswith("<")]
    f = (inner or frames)[-1]
    return f"{f.filename}:{f.lineno} in {f.name}"


__all__ = ["Result", "check", "gap"]
