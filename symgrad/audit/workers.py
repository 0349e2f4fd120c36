"""Worker processes an audit can lose: a framework that writes outside its buffers aborts the process
running it, which must not end the audit.  :func:`contained` maps a function over items in a pool and
hands an item whose worker died to a fallback; :func:`in_child` runs one call in a fresh process."""
from __future__ import annotations

import concurrent.futures
import multiprocessing


def pool_of(jobs: int):
    """A pool of ``jobs`` processes, spawned, not forked: a fork of a process whose JAX or torch threads
    hold locks deadlocks."""
    return concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))


def contained(fn, items: list, jobs: int, alone):
    """``fn`` of each item, in order, computed in worker processes.  Where a worker dies (the pool
    breaks), the first item not yet returned gets ``alone(item)`` instead and a fresh pool takes the rest."""
    queue = list(items)
    while queue:
        pool = pool_of(jobs)
        try:
            futures = [pool.submit(fn, item) for item in queue]
            for n, future in enumerate(futures):
                try:
                    value = future.result()
                except concurrent.futures.process.BrokenProcessPool:
                    pool.shutdown(cancel_futures=True)
                    yield alone(queue[n])
                    queue = queue[n + 1:]
                    break
                yield value
            else:
                queue = []
        finally:
            pool.shutdown(cancel_futures=True)


def in_child(fn, arg):
    """``(True, fn(arg))`` from a fresh process, or ``(False, None)`` where that process died."""
    pool = pool_of(1)
    try:
        return True, pool.submit(fn, arg).result()
    except concurrent.futures.process.BrokenProcessPool:
        return False, None
    finally:
        pool.shutdown(cancel_futures=True)
