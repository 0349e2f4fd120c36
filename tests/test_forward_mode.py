"""Forward mode (symgrad/forward_mode.py): the Jacobian-vector product of an op or a program is a program
of its own (its statements, then each statement's tangent statement), derived and emitted as any program;
every NumPy module's ``jvp(primals, tangents)`` runs it:
- its values equal torch.func.jvp in float64 on the built-in programs (their sweep), the ops' sweep
  configurations and programs of one's own;
- each tangent statement's form is recognised: the JVP of a convolution is convolutions of the tangents,
  of a matmul two matmuls;
- a max not under stop_gradient, and a tangent name the program already uses, are refused by name;
- ``symgrad derive --forward-mode`` prints the tangent program's forms, ``emit --forward-mode`` writes its module.
"""
import numpy as np
import pytest

from conftest import needs_torch, sliced
from support import CONFIGS, SWEEP, builder_params, run, torch_case
from symgrad import api, derive, ops
from symgrad.emit import emit, load
from symgrad.emit.program import emit_program
from symgrad.verify.reference import torch_jvp
from symgrad.forward_mode import jvp_program
from symgrad.ir import SymgradError
from symgrad.reverse import derive_program
from symgrad.syntax import parse_program

CASES = [
    ("softmax", {}, [(4, 7)], lambda F: lambda x: F.softmax(x, -1)),
    ("log_softmax", {}, [(3, 5)], lambda F: lambda x: F.log_softmax(x, -1)),
    ("cross_entropy", {}, [(4, 5), (4, 5)], lambda F: lambda x, t: F.cross_entropy(x, t)),
    ("layer_norm", {}, [(4, 8), (8,), (8,)], lambda F: lambda x, w, b: F.layer_norm(x, (8,), w, b)),
    ("rms_norm", {}, [(3, 6), (6,)], lambda F: lambda x, w: F.rms_norm(x, (6,), w)),
    ("attention", {"is_causal": True}, [(2, 5, 4), (2, 5, 4), (2, 5, 3)],
     lambda F: lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
    ("conv2d", {"stride": "2,1", "padding": "1:0,0:2", "dilation": "1,2", "groups": 1},
     [(2, 3, 7, 6), (4, 3, 3, 2), (4,)],
     lambda F: lambda x, w, b: F.conv2d(F.pad(x, (0, 2, 1, 0)), w, b, stride=(2, 1), dilation=(1, 2))),
    ("conv1d", {"stride": 2, "padding": 1, "dilation": 1, "groups": 2}, [(2, 4, 9), (6, 2, 3), (6,)],
     lambda F: lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, groups=2)),
    ("matmul", {}, [(2, 3, 4), (2, 4, 5)], lambda F: lambda a, b: a @ b),
    ("gelu", {"approximate": "tanh"}, [(9,)], lambda F: lambda x: F.gelu(x, approximate="tanh")),
]


@needs_torch
@pytest.mark.parametrize("name,params,shapes,reference", CASES, ids=[c[0] for c in CASES])
def test_jvp_equals_torch_func_jvp(name, params, shapes, reference):
    """The module's jvp, and the JVP program's own module (forward_mode=True), as torch.func.jvp."""
    import torch
    import torch.nn.functional as F
    m = api.module(ops.build(name, **params), order=1)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal(s) for s in shapes]
    ts = [rng.standard_normal(s) for s in shapes]
    if name == "cross_entropy":  # class probabilities as targets
        xs[1] = np.exp(xs[1]) / np.exp(xs[1]).sum(-1, keepdims=True)
    y, ydot = m.jvp(xs, ts)
    if name in ("layer_norm", "conv2d"):
        alone = api.module(ops.build(name, **params), order=1, forward_mode=True)
        assert all(np.array_equal(a, b) for a, b in zip(alone.forward(*xs, *ts), (y, ydot)))
    want_y, want_ydot = torch.func.jvp(reference(F), tuple(map(torch.tensor, xs)), tuple(map(torch.tensor, ts)))
    for got, want in ((y, want_y), (ydot, want_ydot)):
        want = want.numpy()
        assert np.shape(got) == want.shape
        assert np.abs(got - want).max(initial=0) <= 1e-12 * max(np.abs(want).max(initial=0), 1), (name, got, want)


@needs_torch
def test_jvp_of_a_program_of_ones_own_with_shifts_padding_and_stop_gradient():
    import torch
    text = ("input x[N, D]\nparam w[D]\nm[n] = stop_gradient(max(d) x[n, d])\n"
            "y[n, d] = exp(x[n, d] - m[n]) * w[d] + x[n, wrap(d - 1, D)] * x[n, d - 1]")
    m = api.module(text, order=1, forward_mode=True)
    rng = np.random.default_rng(4)
    x, w, xd, wd = (rng.standard_normal(s) for s in [(3, 5), (5,), (3, 5), (5,)])

    def f(x, w):
        shifted = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)  # x[n, d - 1]: 0 outside
        return torch.exp(x - x.max(1, keepdim=True).values.detach()) * w + torch.roll(x, 1, 1) * shifted
    want = torch.func.jvp(f, (torch.tensor(x), torch.tensor(w)), (torch.tensor(xd), torch.tensor(wd)))[1].numpy()
    got = m.forward(x, w, xd, wd)[1]
    assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()


def _close(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert np.abs(got - want).max(initial=0) <= 1e-12 * max(np.abs(want).max(initial=0), 1), what


@needs_torch
@pytest.mark.parametrize("name,params,shapes", sliced(CONFIGS, 40, ids=[f"{c[0]}-{k}" for k, c in enumerate(CONFIGS)]))
def test_jvp_over_the_sweep_configurations(name, params, shapes):
    """Every op family's configurations (strides, dilations, paddings, groups, batch broadcasting,
    unbatched inputs): jvp equals torch.func.jvp of torch's own operator in float64."""
    op = ops.build(name, **params)
    m = load(emit(derive(op), order=1))
    rng = np.random.default_rng(5)
    arrays = {t.name: rng.standard_normal(shapes[t.name]) for t in op.inputs}
    tangents = {t.name: rng.standard_normal(shapes[t.name]) for t in op.inputs}
    want = torch_jvp(op, arrays, tangents)
    if want is None:
        pytest.skip(f"{name}: no torch operator for these shapes")
    got = m.jvp([arrays[t.name] for t in op.inputs], [tangents[t.name] for t in op.inputs])
    for g, w, what in zip(got, want, ("output", "tangent")):
        _close(g, w, what)


@needs_torch
@pytest.mark.parametrize("name,params,shapes", sliced(SWEEP, 3))
def test_jvp_over_the_built_in_programs_sweep(name, params, shapes):
    import torch
    m = load(emit_program(derive_program(ops.build(name, **builder_params(name, params)))))
    arrays, reference, extra = torch_case(name, params, shapes)
    tangents = [np.random.default_rng(6).standard_normal(s) for s in shapes]
    y, ydot = m.jvp(arrays, tangents, *extra)
    want = torch.func.jvp(reference, tuple(map(torch.tensor, arrays)), tuple(map(torch.tensor, tangents)))
    _close(y, want[0].numpy(), "output")
    _close(ydot, want[1].numpy(), "tangent")


def test_jvp_takes_none_for_zero_and_names_bad_tangents():
    m = api.module(ops.build("layer_norm"), order=1)
    x, w, b = np.ones((2, 3)) * [[1, 2, 4]], np.ones(3), np.zeros(3)
    t = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(m.jvp((x, w, b), (t, None, None))[1], m.jvp((x, w, b), (t, np.zeros(3), np.zeros(3)))[1])
    with pytest.raises(ValueError, match=r"layer_norm: the tangent of x must have x's shape \(2, 3\), got \(3,\)"):
        m.jvp((x, w, b), (np.ones(3), None, None))
    with pytest.raises(TypeError, match=r"layer_norm: jvp takes one of tangents per input \(x, weight, bias\), got 1"):
        m.jvp((x, w, b), (t,))
    refused = api.module("input x[N, D]\ny[n] = max(d) x[n, d]", order=1)
    with pytest.raises(NotImplementedError, match="forward mode through a max is not derived"):
        refused.jvp((x,), (t,))


def test_tangent_forms_are_recognised():
    kinds = lambda name, **p: {s.statement.name: [f.kind for f in s.forward]
                               for s in derive_program(jvp_program(ops.build(name, **p)), wrt=()).statements}
    assert sorted(kinds("conv2d", stride=2)["ydot"]) == ["conv_general_dilated", "conv_general_dilated", "elementwise"]
    assert kinds("matmul")["outdot"] == ["matmul", "matmul"]
    assert "generic" not in {k for name in ("softmax", "layer_norm", "attention") for ks in kinds(name).values()
                             for k in ks}


def test_refusals_name_the_statement():
    with pytest.raises(SymgradError, match=r"statement 1 \(y, line 2\): forward mode through a max"):
        jvp_program(parse_program("input x[N, D]\ny[n] = max(d) x[n, d]"))
    with pytest.raises(SymgradError, match=r"statement 1 \(t_max1, line 2\): forward mode through a max"):
        jvp_program(parse_program("input x[N, D]\nt[n] = exp(max(d) x[n, d])"))
    with pytest.raises(SymgradError, match="tangent 'xdot', which the program already uses"):
        jvp_program(parse_program("input x[N], xdot[N]\ny[n] = x[n] * xdot[n]"))


def test_cli_derive_and_emit_forward_mode(capsys, tmp_path):
    code, out, _ = run(capsys, "derive", "matmul", "--forward-mode")
    assert code == 0 and "outdot[beta, m, n] =" in out and out.count("form: matmul") == 3 and "backward" not in out
    code, _, err = run(capsys, "derive", "softmax", "--forward-mode", "--order", "2")
    assert code == 2 and "--forward-mode derives the Jacobian-vector product" in err
    path = tmp_path / "gelu_jvp.py"
    code, _, _ = run(capsys, "emit", "gelu", "--forward-mode", "--order", "1", "-o", str(path))
    assert code == 0
    m = load(path.read_text(), "gelu_jvp")
    x, t = np.linspace(-3, 3, 7), np.ones(7)
    y, ydot = m.forward(x, t)
    h = 1e-6
    fd = (m.forward(x + h, t)[0] - m.forward(x - h, t)[0]) / (2 * h)
    assert np.abs(ydot - fd).max() < 1e-8
