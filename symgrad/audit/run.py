"""Run an audit: every configuration through every path that applies, in float64 and float32,
compared with the derived truth; each discrepancy shrunk to a minimal configuration and cross-checked
against finite differences."""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..ir import SymgradError
from . import truth
from .cases import Case, edge_cases, random_cases, smaller
from .paths import Adapter, Path, expected, families, output_padding

#: float64 paths must agree to this relative error (of the largest expected magnitude)
TOLERANCE64 = 1e-10
#: float32 paths: this many units in the last place of float32, at the largest expected magnitude
ULPS32 = 512
EPS32 = float(np.finfo(np.float32).eps)


@dataclass
class Outcome:
    """One path on one configuration in one dtype: ``error`` relative to the largest expected value
    (in float32 ulps for float32), ``status`` ok, mismatch, refused (the path raised) or skipped
    (symgrad's definition does not take the configuration)."""

    case: Case
    path: str
    dtype: str
    status: str
    error: float = 0.0
    output: str = ""
    message: str = ""
    seed: tuple = ()
    shrunk: Case = None
    fd_error: float = None
    tries: int = 0
    reproducer: str = ""
    details: dict = field(default_factory=dict)


_FUNCTIONS = {}


def _function(path: Path):
    if path.source not in _FUNCTIONS:
        _FUNCTIONS[path.source] = path.function()
    return _FUNCTIONS[path.source]


def case_dict(path: Path, case: Case) -> dict:
    """What the path's ``run`` gets: the case's numbers and the path's options."""
    out = dict(case.as_dict(), **path.options)
    if path.expects == "transpose":
        out["output_padding"] = output_padding(case)
    return out


def as_float64(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().double()
    return np.asarray(value, dtype=np.float64)


def compare(got: dict, want: dict, dtype: str) -> tuple:
    """(error, output name, per-output errors): the largest over the outputs both give."""
    errors = {}
    for name, value in want.items():
        if name not in got:
            continue
        have = as_float64(got[name])
        if have.shape != value.shape:
            if have.size == value.size:
                have = have.reshape(value.shape)
            else:
                errors[name] = float("inf")
                continue
        scale = max(float(np.abs(value).max(initial=0.0)), 1e-300)
        diff = float(np.abs(have - value).max(initial=0.0)) if np.all(np.isfinite(have)) else float("inf")
        errors[name] = diff / scale / (EPS32 if dtype == "float32" else 1.0)
    if not errors:
        return 0.0, "", errors
    worst = max(errors, key=errors.get)
    return errors[worst], worst, errors


def tolerance(dtype: str) -> float:
    return ULPS32 if dtype == "float32" else TOLERANCE64


def run_one(path: Path, case: Case, dtype: str, seed: tuple, cache: dict = None) -> Outcome:
    """The path on the case's seeded inputs, compared with the truth (``cache``, shared by the runs
    of one case, keeps the inputs and each kind of expected result: derived once, not per path)."""
    cache = {} if cache is None else cache
    try:
        with np.errstate(all="ignore"):  # a limit guard's other branch may overflow; it is selected away
            if "arrays" not in cache:
                cache["arrays"] = truth.arrays_for(case, np.random.SeedSequence(list(seed)))
            if path.expects not in cache:
                cache[path.expects] = expected(path, case, cache["arrays"])
    except SymgradError as exc:  # a configuration the definition does not take: said, not a finding
        return Outcome(case, path.name, dtype, "skipped", message=str(exc), seed=seed)
    arrays, want = cache["arrays"], cache[path.expects]
    try:
        with warnings.catch_warnings():  # the framework's own notes (oneDNN's TF32) are not findings
            warnings.simplefilter("ignore")
            got = _function(path)(case_dict(path, case), arrays, dtype)
    except Exception as exc:  # noqa: BLE001  (a framework refusing a configuration is a finding, not a crash)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return Outcome(case, path.name, dtype, "refused", message=f"{type(exc).__name__}: {first}", seed=seed)
    error, output, errors = compare(got, want, dtype)
    status = "mismatch" if error > tolerance(dtype) else "ok"
    return Outcome(case, path.name, dtype, status, error, output, seed=seed, details=errors)


def shrink(path: Path, outcome: Outcome, budget: int = 300) -> Outcome:
    """The smallest neighbour (repeatedly) on which the path still disagrees."""
    case, best, tries = outcome.case, outcome, 0
    improved = True
    while improved and tries < budget:
        improved = False
        for candidate in smaller(case):
            if not path.applies(candidate):
                continue
            tries += 1
            trial = run_one(path, candidate, outcome.dtype, outcome.seed)
            if trial.status == "mismatch":
                case, best, improved = candidate, trial, True
                break
            if tries >= budget:
                break
    order = 1 if path.expects == "vjp" else 2
    arrays = truth.arrays_for(case, np.random.SeedSequence(list(best.seed)))
    fd = truth.fd_error(case, arrays, 1, np.random.default_rng(0))
    if order == 2:
        fd = max(fd, truth.fd_error(case, arrays, 2, np.random.default_rng(1)))
    outcome.shrunk, outcome.fd_error, outcome.tries = case, fd, tries
    outcome.details = dict(outcome.details, shrunk_error=best.error, shrunk_output=best.output)
    return outcome


def configurations(adapter: Adapter, wanted, budget: int, seed: int) -> list:
    """The systematic edge classes first, then seeded random configurations up to ``budget``."""
    fams = [f for f in families(adapter) if wanted is None or f in wanted]
    edges = edge_cases(fams)
    if budget <= len(edges):
        step = len(edges) / max(budget, 1)
        return [edges[int(k * step)] for k in range(budget)]
    return edges + random_cases(fams, budget - len(edges), np.random.default_rng(seed))


def _work(args):
    adapter, cases, dtypes, seed, start = args
    out = []
    for k, case in enumerate(cases, start=start):
        cache = {}
        for path in adapter.paths:
            if path.applies(case):
                for dtype in dtypes:
                    out.append((k, run_one(path, case, dtype, (seed, k), cache)))
    return out


def audit(adapter: Adapter, wanted=None, budget: int = 2000, seconds: float = None, dtypes=("float64", "float32"),
          seed: int = 0, jobs: int = 1, progress=None) -> dict:
    """Run the audit; returns the results the report is made from."""
    start = time.perf_counter()
    cases = configurations(adapter, wanted, budget, seed)
    chunk = 8
    batches = [(adapter, cases[k:k + chunk], tuple(dtypes), seed, k) for k in range(0, len(cases), chunk)]
    results, done = [], 0
    if jobs > 1:
        # spawned, not forked: a fork of a process whose JAX or torch threads hold locks deadlocks
        pool = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
        futures = [pool.submit(_work, b) for b in batches]
        iterator = (f.result() for f in futures)
    else:
        pool, iterator = None, map(_work, batches)
    try:
        for batch in iterator:
            results += batch
            done += 1
            if progress:
                progress(min(done * chunk, len(cases)), len(cases), sum(o.status == "mismatch" for _, o in results))
            if seconds is not None and time.perf_counter() - start > seconds:
                break
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    results.sort(key=lambda r: r[0])
    tried = cases[:min(done * chunk, len(cases))]  # every configuration considered (some no path takes)
    outcomes = [o for _, o in results]
    paths = {p.name: p for p in adapter.paths}
    mismatches = _distinct([o for o in outcomes if o.status == "mismatch"])
    for o in mismatches:
        shrink(paths[o.path], o)
    return {"adapter": adapter, "cases": tried, "outcomes": outcomes, "mismatches": mismatches,
            "historical": historical(adapter, dtypes, seed), "seconds": time.perf_counter() - start,
            "budget": budget, "seed": seed, "dtypes": tuple(dtypes), "jobs": jobs}


def _distinct(mismatches: list) -> list:
    """One discrepancy per (path, dtype, class): the first found (the others shrink to the same)."""
    seen, out = set(), []
    for o in mismatches:
        key = (o.path, o.dtype, o.case.klass, o.case.family)
        if key not in seen:
            seen.add(key)
            out.append(o)
    return out


#: the historical bug classes as named configurations: (issue, what it was, path name prefix, case, dtype)
HISTORICAL = [
    ("pytorch#51430", "torch.nn.grad.conv2d_weight wrong for groups > 1", "torch.nn.grad",
     Case("conv", "historical", 2, 2, 2, 2, 3, (6, 5), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))), "float64"),
    ("pytorch#50042", "depthwise stride-2 weight gradient", "F.conv*d autograd",
     Case("conv", "historical", 2, 2, 4, 1, 1, (9, 8), (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))), "float32"),
    ("pytorch#25101", "MKLDNN input gradient at stride 3, padding 1", "F.conv*d autograd (oneDNN on)",
     Case("conv", "historical", 2, 2, 1, 3, 4, (10, 11), (3, 3), (3, 3), (1, 1), ((1, 1), (1, 1))), "float32"),
    ("pytorch#13008", "nn.grad.conv2d_input refusing dilation", "torch.nn.grad",
     Case("conv", "historical", 2, 1, 1, 2, 2, (9, 9), (3, 3), (1, 1), (2, 2), ((0, 0), (0, 0))), "float64"),
    ("jax#563", "strided convolution Hessians", "lax.conv_general_dilated vjp of vjp",
     Case("conv_double", "historical", 2, 2, 1, 2, 3, (8, 9), (3, 2), (2, 2), (1, 1), ((1, 1), (0, 0))), "float64"),
    ("mlx#3800", "grouped strided conv2d VJP on Metal", "mlx",
     Case("conv", "historical", 2, 1, 2, 2, 2, (8, 8), (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))), "float32"),
]


#: the second word of the historical cases' seeds (the budget's cases count from 0)
HISTORICAL_SEED = 10 ** 9


def historical(adapter: Adapter, dtypes, seed: int) -> list:
    """Per named bug: present (the path disagrees), absent, refused, or not applicable here."""
    out = []
    for issue, what, prefix, case, dtype in HISTORICAL:
        paths = [p for p in adapter.paths if p.name.startswith(prefix) and p.applies(case)]
        if not paths:
            out.append({"issue": issue, "what": what, "status": "not applicable", "paths": [], "case": case})
            continue
        cache = {}
        runs = [run_one(p, case, dtype, (seed, HISTORICAL_SEED), cache) for p in paths]
        status = ("present" if any(r.status == "mismatch" for r in runs) else
                  "refused" if any(r.status == "refused" for r in runs) else "absent")
        out.append({"issue": issue, "what": what, "status": status, "case": case, "dtype": dtype,
                    "paths": [(r.path, r.status, r.error, r.message) for r in runs]})
    return out


def progress_bar(stream=None):
    """A one-line progress report on a terminal; nothing otherwise.  ``stream`` defaults to the
    standard error of the moment of the call (not of the import: a test's captured stream closes)."""
    stream = sys.stderr if stream is None else stream
    if not stream.isatty():
        return None

    def show(done, total, mismatches):
        stream.write(f"\raudit: {done}/{total} configurations, {mismatches} mismatching runs")
        if done == total:
            stream.write("\n")
        stream.flush()
    return show
