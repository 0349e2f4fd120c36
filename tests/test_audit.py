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
    assert main(["audit", "torch", "--ops", "conv,softmax"]) == 2
    assert "audit: --ops takes" in capsys.readouterr().err
