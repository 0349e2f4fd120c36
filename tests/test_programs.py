"""Programs: operators of several statements (softmax, layer norm, attention, conv → bias → GELU, …),
derived by reverse mode over the statement DAG, emitted as one module, held to PyTorch autograd and
to finite differences of the definition; the text syntax; bad programs and bad rule text."""
import numpy as np
import pytest
import sympy as sp

from conftest import needs_torch
from symgrad import ops
from symgrad.emit import load
from symgrad.emit.program import emit_program
from symgrad.ir import SymgradError, Tensor, index, size
from symgrad.program import Program, StopGradient, max_over, rule
from symgrad.reverse import derive_program
from symgrad.syntax import parse_program
from symgrad.verify.program_check import check_program
from support import SWEEP, builder_params, close, program_module, run, torch_case


@needs_torch
@pytest.mark.parametrize("name,params,shapes", SWEEP, ids=[f"{n}-{k}" for k, (n, _, _) in enumerate(SWEEP)])
def test_against_torch_float64_and_float32(name, params, shapes):
    """Forward and every gradient equal torch autograd's in float64 to 1e-10; float32 to 1e-5."""
    import torch
    arrays, fn, extra = torch_case(name, params, shapes)
    m = program_module(name, **builder_params(name, params))
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    g = np.random.default_rng(1).standard_normal(tuple(out.shape))
    out.backward(torch.tensor(g))
    y = m.forward(*arrays, *extra)
    grads = m.backward(g, *arrays, *extra)
    close(y, out.detach().numpy(), 1e-10)
    assert len(grads) == len(arrays)
    for got, t in zip(grads, ts):
        close(got, t.grad.numpy(), 1e-10)
    # float32 against the float64 truth at the same (float32) inputs; rms_norm's default eps is float32's
    a32 = [a.astype(np.float32) for a in arrays]
    fn = torch_case(name, dict(params, eps32=True), shapes)[1] if name == "rms_norm" else fn
    t32 = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in a32]
    out32 = fn(*t32)
    out32.backward(torch.tensor(g.astype(np.float32).astype(np.float64)))
    y32 = m.forward(*a32, *extra)
    grads32 = m.backward(g.astype(np.float32), *a32, *extra)
    assert y32.dtype == np.float32 and all(x.dtype == np.float32 for x in grads32)
    # within 1e-5 relative, or no worse than PyTorch's own float32 where cancellation limits both (batch
    # norm over two elements: its gradient is a difference of O(1) terms)
    tf = [torch.tensor(a, requires_grad=True) for a in a32]
    fn(*tf).backward(torch.tensor(g.astype(np.float32)))
    close_or_torch(y32, out32.detach().numpy(), fn(*[t.detach() for t in tf]).numpy())
    for got, t, theirs in zip(grads32, t32, tf):
        close_or_torch(got, t.grad.numpy(), theirs.grad.numpy())


def close_or_torch(got, want, torch32):
    scale = max(np.abs(want).max(initial=0), 1e-3)
    err = np.abs(np.asarray(got, np.float64) - want).max(initial=0)
    assert err <= max(1e-5 * scale, 2 * np.abs(np.asarray(torch32, np.float64) - want).max(initial=0)), (err, scale)


BUILTIN = [("softmax", {}), ("log_softmax", {}), ("cross_entropy", {}), ("cross_entropy", {"reduction": "none"}),
           ("layer_norm", {}), ("layer_norm", {"weight": False, "bias": False}), ("rms_norm", {}),
           ("rms_norm", {"eps": 1e-6}), ("batch_norm", {}), ("batch_norm", {"ndim": 2}), ("attention", {}),
           ("attention", {"is_causal": True}), ("conv_bias_gelu", {"stride": 2, "padding": 1, "dilation": 1,
                                                                  "groups": 1}),
           ("depthwise_separable", {"kernel_size": 3, "padding": 1})]


@pytest.mark.parametrize("name,params", BUILTIN, ids=[f"{n}-{k}" for k, (n, _) in enumerate(BUILTIN)])
def test_symgrad_check_passes(name, params):
    """The module against the program evaluated literally and finite differences of it (and torch)."""
    results, ok = check_program(ops.build(name, **params), trials=3, seed=1)
    assert ok, [r.errors for r in results]
    assert all("fd:" + t.name in results[0].errors for t in ops.build(name, **params).inputs)


def test_stable_softmax_at_large_logits():
    x = np.array([[1e4, -1e4, 0.0, 1e4], [-1e4, -1e4, -1e4, -1e4]])
    y = program_module("softmax").forward(x)
    assert np.array_equal(y, [[0.5, 0, 0, 0.5], [0.25, 0.25, 0.25, 0.25]])
    g = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 0.0, 0.0, 0.0]])
    (dx,) = program_module("softmax").backward(g, x)
    assert np.all(np.isfinite(dx))
    close(dx, y * (g - (g * y).sum(-1, keepdims=True)), 1e-15)  # the closed form, written by hand
    ls = program_module("log_softmax").forward(x)
    assert np.all(np.isfinite(ls[0, [0, 3]])) and ls[0, 1] == -2e4 - np.log(2)
    t = np.full((2, 4), 0.25)
    assert np.isfinite(program_module("cross_entropy").forward(x, t))


def test_softmax_structure_residuals_and_found_forms():
    d = derive_program(ops.build("softmax"))
    kinds = {s.statement.name: [f.kind for f in s.forward] for s in d.statements}
    assert kinds == {"m": ["reduce_max"], "u": ["elementwise"], "s": ["reduce_sum"], "y": ["elementwise"]}
    assert "m" not in d.adjoints  # stop_gradient: nothing flows back through the maximum
    dx = d.adjoints["x"][0][1]
    assert str(dx.forms[0].term.factor) in ("du[n, j]*u[n, j]", "u[n, j]*du[n, j]")  # exp' read from the forward's u
    assert any(s.name == "reuse" for s in dx.forms[0].steps)
    kinds = {name: [g.kinds for _, g in parts] for name, parts in d.adjoints.items()}
    assert "generic" not in str(kinds)


@pytest.mark.parametrize("name,params", BUILTIN, ids=[f"{n}-{k}" for k, (n, _) in enumerate(BUILTIN)])
def test_no_generic_form_anywhere(name, params):
    d = derive_program(ops.build(name, **params))
    kinds = [f.kind for s in d.statements for f in s.forward]
    kinds += [k for parts in d.adjoints.values() for _, g in parts for k in g.kinds]
    assert "generic" not in kinds
    if name in ("attention",):
        assert kinds.count("matmul") >= 4
    if name in ("conv_bias_gelu", "depthwise_separable"):
        assert kinds.count("conv_general_dilated") >= 3


def test_vjp_keeps_residuals_and_pullback_repeats():
    m = program_module("layer_norm")
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((3, 5)), rng.standard_normal(5), rng.standard_normal(5)
    y, pullback = m.vjp(x, w, b)
    g = rng.standard_normal((3, 5))
    first, second = pullback(g), pullback(g)
    for a, c, want in zip(first, second, m.backward(g, x, w, b)):
        assert np.array_equal(a, c) and np.array_equal(a, want)
    assert np.array_equal(y, m.forward(x, w, b))
    assert "_sizes(" in emit_program(derive_program(ops.build("layer_norm")), jvp=False)


def test_emitted_program_is_deterministic_and_readable():
    a = emit_program(derive_program(ops.build("attention", is_causal=True)), jvp=False)
    b = emit_program(derive_program(ops.build("attention", is_causal=True)), jvp=False)
    assert a == b
    assert "def vjp(q, k, v)" in a and "def backward(grad_output, q, k, v)" in a and "def forward(q, k, v)" in a
    assert "recognised form: matmul" in a and "# 3. p[b, i, j]" in a
    imports = [line for line in a.splitlines() if line.lstrip().startswith(("import ", "from "))]
    assert imports and not any("torch" in line or "symgrad" in line for line in imports), imports


def test_module_errors_name_the_program():
    m = program_module("layer_norm")
    x, w, b = np.zeros((3, 5)), np.zeros(5), np.zeros(5)
    with pytest.raises(ValueError, match=r"layer_norm: grad_output must have the output.s shape \(3, 5\), got \(3, 4\)"):
        m.backward(np.zeros((3, 4)), x, w, b)
    with pytest.raises(ValueError, match="layer_norm: input weight must have shape"):
        m.forward(x, np.zeros(4), b)
    with pytest.raises(ValueError, match=r"attention: the leading axes of the inputs do not broadcast together: "
                                         r"q \(2,\), k \(3,\), v \(3,\)"):
        program_module("attention").forward(np.zeros((2, 3, 4)), np.zeros((3, 3, 4)), np.zeros((3, 3, 4)))
    with pytest.raises(ValueError, match="softmax: dim 5 is out of range"):
        program_module("softmax").forward(np.zeros((2, 3)), 5)
    with pytest.raises(TypeError, match="softmax: input x must hold real numbers"):
        program_module("softmax").forward(np.zeros(3, complex))


def test_max_splits_ties_evenly_and_brackets_leave_elements_out():
    p = parse_program("input x[N, D]\ny[n] = max(j) x[n, j]")
    m = load(emit_program(derive_program(p), jvp=False))
    x = np.array([[1.0, 3.0, 3.0], [2.0, -1.0, 0.0]])
    assert np.array_equal(m.forward(x), [3.0, 2.0])
    (dx,) = m.backward(np.array([1.0, 2.0]), x)
    assert np.array_equal(dx, [[0, 0.5, 0.5], [2.0, 0, 0]])
    masked = load(emit_program(derive_program(parse_program("input x[N, D]\ny[i] = max(j) [j <= i] x[i, j]")), jvp=False))
    x = np.array([[1.0, 9.0, 9.0], [4.0, 2.0, 9.0], [0.0, 5.0, 5.0]])
    assert np.array_equal(masked.forward(x), [1.0, 4.0, 5.0])
    (dx,) = masked.backward(np.ones(3), x)
    assert np.array_equal(dx, [[1, 0, 0], [1, 0, 0], [0, 0.5, 0.5]])


def test_stop_gradient_passes_no_gradient():
    p = parse_program("input x[N]\ny[i] = x[i] * stop_gradient(x[i])")
    m = load(emit_program(derive_program(p), jvp=False))
    x = np.array([1.0, -2.0, 3.0])
    (dx,) = m.backward(np.ones(3), x)
    assert np.array_equal(m.forward(x), x * x) and np.array_equal(dx, x)  # not 2x
    x_ = Tensor("x", (size("N"),))
    i = index("i", size("N"))
    y = Tensor("y", (size("N"),))
    built = Program("sg", {}, (x_,), (rule(y, (i,), x_[i] * StopGradient(x_[i])),))
    (dx2,) = load(emit_program(derive_program(built), jvp=False)).backward(np.ones(3), x)
    assert np.array_equal(dx2, x)


def test_sum_inside_a_nonlinear_function_is_hoisted():
    """A one-line logsumexp: the sum becomes a statement of its own instead of being refused."""
    p = parse_program("input x[N, D]\ny[n] = log(sum(d) exp(x[n, d]))")
    d = derive_program(p)
    assert [s.statement.name for s in d.statements] == ["y_sum1", "y"]
    x = np.random.default_rng(0).standard_normal((3, 4))
    m = load(emit_program(d, jvp=False))
    close(m.forward(x), np.log(np.exp(x).sum(1)), 1e-14)
    (dx,) = m.backward(np.ones(3), x)
    close(dx, np.exp(x) / np.exp(x).sum(1, keepdims=True), 1e-14)


def test_several_outputs():
    p = parse_program("input x[N]\noutput s[i] = x[i]^2\noutput c[i] = 3 * x[i]")
    m = load(emit_program(derive_program(p), jvp=False))
    x = np.array([1.0, 2.0])
    s, c = m.forward(x)
    assert np.array_equal(s, x ** 2) and np.array_equal(c, 3 * x)
    (dx,) = m.backward((np.ones(2), np.full(2, 2.0)), x)
    assert np.array_equal(dx, 2 * x + 6)


# the text syntax against the Python-built ops

def test_rule_text_strided_convolution_equals_the_op():
    p = parse_program("y[n, f, i] = b[f] + sum(c, r) w[f, c, r] * x[n, c, 2*i + r - 1]")
    assert [t.name for t in p.inputs] == ["b", "w", "x"]
    m = load(emit_program(derive_program(p), jvp=False))
    from symgrad.derive import derive
    from symgrad.emit import emit
    op = load(emit(derive(ops.conv1d(stride=2, padding=1, dilation=1)), order=1, jvp=False))
    rng = np.random.default_rng(0)
    for length in (7, 8, 9):
        x, w, b = rng.standard_normal((2, 3, length)), rng.standard_normal((4, 3, 3)), rng.standard_normal(4)
        y = m.forward(b, w, x)
        close(y, op.forward(x, w, b), 1e-14)
        g = rng.standard_normal(y.shape)
        db, dw, dx = m.backward(g, b, w, x)
        for got, want in zip((dx, dw, db), op.backward(g, x, w, b)):
            close(got, want, 1e-13)
    kinds = [f.kind for s in derive_program(p).statements for f in s.forward]
    assert "conv_general_dilated" in kinds


LAYER_NORM_SG = """\
# layer norm over the last axis, as a file of statements
input x[N, D]
param weight[D], bias[D]
mu[n] = sum(k) x[n, k] / D
xc[n, d] = x[n, d] - mu[n]
var[n] = sum(k) xc[n, k]^2 / D
output y[n, d] = xc[n, d] / sqrt(var[n] + 1e-5) * weight[d] + bias[d]
"""


def test_layer_norm_file_equals_the_builtin():
    m = load(emit_program(derive_program(parse_program(LAYER_NORM_SG, "layer_norm_sg", "layer_norm.sg")), jvp=False))
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((4, 6)), rng.standard_normal(6), rng.standard_normal(6)
    close(m.forward(x, w, b), program_module("layer_norm").forward(x, w, b), 1e-14)
    g = rng.standard_normal((4, 6))
    for got, want in zip(m.backward(g, x, w, b), program_module("layer_norm").backward(g, x, w, b)):
        close(got, want, 1e-13)


def test_softmax_rule_equals_the_builtin():
    text = "input x[N, D]; m[n] = stop_gradient(max(j) x[n, j]); e[n, j] = exp(x[n, j] - m[n]); y[n, j] = e[n, j] / sum(k) e[n, k]"
    m = load(emit_program(derive_program(parse_program(text)), jvp=False))
    x = np.random.default_rng(3).standard_normal((3, 5))
    g = np.random.default_rng(4).standard_normal((3, 5))
    close(m.forward(x), program_module("softmax").forward(x), 1e-15)
    close(m.backward(g, x)[0], program_module("softmax").backward(g, x)[0], 1e-14)


# bad programs and bad rule text: one clear error each

def _program(*statements, inputs=None):
    N = size("N")
    x = Tensor("x", (N,))
    return Program("bad", {}, inputs or (x,), statements)


BAD_TEXT = [
    ("y[i] = x[i", "1:11: expected ']'"),
    ("input x[N]\ny[i] = x[i] + $", "2:15: unexpected character '$'"),
    ("input x[N]\ny[i] = x[i]\ny[i] = x[i]", "3:1: y is defined twice"),
    ("input x[N]\ny[i] = q[i]\nq[i] = x[i]", "2:8: q is read before the statement that defines it (line 3)"),
    ("input x[N]\ny[i] = y[i]", "2:8: y reads itself: a cycle"),
    ("input x[N], w[M]\ny[i] = x[i] * w[i]", "2:15: index i runs over N values but reads axis 0 of w (size M)"),
    ("input x[N]\ny[i] = sum(r) x[i + r]", "2:12: cannot tell the range of summed index r"),
    ("input x[N]\ny[n, i] = x[n]", "2:6: cannot tell the range of output index i"),
    ("input x[N]\ny[i] = foo(x[i])", "2:8: unknown name 'foo'"),
    ("input x[N]\ny[i] = x[i, 0]", "2:8: x has 1 axis, read with 2 indices"),
    ("input x[N]\ny[i] = x[i * i]", "2:8: index i**2 of x is not affine"),
    ("input x[N]\ny[i] = exp(x[i], 2)", "2:8: exp takes 1 argument, got 2"),
    ("input x[N]\ny[i] = [i x[i]", "2:11: expected a comparison"),
    ("input x[N]\n", "no statement"),
    ("input sum[N]\ny[i] = 1", "1:7: sum is a keyword or function"),
]


@pytest.mark.parametrize("text,message", BAD_TEXT, ids=[m.split(":")[-1][:30] for _, m in BAD_TEXT])
def test_bad_rule_text_one_clear_error(text, message):
    with pytest.raises(SymgradError) as err:
        derive_program(parse_program(text))
    assert message in str(err.value)
    if ":" in message.split(" ")[0]:
        assert "^" in str(err.value)  # the line shown, the column pointed at


def test_bad_programs_one_clear_error_each():
    N = size("N")
    i = index("i", N)
    x, y, z = Tensor("x", (N,)), Tensor("y", (N,)), Tensor("z", (N,))
    cases = [
        (_program(rule(y, (i,), Tensor("q", (N,))[i])), "statement 1 (y): reads q, which is neither an input"),
        (_program(rule(y, (i,), x[i]), rule(y, (i,), x[i])), "statement 2 (y): y is defined twice"),
        (_program(rule(y, (i,), z[i]), rule(z, (i,), y[i])), "cycle y → z → y"),
        (_program(rule(y, (i,), z[i]), rule(z, (i,), x[i])), "reads z before statement 2 defines it"),
        (_program(rule(y, (i,), x[i] * Tensor("w", (size("M"),))[i]),
                  inputs=(x, Tensor("w", (size("M"),)))), "reads axis 0 of w (size M) with i"),
        (_program(rule(y, (i,), x[i * i])), "is not affine"),
        (_program(rule(y, (i,), sp.Function("f")(x[i]))), "unsupported function f"),
        (_program(rule(Tensor("dx", (N,)), (i,), x[i])), "tensors x and dx collide"),
        (_program(rule(Tensor("_t", (N,)), (i,), x[i])), "'_t' cannot name a tensor"),
        (Program("bad", {}, (x,), (rule(y, (i,), x[i]),), outputs=("w",)), "output w is not defined"),
        (_program(rule(Tensor("y", (size("M"),)), (i,), x[i])), "output axis i runs over 0..N - 1 but y has size M"),
    ]
    for program, message in cases:
        with pytest.raises(SymgradError) as err:
            derive_program(program)
        assert message in str(err.value), (message, str(err.value))
        assert "bad" in str(err.value)


def test_builtin_parameters_are_checked():
    for name, params, message in [("cross_entropy", {"reduction": "avg"}, "reduction must be one of"),
                                  ("layer_norm", {"eps": -1}, "eps must be > 0"),
                                  ("batch_norm", {"ndim": 4}, "ndim must be 0, 1, 2 or 3"),
                                  ("attention", {"is_causal": "maybe"}, "is_causal must be true or false")]:
        with pytest.raises(SymgradError, match=message):
            ops.build(name, **params)


def test_max_over_helper_builds_a_max_statement():
    N, D = size("N"), size("D")
    n, j = index("n", N), index("j", D)
    x, m = Tensor("x", (N, D)), Tensor("m", (N,))
    d = derive_program(Program("rowmax", {}, (x,), (rule(m, (n,), max_over(x[n, j], (j, 0, D - 1))),)))
    assert d.statements[0].statement.over and d.adjoints["x"][0][1].kinds == ["elementwise"]


# the command line


def test_cli_derive_emit_check_programs(capsys, tmp_path):
    code, out, _ = run(capsys, "derive", "softmax")
    assert code == 0 and "1. m[n] = stop_gradient(max_{j=0..D - 1} x[n, j])" in out and "form: reduce_max" in out
    assert "the engine does not find that form" in out
    code, out, _ = run(capsys, "derive", "attention", "--is-causal", "true", "--format", "json")
    import json
    d = json.loads(out)
    assert code == 0 and d["program"] == "attention" and d["params"]["is_causal"] is True
    assert [f["kind"] for f in d["statements"][0]["forms"]] == ["matmul"]
    assert {c["form"]["kind"] for c in d["adjoints"]["q"]} == {"matmul"}
    code, _, err = run(capsys, "emit", "layer_norm", "--eps", "1e-6", "-o", str(tmp_path / "ln.py"))
    assert code == 0 and "def vjp(x, weight, bias)" in (tmp_path / "ln.py").read_text()
    code, out, _ = run(capsys, "check", "rms_norm", "--trials", "2")
    assert code == 0 and "rms_norm: OK (2 trials" in out and "torch:weight" in out
    (tmp_path / "ln.sg").write_text(LAYER_NORM_SG)
    code, out, _ = run(capsys, "check", "-f", str(tmp_path / "ln.sg"), "--trials", "2")
    assert code == 0 and "ln: OK" in out
    code, out, _ = run(capsys, "derive", "--rule", "y[n, f, i] = b[f] + sum(c, r) w[f, c, r] * x[n, c, 2*i + r - 1]")
    assert code == 0 and "O_i = " in out and out.count("conv_general_dilated") >= 3
    code, out, _ = run(capsys, "derive", "layer_norm", "--format", "latex")
    assert code == 0 and r"\section*{Backward: reverse mode over the statements}" in out
    code, out, _ = run(capsys, "ops")
    assert "programs (several statements):" in out and "attention" in out and "--is-causal" in out


@pytest.mark.parametrize("argv,message", [
    (["derive", "--rule", "y[i] = x[i"], "--rule:1:11: expected ']'"),
    (["derive", "softmax", "--stride", "2"], "softmax: --stride does not apply to softmax"),
    (["derive", "--rule", "input x[N, D]\ny[n] = max(d) x[n, d]", "--order", "2"],
     "double backward through the max of statement y is not derived"),
    (["derive", "softmax", "--rule", "y[i] = x[i]"], "give one of: an op or program name, --rule"),
    (["derive", "-f", "no_such_file.sg"], "cannot read no_such_file.sg"),
    (["derive", "--rule", "y[i] = x[i]", "--eps", "1"], "rule: --eps does not apply to rule"),
    (["derive", "cross_entropy", "--reduction", "avg"], "reduction must be one of mean, sum, none"),
    (["check", "softmax", "--ulp"], "--ulp scans elementwise ops"),
    (["bench", "--rule", "y[i] = x[i]"], "bench rule: give the shape to time with --input-shape"),
    (["bench", "--rule", "input x[N]\noutput s[i] = x[i]^2\noutput c[i] = 3 * x[i]", "--input-shape", "x=4"],
     "bench rule: a program of one output is timed"),
])
def test_cli_program_errors_are_one_line(capsys, argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err, err
    assert err.startswith("symgrad: error:") and "Traceback" not in err


# padding modes: a padding statement through a declared index map, then the convolution

PADDED = [(1, "circular", {"padding": 2, "stride": 1}, (2, 3, 7), (4, 3, 3)),
          (1, "reflect", {"padding": "2:1", "stride": 2, "dilation": 2}, (2, 3, 9), (4, 3, 3)),
          (1, "replicate", {"padding": 3, "stride": 3}, (1, 2, 4), (2, 2, 2)),
          (2, "circular", {"padding": (1, 2), "stride": (2, 1), "groups": 2}, (2, 4, 7, 6), (6, 2, 3, 3)),
          (2, "reflect", {"padding": 1}, (1, 3, 5, 5), (2, 3, 3, 3)),
          (2, "replicate", {"padding": (2, 1), "dilation": (1, 2)}, (2, 1, 4, 6), (3, 1, 2, 3)),
          (3, "circular", {"padding": 1}, (1, 2, 3, 4, 3), (2, 2, 2, 2, 2))]


@needs_torch
@pytest.mark.parametrize("ndim,mode,params,xs,ws", PADDED, ids=[f"{n}d-{m}-{k}" for k, (n, m, *_ ) in enumerate(PADDED)])
def test_padding_modes_against_torch(ndim, mode, params, xs, ws):
    import torch
    import torch.nn.functional as F
    full = {"stride": 1, "dilation": 1, "groups": 1, **params}
    d = derive_program(ops.conv_padded(ndim, mode, **full))
    kinds = [k for parts in d.adjoints.values() for _, g in parts for k in g.kinds]
    assert "conv_general_dilated" in kinds and "shift" in kinds
    if mode != "replicate" or ndim == 1:
        assert "generic" not in kinds  # 2-D replication's corners (a sum over both padded axes) stay generic
    m = load(emit_program(d, jvp=False))
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    pad = params["padding"]
    if isinstance(pad, str):  # "lo:hi" of the one axis
        pads = [int(v) for v in pad.split(":")]
    else:
        pad = [pad] * ndim if isinstance(pad, int) else list(pad)
        pads = [p for q in reversed(pad) for p in (q, q)]
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[ndim]
    out = fn(F.pad(ts[0], pads, mode=mode), ts[1], ts[2], stride=full["stride"], dilation=full["dilation"],
             groups=full["groups"])
    g = rng.standard_normal(tuple(out.shape))
    out.backward(torch.tensor(g))
    close(m.forward(x, w, b), out.detach().numpy(), 1e-12)
    for got, t in zip(m.backward(g, x, w, b), ts):
        close(got, t.grad.numpy(), 1e-12)


@pytest.mark.parametrize("fn,mode", [("wrap", "circular"), ("reflect", "reflect"), ("clamp", "replicate")])
def test_index_maps_in_text(fn, mode):
    p = parse_program(f"input x[N, L]\nxpad[n, i < L + 3] = x[n, {fn}(i - 2, L)]")
    m = load(emit_program(derive_program(p), jvp=False))
    x = np.arange(10.0).reshape(2, 5)
    want = np.pad(x, ((0, 0), (2, 1)), mode={"circular": "wrap", "reflect": "reflect", "replicate": "edge"}[mode])
    assert np.array_equal(m.forward(x), want)
    g = np.random.default_rng(0).standard_normal(want.shape)
    (dx,) = m.backward(g, x)
    fold = np.zeros_like(x)  # the adjoint by hand: each padded position sends its gradient to its source
    source = {"circular": lambda j: j % 5, "reflect": lambda j: -j if j < 0 else (8 - j if j >= 5 else j),
              "replicate": lambda j: min(max(j, 0), 4)}[mode]
    for i in range(8):
        fold[:, source(i - 2)] += g[:, i]
    close(dx, fold, 1e-15)


def test_index_map_errors():
    with pytest.raises(SymgradError, match="maps an index; it goes inside a tensor's brackets"):
        parse_program("input x[N]\ny[i] = wrap(x[i], N)")
    with pytest.raises(SymgradError, match="must be the whole index of x"):
        parse_program("input x[N]\ny[i] = x[wrap(i, N) + 1]")
    m = load(emit_program(derive_program(ops.conv_padded(1, "reflect", padding=3, stride=1, dilation=1)), jvp=False))
    with pytest.raises(ValueError, match=r"conv1d_reflect, statement xpad: reflect padding wider than the input \(size 3\)"):
        m.forward(np.ones((1, 2, 3)), np.ones((3, 2, 3)), np.ones(3))
    with pytest.raises(SymgradError, match="padding_mode must be one of zeros, circular, reflect, replicate"):
        ops.conv_padded(1, "mirror", padding=1)


def test_cli_padding_mode(capsys):
    code, out, _ = run(capsys, "check", "conv2d", "--padding", "1", "--padding-mode", "circular", "--stride", "2",
                        "--trials", "2")
    assert code == 0 and "conv2d_circular: OK" in out and "torch:x" in out
    code, _, err = run(capsys, "derive", "matmul", "--padding-mode", "reflect")
    assert code == 2 and "--padding-mode applies to the convolutions" in err
    code, out, _ = run(capsys, "derive", "conv1d", "--padding", "1", "--padding-mode", "replicate")
    assert code == 0 and "1. xpad[n, c, p]" in out and "form: shift" in out


@needs_torch
@pytest.mark.parametrize("name,params,shapes", [
    ("softmax", {}, [(64, 1100)]),
    pytest.param("layer_norm", {}, [(3, 40, 600), (600,), (600,)], marks=pytest.mark.full),
    pytest.param("rms_norm", {}, [(70, 1000), (1000,)], marks=pytest.mark.full),
    pytest.param("batch_norm", {"ndim": 2}, [(4, 8, 48, 48), (8,), (8,)], marks=pytest.mark.full),
    pytest.param("attention", {"is_causal": True}, [(2, 260, 16), (2, 260, 16), (2, 260, 8)], marks=pytest.mark.full),
    ("conv_bias_gelu", {"padding": 1}, [(2, 8, 66, 66), (8, 8, 3, 3), (8,)]),
], ids=["softmax", "layer_norm", "rms_norm", "batch_norm", "attention", "conv_bias_gelu"])
def test_loop_nests_at_sizes_where_they_run(name, params, shapes):
    """Arrays of 2^16 elements and more take the numba loop nests (smaller ones the NumPy code the
    other tests run): the same answers, float64 and float32."""
    pytest.importorskip("numba")
    test_against_torch_float64_and_float32(name, params, shapes)
    m = program_module(name, **builder_params(name, params))
    ran = [key for key, compiled in m._COMPILED.items() if compiled is not None]
    assert ran, "no loop nest ran"


@needs_torch
def test_replicate_padding_at_nest_sizes():
    """Replication's adjoint has narrowed and masked sums: they keep their array code at any size."""
    import torch
    import torch.nn.functional as F
    pytest.importorskip("numba")
    m = load(emit_program(derive_program(ops.conv_padded(1, "replicate", padding=2, stride=1, dilation=1)), jvp=False))
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((4, 8, 4100)), rng.standard_normal((3, 8, 3)), rng.standard_normal(3)
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    out = F.conv1d(F.pad(ts[0], (2, 2), mode="replicate"), ts[1], ts[2])
    g = rng.standard_normal(tuple(out.shape))
    out.backward(torch.tensor(g))
    close(m.forward(x, w, b), out.detach().numpy(), 1e-12)
    for got, t in zip(m.backward(g, x, w, b), ts):
        close(got, t.grad.numpy(), 1e-12)


def test_bracketed_sum_at_nest_sizes():
    """A sum whose bracket narrows its range keeps that range on the numba path too."""
    pytest.importorskip("numba")
    p = parse_program("input x[N, D]\ny[n] = sum(d) [d < 3] x[n, d]")
    d = derive_program(p)
    assert d.statements[0].forward[0].kind == "reduce_sum"
    m = load(emit_program(d, jvp=False))
    x = np.random.default_rng(0).standard_normal((300, 400))
    close(m.forward(x), x[:, :3].sum(1), 1e-14)
    (dx,) = m.backward(np.ones(300), x)
    want = np.zeros_like(x)
    want[:, :3] = 1
    close(dx, want, 1e-14)


@pytest.mark.parametrize("name,shapes", [("layer_norm", [(300, 700), (700,), (700,)]),
                                         pytest.param("softmax", [(200, 900)], marks=pytest.mark.full),
                                         pytest.param("rms_norm", [(130, 1000), (1000,)], marks=pytest.mark.full)])
def test_row_fusion_equals_statement_by_statement(name, shapes, monkeypatch, request):
    """Runs of row statements (a normalisation's statistics and output; its backward) run as one
    loop over the rows; with the fused loop refused (``_rows`` → None) each statement runs alone:
    the same values, float64 (and float32 with --full: each dtype compiles its loops)."""
    pytest.importorskip("numba")
    m = program_module(name)
    source = emit_program(derive_program(ops.build(name)), jvp=False)
    assert source.count("_fused = _rows(") == 2  # the forward's run and the backward's
    rng = np.random.default_rng(4)
    dtypes = ((np.float64, 1e-13), (np.float32, 1e-6)) if request.config.getoption("--full") else ((np.float64, 1e-13),)
    for dtype, tol in dtypes:
        arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
        g = rng.standard_normal(shapes[0]).astype(dtype)
        y, pullback = m.vjp(*arrays)
        grads = pullback(g)
        assert any(compiled is not None and "_rows" in factory.__name__
                   for (factory, kind), compiled in m._COMPILED.items() if kind == dtype)
        with monkeypatch.context() as patch:
            patch.setattr(m, "_rows", lambda *args: None)
            y1, pullback1 = m.vjp(*arrays)
            grads1 = pullback1(g)
        close(y, y1, tol)
        for a, b in zip(grads, grads1):
            assert a.dtype == b.dtype == dtype
            close(a, b, tol)


def test_row_fusion_keeps_dead_intermediates_a_row_at_a_time():
    """layer_norm's backward: ∂ℒ/∂xc (twice) is read only inside the fused loop, so it is never
    stored whole; the bias and weight gradients (sums over the rows) run before the loop."""
    source = emit_program(derive_program(ops.build("layer_norm")), jvp=False)
    pullback = source[source.index("def _pullback"):source.index("def vjp")]
    fused = pullback[pullback.index("if _fused is not None:"):pullback.index("    else:")]
    assert fused.count("dxc = None  # kept a row at a time") == 1 and fused.count("dxc = ") == 1
    assert pullback.index("dbias = _nest(") < pullback.index("_fused = _rows(") and \
        pullback.index("dweight = _nest(") < pullback.index("_fused = _rows(")
    loop = source[source.index("def _backward_dr_to_dx_rows"):]
    assert "row1 = xp.empty(_r0)" in loop and "out" not in loop[loop.index("row1 = "):loop.index("row1 = ") + 60]


def test_softmax_at_nest_sizes_propagates_nan_and_infinities():
    """At sizes where the fused row loop runs, a row holding NaN, a row of -inf and a row holding
    +inf give NaN rows (as NumPy and torch do); the rows without them are untouched."""
    pytest.importorskip("numba")
    m = program_module("softmax")
    x = np.random.default_rng(5).standard_normal((100, 1000))
    x[3, 7] = np.nan
    x[5, :] = -np.inf
    x[8, 2] = np.inf
    y = m.forward(x)
    with np.errstate(invalid="ignore"):
        want = np.exp(x - x.max(1, keepdims=True))
        want /= want.sum(1, keepdims=True)
    assert np.isnan(y[3]).all() and np.isnan(y[5]).all() and np.isnan(y[8]).all()  # as NumPy's and torch's
    assert (np.isnan(y) == np.isnan(want)).all()
    ok = [k for k in range(100) if k not in (3, 5, 8)]
    close(y[ok], want[ok], 1e-14)


def test_cli_emits_cupy_programs(capsys):
    code, out, _ = run(capsys, "emit", "layer_norm", "--backend", "cupy")
    assert code == 0 and "import cupy as xp" in out and "fused('T " in out and "numba" not in out


def test_row_fusion_with_aliases_and_sums_added_after_the_loop(monkeypatch):
    """A run whose adjoints pass through aliases (du = da) and a sum added to an adjoint after the
    loop (du += Σ_e dt·v): fused and statement by statement agree, and both match finite
    differences of the definition."""
    pytest.importorskip("numba")
    p = parse_program("input x[N, D]\ninput v[N, D, E]\nu[n, d] = x[n, d] * x[n, d]\n"
                      "t[n, d] = sum(e) u[n, d] * v[n, d, e]\na[n, d] = u[n, d] + x[n, d]\n"
                      "y[n, d] = a[n, d] * t[n, d]")
    source = emit_program(derive_program(p), jvp=False)
    assert "_fused = _rows(" in source
    m = load(source)
    rng = np.random.default_rng(6)
    x, v = rng.standard_normal((300, 250)), rng.standard_normal((300, 250, 3))
    g = rng.standard_normal((300, 250))
    y, pullback = m.vjp(x, v)
    dx, dv = pullback(g)
    close(y, (x * x + x) * np.einsum("nd,nde->nd", x * x, v), 1e-13)
    close(dx, g * ((2 * x + 1) * (x * x * v.sum(-1)) + (x * x + x) * 2 * x * v.sum(-1)), 1e-12)
    close(dv, (g * (x * x + x) * x * x)[..., None] * np.ones(3), 1e-12)
    monkeypatch.setattr(m, "_rows", lambda *args: None)
    y1, pullback1 = m.vjp(x, v)
    close(y1, y, 1e-14)
    for a, b in zip(pullback1(g), (dx, dv)):
        close(a, b, 1e-13)


@needs_torch
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_of_a_zero_dimensional_input(name):
    """As torch: the softmax of a scalar is 1 (log_softmax 0), its gradient 0, results 0-d, dim -1 or 0."""
    import torch
    import symgrad
    m = symgrad.module(ops.build(name))
    for dim in (-1, 0):
        y, (g,) = m.forward(np.array(0.7), dim), m.backward(np.array(1.5), np.array(0.7), dim)
        t = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
        want = getattr(torch, name)(t, dim)
        want.backward(torch.tensor(1.5, dtype=torch.float64))
        assert np.shape(y) == () == np.shape(g) and y == want.item() and g == t.grad.item()


@pytest.mark.parametrize("text", [
    "input x[N, N]\nt1[n, i] = x[n, i] / (exp(tanh(x[n, i])) + 0.5) + erf(x[n, i])",
    "input x[1]\nt1[i] = x[i] + (-(exp(tanh(x[i - 2])) + 0.5)^0.5)",
])
@pytest.mark.parametrize("backend", ["numpy", "cupy", "torch", "jax"])
def test_the_pullback_keeps_only_what_the_forward_made(text, backend):
    """Every residual a pullback is handed is bound before (an input, or a value the forward computed):
    residuals are what the backward's units read, not names found in its text (a CUDA kernel's
    temporaries t1, t2 once made a CuPy module hand over a `t1` it never computed: NameError)."""
    import ast
    from symgrad.second_order import derive_program_second_order
    d = derive_program(parse_program(text))
    tree = ast.parse(emit_program(d, backend, second=derive_program_second_order(d), jvp=False))
    for fn in [n for n in tree.body if isinstance(n, ast.FunctionDef)]:
        bound = {a.arg for a in fn.args.args} | {t.id for n in ast.walk(fn) if isinstance(n, (ast.Assign, ast.For))
                                                 for t in ast.walk(n.targets[0] if isinstance(n, ast.Assign) else n.target)
                                                 if isinstance(t, ast.Name)}
        for call in [n for n in ast.walk(fn) if isinstance(n, ast.Call) and ast.unparse(n.func) == "functools.partial"]:
            handed = {a.id for a in call.args[1:] if isinstance(a, ast.Name)}
            assert handed <= bound, (fn.name, handed - bound)


def _assigned_never_read(source: str) -> list:
    """(function, name) of each ``name = ...`` in a function of ``source`` that the function never reads."""
    import ast
    out = []
    for fn in [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)]:
        stored = [n.targets[0].id for n in ast.walk(fn)
                  if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)]
        loaded = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Store)}
        out += [(fn.name, name) for name in dict.fromkeys(stored) if name not in loaded]
    return out


@pytest.mark.parametrize("name,target", [("depthwise_separable", "numpy"), ("depthwise_separable", "torch"),
                                         ("conv_bias_gelu", "numpy"), ("layer_norm", "numpy")])
def test_emitted_code_reads_every_variable_it_assigns(name, target):
    """No dead assignments: a grouped tensor's index-space view is made only where a form reads it
    (a convolution reads its operands whole: depthwise_separable's views were made and never read)."""
    d = derive_program(ops.build(name, **builder_params(name, {})))
    from symgrad.second_order import derive_program_second_order
    assert _assigned_never_read(emit_program(d, target, second=derive_program_second_order(d))) == []


def test_a_module_defines_the_row_helpers_its_loops_call():
    """The compiled loops' row helpers come with the loops that call them: a row's maximum (_row_max)
    with a max statement's, a row of summands' sum (_sum) with a reduction's; layer_norm has no max,
    GELU (an op module, one elementwise loop) neither."""
    import ast
    from symgrad import derive
    from symgrad.emit import emit

    def defined(source):
        tree = ast.parse(source)
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        return {h: (h in names, h in called) for h in ("_row_max", "_sum")}
    sources = {name: emit_program(derive_program(ops.build(name)), "numpy") for name in ("softmax", "layer_norm")}
    sources["gelu"] = emit(derive(ops.build("gelu")))
    assert defined(sources["softmax"]) == {"_row_max": (True, True), "_sum": (True, True)}
    assert defined(sources["layer_norm"]) == {"_row_max": (False, False), "_sum": (True, True)}
    assert defined(sources["gelu"]) == {"_row_max": (False, False), "_sum": (False, False)}
