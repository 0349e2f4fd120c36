"""Run an audit: every configuration through every path that applies, in float64 and float32,
compared with the derived truth; each discrepancy shrunk to a minimal configuration and cross-checked
against finite differences."""
from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..ir import SymgradError
from . import cases, invariants, program_cases, spatial_cases, truth
from .cases import PROGRAMS, SPATIAL, Case
from .paths import ORDER, Adapter, Path, expected, families, output_padding
from .workers import contained, in_child

#: float64 paths must agree to this relative error (of the largest expected magnitude)
TOLERANCE64 = 1e-10
#: an output is measured relative to its own largest magnitude, or this fraction of the case's largest
#: expected magnitude where that is more: float64 to 1e-13 of the case's scale (1e-3 x the tolerance; the
#: truth itself is exact to ~1e-16 of it, and an output that cancels to 0 carries rounding of that size
#: in any correct rule), lower precisions in ulps of the case's largest value
FLOOR = {"float64": 1e-3}
#: and against this fraction of the upstream gradients' magnitude (other dtypes: all of it, so that their
#: tolerance is in ulps of it): a value that cancels to 0 keeps rounding of ~1e-16 of them (times the terms of
#: a third order) in a correct rule
ABSOLUTE = {"float64": 1e-4}
#: the smallest normal numbers: a value below one has lost its relative precision in that dtype
TINY = {"float64": 2.0 ** -1022, "float32": 2.0 ** -126, "float16": 2.0 ** -14, "bfloat16": 2.0 ** -126}
#: float32 paths: this many units in the last place of float32, at the largest expected magnitude
ULPS32 = 512
EPS32 = float(np.finfo(np.float32).eps)
#: float16 and bfloat16 paths: this many of their ulps, judged against the float64 truth at their own
#: rounding of the inputs (the rounding of an input is not the framework's error)
ULPS_LOW = 64
EPS = {"float32": EPS32, "float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}
#: a discrepancy is run this many times more: the report says when it shows in only some runs
RERUNS = 5


@dataclass
class Outcome:
    """One path on one configuration in one dtype: ``error`` relative to the largest expected value
    (in ulps of the dtype below float64), ``status`` ok, mismatch, refused (the path raised), crashed (it
    killed the process running it) or skipped (symgrad's definition does not take the configuration, or its
    literal truth is out of reach there)."""

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


def floor(want: dict, dtype: str, upstream: float = 0.0) -> float:
    """The scale an output whose truth is 0 or small is measured against: FLOOR times the case's largest
    expected magnitude (a correct rule's rounding there is no discrepancy: layer_norm over one element),
    ABSOLUTE times the upstream gradients' largest magnitude ``upstream`` (a saturated softmax, flat to
    e^-10000, has every derivative 0 but a framework's rounding), and no less than a value whose ulp is
    subnormal in ``dtype``."""
    largest = max((_largest(v) for v in want.values()), default=0.0)
    return max(FLOOR.get(dtype, 1.0) * largest, ABSOLUTE.get(dtype, 1.0) * upstream,
               TINY[dtype] / EPS.get(dtype, 1.0), 1e-300)


def _largest(value) -> float:
    """The largest finite magnitude in ``value`` (0 for none)."""
    value = np.abs(np.asarray(value, dtype=np.float64))
    return float(value[np.isfinite(value)].max(initial=0.0))


def upstream(arrays: dict) -> float:
    """The largest magnitude of the upstream gradients (g, gg<x>, h<n>) of a case's inputs."""
    return max(float(np.abs(v).max(initial=0.0)) for k, v in arrays.items() if k == "g" or k[:2] == "gg" or
               (k[:1] == "h" and k[1:] in arrays))


def compare(got: dict, want: dict, dtype: str, upstream: float = 0.0) -> tuple:
    """(error, output name, per-output errors): the largest over the outputs both give (``upstream``:
    the largest magnitude of the upstream gradients, see :func:`floor`)."""
    errors = {}
    small = floor(want, dtype, upstream)
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
        scale = max(_largest(value), small)
        same = have == value  # (an infinity the truth has too: max_pool over a window of padding only is -inf)
        diff = float(np.abs(have[~same] - value[~same]).max(initial=0.0)) if np.all(np.isfinite(have) | same) \
            else float("inf")
        errors[name] = diff / scale / EPS.get(dtype, 1.0)
    if not errors:
        return 0.0, "", errors
    worst = max(errors, key=errors.get)
    return errors[worst], worst, errors


def tolerance(dtype: str) -> float:
    return {"float64": TOLERANCE64, "float32": ULPS32}.get(dtype, ULPS_LOW)


def rounded(a: np.ndarray, dtype: str) -> np.ndarray:
    """``a`` rounded to float16 or bfloat16 (to nearest, ties to even), as float64."""
    if dtype == "float16":
        return np.asarray(a, np.float16).astype(np.float64)
    bits = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def run_one(path: Path, case: Case, dtype: str, seed: tuple, cache: dict = None) -> Outcome:
    """The path on the case's seeded inputs, compared with the truth (``cache``, shared by the runs
    of one case, keeps the inputs and each kind of expected result: derived once, not per path)."""
    cache = {} if cache is None else cache
    low = dtype in ("float16", "bfloat16")
    try:
        with np.errstate(all="ignore"):  # a limit guard's other branch may overflow; it is selected away
            if "arrays" not in cache:
                cache["arrays"] = truth.arrays_for(case, np.random.SeedSequence(list(seed)))
            if low and ("arrays", dtype) not in cache:
                cache["arrays", dtype] = {k: rounded(v, dtype) for k, v in cache["arrays"].items()}
            key = (path.expects, dtype if low else None)
            if key not in cache:
                cache[key] = expected(path, case, cache["arrays", dtype] if low else cache["arrays"])
            if case.family in PROGRAMS and "invariants" not in cache:
                cache["invariants"] = invariants.derived(case)
    except SymgradError as exc:  # a configuration the definition does not take: said, not a finding
        return Outcome(case, path.name, dtype, "skipped", message=str(exc), seed=seed)
    except MemoryError:
        return Outcome(case, path.name, dtype, "skipped", seed=seed,
                       message=f"{case.family}: the literal truth ({path.expects}) does not fit in memory at these sizes")
    arrays, want = (cache["arrays", dtype] if low else cache["arrays"]), cache[key]
    try:
        with warnings.catch_warnings():  # the framework's own notes (oneDNN's TF32) are not findings
            warnings.simplefilter("ignore")
            got = _function(path)(case_dict(path, case), arrays, dtype)
    except Exception as exc:  # noqa: BLE001  (a framework refusing a configuration is a finding, not a crash)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return Outcome(case, path.name, dtype, "refused", message=f"{type(exc).__name__}: {first}", seed=seed)
    error, output, errors = compare(got, want, dtype, upstream(arrays))
    status = "mismatch" if error > tolerance(dtype) else "ok"
    outcome = Outcome(case, path.name, dtype, status, error, output, seed=seed, details=errors)
    if path.expects == "vjp" and cache.get("invariants"):
        scale = max((float(np.abs(v).max(initial=0.0)) for v in want.values()), default=0.0)
        # (an input whose whole gradient is 0, as layer_norm's over one element, satisfies every one trivially)
        outcome.details["invariants"] = {inv.label(): invariants.violation(got[inv.input], inv, dtype, scale)
                                         for inv in cache["invariants"] if inv.input in got
                                         and float(np.abs(want[inv.input]).max(initial=0.0)) > 1e-12 * scale}
    return outcome


def rerun(path: Path, outcome: Outcome, times: int = RERUNS) -> Outcome:
    """The discrepancy's path run ``times`` more on the same case and inputs: how many show it (a
    framework whose result varies run to run is nondeterministic there, and the report says so)."""
    cache = {}
    shown = sum(run_one(path, outcome.case, outcome.dtype, outcome.seed, cache).status == "mismatch"
                for _ in range(times))
    outcome.details = dict(outcome.details, reruns=(shown, times))
    return outcome


def shrink(path: Path, outcome: Outcome, budget: int = 300) -> Outcome:
    """The smallest neighbour (repeatedly) on which the path still disagrees."""
    case, best, tries = outcome.case, outcome, 0
    improved = True
    while improved and tries < budget:
        improved = False
        for candidate in _group(case.family).smaller(case):
            if not path.applies(candidate):
                continue
            tries += 1
            trial = run_one(path, candidate, outcome.dtype, outcome.seed)
            if trial.status == "mismatch":
                case, best, improved = candidate, trial, True
                break
            if tries >= budget:
                break
    arrays = truth.arrays_for(case, np.random.SeedSequence(list(best.seed)))
    fd = max(truth.fd_error(case, arrays, k, np.random.default_rng(k - 1)) for k in range(1, ORDER[path.expects] + 1))
    outcome.shrunk, outcome.fd_error, outcome.tries = case, fd, tries
    outcome.details = dict(outcome.details, shrunk_error=best.error, shrunk_output=best.output)
    return outcome


def _group(family: str):
    """The module that makes a family's configurations: spatial_cases, program_cases or cases."""
    return spatial_cases if family in SPATIAL else program_cases if family in PROGRAMS else cases


def configurations(adapter: Adapter, wanted, budget: int, seed: int) -> list:
    """The systematic edge classes first, then seeded random configurations up to ``budget``.  The
    budget is split across the families: under the number of edge cases, each family's edge cases are
    taken in turn (every family gets at least one configuration, whatever the budget); above it, the
    random configurations are shared out by family."""
    fams = [f for f in families(adapter) if wanted is None or f in wanted]
    groups = {}
    for f in fams:
        groups.setdefault(_group(f), []).append(f)
    edges = [c for group, members in groups.items() for c in group.edge_cases(members)]
    if budget <= len(edges):  # each family's cases in turn, spread over its classes (every other one first),
        queues = {f: [c for c in edges if c.family == f] for f in fams}  # those some path takes before the rest
        queues = {f: cs[::2] + cs[1::2] for f, cs in queues.items() if cs}
        queues = {f: [c for c in cs if _taken(adapter, c)] + [c for c in cs if not _taken(adapter, c)]
                  for f, cs in queues.items()}
        out, wanted_count = [], max(budget, len(queues))
        while len(out) < wanted_count:
            for f, cs in queues.items():
                if cs and len(out) < wanted_count:
                    out.append(cs.pop(0))
        return out
    rng = np.random.default_rng(seed)
    extra, out, given = budget - len(edges), list(edges), 0
    for k, (group, members) in enumerate(groups.items()):  # shares in proportion to the families
        share = extra - given if k == len(groups) - 1 else extra * len(members) // len(fams)
        out += group.random_cases(members, share, rng)
        given += share
    return out


def _taken(adapter: Adapter, case: Case) -> bool:
    return any(p.applies(case) for p in adapter.paths)


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
    """Run the audit; returns the results the report is made from.  With ``jobs`` > 1 the paths run in
    worker processes, and a path that kills its process (a framework writing outside its buffers) is
    found by running alone and reported as crashed; with 1 they run in this process."""
    from . import historical  # (it runs paths as this module does)
    start = time.perf_counter()
    cases = configurations(adapter, wanted, budget, seed)
    chunk = 8
    batches = [(adapter, cases[k:k + chunk], tuple(dtypes), seed, k) for k in range(0, len(cases), chunk)]
    results, done = [], 0
    iterator = contained(_work, batches, jobs, _work_alone) if jobs > 1 else map(_work, batches)
    try:
        for batch in iterator:
            results += batch
            done += 1
            if progress:
                progress(min(done * chunk, len(cases)), len(cases), sum(o.status == "mismatch" for _, o in results))
            if seconds is not None and time.perf_counter() - start > seconds:
                break
    finally:
        getattr(iterator, "close", lambda: None)()
    results.sort(key=lambda r: r[0])
    tried = cases[:min(done * chunk, len(cases))]  # every configuration considered (some no path takes)
    outcomes = [o for _, o in results]
    paths = {p.name: p for p in adapter.paths}
    mismatches = _distinct([o for o in outcomes if o.status == "mismatch"])
    work = [(paths[o.path], o) for o in mismatches]
    if jobs > 1:  # each discrepancy rerun and shrunk in a worker (a JAX shrink retraces each step; a shrink may crash)
        mismatches = list(contained(_settle, work, jobs, _unsettled))
    else:
        mismatches = [_settle(w) for w in work]
    return {"adapter": adapter, "wanted": None if wanted is None else tuple(wanted), "cases": tried,
            "outcomes": outcomes, "mismatches": mismatches,
            "historical": historical.historical(adapter, dtypes, seed), "seconds": time.perf_counter() - start,
            "budget": budget, "seed": seed, "dtypes": tuple(dtypes), "jobs": jobs}


def _work_alone(batch: tuple) -> list:
    """A batch whose worker died: each case alone in a fresh process, and in the case that dies each
    path and dtype alone, a run that kills its process reported as crashed."""
    adapter, members, dtypes, seed, start = batch
    out = []
    for k, case in enumerate(members, start=start):
        ok, value = in_child(_work, (adapter, [case], dtypes, seed, k))
        if ok:
            out += value
            continue
        if not in_child(_work, (adapter, [], dtypes, seed, k))[0]:  # no worker runs at all: not the path's doing
            raise SymgradError("audit: worker processes die before running anything (a script calling audit() with "
                               "jobs > 1 needs `if __name__ == '__main__':`)")
        for path in [p for p in adapter.paths if p.applies(case)]:
            for dtype in dtypes:
                ok, value = in_child(_run_alone, (path, case, dtype, (seed, k)))
                out.append((k, value if ok else Outcome(
                    case, path.name, dtype, "crashed", seed=(seed, k),
                    message="the process running the path died (run alone in a fresh process: it wrote outside "
                            "its memory or was killed by a signal)")))
    return out


def _run_alone(args: tuple) -> Outcome:
    path, case, dtype, seed = args
    return run_one(path, case, dtype, seed)


def _settle(work: tuple) -> Outcome:
    """A discrepancy rerun (is it deterministic?) and shrunk; returned (it may come from another process)."""
    path, outcome = work
    rerun(path, outcome)
    return shrink(path, outcome)


def _unsettled(work: tuple) -> Outcome:
    """A discrepancy whose rerun or shrink killed its process (a smaller configuration crashes the path):
    as found, its truth cross-checked by finite differences here."""
    path, outcome = work
    arrays = truth.arrays_for(outcome.case, np.random.SeedSequence(list(outcome.seed)))
    outcome.fd_error = max(truth.fd_error(outcome.case, arrays, k, np.random.default_rng(k - 1))
                           for k in range(1, ORDER[path.expects] + 1))
    outcome.details = dict(outcome.details, unsettled="rerunning or shrinking it killed the worker process")
    return outcome


def _distinct(mismatches: list) -> list:
    """One discrepancy per (path, dtype, class): the first found (the others shrink to the same)."""
    seen, out = set(), []
    for o in mismatches:
        key = (o.path, o.dtype, o.case.klass, o.case.family)
        if key not in seen:
            seen.add(key)
            out.append(o)
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
