"""The audit report (Markdown and JSON) and the standalone reproducer scripts of its discrepancies."""
from __future__ import annotations

import collections
import json
import re
from pathlib import Path as FilePath

import numpy as np

from ..version import __version__
from . import invariants, truth
from .paths import families, machine
from .outcome import EPS, RERUNS, ULPS32, ULPS_LOW, TOLERANCE64, case_dict, floor, tolerance, upstream


def _error(value: float, dtype: str) -> str:
    if dtype != "float64":
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
        f"Runs the path {RERUNS} times (a framework may differ run to run) and exits 1 if any run disagrees",
        "beyond the tolerance.",
        '"""',
        path.source.rstrip(),
        "",
        "",
        f"CASE = {case_dict(path, case)!r}",
        f"DTYPE = {outcome.dtype!r}",
        f"TOLERANCE = {tolerance(outcome.dtype)!r}  # " + (f"{outcome.dtype} ulps of the largest expected value"
                                                          if outcome.dtype != "float64" else "relative"),
        f"EPS = {EPS.get(outcome.dtype, 1.0)!r}  # the unit of the errors: {outcome.dtype}'s ulp at 1 (1.0: relative)",
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
        f"FLOOR = {floor(want, outcome.dtype, upstream(arrays))!r}  # the scale an output that is 0 or small is measured against",
        "",
        "",
        "def worst_error():",
        "    got, worst = run(CASE, ARRAYS, DTYPE), 0.0",
        "    for name, want in EXPECTED.items():",
        "        if name not in got:",
        "            continue",
        "        have = as_float64(got[name]).reshape(want.shape)",
        "        error = np.abs(have - want).max(initial=0.0) / max(np.abs(want).max(initial=0.0), FLOOR)",
        "        error = error if np.all(np.isfinite(have)) else np.inf  # NaN or inf where numbers are expected",
        "        worst = max(worst, error / EPS)",
        "        print(f'  {name}: error {error / EPS:.3g}')",
        "    return worst",
        "",
        "",
        "shown = 0",
        f"for k in range({RERUNS}):",
        "    print(f'run {k + 1}:')",
        "    shown += worst_error() > TOLERANCE",
        f"print(f'discrepancy reproduced in {{shown}} of {RERUNS} runs' if shown else 'no discrepancy')",
        "raise SystemExit(1 if shown else 0)",
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
             "The truth is symgrad's derived gradient (first, second and third order) evaluated in float64 from the "
             "op's definition; every reported discrepancy's truth is cross-checked against central finite "
             f"differences. Tolerance: float64 paths {TOLERANCE64:g} relative to the largest expected magnitude; "
             f"float32 paths {ULPS32} float32 ulps of it, float16 and bfloat16 paths {ULPS_LOW} of their ulps "
             "(judged against the truth at their own rounding of the inputs); errors below are in those units. "
             f"Each discrepancy is run {RERUNS} more times: one that shows in only some runs is nondeterministic.", "",
             "## Discrepancies", ""]
    if not result["mismatches"]:
        lines += ["None: every path agreed with the derived truth on every configuration it took.", ""]
    else:
        lines += ["| path | dtype | found on | shrunk to | error | reruns showing it | truth vs finite differences | "
                  "reproducer |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for o in result["mismatches"]:
            shown, times = o.details.get("reruns", (None, None))
            said = "-" if shown is None else (f"{shown} of {times}" + (" (nondeterministic)" if shown < times else ""))
            said = "its rerun or shrink killed the process" if "unsettled" in o.details else said
            lines.append(f"| {o.path} | {o.dtype} | {o.case.label()} ({o.case.klass}) | {(o.shrunk or o.case).label()} | "
                         f"{_error(o.error, o.dtype)} in {o.output} | {said} | {o.fd_error:.1e} | `{o.reproducer or '-'}` |")
        lines.append("")
    crashes = collections.Counter((o.path, o.dtype, o.case.label(), o.case.klass) for o in result["outcomes"]
                                  if o.status == "crashed")
    if crashes:
        lines += ["## Crashes", "", "The path killed the process running it (run alone in a fresh process: it wrote "
                  "outside its memory or was killed by a signal). Each is a defect whatever its values.", "",
                  "| path | dtype | configuration | class |", "| --- | --- | --- | --- |"]
        lines += [f"| {path} | {dtype} | {label} | {klass} |" for path, dtype, label, klass in sorted(crashes)] + [""]
    lines += ["## Historical bug classes", "", "| issue | bug | status here | paths |", "| --- | --- | --- | --- |"]
    for h in result["historical"]:
        said = "; ".join(f"{p}: {s}" + (f" ({m})" if m else "") for p, s, _, m in h["paths"]) or "-"
        lines.append(f"| {h['issue']} | {h['what']} | {h['status']} | {said} |")
    dtypes = result["dtypes"]
    lines += ["", "## Paths", "", "| path | runs | mismatches | refused | " + " | ".join(f"worst {d}" for d in dtypes) + " |",
              "| --- | --- | --- | --- | " + " | ".join("---" for _ in dtypes) + " |"]
    for path in adapter.paths:
        e = per_path.get(path.name)
        if e is None:
            continue
        worst = [e["worst"].get(d) for d in dtypes]
        lines.append(f"| {path.name} | {e['runs']} | {e.get('mismatch', 0)} | {e.get('refused', 0)} | "
                     + " | ".join("-" if w is None else _error(w, d) for w, d in zip(worst, dtypes)) + " |")
    lines += _invariants(result) + _not_run(result, per_path)
    lines += ["", "## Configurations per class", "", "| family | class | configurations | runs ok | mismatches | refused | note |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for (family, klass), c in sorted(classes.items()):
        runs = c["ok"] + c["mismatch"] + c["refused"] + c["skipped"] + c["crashed"]
        note = "" if runs else _why_no_runs(adapter, [case for case in result["cases"] if (case.family, case.klass) == (family, klass)])
        note = f"{c['crashed']} crashed" + (f"; {note}" if note else "") if c["crashed"] else note
        lines.append(f"| {family} | {klass} | {c['configurations']} | {c['ok']} | {c['mismatch']} | {c['refused']} | {note} |")
    skipped = collections.Counter(o.message for o in result["outcomes"] if o.status == "skipped")
    if skipped:
        lines += ["", "## Skipped (the definition does not take the configuration, or its truth is out of reach there)",
                  "", "| reason | runs |", "| --- | --- |"]
        lines += [f"| {message.replace('|', '/')} | {count} |" for message, count in sorted(skipped.items())]
    refusals = collections.Counter((o.path, o.message) for o in result["outcomes"] if o.status == "refused")
    if refusals:
        lines += ["", "## Refusals (the path raised; not counted as discrepancies)", "", "| path | message | runs |",
                  "| --- | --- | --- |"]
        for (path, message), count in sorted(refusals.items()):
            lines.append(f"| {path} | {message.replace('|', '/')} | {count} |")
    return "\n".join(lines) + "\n"


def _invariants(result: dict) -> list:
    """The derived invariants and how far the framework's gradients are from them: per dtype, the worst
    over every path and run, with the path that gave it."""
    dtypes, worst = result["dtypes"], {}
    for o in result["outcomes"]:
        for label, (ulps, n) in o.details.get("invariants", {}).items():
            key = (o.case.family, label, o.dtype)
            if key not in worst or ulps > worst[key][0]:
                worst[key] = (ulps, n, o.path)
    if not worst:
        return []
    lines = ["", "## Invariants", "", "Derived from each definition: a constant shift of an input along these axes "
             "leaves the output unchanged, so every gradient of it sums to 0 there. Given: the size of that sum "
             "relative to the sum of magnitudes, in ulps of the dtype, worst over every path and run (whether or not "
             "the values were within tolerance), and the path; **bold** where no rounding explains it (more than "
             "16 ulps per element summed).", "",
             "| family | invariant | " + " | ".join(dtypes) + " |", "| --- | --- | " + " | ".join("---" for _ in dtypes) + " |"]
    for family, label in sorted({(f, lab) for f, lab, _ in worst}):
        cells = []
        for dtype in dtypes:
            if (family, label, dtype) not in worst:
                cells.append("-")
                continue
            ulps, n, path = worst[family, label, dtype]
            said = f"{ulps:.3g} ulps ({path})"
            cells.append(f"**{said}**" if invariants.beyond_rounding(ulps, n) else said)
        lines.append(f"| {family} | {label} | " + " | ".join(cells) + " |")
    return lines


def _why_no_runs(adapter, cases) -> str:
    reasons = sorted({p.why_not(c) for c in cases for p in adapter.paths if c.family in p.families} - {""})
    return "no path takes it: " + "; ".join(reasons) if reasons else "no path of this framework has the family"


def _not_run(result: dict, per_path: dict) -> list:
    """The families and paths that got no run, and why."""
    adapter, tried = result["adapter"], {c.family for c in result["cases"]}
    wanted = result.get("wanted")
    lines = []
    for family in families(adapter):
        if family not in tried:
            why = ("not asked for (--ops)" if wanted is not None and family not in wanted else
                   "the time limit (--time) came first")
            lines.append(f"| family {family} | {why} |")
    for path in adapter.paths:
        if path.name not in per_path and set(path.families) & tried:
            lines.append(f"| {path.name} | " + _why_no_runs(adapter, [c for c in result["cases"] if c.family in path.families])
                         .replace("no path takes it", "it took none of its family's configurations") + " |")
    if not lines:
        return ["", "## Not run", "", "Every family and every path of this framework ran at least once."]
    return ["", "## Not run", "", "| what | why |", "| --- | --- |"] + lines


def as_json(result: dict) -> str:
    adapter = result["adapter"]
    classes, per_path = _summary(result)
    return json.dumps({
        "framework": adapter.name, "version": adapter.version, "symgrad": __version__, "platform": machine(),
        "seed": result["seed"], "budget": result["budget"], "dtypes": list(result["dtypes"]), "jobs": result["jobs"],
        "seconds": round(result["seconds"], 1), "configurations": len(result["cases"]), "runs": len(result["outcomes"]),
        "tolerance": {"float64_relative": TOLERANCE64, "float32_ulps": ULPS32},
        "discrepancies": [{"path": o.path, "dtype": o.dtype, "class": o.case.klass, "found_on": o.case.as_dict(),
                           "reruns_showing_it": o.details.get("reruns"),
                           "shrunk_to": (o.shrunk or o.case).as_dict(), "error": o.error, "output": o.output,
                           "truth_vs_finite_differences": o.fd_error, "reproducer": o.reproducer}
                          for o in result["mismatches"]],
        "crashes": [{"path": o.path, "dtype": o.dtype, "class": o.case.klass, "configuration": o.case.as_dict()}
                    for o in result["outcomes"] if o.status == "crashed"],
        "historical": [{k: (v.as_dict() if k == "case" and v is not None else v) for k, v in h.items()}
                       for h in result["historical"]],
        "paths": per_path,
        "classes": [{"family": f, "class": k, **c} for (f, k), c in sorted(classes.items())],
    }, indent=2, default=str)
