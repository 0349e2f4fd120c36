"""The audit report (Markdown and JSON) and the standalone reproducer scripts of its discrepancies."""
from __future__ import annotations

import collections
import json
import re
from pathlib import Path as FilePath

import numpy as np

from ..version import __version__
from . import truth
from .paths import machine
from .run import EPS32, ULPS32, TOLERANCE64, case_dict, tolerance


def _error(value: float, dtype: str) -> str:
    if dtype == "float32":
        return f"{value:.1f} ulps" if value < 1e5 else f"{value:.2e} ulps"
    return f"{value:.1e}"


def _literal(a: np.ndarray) -> str:
    return f"np.array({np.asarray(a, dtype=np.float64).tolist()!r}).reshape({tuple(np.shape(a))!r})"


def reproducer(adapter, outcome, path) -> str:
    """A script that uses only the framework and NumPy: the path's own code on the shrunk case, the
    inputs and the derived expectation as literals; exits 1 while the discrepancy is there."""
    case = outcome.shrunk or outcome.case
    arrays = truth.arrays_for(case, np.random.SeedSequence(list(outcome.seed)))
    from .paths import expected
    want = expected(path, case, arrays)
    lines = [
        f'"""Reproducer (symgrad audit): {adapter.name} {adapter.version}, {path.name}, {outcome.dtype}.',
        "",
        f"Configuration: {case.label()}.",
        "EXPECTED is the gradient symgrad derives from the op's definition, evaluated in float64 and",
        f"cross-checked against central finite differences (largest relative difference {outcome.fd_error:.1e}).",
        "Exits 1 while the framework disagrees beyond the tolerance.",
        '"""',
        path.source.rstrip(),
        "",
        "",
        f"CASE = {case_dict(path, case)!r}",
        f"DTYPE = {outcome.dtype!r}",
        f"TOLERANCE = {tolerance(outcome.dtype)!r}  # " + ("float32 ulps of the largest expected value"
                                                          if outcome.dtype == "float32" else "relative"),
        "ARRAYS = {",
        *[f"    {k!r}: {_literal(v)}," for k, v in arrays.items()],
        "}",
        "EXPECTED = {",
        *[f"    {k!r}: {_literal(v)}," for k, v in want.items()],
        "}",
        "",
        "",
        "def as_float64(value):",
        "    if hasattr(value, 'detach'):",
        "        value = value.detach().cpu().double()",
        "    return np.asarray(value, dtype=np.float64)",
        "",
        "",
        "got = run(CASE, ARRAYS, DTYPE)",
        "worst = 0.0",
        "for name, want in EXPECTED.items():",
        "    if name not in got:",
        "        continue",
        "    have = as_float64(got[name]).reshape(want.shape)",
        "    error = np.abs(have - want).max(initial=0.0) / max(np.abs(want).max(initial=0.0), 1e-300)",
        "    error = error if np.all(np.isfinite(have)) else np.inf  # NaN or inf where numbers are expected",
        f"    error = error / {EPS32!r} if DTYPE == 'float32' else error",
        "    worst = max(worst, error)",
        "    print(f'{name}: error {error:.3g}')",
        "print('discrepancy reproduced' if worst > TOLERANCE else 'no discrepancy')",
        "raise SystemExit(1 if worst > TOLERANCE else 0)",
    ]
    return "\n".join(lines) + "\n"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def write_reproducers(result: dict, directory: FilePath) -> list:
    adapter = result["adapter"]
    paths = {p.name: p for p in adapter.paths}
    written = []
    if result["mismatches"]:
        directory.mkdir(parents=True, exist_ok=True)
    for k, o in enumerate(result["mismatches"], start=1):
        file = directory / f"{k:03d}_{_slug(o.path)}_{o.dtype}.py"
        file.write_text(reproducer(adapter, o, paths[o.path]))
        o.reproducer = str(file)
        written.append(file)
    return written


def _summary(result: dict) -> tuple:
    classes = collections.defaultdict(lambda: collections.Counter())
    for case in result["cases"]:
        classes[(case.family, case.klass)]["configurations"] += 1
    per_path = collections.defaultdict(lambda: {"runs": 0, "mismatch": 0, "refused": 0, "worst": {}})
    for o in result["outcomes"]:
        classes[(o.case.family, o.case.klass)][o.status] += 1
        entry = per_path[o.path]
        entry["runs"] += 1
        entry[o.status] = entry.get(o.status, 0) + 1
        if o.status != "refused":
            entry["worst"][o.dtype] = max(entry["worst"].get(o.dtype, 0.0), o.error)
    return classes, per_path


def markdown(result: dict) -> str:
    adapter = result["adapter"]
    classes, per_path = _summary(result)
    runs = len(result["outcomes"])
    lines = [f"# symgrad audit: {adapter.name} {adapter.version}", "",
             f"symgrad {__version__}; {machine()}; seed {result['seed']}, budget {result['budget']}, "
             f"dtypes {', '.join(result['dtypes'])}, {result['jobs']} job(s); {len(result['cases'])} configurations, "
             f"{runs} path runs in {result['seconds']:.0f} s.", "",
             "The truth is symgrad's derived gradient (first and second order) evaluated in float64 from the "
             "op's definition; every reported discrepancy's truth is cross-checked against central finite "
             f"differences. Tolerance: float64 paths {TOLERANCE64:g} relative to the largest expected magnitude; "
             f"float32 paths {ULPS32} float32 ulps of it (errors below are given in those units).", "",
             "## Discrepancies", ""]
    if not result["mismatches"]:
        lines += ["None: every path agreed with the derived truth on every configuration it took.", ""]
    else:
        lines += ["| path | dtype | found on | shrunk to | error | truth vs finite differences | reproducer |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for o in result["mismatches"]:
            lines.append(f"| {o.path} | {o.dtype} | {o.case.label()} ({o.case.klass}) | {(o.shrunk or o.case).label()} | "
                         f"{_error(o.error, o.dtype)} in {o.output} | {o.fd_error:.1e} | `{o.reproducer or '-'}` |")
        lines.append("")
    lines += ["## Historical bug classes", "", "| issue | bug | status here | paths |", "| --- | --- | --- | --- |"]
    for h in result["historical"]:
        said = "; ".join(f"{p}: {s}" + (f" ({m})" if m else "") for p, s, _, m in h["paths"]) or "-"
        lines.append(f"| {h['issue']} | {h['what']} | {h['status']} | {said} |")
    lines += ["", "## Paths", "", "| path | runs | mismatches | refused | worst float64 | worst float32 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name, e in per_path.items():
        w64, w32 = e["worst"].get("float64"), e["worst"].get("float32")
        lines.append(f"| {name} | {e['runs']} | {e.get('mismatch', 0)} | {e.get('refused', 0)} | "
                     f"{'-' if w64 is None else _error(w64, 'float64')} | {'-' if w32 is None else _error(w32, 'float32')} |")
    lines += ["", "## Configurations per class", "", "| family | class | configurations | runs ok | mismatches | refused |",
              "| --- | --- | --- | --- | --- | --- |"]
    for (family, klass), c in sorted(classes.items()):
        lines.append(f"| {family} | {klass} | {c['configurations']} | {c['ok']} | {c['mismatch']} | {c['refused']} |")
    skipped = collections.Counter(o.message for o in result["outcomes"] if o.status == "skipped")
    if skipped:
        lines += ["", "## Skipped (symgrad's definition does not take the configuration)", "", "| reason | runs |",
                  "| --- | --- |"]
        lines += [f"| {message.replace('|', '/')} | {count} |" for message, count in sorted(skipped.items())]
    refusals = collections.Counter((o.path, o.message) for o in result["outcomes"] if o.status == "refused")
    if refusals:
        lines += ["", "## Refusals (the path raised; not counted as discrepancies)", "", "| path | message | runs |",
                  "| --- | --- | --- |"]
        for (path, message), count in sorted(refusals.items()):
            lines.append(f"| {path} | {message.replace('|', '/')} | {count} |")
    return "\n".join(lines) + "\n"


def as_json(result: dict) -> str:
    adapter = result["adapter"]
    classes, per_path = _summary(result)
    return json.dumps({
        "framework": adapter.name, "version": adapter.version, "symgrad": __version__, "platform": machine(),
        "seed": result["seed"], "budget": result["budget"], "dtypes": list(result["dtypes"]), "jobs": result["jobs"],
        "seconds": round(result["seconds"], 1), "configurations": len(result["cases"]), "runs": len(result["outcomes"]),
        "tolerance": {"float64_relative": TOLERANCE64, "float32_ulps": ULPS32},
        "discrepancies": [{"path": o.path, "dtype": o.dtype, "class": o.case.klass, "found_on": o.case.as_dict(),
                           "shrunk_to": (o.shrunk or o.case).as_dict(), "error": o.error, "output": o.output,
                           "truth_vs_finite_differences": o.fd_error, "reproducer": o.reproducer}
                          for o in result["mismatches"]],
        "historical": [{k: (v.as_dict() if k == "case" else v) for k, v in h.items()} for h in result["historical"]],
        "paths": per_path,
        "classes": [{"family": f, "class": k, **c} for (f, k), c in sorted(classes.items())],
    }, indent=2, default=str)
