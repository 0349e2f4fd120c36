"""``symgrad bench --suite --programs``: the programs' suite of :mod:`suite`, then the size sweep: the row
programs' forward + backward against torch eager's at rows 64 ... 65,536 x width 64 ... 4,096, each
dtype and thread count, timed as every benchmark is (:func:`symgrad.bench.cpu.bench`, interleaved in a
child process)."""
from __future__ import annotations

from . import cpu, suite


#: the programs of the size sweep (``bench --suite --programs``), each over rows x width
SWEEP_PROGRAMS = ("softmax", "log_softmax", "layer_norm", "rms_norm", "cross_entropy")
#: rows x width, 64 ... 65,536 rows and 64 ... 4,096 wide, up to 2^24 elements
SWEEP_SIZES = ((64, 64), (64, 1024), (64, 4096), (1024, 64), (1024, 1024), (1024, 4096), (16384, 64),
               (16384, 1024), (65536, 64), (65536, 256))
SWEEP_DTYPES = ("float32", "float64")


def sweep_shapes(name: str, rows: int, width: int) -> dict:
    """The inputs of a sweep program at ``rows`` x ``width``."""
    import symgrad
    shapes = {"x": (rows, width), "t": (rows, width), "weight": (width,), "bias": (width,)}
    return {t.name: shapes[t.name] for t in symgrad.ops.build(name).inputs}


def programs_suite(threads=(1, 2), repeats=9, progress=print, target="module") -> str:
    """``bench --suite --programs``: the programs' suite (:func:`suite.suite`), then the size sweep."""
    return (suite.suite(threads=threads, repeats=repeats, progress=progress, target=target, programs=True) + "\n"
            + sweep(threads=threads, repeats=max(3, repeats // 2), progress=progress))


def sweep(threads=(1, 2), repeats=5, progress=print, programs=SWEEP_PROGRAMS, sizes=SWEEP_SIZES,
          dtypes=SWEEP_DTYPES) -> str:
    """The row programs' forward + backward against torch eager's at every size of the sweep, each
    dtype and thread count (no peak memory, no torch.compile: a compile per size would take longer than
    the sweep), as a Markdown table of fwd+bwd ratios (median, quartiles)."""
    runs = [(name, size, dtype, t) for name in programs for size in sizes for dtype in dtypes for t in threads]
    progress(f"bench: size sweep, {len(runs)} runs")
    cells = {}
    for k, (name, (rows, width), dtype, t) in enumerate(runs, start=1):
        r = cpu.bench(name, {}, sweep_shapes(name, rows, width), threads=t, repeats=repeats, dtype=dtype, compile=False,
                  memory=False, methods=("forward+backward",))
        low, mid, high = r["ratio"]["forward+backward"]
        cells[name, rows, width, dtype, t] = f"{mid:.2f} ({low:.2f}-{high:.2f})"
        progress(f"[{k}/{len(runs)}] {name} {rows}x{width} {dtype} {t} thread{'s' if t > 1 else ''}: fwd+bwd {mid:.2f}")
    columns = [(dtype, t) for dtype in dtypes for t in threads]
    lines = ["## Size sweep: forward + backward, emitted module / torch eager", "",
             f"Each program at rows x width; median of {repeats} interleaved pairs (quartiles); vjp + pullback "
             f"against torch's call under autograd; {cpu.heap_text()}.", "",
             "| program | rows x width | " + " | ".join(f"{d}, {t} thread{'s' if t > 1 else ''}" for d, t in columns)
             + " |", "| --- " * (2 + len(columns)) + "|"]
    for name in programs:
        for rows, width in sizes:
            lines.append(f"| {name} | {rows} x {width} | "
                         + " | ".join(cells[name, rows, width, d, t] for d, t in columns) + " |")
    return "\n".join(lines) + "\n"
