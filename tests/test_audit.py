"""`symgrad audit`: planted bugs in a stand-in framework are each found, shrunk to a small
configuration and reproduced by the script the audit writes; a correct adapter passes; the real
torch and JAX adapters run end to end from the command line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from symgrad.audit import Adapter, Path as AuditPath, audit
from symgrad.audit.cases import Case, edge_cases, smaller
from symgrad.audit.invariants import beyond_rounding
from symgrad.audit.report import markdown, write_reproducers
from symgrad.audit.run import configurations
from symgrad.cli import main
from conftest import HAS_JAX, needs_torch

TESTS = Path(__file__).resolve().parent

VJP = '''import numpy as np
import fake_framework


def run(case, arrays, dtype):
    return fake_framework.conv_vjp(case, arrays["x"], arrays["w"], arrays["b"], arrays["g"], dtype)
'''

TRANSPOSE = '''import numpy as np
import fake_framework


def run(case, arrays, dtype):
    return fake_framework.conv_transpose_vjp(case, arrays["g"], arrays["w"], arrays["ggx"], dtype)
'''


def fake(bugs=True) -> Adapter:
    bug = (lambda name: {"bug": name}) if bugs else (lambda name: {})
    return Adapter("fake", "1.0", (
        AuditPath("fake conv autograd", ("conv",), "vjp", VJP, bug("groups_weight")),
        AuditPath("fake conv_transpose", ("conv_transpose",), "transpose", TRANSPOSE, bug("transpose_crop"),
                  symmetric_padding=True),
        AuditPath("fake conv autograd, float32 kernel", ("conv",), "vjp", VJP, bug("float32_tap")),
    ))


@pytest.fixture(scope="module")
def found():
    sys.path.insert(0, str(TESTS))  # the stand-in framework, as the reproducers import it
    assert len(edge_cases(("conv", "conv_transpose"))) > 60
    return audit(fake(), ("conv", "conv_transpose"), budget=60, seed=3, jobs=2)


def _only(result, path, dtype):
    hits = [o for o in result["mismatches"] if o.path == path and o.dtype == dtype]
    assert hits, (path, dtype, [(o.path, o.dtype) for o in result["mismatches"]])
    return hits


def test_a_planted_bug_is_found_shrunk_and_reproduced(tmp_path):
    """The default suite's slice of the two tests below: one planted bug (the weight gradient wrong
    for groups > 1), found, shrunk to the smallest grouped convolution and reproduced by its script."""
    sys.path.insert(0, str(TESTS))
    adapter = Adapter("fake", "1.0", (AuditPath("fake conv autograd", ("conv",), "vjp", VJP, {"bug": "groups_weight"}),))
    result = audit(adapter, ("conv",), budget=8, seed=3, dtypes=("float64",))
    assert result["mismatches"] and all(o.case.groups > 1 and o.output == "w" for o in result["mismatches"])
    for o in result["mismatches"]:
        c = o.shrunk
        assert (c.groups, c.n, c.cin, c.cout, c.ndim) == (2, 1, 1, 1, 1) and o.fd_error < 1e-6, c
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    for script in write_reproducers(result, tmp_path):
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 1 and "discrepancy reproduced" in proc.stdout, (script.name, proc.stdout, proc.stderr)


@pytest.mark.full
def test_planted_bugs_are_found_and_shrunk(found):
    groups = _only(found, "fake conv autograd", "float64")
    assert all(o.case.groups > 1 and o.output == "w" for o in groups)
    small = min((o.shrunk for o in groups), key=lambda c: sum(c.shapes()["x"]) + sum(c.shapes()["w"]))
    assert small.groups == 2 and small.n == 1 and small.cin == 1 and small.cout == 1 and small.ndim == 1, small
    crop = _only(found, "fake conv_transpose", "float64")
    assert all(o.output == "y" for o in crop) and all(max(o.shrunk.stride) > 1 for o in crop)
    tap = _only(found, "fake conv autograd, float32 kernel", "float32")
    assert all(o.output == "x" and o.shrunk.kernel == (1,) and o.shrunk.length == (1,) for o in tap), tap
    assert not [o for o in found["mismatches"] if o.path.endswith("float32 kernel") and o.dtype == "float64"]
    for o in found["mismatches"]:
        assert o.fd_error < 1e-6  # the truth agrees with finite differences on every reported case
        assert sum(map(len, o.shrunk.shapes().values())) <= sum(map(len, o.case.shapes().values()))


@pytest.mark.full
def test_reproducers_reproduce(found, tmp_path):
    written = write_reproducers(found, tmp_path)
    assert len(written) == len(found["mismatches"]) >= 3
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    for script in written:
        text = script.read_text()
        assert "import symgrad" not in text and "from symgrad" not in text
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 1 and "discrepancy reproduced" in proc.stdout, (script.name, proc.stdout, proc.stderr)
    report = markdown(found)
    assert "## Discrepancies" in report and "fake conv_transpose" in report and "reproducer" in report


SOFTMAX = '''import numpy as np
import fake_framework


def run(case, arrays, dtype):
    return fake_framework.softmax_vjp(case, arrays["x"], arrays["g"], dtype)
'''


def test_a_planted_softmax_bug_is_found_and_a_broken_invariant_reported(tmp_path):
    """A program family: the softmax VJP without its Σ term is found (its truth is the program's backward
    evaluated literally), shrunk and reproduced; a VJP within tolerance whose rows no longer sum to 0
    is not a discrepancy but the derived invariant reports it; a bug that shows on every other call
    is reported as nondeterministic."""
    sys.path.insert(0, str(TESTS))
    adapter = Adapter("fake", "1.0", (
        AuditPath("fake softmax", ("softmax",), "vjp", SOFTMAX, {"bug": "softmax_sum"}),
        AuditPath("fake softmax, shifted", ("softmax",), "vjp", SOFTMAX, {"bug": "softmax_shift"}),
        AuditPath("fake softmax, flaky", ("softmax",), "vjp", SOFTMAX, {"bug": "flaky"})))
    result = audit(adapter, ("softmax",), budget=3, seed=1, dtypes=("float64",))
    hit = _only(result, "fake softmax", "float64")[0]
    assert hit.output == "x" and hit.details["reruns"] == (5, 5) and hit.fd_error < 1e-6
    assert hit.shrunk.shape == (1, 1), hit.shrunk  # one logit: the gradient is 0, the bug gives g
    assert not [o for o in result["mismatches"] if o.path == "fake softmax, shifted"]
    flaky = _only(result, "fake softmax, flaky", "float64")[0]
    assert 0 < flaky.details["reruns"][0] < 5
    row_sum = "Σ ∂ℒ/∂x over axis -1 = 0"  # (not measured where the whole gradient is 0: saturated rows)
    shifted = [o.details["invariants"][row_sum] for o in result["outcomes"]
               if o.path == "fake softmax, shifted" and row_sum in o.details.get("invariants", {})]
    assert shifted and all(beyond_rounding(*v) for v in shifted), shifted
    correct = audit(Adapter("fake", "1.0", (AuditPath("fake softmax", ("softmax",), "vjp", SOFTMAX),)), ("softmax",),
                    budget=3, seed=1, dtypes=("float64",))
    measured = [o.details["invariants"] for o in correct["outcomes"] if o.details.get("invariants")]
    assert measured and not any(beyond_rounding(*v) for m in measured for v in m.values()), measured
    report = markdown(result)
    row = next(line for line in report.splitlines() if line.startswith("| softmax | Σ ∂ℒ/∂x over axis -1 = 0 |"))
    assert "**" in row, row
    assert "(nondeterministic)" in report
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    for script in write_reproducers(result, tmp_path):
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 1 and "discrepancy reproduced" in proc.stdout, (script.name, proc.stdout, proc.stderr)


LAYER_NORM = '''import numpy as np
import fake_framework


def run(case, arrays, dtype):
    return fake_framework.layer_norm_vjp(case, arrays["x"], arrays["weight"], arrays["bias"], arrays["g"], dtype)
'''


def test_a_planted_layer_norm_bug_is_found_and_shrunk():
    """layer_norm's input gradient without the term through the mean: found in float64 and float32 (a
    correct stand-in passes), shrunk to one element (where the true gradient is 0 and the bug's is
    rstd·g·w); the broken invariant (rows no longer sum to 0) is reported too."""
    sys.path.insert(0, str(TESTS))
    options = {"eps": 1e-5}
    result = audit(Adapter("fake", "1.0", (
        AuditPath("fake layer_norm", ("layer_norm",), "vjp", LAYER_NORM, {**options, "bug": "layer_norm_mean"}),
        AuditPath("fake layer_norm, correct", ("layer_norm",), "vjp", LAYER_NORM, options))),
        ("layer_norm",), budget=3, seed=2)
    assert {o.path for o in result["mismatches"]} == {"fake layer_norm"}
    for o in _only(result, "fake layer_norm", "float64") + _only(result, "fake layer_norm", "float32"):
        assert o.output == "x" and o.shrunk.shape == (1, 1) and o.fd_error < 1e-6, o.shrunk
    worst = [v for o in result["outcomes"] if o.path == "fake layer_norm" and o.status == "mismatch"
             for v in o.details.get("invariants", {}).values()]
    assert worst and any(beyond_rounding(*v) for v in worst)


def test_every_family_gets_configurations_whatever_the_budget():
    """The budget is split across the families: with as many configurations as families, each has one;
    the report names what did not run and why."""
    names = ("conv", "matmul", "gelu", "softmax", "layer_norm", "batch_norm", "attention", "cross_entropy")
    adapter = Adapter("fake", "1.0", tuple(AuditPath(f"fake {n}", (n,), "vjp", SOFTMAX) for n in names))
    for budget in (1, len(names), 40):
        cases = configurations(adapter, None, budget, 0)
        assert {c.family for c in cases} == set(names) and len(cases) == max(budget, len(names))
    many = configurations(adapter, None, 400, 0)
    assert all(sum(c.family == n for c in many) >= 10 for n in names)


def test_a_correct_adapter_passes():
    sys.path.insert(0, str(TESTS))
    result = audit(fake(bugs=False), ("conv", "conv_transpose"), budget=40, seed=1)
    assert result["outcomes"] and not result["mismatches"]
    assert all(o.status == "ok" for o in result["outcomes"]), [o for o in result["outcomes"] if o.status != "ok"][:3]


def test_configurations_are_deterministic_and_cover_the_classes():
    a = configurations(fake(), None, 400, 7)
    assert a == configurations(fake(), None, 400, 7) and a != configurations(fake(), None, 400, 8)
    classes = {c.klass for c in a}
    for klass in ("stride > kernel", "stride and dilation share a factor", "trailing inputs never read",
                  "asymmetric padding", "negative padding", "same", "valid", "full", "causal", "groups", "depthwise",
                  "groups x stride", "size-1 axes", "empty batch", "channels_last", "non-contiguous", "large padding",
                  "random"):
        assert klass in classes, klass
    case = Case("conv", "x", 1, 2, 2, 2, 2, (9,), (3,), (2,), (1,), ((1, 1),))
    assert all(c.valid() and c != case for c in smaller(case))


@needs_torch
@pytest.mark.full  # (the default run has the README's audit command)
def test_audit_torch_command(tmp_path, capsys):
    report = tmp_path / "audit.md"
    assert main(["audit", "torch", "--budget", "24", "--dtype", "float64,float32", "-j", "2", "-o", str(report)]) == 0
    text = report.read_text()
    assert text.startswith("# symgrad audit: torch ") and "## Historical bug classes" in text
    for issue in ("pytorch#51430", "pytorch#50042", "pytorch#25101", "pytorch#13008"):
        assert issue in text
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["framework"] == "torch" and data["configurations"] == 24 and data["runs"] > 24


@pytest.mark.skipif(not HAS_JAX, reason="JAX not installed")
def test_audit_jax_command(tmp_path):
    report = tmp_path / "audit.md"
    assert main(["audit", "jax", "--budget", "12", "--ops", "conv,gelu,convolve", "--dtype", "float64",
                 "-o", str(report)]) == 0
    assert "jax#563" in report.read_text()


def test_audit_refuses_what_it_cannot_do(capsys):
    assert main(["audit", "mxnet"]) == 2
    assert "audit: framework must be one of torch, jax" in capsys.readouterr().err
    assert main(["audit", "torch", "--ops", "conv,maxout"]) == 2
    assert "audit: --ops takes" in capsys.readouterr().err


@needs_torch
def test_audit_torch_program_families_and_the_historical_classes_they_hold(tmp_path):
    """The real torch adapter on a program family: layer_norm's third order and nested forward mode
    (pytorch#175754, #196700) are found here, cross-checked against finite differences; avg_pool's classes
    (pytorch#198119, #188344) run whatever --ops asks for, and are absent in this torch."""
    report = tmp_path / "audit.md"
    assert main(["audit", "torch", "--ops", "layer_norm", "--budget", "1", "--dtype", "float64", "-j", "1",
                 "-o", str(report)]) == 0
    text = report.read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| pytorch#")
            or line.startswith("| jax#")}
    assert "| present |" in rows["pytorch#175754"] and "| present |" in rows["pytorch#196700"], rows
    assert "| absent |" in rows["pytorch#198119"] and "| absent |" in rows["pytorch#188344"], rows
    assert "| not applicable |" in rows["jax#40344"]
    data = json.loads(report.with_suffix(".json").read_text())
    third = [d for d in data["discrepancies"] if d["path"] == "F.layer_norm third order"]
    assert third and third[0]["truth_vs_finite_differences"] < 1e-6 and third[0]["reruns_showing_it"] == [5, 5]
    assert "## Not run" in text and "| family conv | not asked for (--ops) |" in text


@needs_torch
def test_rows_beyond_the_literal_grid_take_the_derivations_recognised_forms():
    """log_softmax over 70,000 logits (jax#40409's size): the literal truth's grid is out of reach, so
    the first order is the emitted module's (recognised forms, float64), equal to torch's float64 rule;
    a third order there is skipped with the reason."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from symgrad.audit import truth
    from symgrad.ir import SymgradError
    case = Case("log_softmax", "x", shape=(1, 70000))
    arrays = truth.arrays_for(case, 0)
    x = torch.tensor(arrays["x"], requires_grad=True)
    want, = torch.autograd.grad(F.log_softmax(x, -1), x, torch.tensor(arrays["g"]))
    got = truth.first_order(case, arrays)["x"]
    assert np.abs(got - want.numpy()).max() <= 1e-12 * np.abs(want.numpy()).max()
    with pytest.raises(SymgradError, match="index grid"):
        truth.third_order(case, arrays)


POOL = '''import numpy as np
import fake_framework


def run(case, arrays, dtype):
    return getattr(fake_framework, case["family"] + "_vjp")(case, arrays["x"], arrays["g"], dtype)
'''


def test_a_planted_avg_pool_bug_is_found_and_shrunk():
    """avg_pool's backward dividing a window clipped by ceil_mode by the kernel size (pytorch#198119's
    class): found on the ceil_mode classes only, shrunk to one axis, one channel, ceil_mode kept; a correct
    stand-in passes every configuration, count_include_pad=False and divisor_override included."""
    sys.path.insert(0, str(TESTS))
    result = audit(Adapter("fake", "1.0", (
        AuditPath("fake avg_pool", ("avg_pool",), "vjp", POOL, {"bug": "ceil_divisor"}),
        AuditPath("fake avg_pool, correct", ("avg_pool",), "vjp", POOL))), ("avg_pool",), budget=16, seed=4,
        dtypes=("float64",))
    assert {c.klass for c in result["cases"]} >= {"ceil_mode (pytorch#198119)", "count_include_pad=False",
                                                  "divisor_override"}
    hits = _only(result, "fake avg_pool", "float64")
    assert all(o.case.ceil_mode and o.output == "x" and o.fd_error < 1e-6 for o in hits)
    for o in hits:
        assert o.shrunk.ceil_mode and (o.shrunk.ndim, o.shrunk.n, o.shrunk.cin) == (1, 1, 1), o.shrunk
    assert {o.path for o in result["mismatches"]} == {"fake avg_pool"}
    assert all(o.status == "ok" for o in result["outcomes"] if o.path == "fake avg_pool, correct")


def test_a_path_that_kills_its_process_is_reported_as_crashed(monkeypatch):
    """A max_pool stand-in that aborts on a window without input positions (torch 2.13's max_pool1d
    writes outside its buffer there): with workers, the audit runs on, finds the run that dies by
    running it alone, and reports it as crashed; the other configurations' runs are kept."""
    import symgrad.audit.run as run_module
    from symgrad.audit import spatial_cases
    sys.path.insert(0, str(TESTS))
    monkeypatch.setenv("PYTHONPATH", str(TESTS))  # (the spawned workers import the stand-in)
    cases = [c for c in spatial_cases.edge_cases(("max_pool",)) if c.ndim == 1][:3]
    empty = next(c for c in spatial_cases.edge_cases(("max_pool",)) if c.klass == "a window in the padding only")
    monkeypatch.setattr(run_module, "configurations", lambda *a: cases[:2] + [empty] + cases[2:])
    adapter = Adapter("fake", "1.0", (AuditPath("fake max_pool", ("max_pool",), "vjp", POOL, {"bug": "abort_empty"}),))
    result = audit(adapter, ("max_pool",), budget=4, seed=0, dtypes=("float64",), jobs=2)
    status = {o.case.klass: o.status for o in result["outcomes"]}
    assert status.pop("a window in the padding only") == "crashed" and set(status.values()) == {"ok"}, status
    assert len(result["outcomes"]) == 4
    report = markdown(result)
    assert "## Crashes" in report and "| fake max_pool | float64 | max_pool1d x(2, 3, 1)" in report
