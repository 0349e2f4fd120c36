"""Run an audit: every configuration through every path that applies, in float64 and float32,
compared with the derived truth; each discrepancy shrunk to a minimal configuration and cross-checked
against finite differences."""
from __future__ import annotations

import sys
import time

import numpy as np

from ..ir import SymgradError
from . import cases, historical, program_cases, spatial_cases, truth
from .cases import PROGRAMS, SPATIAL
from .outcome import RERUNS, Outcome, run_one
from .paths import ORDER, Adapter, Path, families
from .workers import contained, in_child


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
        queues = {f: sorted(cs, key=lambda c: not any(p.applies(c) for p in adapter.paths))  # (stable)
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
          seed: int = 0, jobs: int = 1, progress=None, workers: bool = None) -> dict:
    """Run the audit; returns the results the report is made from.  With ``workers`` (default: ``jobs``
    > 1) the paths run in ``jobs`` worker processes, and a path that kills its process (a framework
    writing outside its buffers) is found by running alone and reported as crashed; without, in this
    process."""
    workers = jobs > 1 if workers is None else workers
    start = time.perf_counter()
    cases = configurations(adapter, wanted, budget, seed)
    chunk = 8
    batches = [(adapter, cases[k:k + chunk], tuple(dtypes), seed, k) for k in range(0, len(cases), chunk)]
    results, done = [], 0
    iterator = contained(_work, batches, jobs, _work_alone) if workers else map(_work, batches)
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
    if workers:  # each discrepancy rerun and shrunk in a worker (a JAX shrink retraces each step; a shrink may crash)
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
                               "workers needs `if __name__ == '__main__':`)")
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
