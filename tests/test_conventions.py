"""The conventions users bring from other tools: TensorFlow's and JAX's 'same' with a stride, outputs
that are ordinary writeable arrays, the spellings people type for parameters and negative values,
PyTorch's defaults and the shapes PyTorch and NumPy accept, one line where CuPy or a GPU is absent,
a suite that says what it does, a derivation that prints readably; one test per defect once found."""
import re

import numpy as np
import pytest

import symgrad
from symgrad.cli import main
from symgrad.emit import emit, load
from conftest import HAS_JAX, needs_torch
from support import run, stand_in_bench


# 1. 'same' with a stride, as TensorFlow and JAX define it (PyTorch refuses it)

def _tf_same(n, k, s, d):
    """TensorFlow's SAME padding of one axis, written from its documentation."""
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


@needs_torch
@pytest.mark.parametrize("size,kernel,stride,dilation", [((7, 8), (3, 2), (2, 2), (1, 1)), ((9, 5), (3, 3), (3, 2), (1, 2)),
                                                         ((2, 3), (2, 4), (2, 2), (2, 1)), ((16,), (5,), (4,), (1,))])
def test_strided_same_is_tensorflows(size, kernel, stride, dilation):
    import torch
    import torch.nn.functional as F
    nd = len(size)
    op = symgrad.ops.conv(nd, stride=list(stride), dilation=list(dilation), padding="same")
    module = load(emit(symgrad.derive(op), jvp=False))
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3) + size), rng.standard_normal((4, 3) + kernel), rng.standard_normal(4)
    y = module.forward(x, w, b)
    assert y.shape[2:] == tuple(-(-n // s) for n, s in zip(size, stride))  # ⌈L/s⌉
    pads = [p for n, k, s, d in reversed(list(zip(size, kernel, stride, dilation))) for p in _tf_same(n, k, s, d)]
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    conv = {1: F.conv1d, 2: F.conv2d}[nd]
    want = conv(F.pad(ts[0], pads), ts[1], ts[2], stride=stride, dilation=dilation)
    g = rng.standard_normal(y.shape)
    want.backward(torch.tensor(g))
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-12, atol=1e-12)
    for got, t in zip(module.backward(g, x, w, b), ts):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-11, atol=1e-11)


@pytest.mark.skipif(not HAS_JAX, reason="JAX not installed")
def test_strided_same_is_jaxs():
    import jax
    jax.config.update("jax_enable_x64", True)
    module = load(emit(symgrad.derive(symgrad.ops.conv(2, stride=[2, 3], dilation=1, padding="same")), jvp=False))
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 3, 9, 10)), rng.standard_normal((4, 3, 3, 4)), np.zeros(4)
    want = jax.lax.conv_general_dilated(x, w, (2, 3), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))
    np.testing.assert_allclose(module.forward(x, w, b), np.asarray(want), rtol=1e-12, atol=1e-12)


# 2. outputs are ordinary writeable arrays

@pytest.mark.parametrize("name,params,shapes", [
    ("conv2d", {"stride": 2, "padding": 1, "dilation": 1}, {"x": (1, 2, 5, 5), "w": (3, 2, 3, 3), "b": (3,)}),
    ("matmul", {"a_shape": "1,M,K", "b_shape": "B,K,N"}, {"a": (1, 2, 3), "b": (4, 3, 2)}),  # da: a broadcast
    ("convolve", {"mode": "same"}, {"x": (5,), "y": (3,)}),
    ("gelu", {}, {"x": (2, 3)}),
])
def test_outputs_are_writeable(name, params, shapes):
    op = symgrad.ops.build(name, **params)
    module = load(emit(symgrad.derive(op), jvp=False))
    args = [np.ones(shapes[t.name]) for t in op.inputs]
    y = module.forward(*args)
    for out in (y, *module.backward(np.ones_like(y), *args)):
        assert out.flags.writeable and all(s != 0 for s, n in zip(out.strides, out.shape) if n > 1)
        out += 1  # raised "assignment destination is read-only" before


# 3. negative values need no '='; 12. the spellings people type

@pytest.mark.parametrize("argv", [
    ["derive", "conv1d", "--padding", "-1:1", "--stride", "2", "--dilation", "1"],
    ["derive", "conv2d", "--padding", "-1:2,0", "--stride", "(2, 1)"],
    ["derive", "conv2d", "--padding", "(1, 2)", "--stride", "[2,1]"],
    ["derive", "gelu", "--approximate", "Tanh"],
    ["derive", "convolve", "--mode", "SAME"],
    ["derive", "conv1d", "--bias", "False"],
    ["derive", "conv1d", "--bias", "yes"],
])
def test_spellings_people_type(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 0, err


def test_bias_false_means_no_bias(capsys):
    _, out, _ = run(capsys, "derive", "conv1d", "--bias", "false")
    assert "dℒ/db" not in out and "bias=False" in out


@pytest.mark.parametrize("argv,needle", [
    (["derive", "conv1d", "--stride", "1,2"], "conv1d: stride takes one value (one spatial axis), got 2: '1,2'"),
    (["derive", "conv2d", "--stride", "1,,2"], "stride has an empty value in '1,,2'"),
    (["derive", "matmul", "--a-shape", "M,,K"], "a_shape has an empty value in 'M,,K'"),
    (["derive", "convolve", "--mode", "same", "--stride", "2"], "convolve: --stride does not apply to convolve"),
    (["emit", "gelu", "--stride", "2"], "gelu: --stride does not apply to gelu (its parameters: --approximate)"),
    (["emit", "matmul", "--groups", "0"], "matmul: --groups does not apply to matmul"),
    (["emit", "conv2d", "--ndim", "3"], "conv2d: --ndim does not apply to conv2d"),
    (["derive", "conv2d", "--a-shape", "M,K"], "conv2d: --a-shape does not apply to conv2d"),
    (["derive", "conv1d", "--bias", "maybe"], "argument --bias: expected true or false, got 'maybe'"),
])
def test_flags_that_do_not_apply_are_refused(capsys, argv, needle):
    try:
        code, out, err = run(capsys, *argv)
    except SystemExit as exc:  # argparse's own refusal
        code, err = exc.code, capsys.readouterr().err.splitlines()[-1] + "\n"
    assert code == 2 and needle in err and err.count("\n") == 1, err


def test_option_prefixes_are_not_guessed(capsys):
    with pytest.raises(SystemExit):
        main(["derive", "conv1d", "--strid", "2"])
    assert "unrecognized arguments: --strid" in capsys.readouterr().err


# 4. concrete shapes: PyTorch's defaults, numbers everywhere

def test_input_shapes_without_parameters_give_concrete_text(capsys):
    code, out, err = run(capsys, "derive", "conv1d", "--input-shape", "x=2,3,10", "--input-shape", "w=4,3,3",
                         "--input-shape", "b=4")
    assert code == 0, err  # was: name 'd' is not defined
    assert "O = 8" in out and "sum_{f=0..3}" in out
    derivation = out[out.index("forward:"):]  # after the line that lists the sizes by name
    for symbol in ("K", "L", "O", "C_in", "C_out", "N", "s", "d", "lo", "hi"):
        assert not re.search(rf"\b{symbol}\b", derivation), (symbol, out)


# 6. CuPy or a GPU absent: one line

def test_gpu_bench_without_cupy_is_one_line(capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy fails
    code, _, err = run(capsys, "bench", "--suite", "--backend", "cupy")
    assert code == 2 and err.count("\n") == 1 and "needs CuPy and a CUDA GPU" in err and "Traceback" not in err


# 7. the suite says what it will do, shows progress, and writes only where told

def test_bench_suite_refuses_to_clobber_and_reports_progress(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("symgrad.bench.cpu.bench", stand_in_bench)
    target = tmp_path / "BENCHMARKS.md"
    target.write_text("kept")
    code, _, err = run(capsys, "bench", "--suite", "-o", str(target))
    assert code == 2 and "exists; --force overwrites it" in err and target.read_text() == "kept"
    code, out, err = run(capsys, "bench", "--suite", "--threads", "1")
    assert code == 0 and out.startswith("# Benchmarks") and "about" in err.splitlines()[0]
    assert "minutes" in err.splitlines()[0] and err.splitlines()[1].startswith("[1/8] ")
    code, _, _ = run(capsys, "bench", "--suite", "--threads", "1", "-o", str(target), "--force")
    assert code == 0 and target.read_text().startswith("# Benchmarks")


# 8. a derivation prints readably

def test_a_derivation_prints_as_derive_does(capsys):
    d = symgrad.derive(symgrad.ops.conv(1, stride=2))
    _, out, _ = run(capsys, "derive", "conv1d", "--stride", "2")
    assert str(d) == out and "Derivation(" not in str(d)


# 11. shapes PyTorch and NumPy accept

@needs_torch
@pytest.mark.parametrize("nd,groups", [(1, 1), (2, 2), (3, 1)])
def test_unbatched_convolution_input(nd, groups):
    """(C, *spatial) without the batch axis, as torch.nn.functional.conv*d takes it."""
    import torch
    import torch.nn.functional as F
    op = symgrad.ops.conv(nd, stride=2, padding=1, dilation=1, groups=groups)
    module = load(emit(symgrad.derive(op), jvp=False))
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4,) + (6,) * nd), rng.standard_normal((6, 4 // groups) + (3,) * nd), np.ones(6)
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    want = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd](*ts, stride=2, padding=1, groups=groups)
    g = rng.standard_normal(tuple(want.shape))
    want.backward(torch.tensor(g))
    np.testing.assert_allclose(module.forward(x, w, b), want.detach().numpy(), rtol=1e-12, atol=1e-12)
    for got, t in zip(module.backward(g, x, w, b), ts):
        assert got.shape == tuple(t.shape)
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-12, atol=1e-12)


@needs_torch
@pytest.mark.parametrize("groups", [1, 2])
def test_empty_batch(groups):
    import torch
    import torch.nn.functional as F
    module = load(emit(symgrad.derive(symgrad.ops.conv(2, stride=2, padding=1, dilation=1, groups=groups))))
    x, w, b = np.zeros((0, 4, 7, 6)), np.ones((6, 4 // groups, 3, 3)), np.ones(6)
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    want = F.conv2d(*ts, stride=2, padding=1, groups=groups)
    want.backward(torch.zeros(want.shape, dtype=torch.float64))
    y = module.forward(x, w, b)
    assert y.shape == tuple(want.shape)
    for got, t in zip(module.backward(np.zeros(y.shape), x, w, b), ts):
        assert got.shape == tuple(t.shape) and np.array_equal(got, t.grad.numpy())  # dw, db: zeros
    output, tangent = module.jvp((x, w, b), (x, w, b))  # forward mode takes the empty batch as forward does
    assert output.shape == tangent.shape == tuple(want.shape)


@pytest.mark.parametrize("a_shape,b_shape,a,b", [
    ("B,M,K", "K,N", (2, 3, 0), (0, 4)),   # K = 0: zeros
    ("B,M,K", "K,N", (2, 0, 3), (3, 4)),   # M = 0: empty
    ("M,K", "K", (0, 3), (3,)),
    ("K", "K", (3,), (3,)),                 # vector . vector: a 0-d result
    ("K", "K", (0,), (0,)),
])
def test_matmul_shapes_numpy_accepts(a_shape, b_shape, a, b):
    module = load(emit(symgrad.derive(symgrad.ops.matmul(a_shape, b_shape)), jvp=False))
    rng = np.random.default_rng(3)
    left, right = rng.standard_normal(a), rng.standard_normal(b)
    out = module.forward(left, right)
    want = np.matmul(left, right)
    assert out.shape == want.shape and np.allclose(out, want)
    g = rng.standard_normal(want.shape)
    da, db = module.backward(g, left, right)
    # the gradients of <g, a @ b>, written with einsum from the shapes
    if left.ndim == right.ndim == 1:
        want_a, want_b = g * right, g * left
    elif right.ndim == 1:
        want_a, want_b = np.einsum("m,k->mk", g, right), np.einsum("mk,m->k", left, g)
    else:
        want_a, want_b = np.einsum("bmn,kn->bmk", g, right), np.einsum("bmk,bmn->kn", left, g)
    assert da.shape == left.shape and db.shape == right.shape
    np.testing.assert_allclose(da, want_a, atol=1e-12)
    np.testing.assert_allclose(db, want_b, atol=1e-12)


def test_grouped_shape_errors_say_what_c_in_is(capsys):
    """C_in in a grouped layer's shapes is per group: the messages say so and give its value."""
    code, _, err = run(capsys, "emit", "conv1d", "--groups", "2", "--input-shape", "x=1,4,8",
                       "--input-shape", "w=4,3,3", "--input-shape", "b=4")
    assert code == 2 and "(axis 1 should be C_in = 2, read from axis 1 of x" in err
    code, _, err = run(capsys, "emit", "conv1d", "--groups", "2", "--input-shape", "x=1,3,8",
                       "--input-shape", "w=4,1,3", "--input-shape", "b=4")
    assert code == 2 and "2 groups of C_in" in err and "is not a multiple of 2" in err
