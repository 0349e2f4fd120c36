"""Worker threads for the NumPy modules' convolutions: a convolution deals its batch chunks (a weight
gradient: its contracted channels) out to as many threads as BLAS may use (OPENBLAS_NUM_THREADS,
OMP_NUM_THREADS, threadpoolctl's limits), and each thread runs its GEMMs on one BLAS thread.

The per-tap GEMMs are small (64 x 3364 x 64 for a ResNet layer), so a second BLAS thread gains
little on them, while the pads, adds and read-outs between them would run on one core; NumPy
releases the GIL in all of these.  BLAS's thread count is set through threadpoolctl, for the whole
process, while a convolution runs (and restored after).  Without threadpoolctl everything runs on
the calling thread.  The CuPy modules carry :mod:`cupy.threads` instead, which defines the same names.
"""
import concurrent.futures
import os

# Batch chunk for the per-tap accumulators, in bytes of output: cache-sized.
_CHUNK_BYTES = 1 << 20
try:
    import threadpoolctl
except ImportError:
    threadpoolctl = None
_BLAS = []  # threadpoolctl's handle on the loaded BLAS libraries, made on first use


def _blas():
    if not _BLAS:
        _BLAS.append(threadpoolctl.ThreadpoolController().select(user_api="blas"))
    return _BLAS[0]


def _workers():
    """How many threads a convolution may use: as many as BLAS may now (1 inside a worker)."""
    if threadpoolctl is None:
        return 1
    return max([lib.num_threads or 1 for lib in _blas().lib_controllers] or [1])


def _split(n, step):
    """range(n) in chunks of at most ``step`` items, dealt out in contiguous runs, one per worker
    thread: (step, [(start, stop) per worker]).  Chunks shrink where that gives every worker one."""
    workers = max(1, min(n, _workers()))
    step = max(1, min(step, n // workers))
    chunks = -(-n // step)
    workers = max(1, min(workers, chunks))
    return step, [(min(n, step * (chunks * k // workers)), min(n, step * (chunks * (k + 1) // workers)))
                  for k in range(workers)]


_POOL = {}  # the worker threads, kept from call to call: {"pid": process, "size": threads, "pool": executor}
# OMP_PROC_BIND=true (or close, spread) binds the calling thread to the first CPU this process may
# use and worker k to the (k+1)-th, as OpenMP binds its threads, so that a scheduler packing short
# bursts of work onto few CPUs cannot put both halves of a split on one core.
_BIND = os.environ.get("OMP_PROC_BIND", "").strip().lower() in ("true", "close", "spread")


def _bind(cpus, index):
    """Bind the calling thread to cpus[index] (wrapping around); best effort."""
    try:
        os.sched_setaffinity(0, {cpus[index % len(cpus)]})
    except (AttributeError, OSError):  # no affinity on this platform, or the CPU is not ours
        pass


def _pool(size):
    """A pool of at least ``size`` threads, made once per process (starting threads per call costs
    as much as a small convolution); a forked child gets a pool of its own."""
    if _POOL.get("pid") != os.getpid() or _POOL["size"] < size:
        cpus = sorted(os.sched_getaffinity(0)) if _BIND and hasattr(os, "sched_getaffinity") else []
        if len(cpus) <= size:  # the caller is bound already (by OpenMP, say): count from 0
            cpus = list(range(os.cpu_count() or 1))
        count = iter(range(1, size + 1))
        _POOL.update(pid=os.getpid(), size=size, cpus=cpus, pool=concurrent.futures.ThreadPoolExecutor(
            size, "symgrad-worker", initializer=(lambda: _bind(cpus, next(count))) if _BIND else None))
    return _POOL["pool"]


def _in_parallel(work, runs):
    """[work(start, stop) for each run]: the first run on the calling thread, each other one on a
    worker thread; BLAS on one thread in each while they run."""
    if len(runs) == 1:
        return [work(*runs[0])]
    pool = _pool(len(runs) - 1)
    if _BIND:
        _bind(_POOL["cpus"], 0)
    with _blas().limit(limits=1):
        others = [pool.submit(work, *run) for run in runs[1:]]
        first = work(*runs[0])
        return [first] + [other.result() for other in others]
