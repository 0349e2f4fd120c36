"""Programs' second order by closure (symgrad/second_order.py): the backward of a program is taken
as a program of its own and differentiated by reverse mode, so every built-in program's NumPy and
CuPy module has ``double_backward``:

- it equals torch's double backward (autograd.grad with create_graph=True, then autograd.grad of
  ⟨gg, gradients⟩) in float64 to 1e-10 over the programs' sweep, and its forms are recognised
  (convolutions, matmuls, reductions: no generic gathers);
- None for a gradient's gg, several outputs, an output that later statements read, a scalar output;
- the backward program's own forward is the first-order backward;
- a differentiated max is refused by name; ``derive --order 2`` and ``emit`` (which adds
  double_backward unless --order 1) work from the command line; the CuPy module's double_backward
  (over the NumPy stand-in for CuPy) equals the NumPy module's.
"""
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from conftest import needs_torch
from cublas_emulator import on_host, stand_in
import symgrad
from symgrad import derive, ops
from symgrad.emit import load
from symgrad.emit.program import emit_program
from symgrad.ir import SymgradError
from symgrad.reverse import derive_program
from symgrad.second_order import backward_program, derive_program_second_order
from symgrad.syntax import parse_program
from conftest import sliced
from support import SWEEP, builder_params, close, run, torch_case

_MODULES = {}


def second_module(program, backend="numpy"):
    """The module with double_backward (cached per program and backend)."""
    key = (program.name, json.dumps(program.params, sort_keys=True, default=str), backend)
    if key not in _MODULES:
        s = derive_program_second_order(program)
        _MODULES[key] = (load(emit_program(s.first, backend, second=s, jvp=False), f"{program.name}_second"), s)
    return _MODULES[key]


def torch_double_backward(fn, arrays, g, ggs, extra=()):
    """torch's double backward of ``fn``: ∂⟨gg, ∂ℒ/∂inputs⟩ with respect to grad_output and the inputs."""
    import torch
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    gt = torch.tensor(g, requires_grad=True)
    grads = torch.autograd.grad(out, ts, gt, create_graph=True)
    want = torch.autograd.grad(grads, [gt] + ts, [torch.tensor(x) for x in ggs], allow_unused=True)
    return [np.zeros(np.shape(a)) if w is None else w.numpy() for w, a in zip(want, [g] + arrays)]


@needs_torch
@pytest.mark.parametrize("name,params,shapes", sliced(SWEEP, 2, ids=[f"{n}-{k}" for k, (n, _, _) in enumerate(SWEEP)]))
def test_double_backward_equals_torchs(name, params, shapes):
    arrays, fn, extra = torch_case(name, params, shapes)
    m, _ = second_module(ops.build(name, **builder_params(name, params)))
    rng = np.random.default_rng(5)
    y = m.forward(*arrays, *extra)
    g = rng.standard_normal(np.shape(y))
    ggs = [rng.standard_normal(np.shape(a)) for a in arrays]
    got = m.double_backward(*ggs, g, *arrays, *extra)
    want = torch_double_backward(fn, arrays, g, ggs)
    assert len(got) == len(want) == len(arrays) + 1
    for a, b, like in zip(got, want, [g] + arrays):
        assert np.shape(a) == np.shape(like)
        close(a, b, 1e-10)


@pytest.mark.parametrize("name,params", [("softmax", {}), ("layer_norm", {}), ("attention", {"is_causal": True}),
                                         ("conv_bias_gelu", {"stride": 2, "padding": 1, "dilation": 1, "groups": 1}),
                                         ("depthwise_separable", {"kernel_size": 3, "stride": 2})])
def test_backward_program_recomputes_the_first_order_and_its_forms_are_recognised(name, params):
    m, s = second_module(ops.build(name, **params))
    kinds = [k for parts in s.second.adjoints.values() for _, g in parts for k in g.kinds]
    kinds += [f.kind for st in s.second.statements for f in st.forward]
    assert "generic" not in kinds
    if name in ("conv_bias_gelu", "depthwise_separable"):
        assert kinds.count("conv_general_dilated") >= 6  # the first order's convolutions, and theirs
    if name == "attention":
        assert kinds.count("matmul") >= 8
    # the backward program's forward is the first-order backward, computed through its own statements
    first = load(emit_program(s.first, jvp=False), f"{name}_first")
    backward = load(emit_program(derive_program(s.backward), jvp=False), f"{name}_backward_program")
    shapes = {"softmax": [(3, 5)], "layer_norm": [(3, 5), (5,), (5,)], "attention": [(2, 4, 3), (2, 4, 3), (2, 4, 2)],
              "conv_bias_gelu": [(2, 3, 7, 6), (4, 3, 3, 3), (4,)],
              "depthwise_separable": [(1, 2, 7, 7), (2, 1, 3, 3), (2,), (3, 2, 1, 1), (3,)]}[name]
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(sh) for sh in shapes]
    g = rng.standard_normal(np.shape(first.forward(*arrays)))
    grads = backward.forward(*arrays, g)
    for a, b in zip(grads if isinstance(grads, tuple) else (grads,), first.backward(g, *arrays)):
        close(a, b, 1e-12)


@pytest.mark.parametrize("name", ["layer_norm", "softmax", "attention"])
def test_second_order_derives_each_statement_once(monkeypatch, name):
    """The backward program begins with the program's own statements: their derivations are taken
    from the first order's, so every statement of program and backward is derived exactly once, and
    the double backward's forward runs the first order's loop nests (none is emitted twice)."""
    import symgrad.reverse as reverse
    calls = []
    monkeypatch.setattr(reverse, "derive", lambda op, wrt=None: calls.append(op.name) or derive(op, wrt))
    s = derive_program_second_order(ops.build(name))
    first = [st.statement.name for st in s.first.statements]
    added = [st.statement.name for st in s.second.statements[len(first):]]
    assert sorted(calls) == sorted(set(calls))
    assert [c.split("(")[-1].rstrip(")") for c in calls] == first + added
    assert all(c.startswith(f"{name}, ") for c in calls[:len(first)])
    source = emit_program(s.first, second=s, jvp=False)  # (forward mode adds its own: test_forward_mode.py)
    assert not any(f"def _second_forward_{stmt}_nest" in source for stmt in first)
    # every loop nest the module defines is called (a fused group's members fall back to NumPy, not to their nests)
    defined = re.findall(r"^def (_\w+_nest)\(", source, flags=re.M)
    assert all(f" {nest}, " in source for nest in defined)
    # (a forward emitted twice, or a fused statement's own nest beside its group's loop, adds hundreds of lines)
    assert len(source.splitlines()) < {"layer_norm": 1400, "softmax": 900, "attention": 1400}[name]


@needs_torch
def test_none_gg_several_outputs_an_output_read_later_and_a_scalar_output():
    import torch
    rng = np.random.default_rng(4)
    program = parse_program("input x[N]\ninput w[N]\noutput s[i] = x[i]^2 * w[i]\noutput c[i] = exp(s[i]) + x[i]",
                            name="two")
    m, s = second_module(program)
    assert s.backward.statements[-3].name == "sbar_total"  # s's upstream, and what c passes back to it
    x, w = rng.standard_normal(4), rng.standard_normal(4)
    gs, gc, ggx = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4)
    got = m.double_backward(ggx, None, gs, gc, x, w)
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    ts, tc = (torch.tensor(a, requires_grad=True) for a in (gs, gc))
    sv = tx ** 2 * tw
    dx, dw = torch.autograd.grad((sv, torch.exp(sv) + tx), (tx, tw), (ts, tc), create_graph=True)
    want = torch.autograd.grad(dx, (ts, tc, tx, tw), torch.tensor(ggx))
    assert len(got) == 4
    for a, b in zip(got, want):
        close(a, b.numpy(), 1e-12)
    # cross-entropy's mean is a scalar: its grad_output and that gradient's double backward are too
    arrays, fn, _ = torch_case("cross_entropy", {}, [(3, 4), (3, 4)])
    m, _ = second_module(ops.build("cross_entropy"))
    ggs = [rng.standard_normal((3, 4)), None]
    got = m.double_backward(*ggs, np.float64(0.7), *arrays)
    assert np.shape(got[0]) == () and got[1].shape == got[2].shape == (3, 4)
    want = torch_double_backward(fn, arrays, np.float64(0.7), [ggs[0], np.zeros((3, 4))])
    for a, b in zip(got, want):
        close(a, b, 1e-12)


def test_differentiated_max_is_refused_by_name(capsys):
    rule = "input x[N, D]\ny[n] = max(d) x[n, d]"
    with pytest.raises(SymgradError, match=r"rule: double backward through the max of statement y is not derived"):
        backward_program(derive_program(parse_program(rule)))
    code, _, err = run(capsys, "emit", "--rule", rule, "--order", "2")
    assert code == 2 and "double backward through the max of statement y" in err
    code, out, err = run(capsys, "emit", "--rule", rule)  # by default: the first order, and why no more
    assert code == 0 and "def backward" in out and "no double_backward: rule: double backward through the max" in err
    assert 'raise NotImplementedError("rule: double backward through the max of statement y' in out
    m = symgrad.module(rule)  # (its double_backward says why, as the command line does, not AttributeError)
    with pytest.raises(NotImplementedError, match="^rule: double backward through the max of statement y"):
        m.double_backward(None, np.ones(3), np.ones((3, 4)))
    code, out, err = run(capsys, "emit", "--rule", rule, "--order", "1")
    assert code == 0 and "def double_backward" not in out and not err


def test_cli_derive_and_emit_order_2(capsys):
    code, out, _ = run(capsys, "derive", "softmax", "--order", "2")
    assert code == 0 and "second order: the backward taken as a program of its own" in out
    assert "softmax_backward  (a program of 7 statements)" in out and "xbar[j_0, j_1] =" in out
    code, out, _ = run(capsys, "derive", "layer_norm", "--order", "2", "--format", "json")
    data = json.loads(out)
    assert data["second_order"]["program"] == "layer_norm_backward" and "ybar" in data["second_order"]["inputs"]
    source = run(capsys, "emit", "softmax")[1]
    assert "def double_backward(ggx, grad_output, x, dim=-1):" in source
    assert run(capsys, "emit", "softmax")[1] == source  # deterministic
    assert "def double_backward" not in run(capsys, "emit", "softmax", "--order", "1")[1]
    assert "def double_backward" not in run(capsys, "emit", "softmax", "--target", "torch")[1]
    markdown = run(capsys, "derive", "softmax", "--order", "2", "--format", "markdown")[1]
    assert "Double backward of softmax" in markdown


@pytest.mark.parametrize("name,params,shapes", [
    ("softmax", {}, [(4, 7)]), ("layer_norm", {}, [(3, 6), (6,), (6,)]),
    ("attention", {}, [(2, 5, 4), (2, 6, 4), (2, 6, 3)]),
    ("conv_bias_gelu", {"stride": 2, "padding": 1, "dilation": 1, "groups": 1}, [(2, 3, 9, 8), (4, 3, 3, 3), (4,)])])
def test_cupy_double_backward_equals_numpy(monkeypatch, name, params, shapes):
    program = ops.build(name, **params)
    s = derive_program_second_order(program)
    _, cublas = stand_in(monkeypatch)
    m = load(emit_program(s.first, "cupy", second=s, jvp=False), "cupy_second_on_host")
    on_host(m.__dict__, cublas)
    reference, _ = second_module(program)
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal(sh) for sh in shapes]
    g = rng.standard_normal(np.shape(reference.forward(*arrays)))
    ggs = [rng.standard_normal(sh) for sh in shapes]
    for a, b in zip(m.double_backward(*ggs, g, *arrays), reference.double_backward(*ggs, g, *arrays)):
        close(a, b, 1e-10)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex (install texlive-latex-base)")
@pytest.mark.parametrize("name", ["softmax", "depthwise_separable"])
def test_second_order_document_compiles(capsys, tmp_path, name):
    """The backward program's document (adjoint names, a name with an underscore indexed) is LaTeX
    that pdflatex compiles."""
    code, _, _ = run(capsys, "derive", name, "--order", "2", "--format", "latex", "-o", str(tmp_path / "d.tex"))
    assert code == 0
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "d.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_symgrad_check_verifies_double_backward():
    """check_program: double_backward against finite differences of ⟨gg, backward⟩ and torch's double
    backward (built-ins); a rule of two outputs gets one column per upstream gradient; a rule through a
    differentiated max has no double_backward and is checked at first order."""
    from symgrad.verify.program_check import check_program
    results, ok = check_program(ops.build("layer_norm"), trials=2, seed=3)
    assert ok and {"fd2:g", "fd2:x", "fd2:weight", "fd2:bias"} <= set(results[0].errors)
    two = parse_program("input x[N]\noutput s[i] = x[i]^2\noutput c[i] = exp(s[i]) + x[i]")
    results, ok = check_program(two, trials=2, seed=3)
    assert ok and {"fd2:g_s", "fd2:g_c", "fd2:x"} <= set(results[0].errors)
    results, ok = check_program(parse_program("input x[N, D]\ny[n] = max(d) x[n, d]"), trials=1, seed=3)
    assert ok and not any(k.startswith("fd2") for k in results[0].errors)


@needs_torch
def test_softmax_double_backward_in_saturated_rows_keeps_torchs_digits():
    """Rows whose logits span up to ±1e4 with two near the top (PyTorch's OpInfo samples saturate so):
    the double backward against a 60-digit truth, element by element, is as accurate as torch's own.
    (The top element's value is a cancellation of terms near 1 down to e^−Δ, below float64's
    resolution: neither keeps a digit there; those elements are left out of both.)"""
    import mpmath
    import torch
    mpmath.mp.dps = 60
    m = second_module(ops.build("softmax"))[0]
    rng = np.random.default_rng(0)
    ours, theirs = [], []

    def errors(v, t):
        t = np.array([float(q) for q in t])
        return np.abs(np.ravel(v) - t) / np.maximum(np.abs(t), 1e-280)  # (subnormals: no digits to keep)

    for scale in [1e4, 3e3, 1e3, 3e2, 1e1, 1e0] * 3:
        x = rng.uniform(-1, 1, (1, 6)) * scale
        x[0, :2] = x[0, 0] + rng.uniform(-20, 20, 2)
        g, gg = rng.standard_normal((1, 6)), rng.standard_normal((1, 6))
        xs, gs, hs = ([mpmath.mpf(float(v)) for v in a[0]] for a in (x, g, gg))
        e = [mpmath.exp(v - max(xs)) for v in xs]
        s = [v / sum(e) for v in e]
        a, b = sum(p * q for p, q in zip(gs, s)), sum(p * q for p, q in zip(hs, s))
        c = sum(p * q * r for p, q, r in zip(hs, s, gs))
        # ℒ₂ = Σ gg·s·g − ⟨g, s⟩⟨gg, s⟩, differentiated by hand in x and in g
        truth_x = [s[k] * (hs[k] * gs[k] - c) - s[k] * (gs[k] - a) * b - a * s[k] * (hs[k] - b) for k in range(6)]
        truth_g = [s[k] * (hs[k] - b) for k in range(6)]
        dg, dx = m.double_backward(gg, g, x)
        xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
        (first,) = torch.autograd.grad(torch.softmax(xt, -1), xt, gt, create_graph=True)
        tx, tg = torch.autograd.grad(first, (xt, gt), torch.tensor(gg))
        ours += [*errors(dx, truth_x), *errors(dg, truth_g)]
        theirs += [*errors(tx.numpy(), truth_x), *errors(tg.numpy(), truth_g)]
    ours, theirs = np.array(ours), np.array(theirs)
    kept = (theirs < 0.1) | (ours < 0.1)  # an element where either keeps a digit
    assert kept.mean() > 0.9
    print(f"{kept.sum()} elements: worst {ours[kept].max():.1e} (torch {theirs[kept].max():.1e}), "
          f"90th percentile {np.quantile(ours[kept], 0.9):.1e} (torch {np.quantile(theirs[kept], 0.9):.1e})")
    assert ours[kept].max() <= 3 * theirs[kept].max() + 1e-15
    assert np.quantile(ours[kept], 0.9) <= 3 * np.quantile(theirs[kept], 0.9) + 1e-15
