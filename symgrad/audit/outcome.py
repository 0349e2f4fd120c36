"""One path on one configuration in one dtype: its seeded inputs, the derived truth it is held to, the
framework's result and their comparison (errors relative to the largest expected value, in ulps below
float64), as an :class:`Outcome`."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..ir import SymgradError
from . import invariants, truth
from .cases import PROGRAMS, Case
from .paths import Path, expected, output_padding


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
