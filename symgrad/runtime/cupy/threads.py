"""The CuPy modules' counterpart of :mod:`threads`: a convolution runs as one stream of kernels
over the whole batch (fewer kernel launches matter more on the GPU than cache reuse)."""

# No batch chunks: the whole batch at once; it also makes a weight gradient one long-K GEMM per
# output position instead of one per contracted channel.
_CHUNK_BYTES = None


def _split(n, step):
    """One run over the whole batch."""
    return step, [(0, n)]


def _in_parallel(work, runs):
    """[work(start, stop) for each run], in turn on the calling thread."""
    return [work(*run) for run in runs]
