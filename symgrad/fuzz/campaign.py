"""A campaign: ``budget`` random programs from one seed (a share of them large), each checked
(:func:`.run.check`) in worker processes, failures shrunk to a minimal program, and a report:
counts by outcome and by construct, the time distribution, and every failure's reproducer.

Program ``k`` of seed ``s`` is ``generate.program(s * 100003 + k)``: any one can be run again alone
(``symgrad fuzz --seed s --only k``)."""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections import Counter

from . import generate, sizing
from .run import Result, check
from .shrink import shrink

FAILURES = ("wrong", "crash", "hang", "refused")


def program_seed(seed: int, k: int) -> int:
    return seed * 100003 + k


def is_large(k: int, large_every: int) -> bool:
    return large_every > 0 and k % large_every == large_every - 1


def one(job) -> Result:
    """Check program ``k`` of the campaign (``job``: seed, k, large_every, targets, timeout, jax_every): the
    JAX target on every ``jax_every``-th program only (its eager tracing costs four times the rest)."""
    seed, k, large_every, targets, timeout, *rest = job
    jax_every = rest[0] if rest else 1
    if jax_every > 1 and k % jax_every:
        targets = tuple(t for t in targets if t != "jax")
    s = program_seed(seed, k)
    large = is_large(k, large_every)
    tree = generate.program(s, large=large)
    result = check(tree, sizing.sizes(tree, s, large), s, large, targets, timeout)
    result.index = k
    return result


def _same(a: Result, b: Result) -> bool:
    """The same failure: status and check, and for a crash the exception's type and where it rose."""
    if a.status != b.status or a.check != b.check:
        return False
    crash = lambda r: (r.detail.split(":")[0], r.detail.strip().splitlines()[-1].split(" in ")[-1])
    if a.status == "refused":  # the same refusal: its message but for the names and numbers in it
        return _shape(a.detail) == _shape(b.detail)
    return a.status != "crash" or crash(a) == crash(b)


def _shape(message: str) -> str:
    import re
    return re.sub(r"\w+", "w", message.split(":", 1)[-1])[:80]


def minimal(result: Result, targets, timeout: float, budget: int = 120) -> tuple:
    """The failure of ``result`` shrunk: ``(text, sizes, result)``."""
    s = result.seed
    tree = generate.program(s, large=result.large)
    sizes = sizing.sizes(tree, s, result.large)

    def fails(p, z):
        return _same(check(p, z, s, False, targets, timeout), result)
    p, z = shrink(tree, sizes, fails, budget)
    return p.text(), z, check(p, z, s, False, targets, timeout)


def memory_cap(jobs: int) -> int:
    """Bytes of heap one worker may take: four fifths of the machine's memory shared among the workers.
    A program that needs more fails with MemoryError, reported as a crash, instead of the system killing
    its worker (whose program would then never report)."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.8 / max(jobs, 1))


def _cap_memory(limit: int):
    """This process's heap capped at ``limit`` bytes (the soft limit: the hard one is left)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def lost(job, silence: float) -> Result:
    """The result of a program whose worker died with it (no result came back)."""
    seed, k, large_every, *_ = job
    s, large = program_seed(seed, k), is_large(k, large_every)
    tree = generate.program(s, large=large)
    return Result(s, large, tree.text(), sizing.sizes(tree, s, large), "crash", "worker",
                  f"no result in {silence:.0f} s of silence: its worker process died (killed by the system: out of "
                  f"memory?)", index=k)


def collect(results, work, silence: float, progress=None) -> list:
    """The results an iterator of them (``next(timeout)``, as a pool's ``imap_unordered``) gives for
    ``work``; when none comes for ``silence`` seconds, those still missing are :func:`lost`."""
    out = []
    while len(out) < len(work):
        try:
            r = results.next(timeout=silence)
        except (StopIteration, multiprocessing.TimeoutError):  # (a silence: a worker died with its program)
            break
        out.append(r)
        if progress:
            progress(r, len(out), len(work))
    seen = {r.index for r in out}
    return out + [lost(job, silence) for job in work if job[1] not in seen]


def run(seed: int, budget: int, large_every: int = 10, targets=("numpy", "torch", "jax"), timeout: float = 60.0,
        jobs: int = None, shrink_budget: int = 120, progress=None, only=None, jax_every: int = 4) -> dict:
    """Check ``budget`` programs; returns the results and the shrunk failures."""
    jobs = jobs or min(2, os.cpu_count() or 1)
    ks = [only] if only is not None else list(range(budget))
    work = [(seed, k, large_every, tuple(targets), timeout, 1 if only is not None else jax_every) for k in ks]
    results = []
    start = time.perf_counter()
    _cap_memory(memory_cap(1))  # (checks run in this process too: sequentially, and to shrink)
    if jobs > 1 and len(work) > 1:
        # workers forked from a clean server process: a fork of a process whose torch or OpenMP threads
        # already ran can deadlock in them
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["symgrad.fuzz.campaign"])
        with ctx.Pool(jobs, maxtasksperchild=50, initializer=_cap_memory, initargs=(memory_cap(jobs),)) as pool:
            results = collect(pool.imap_unordered(one, work), work, max(600.0, 6 * timeout), progress)
    else:
        for job in work:
            r = one(job)
            results.append(r)
            if progress:
                progress(r, len(results), len(work))
    results.sort(key=lambda r: r.index)
    shrunk = []
    for r in results:
        if r.status in FAILURES and r.check == "worker":  # as found: rerun here, it could take this process too
            shrunk.append((r, r.text, r.sizes, r))
        elif r.status in FAILURES and shrink_budget:
            shrunk.append((r, *minimal(r, targets, timeout, shrink_budget)))
    return {"seed": seed, "results": results, "shrunk": shrunk, "seconds": time.perf_counter() - start,
            "targets": tuple(targets), "large_every": large_every, "jax_every": jax_every}


def _percentile(values, q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def report(campaign: dict) -> str:
    """The campaign as Markdown: outcomes, constructs, times, failures with their reproducers."""
    results = campaign["results"]
    counts = Counter(r.status for r in results)
    large = [r for r in results if r.large]
    jax = f" (jax: one program in {campaign['jax_every']})" if "jax" in campaign["targets"] and \
        campaign.get("jax_every", 1) > 1 else ""
    lines = [f"# symgrad fuzz: seed {campaign['seed']}, {len(results)} programs", "",
             f"Targets: {', '.join(campaign['targets'])}{jax}; one program in {campaign['large_every']} large "
             f"(a tensor of at least 2^16 elements): {len(large)}; wall time {campaign['seconds']:.0f} s.", "",
             "| outcome | programs |", "| --- | --- |"]
    for status in ("ok", "reference", *FAILURES):
        lines.append(f"| {status} | {counts.get(status, 0)} |")
    derive = [r.derive_seconds for r in results if r.derive_seconds]
    total = [r.seconds for r in results]
    lines += ["", "Times (derive + emit with second order; whole check), seconds:", "",
              "| | median | 90th percentile | max |", "| --- | --- | --- | --- |",
              f"| derive + emit | {_percentile(derive, .5):.2f} | {_percentile(derive, .9):.2f} | "
              f"{max(derive, default=0):.2f} |",
              f"| whole check | {_percentile(total, .5):.2f} | {_percentile(total, .9):.2f} | {max(total, default=0):.2f} |",
              "", "| construct | programs | failed |", "| --- | --- | --- |"]
    for name in generate.CONSTRUCTS:
        having = [r for r in results if name in r.tags]
        lines.append(f"| {name} | {len(having)} | {sum(r.status in FAILURES for r in having)} |")
    notes = Counter(n.split(":")[0] for r in results for n in r.notes)
    if notes:
        lines += ["", "Notes (not failures): " + "; ".join(f"{k} ×{v}" for k, v in notes.most_common())]
    if campaign["shrunk"]:
        lines += ["", "## Failures, shrunk", ""]
        for r, text, sizes, again in campaign["shrunk"]:
            lines += [f"### program {r.index} (seed {r.seed}): {r.status} in {r.check or 'derive'}", "",
                      f"{again.detail.strip() or r.detail.strip()}", "", f"sizes {sizes}", "", "```sg", text.rstrip(),
                      "```", ""]
    return "\n".join(lines) + "\n"


def print_progress(r: Result, done: int, total: int):
    mark = {"ok": ".", "reference": "r"}.get(r.status, r.status[0].upper())  # r: the reference erred, not symgrad
    sys.stderr.write(mark)
    if r.status in FAILURES:  # as it happens: rerun alone with --only
        sys.stderr.write(f"\n  program {r.index}: {r.status} in {r.check or 'derive'}: "
                         f"{r.detail.strip().splitlines()[0][:160]}\n")
    if done % 80 == 0 or done == total:
        sys.stderr.write(f" {done}/{total}\n")
    sys.stderr.flush()


__all__ = ["FAILURES", "collect", "lost", "memory_cap", "minimal", "one", "program_seed", "report", "run"]
