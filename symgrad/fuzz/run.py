"""One random program through symgrad and against the reference: its text parsed, derived (second
order included) and emitted, then the module's forward, backward, vjp, double_backward and float32
results, and the torch and JAX targets' values, gradients and second-order gradients, each held to
PyTorch autograd through the program's own evaluation (:mod:`.evaluate`); a disagreement goes to
the high-precision arbiter (:mod:`.oracle`), which says whose error it is.

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
from .evaluate import torch_values
from .oracle import Arbiter, judge
from .tree import size_value

#: relative agreement (to the larger magnitude) below which two float64 results need no arbiter
TOL64 = 1e-9
#: float32: symgrad's error against the float64 truth may be this many times torch's float32 error ...
RATIO32 = 16.0
#: ... or this much, relative, whichever is larger
TOL32 = 2e-5


class Hang(BaseException):  # not an Exception: code that catches every error must not catch it
    pass


class Failure(Exception):
    def __init__(self, status: str, check: str, detail: str):
        super().__init__(f"{status} in {check}: {detail}")
        self.status, self.check, self.detail = status, check, detail


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


# comparing --------------------------------------------------------------------------------------------

def _f64(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy(force=True)  # (force: autograd's efficient zero tensors too)
    return np.asarray(a, dtype=np.float64)


def _mismatched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where the finiteness of two arrays differs, or their non-finite values do (nan against inf)."""
    fa, fb = np.isfinite(a), np.isfinite(b)
    same = (np.isnan(a) & np.isnan(b)) | (a == b)
    return (fa != fb) | (~fa & ~fb & ~same)


def gap(ours, theirs, floor=1e-3) -> float:
    """The largest difference relative to the larger magnitude (at least ``floor``); inf where the
    shapes or the non-finite entries differ."""
    a, b = _f64(ours), _f64(theirs)
    if a.shape != b.shape or _mismatched(a, b).any():
        return float("inf")
    ok = np.isfinite(a)
    if not ok.any():
        return 0.0
    scale = max(np.abs(a[ok]).max(), np.abs(b[ok]).max(), floor)
    return float(np.abs(a[ok] - b[ok]).max() / scale)


def _direction(ours: list, theirs: list):
    """Where two lists of arrays disagree: the difference of their finite parts, or a one-hot at the
    first element whose finiteness differs; and the two projections on it."""
    ours, theirs = [_f64(a) for a in ours], [_f64(b) for b in theirs]
    for k, (a, b) in enumerate(zip(ours, theirs)):
        bad = _mismatched(a, b)
        if bad.any():
            d = [np.zeros(x.shape) for x in ours]
            d[k].reshape(-1)[int(np.flatnonzero(bad.reshape(-1))[0])] = 1.0
            return d, float(a.reshape(-1)[bad.reshape(-1)][0]), float(b.reshape(-1)[bad.reshape(-1)][0]), None
    d = [np.where(np.isfinite(a), a - b, 0.0) for a, b in zip(ours, theirs)]
    po = sum(float(np.sum(np.where(np.isfinite(a), a, 0) * v)) for a, v in zip(ours, d))
    pt = sum(float(np.sum(np.where(np.isfinite(b), b, 0) * v)) for b, v in zip(theirs, d))
    norm = lambda xs: float(np.sqrt(sum(np.sum(np.where(np.isfinite(x), x, 0) ** 2) for x in xs)))
    return d, po, pt, max(norm(ours), norm(theirs)) * norm(d)


class Checker:
    """The checks of one program at one set of sizes and inputs."""

    def __init__(self, tree, sizes: dict, seed: int, result: Result):
        self.tree, self.sizes, self.result = tree, sizes, result
        self.rng = np.random.default_rng(seed)
        conc = tree.concrete(sizes)
        scale = self.rng.choice((1.0, 1.0, 2.0))
        self.inputs = [t.name for t in tree.arguments]
        self.arrays = {t.name: self.rng.standard_normal(tuple(size_value(d, conc) for d in t.dims)) * scale
                       for t in tree.inputs}
        self.outputs = list(tree.outputs)
        self._arbiter = None
        self.reference()

    @property
    def arbiter(self) -> Arbiter:
        if self._arbiter is None:
            self._arbiter = Arbiter(self.tree, self.sizes, self.arrays)
        return self._arbiter

    def reference(self):
        """Torch autograd through the program's own evaluation: values, gradients, second order."""
        import torch
        xs, values = torch_values(self.tree, self.sizes, self.arrays, grad=True)
        self.ys = [values[o] for o in self.outputs]
        self.g = [self.rng.standard_normal(tuple(y.shape)) for y in self.ys]
        self.gg = {n: self.rng.standard_normal(self.arrays[n].shape) for n in self.inputs}
        gt = [torch.tensor(g, requires_grad=True) for g in self.g]
        ins = [xs[n] for n in self.inputs]
        firsts = _grad([y for y in self.ys], ins, gt, create_graph=True)
        firsts = [f if f is not None else torch.zeros_like(x) for f, x in zip(firsts, ins)]
        self.grads = [_f64(f) for f in firsts]
        live = [(f, self.gg[n]) for f, n in zip(firsts, self.inputs) if f.requires_grad]
        if live:
            seconds = torch.autograd.grad([f for f, _ in live], gt + ins, [torch.tensor(v) for _, v in live],
                                          allow_unused=True)
        else:
            seconds = [None] * (len(gt) + len(ins))
        self.seconds = [_f64(s) if s is not None else np.zeros(np.shape(x.detach()))
                        for s, x in zip(seconds, gt + ins)]
        self.values = [_f64(y) for y in self.ys]

    # the judgements ---------------------------------------------------------------------------------
    def values_agree(self, check: str, ours: list):
        if len(ours) != len(self.values):
            raise Failure("wrong", check, f"{len(ours)} outputs, expected {len(self.values)}")
        if all(gap(a, b) <= TOL64 for a, b in zip(ours, self.values)):
            return
        truth = self.arbiter.forward()
        mine = max(gap(a, t) for a, t in zip(ours, truth))
        theirs = max(gap(b, t) for b, t in zip(self.values, truth))
        if mine > TOL64 and mine >= theirs:
            k = int(np.argmax([gap(a, t) for a, t in zip(ours, truth)]))
            raise Failure("wrong", check, f"output {self.outputs[k]}: {_show(ours[k], truth[k])}")
        if theirs > TOL64:
            self.result.notes.append(f"{check}: the reference is off by {theirs:.1e} (symgrad {mine:.1e})")
        else:
            self.result.notes.append(f"{check}: rounding (both within {TOL64:g} of the truth)")

    def grads_agree(self, check: str, ours: list):
        if len(ours) != len(self.grads):
            raise Failure("wrong", check, f"{len(ours)} gradients, expected {len(self.grads)}")
        for n, a, b in zip(self.inputs, ours, self.grads):
            if np.shape(a) != np.shape(b):
                raise Failure("wrong", check, f"d{n} has shape {np.shape(a)}, expected {np.shape(b)}")
        if all(gap(a, b) <= TOL64 for a, b in zip(ours, self.grads)):
            return
        d, po, pt, scale = _direction(ours, self.grads)
        truth = self.arbiter.backward(self.g, dict(zip(self.inputs, d)))
        self._verdict(check, po, pt, truth, ours, self.grads, scale)

    def seconds_agree(self, check: str, ours: list):
        want = self.seconds
        if len(ours) != len(want):
            raise Failure("wrong", check, f"{len(ours)} results, expected {len(want)}")
        for a, b in zip(ours, want):
            if np.shape(a) != np.shape(b):
                raise Failure("wrong", check, f"a result of shape {np.shape(a)}, expected {np.shape(b)}")
        if all(gap(a, b) <= TOL64 for a, b in zip(ours, want)):
            return
        d, po, pt, scale = _direction(ours, want)
        k = len(self.g)
        truth = self.arbiter.double_backward(self.g, self.gg, d[:k], dict(zip(self.inputs, d[k:])))
        self._verdict(check, po, pt, truth, ours, want, scale)

    def _verdict(self, check, po, pt, truth, ours, want, scale=None):
        who = judge(po, pt, truth, scale)
        if who == "both":  # each within rounding of the truth: an ill-conditioned value, no one's error
            self.result.notes.append(f"{check}: rounding (both within 1e-7 of the truth)")
            return
        if who == "alike":  # the reference as far from the truth: float64 cannot resolve it, no one's error
            self.result.notes.append(f"{check}: unresolved in float64 (projection {po:.6g}, reference {pt:.6g}, "
                                     f"truth {truth:.6g}: both as far from it)")
            return
        if who == "ours":
            self.result.notes.append(f"{check}: the reference is off (projection {pt:.6g}, symgrad {po:.6g}, "
                                     f"truth {truth:.6g})")
            return
        k = int(np.argmax([gap(a, b) for a, b in zip(ours, want)]))
        raise Failure("wrong", check, f"projection {po:.10g}, reference {pt:.10g}, truth {truth:.10g}; "
                                      f"worst part {k}: {_show(ours[k], want[k])}")

    def float32_agree(self, check: str, ours: list, torch32: list, truth: list, scale=()):
        """symgrad's float32 results no further from the float64 truth than TOL32 or RATIO32 times torch's
        float32 (``torch32``: one list per evaluation of the program in torch, judged by the least accurate:
        a sum of a product summed after broadcasting, as :mod:`.evaluate` writes it, is more accurate than
        the GEMM a user writing ``torch.einsum`` gets).  A result that is 0 in exact arithmetic is the rounding of terms that cancel, and those
        are the size of what it is computed from (``scale``: a gradient's, the gradients flowing in; the
        forward's, the inputs), so its error is measured against that size at least (float32 cannot do
        better than its epsilon times it; torch, which adds float32 in double, may).  (The float64 checks
        hold the formula to 1e-9; this one catches a float32 result that loses precision.)"""
        floor = max([1e-3] + [float(np.abs(g).max()) for g in scale if g.size])
        for k, (a, t) in enumerate(zip(ours, truth)):
            mine, theirs = gap(a, t, floor), max(gap(run[k], t, floor) for run in torch32)
            if mine > max(TOL32, RATIO32 * theirs):
                raise Failure("wrong", check, f"part {k}: error {mine:.2e} against float64, torch float32's "
                                              f"{theirs:.2e}; {_show(a, t)}")


def _show(a, b) -> str:
    a, b = _f64(a), _f64(b)
    if a.shape != b.shape:
        return f"shape {a.shape} against {b.shape}"
    diff = np.where(np.isfinite(a) & np.isfinite(b), np.abs(a - b), np.inf)
    diff = np.where(np.isnan(a) & np.isnan(b), 0, diff)
    if not diff.size:
        return "empty"
    k = np.unravel_index(int(np.argmax(diff)), a.shape) if a.shape else ()
    return f"at {tuple(int(i) for i in k)}: {a[k]!r} against {b[k]!r}"


def _grad(ys, xs, gs, create_graph=False) -> list:
    """torch.autograd.grad over the outputs that depend on something (None for an input nothing
    reaches)."""
    import torch
    pairs = [(y, g) for y, g in zip(ys, gs) if y.requires_grad]
    if not pairs:
        return [None] * len(xs)
    return list(torch.autograd.grad([y for y, _ in pairs], xs, [g for _, g in pairs], create_graph=create_graph,
                                    allow_unused=True))


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
            raise Failure("wrong", "vjp", f"vjp's output differs from forward's: {_show(a, b)}")
    for a, b in zip(again, grads):
        if gap(a, b) > 0:
            raise Failure("wrong", "vjp", f"the pullback differs from backward: {_show(a, b)}")
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
    g32t = _grad(ys32, [xs[n] for n in c.inputs], [torch.tensor(g) for g in g32])
    return [_f64(y) for y in ys32], [_f64(g) if g is not None else np.zeros(c.arrays[n].shape)
                                     for g, n in zip(g32t, c.inputs)]


def _torch_checks(c: Checker, module, name: str):
    import torch
    f = getattr(module, name)
    xs = [torch.tensor(c.arrays[n], requires_grad=True) for n in c.inputs]
    c.result.check = "torch forward"
    ys = f(*xs)
    ys = [ys] if len(c.outputs) == 1 else list(ys)
    c.values_agree("torch forward", [_f64(y) for y in ys])
    c.result.check = "torch backward"
    gt = [torch.tensor(g, requires_grad=True) for g in c.g]
    firsts = _grad(ys, xs, gt, create_graph=True)
    c.grads_agree("torch backward", [_f64(f) if f is not None else np.zeros(c.arrays[n].shape)
                                     for f, n in zip(firsts, c.inputs)])
    c.result.check = "torch double backward"
    live = [(g, c.gg[n]) for g, n in zip(firsts, c.inputs) if g is not None and g.requires_grad]
    if live:
        seconds = torch.autograd.grad([g for g, _ in live], gt + xs, [torch.tensor(v) for _, v in live],
                                      allow_unused=True)
    else:
        seconds = [None] * (len(gt) + len(xs))
    c.seconds_agree("torch double backward", [_f64(s) if s is not None else np.zeros(np.shape(x.detach()))
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
