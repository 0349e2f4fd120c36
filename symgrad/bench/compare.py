"""``symgrad bench … --compare REF``: this checkout's emitted module against the one the commit REF emits
for the same command, timed side by side in one process (the two taking turns, as bench's sides do), so a
regression shows before it lands.  REF's module is made by REF's own ``symgrad emit`` from a temporary
export of that commit (``git archive``); nothing of REF is imported here."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ..ir import SymgradError


def repository() -> Path:
    """The git checkout of symgrad: the one the command runs in, else the one this package lies in."""
    for where in (Path.cwd(), Path(__file__).resolve().parent):
        proc = subprocess.run(["git", "-C", str(where), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
        if proc.returncode == 0 and (Path(proc.stdout.strip()) / "symgrad" / "__init__.py").exists():
            return Path(proc.stdout.strip())
    raise SymgradError("bench --compare: run it in a git checkout of symgrad (the commits to compare come from there)")


def emitted_at(ref: str, emit_argv: list) -> str:
    """The module ``symgrad emit <emit_argv>`` writes at commit ``ref``."""
    root = repository()
    archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", ref], capture_output=True)
    if archive.returncode:
        raise SymgradError(f"bench --compare: no commit {ref!r} here ({archive.stderr.decode().strip()})")
    with tempfile.TemporaryDirectory(prefix="symgrad-ref-") as folder:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
        return _emitted(emit_argv, ref, folder, dict(os.environ, PYTHONPATH=folder))


def emitted_here(emit_argv: list) -> str:
    """The module ``symgrad emit <emit_argv>`` writes with this checkout (in a process of its own, as REF's)."""
    with tempfile.TemporaryDirectory(prefix="symgrad-here-") as folder:
        return _emitted(emit_argv, "this checkout", folder)


def _emitted(emit_argv: list, what: str, folder: str, env: dict = None) -> str:
    out = Path(folder) / "module.py"
    proc = subprocess.run([sys.executable, "-m", "symgrad.cli", "emit", *emit_argv, "-o", str(out)],
                          cwd=folder if env else None, env=env, capture_output=True, text=True)
    if proc.returncode:
        lines = proc.stderr.strip().splitlines() or ["no message"]
        raise SymgradError(f"bench --compare: symgrad emit at {what} failed: {lines[-1]}")
    return out.read_text()


def run_compare(task: dict) -> dict:
    """Child side: forward and forward + backward of both modules, taking turns."""
    import numpy as np
    from symgrad.emit import load
    from .cpu import _interleaved_times, _quartiles, _warm_blas
    mine, theirs = load(task["source"], "mine"), load(task["reference"], "theirs")
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s, dtype=np.dtype(task.get("dtype", "float32"))) for s in task["shapes"]]
    g = np.ones(mine.forward(*arrays).shape, arrays[0].dtype)
    _warm_blas()
    pause = 0.2 if task["threads"] > 1 else 0.0
    out = {}
    for method, call in (("forward", lambda m: m.forward(*arrays)),
                         ("forward+backward", lambda m: (m.forward(*arrays), m.backward(g, *arrays)))):
        times = _interleaved_times({"mine": lambda: call(mine), "theirs": lambda: call(theirs)}, task["repeats"],
                                   task["warmup"], pause=pause)
        out[method] = {"mine": _quartiles(times["mine"])[1], "theirs": _quartiles(times["theirs"])[1],
                       "ratio": _quartiles([a / b for a, b in zip(times["mine"], times["theirs"])])}
    return out


def compare(source: str, ref: str, emit_argv: list, shapes: list, threads: int, repeats: int,
            dtype: str = "float32") -> dict:
    """This checkout's module ``source`` against REF's for the same ``emit_argv``, at ``shapes``
    (input order) in ``dtype``, ``threads`` threads."""
    from .cpu import _child
    task = {"mode": "compare", "source": source, "reference": emitted_at(ref, emit_argv), "shapes": shapes,
            "threads": threads, "repeats": repeats, "warmup": 2, "dtype": dtype}
    return _child(task, "symgrad.bench.compare")


def format_compare(name: str, ref: str, threads: int, result: dict, dtype: str = "float32") -> str:
    kind = "" if dtype == "float32" else f", {dtype}"
    lines = [f"{name} ({threads} thread{'s' if threads > 1 else ''}{kind}): this checkout against {ref}"]
    for method, r in result.items():
        low, mid, high = r["ratio"]
        lines.append(f"  {method:18s} this {r['mine'] * 1e3:9.2f} ms   {ref} {r['theirs'] * 1e3:9.2f} ms   "
                     f"ratio {mid:5.2f} (quartiles {low:.2f}-{high:.2f}; < 1: this checkout is faster)")
    return "\n".join(lines)


__all__ = ["compare", "emitted_at", "emitted_here", "format_compare"]


if __name__ == "__main__":
    import json
    print(json.dumps(run_compare(json.loads(sys.stdin.read()))))
