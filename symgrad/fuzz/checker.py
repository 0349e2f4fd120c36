"""The judgements of one random program's results (:mod:`.run` runs the checks): values, gradients and
second order held to PyTorch autograd through the program's own evaluation (:mod:`.evaluate`), a
disagreement sent to the high-precision arbiter (:mod:`.oracle`), which says whose error it is; float32
results held to torch's own float32 error."""
from __future__ import annotations

import numpy as np

from .evaluate import torch_values
from .oracle import Arbiter, judge
from .tree import size_value

#: relative agreement (to the larger magnitude) below which two float64 results need no arbiter
TOL64 = 1e-9
#: float32: symgrad's error against the float64 truth may be this many times torch's float32 error ...
RATIO32 = 16.0
#: ... or this much, relative, whichever is larger
TOL32 = 2e-5


class Failure(Exception):
    def __init__(self, status: str, check: str, detail: str):
        super().__init__(f"{status} in {check}: {detail}")
        self.status, self.check, self.detail = status, check, detail


def f64(a) -> np.ndarray:
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
    a, b = f64(ours), f64(theirs)
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
    ours, theirs = [f64(a) for a in ours], [f64(b) for b in theirs]
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

    def __init__(self, tree, sizes: dict, seed: int, result):
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
        firsts = torch_grads([y for y in self.ys], ins, gt, create_graph=True)
        firsts = [f if f is not None else torch.zeros_like(x) for f, x in zip(firsts, ins)]
        self.grads = [f64(f) for f in firsts]
        live = [(f, self.gg[n]) for f, n in zip(firsts, self.inputs) if f.requires_grad]
        if live:
            seconds = torch.autograd.grad([f for f, _ in live], gt + ins, [torch.tensor(v) for _, v in live],
                                          allow_unused=True)
        else:
            seconds = [None] * (len(gt) + len(ins))
        self.seconds = [f64(s) if s is not None else np.zeros(np.shape(x.detach()))
                        for s, x in zip(seconds, gt + ins)]
        self.values = [f64(y) for y in self.ys]

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
            raise Failure("wrong", check, f"output {self.outputs[k]}: {show(ours[k], truth[k])}")
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
                                      f"worst part {k}: {show(ours[k], want[k])}")

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
                                              f"{theirs:.2e}; {show(a, t)}")


def show(a, b) -> str:
    a, b = f64(a), f64(b)
    if a.shape != b.shape:
        return f"shape {a.shape} against {b.shape}"
    diff = np.where(np.isfinite(a) & np.isfinite(b), np.abs(a - b), np.inf)
    diff = np.where(np.isnan(a) & np.isnan(b), 0, diff)
    if not diff.size:
        return "empty"
    k = np.unravel_index(int(np.argmax(diff)), a.shape) if a.shape else ()
    return f"at {tuple(int(i) for i in k)}: {a[k]!r} against {b[k]!r}"


def torch_grads(ys, xs, gs, create_graph=False) -> list:
    """torch.autograd.grad over the outputs that depend on something (None for an input nothing
    reaches)."""
    import torch
    pairs = [(y, g) for y, g in zip(ys, gs) if y.requires_grad]
    if not pairs:
        return [None] * len(xs)
    return list(torch.autograd.grad([y for y, _ in pairs], xs, [g for _, g in pairs], create_graph=create_graph,
                                    allow_unused=True))


__all__ = ["RATIO32", "TOL32", "TOL64", "Checker", "Failure", "f64", "gap", "show", "torch_grads"]
