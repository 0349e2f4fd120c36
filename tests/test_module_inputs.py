"""What emitted modules and the command line are given that they were not written for: lists, tuples
and tensors, integers and booleans, values that are not real numbers, strides far larger than the
data.  The right answer or one clear error, never a traceback, never a truncated or silently
converted result."""
import time

import numpy as np
import pytest

import symgrad
from symgrad.cli import main
from symgrad.emit import emit, load

OPS = {  # name: (op, a valid set of inputs as nested lists of numbers)
    "conv": (lambda: symgrad.ops.conv(1, stride=2, padding=1, dilation=1),
             {"x": [[[1.5, 2.0, -3.0, 4.0, 0.5]]], "w": [[[1.0, -1.0, 2.0]], [[0.5, 0.0, 1.0]]], "b": [0.25, -1.0]}),
    "convolve": (lambda: symgrad.ops.convolve("same"), {"x": [1.5, 2.0, -3.0, 4.0], "y": [1.0, -1.0, 0.5]}),
    "matmul": (lambda: symgrad.ops.matmul("M,K", "K,N"), {"a": [[1.5, 2.0], [-3.0, 4.0]], "b": [[1.0, -2.0], [0.5, 3.0]]}),
    "gelu": (lambda: symgrad.ops.gelu(), {"x": [0.84, 1.95, -0.16]}),
}


@pytest.fixture(scope="module", params=sorted(OPS))
def case(request):
    make, values = OPS[request.param]
    op = make()
    return op, load(emit(symgrad.derive(op)), request.param), values


def _reference(op, module, values):
    arrays = [np.asarray(values[t.name], dtype=np.float64) for t in op.inputs]
    y = module.forward(*arrays)
    return arrays, y, module.backward(np.ones_like(y), *arrays)


def test_lists_tuples_and_torch_tensors_are_arrays(case):
    op, module, values = case
    arrays, y, grads = _reference(op, module, values)
    torch = pytest.importorskip("torch")
    for given in ([values[t.name] for t in op.inputs], [np.asarray(values[t.name]).tolist() for t in op.inputs],
                  [torch.tensor(values[t.name], dtype=torch.float64) for t in op.inputs]):
        np.testing.assert_array_equal(module.forward(*given), y)
        for got, want in zip(module.backward(np.ones_like(y).tolist(), *given), grads):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_integers_and_booleans_are_promoted_never_truncated(case, dtype):
    """int32 x gave dx = [1, 2] for [1.2, 2.4] (the gradient cast to the input's dtype); now every
    integer or boolean input is computed as float64, as NumPy's true division promotes it."""
    op, module, values = case
    given = [np.asarray(values[t.name]).astype(dtype) for t in op.inputs]
    wide = [a.astype(np.float64) for a in given]
    y = module.forward(*given)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, module.forward(*wide))
    g = np.linspace(0.1, 1.3, y.size).reshape(y.shape)  # fractions: a truncating cast would show
    for got, want in zip(module.backward(g, *given), module.backward(g, *wide)):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bad,needle", [
    (lambda a: a.astype(np.complex128), "must hold real numbers, got complex numbers"),
    (lambda a: a.astype(str), "must hold real numbers, got text"),
    (lambda a: np.array(a.tolist(), dtype=object), "must hold real numbers, got Python objects"),
    (lambda a: None, "must hold real numbers, got Python objects: NoneType"),
    (lambda a: "1, 2, 3", "must hold real numbers, got text: str"),
])
def test_values_that_are_not_real_numbers_are_refused_by_name(case, bad, needle):
    op, module, values = case
    first = op.inputs[0].name
    arrays = [np.asarray(values[t.name], dtype=np.float64) for t in op.inputs]
    with pytest.raises(TypeError, match=f"{op.name}: input {first} {needle}"):
        module.forward(bad(arrays[0]), *arrays[1:])
    with pytest.raises(TypeError, match=f"{op.name}: input grad_output {needle}"):
        module.backward(bad(module.forward(*arrays)), *arrays)


def test_a_torch_tensor_that_requires_grad_is_refused_with_the_remedy(case):
    torch = pytest.importorskip("torch")
    op, module, values = case
    given = [torch.tensor(values[t.name], dtype=torch.float64, requires_grad=True) for t in op.inputs]
    with pytest.raises(TypeError, match=r"is not an array of numbers .*tensor\.detach\(\)"):
        module.forward(*given)


def test_cost_scales_with_the_data_not_the_stride():
    """The backward of a stride-10^12 convolution took forever (one loop turn per stride phase, most
    empty); it is now about as cheap as the forward, and right."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((1, 2, 20)), rng.standard_normal((3, 2, 3)), np.ones(3)
    for stride in (10 ** 6, 10 ** 12):
        module = load(emit(symgrad.derive(symgrad.ops.conv(1, stride=stride, padding=0, dilation=1))))
        start = time.process_time()
        y = module.forward(x, w, b)
        dx, dw, db = module.backward(np.ones(y.shape), x, w, b)
        assert time.process_time() - start < 5.0  # a bound on hanging, not a benchmark: it takes milliseconds
        tx = torch.tensor(x, requires_grad=True)
        torch.nn.functional.conv1d(tx, torch.tensor(w), torch.tensor(b), stride=2 ** 31 - 1).sum().backward()
        np.testing.assert_allclose(dx, tx.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("argv,needle", [
    (["emit", "gelu", "-o", "/nonexistent-folder/x.py"], "cannot write /nonexistent-folder/x.py: No such file or directory"),
    (["emit", "gelu", "-o", "/"], "cannot write /: Is a directory"),
    (["emit", "gelu", "-o", "/proc/version"], "cannot write /proc/version:"),
    (["emit", "gelu", "-o", "/dev/full"], "cannot write /dev/full: No space left on device"),
    (["derive", "conv", "--ndim", "25"], "conv: ndim must be an integer from 1 to 22, got 25"),
    (["derive", "conv", "--ndim", "1000000000000"], "conv: ndim must be an integer from 1 to 22"),
    (["derive", "conv1d", "--kernel-size", "1000000000000"], "kernel_size 1000000000000 is longer than any array axis"),
    (["derive", "conv1d", "--padding", "1000000000000:0"], "padding 1000000000000 is longer than any array axis"),
    (["derive", "conv2d", "--stride", "1,,2"], "stride has an empty value in '1,,2'"),
    (["derive", "matmul", "--a-shape", "M,,K"], "a_shape has an empty value"),
    (["derive", "convolve", "--mode="], "mode must be one of full, same, valid, got ''"),
    (["derive", "gelu", "--approximate="], "approximate must be one of none, tanh, got ''"),
])
def test_command_line_errors_are_one_line(capsys, argv, needle):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_check_sizes_inputs_from_the_parameters(capsys):
    """A dilated kernel wider than the sampler's first sizes: the shapes grow to fit (it gave up before)."""
    assert main(["check", "conv1d", "--kernel-size", "5", "--dilation", "3", "--trials", "2"]) == 0
    assert "conv1d: OK" in capsys.readouterr().out


def test_a_derivation_is_the_same_text_every_time(capsys):
    outputs = []
    for _ in range(2):
        for fmt in ("text", "json"):
            main(["derive", "conv1d", "--stride", "2", "--format", fmt])
            outputs.append(capsys.readouterr().out)
    assert outputs[:2] == outputs[2:] and "derived in" not in outputs[0] and '"seconds"' not in outputs[1]
    main(["derive", "conv1d", "--timing"])
    assert "derived in" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["softmax", "layer_norm"])
def test_double_backward_errors_name_its_own_arguments(name):
    """double_backward differentiates the backward taken as a program of its own (inputs x, ybar; its
    upstream gradient per derived gradient); a bad argument is still named as the caller passed it:
    grad_output, ggx, ggbias, under "<program> double_backward"."""
    op = symgrad.ops.build(name)
    module = symgrad.module(op)
    args = [np.zeros((3, 4)) if t.name == "x" else np.zeros(4) for t in op.inputs]
    ggs = [np.zeros_like(a) for a in args]
    bad = {"grad_output": (ggs, np.zeros((3, 5))), "ggx": ([np.zeros((2, 2))] + ggs[1:], np.zeros((3, 4))),
           "grad_output ": (ggs, np.zeros((3, 4), complex))}
    if name == "layer_norm":
        bad["ggbias"] = (ggs[:-1] + [np.zeros(5)], np.zeros((3, 4)))
    for argument, (gg, g) in bad.items():
        with pytest.raises((TypeError, ValueError)) as error:
            module.double_backward(*gg, g, *args)
        message = str(error.value)
        assert message.startswith(f"{name} double_backward: ") and f"{argument.strip()} must" in message, message
        assert "ybar" not in message and f"{name}_backward" not in message and "grad_output_" not in message


def test_an_upstream_gradient_must_have_the_shape_of_what_it_is_the_gradient_of():
    """A program over rows flattens its leading axes; a grad_output of another shape with as many
    elements (or one that broadcasts against x) was once read as if it had the output's shape. Each is
    refused in the caller's own shape, along ``dim`` too, for backward and double_backward alike."""
    module = symgrad.module(symgrad.ops.build("softmax"))
    x = np.random.default_rng(0).random((2, 3, 4))
    bad = [(lambda g: module.backward(g, x), (6, 4), "softmax: grad_output must have the output's shape (2, 3, 4)"),
           (lambda g: module.backward(g, x), (3, 2, 4), "softmax: grad_output must have the output's shape (2, 3, 4)"),
           (lambda g: module.backward(g, x.transpose(0, 2, 1), dim=1), (2, 3, 4),
            "softmax: grad_output must have the output's shape (2, 4, 3)"),
           (lambda g: module.double_backward(None, g, x), (3, 4),
            "softmax double_backward: grad_output must have the output's shape (2, 3, 4)"),
           (lambda g: module.double_backward(g, np.ones(x.shape), x), (6, 4),
            "softmax double_backward: ggx must have the shape of x (2, 3, 4)")]
    for call, shape, message in bad:
        with pytest.raises(ValueError) as error:
            call(np.ones(shape))
        assert str(error.value) == f"{message}, got {shape}"
    with pytest.raises(ValueError, match="^softmax jvp: dim 5 is out of range for input x"):
        module.jvp((x,), (None,), dim=5)
    with pytest.raises(ValueError) as error:  # a shape the rule sees as rows says so
        module.forward(np.ones((2, 3, 0)))
    assert str(error.value) == ("softmax: input x must have shape (N, D) with D >= 1, got (6, 0) as rows "
                                "(leading axes flattened into N, dim last)")


def test_a_scalar_and_a_broadcast_batch_reach_every_order():
    """softmax of a 0-d array (torch's: 1) has a double backward and a jvp (their programs take two
    inputs along dim); attention's q broadcast against k and v has a double backward whose gradients
    have q's shape: the same numbers as with q expanded to the batch first."""
    module = symgrad.module(symgrad.ops.build("softmax"))
    x = np.array(0.5)
    assert [np.shape(a) for a in module.double_backward(np.array(2.0), np.array(1.0), x)] == [(), ()]
    assert module.jvp((x,), (np.array(3.0),)) == (1.0, 0.0)
    attention = symgrad.module(symgrad.ops.build("attention"))
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((4, 3, 8)), rng.standard_normal((2, 4, 6, 8)), rng.standard_normal((2, 4, 6, 8))
    gy, ggq, ggk = rng.standard_normal((2, 4, 3, 8)), rng.standard_normal(q.shape), rng.standard_normal(k.shape)
    got = attention.double_backward(ggq, ggk, None, gy, q, k, v)
    wide = attention.double_backward(np.broadcast_to(ggq, gy.shape), ggk, None, gy, np.broadcast_to(q, gy.shape), k, v)
    assert [g.shape for g in got] == [gy.shape, q.shape, k.shape, v.shape]
    for a, b in zip(got, (wide[0], wide[1].sum(axis=0)) + wide[2:]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_a_module_of_an_op_with_symbolic_parameters_names_them_as_the_user_does():
    """ops.conv2d() keeps stride, dilation and padding symbolic (for derivations); its module needs
    numbers, and the message says which parameters, by the names the user gives them, never the
    symbols s_1, lo_1 the derivation calls them."""
    with pytest.raises(symgrad.SymgradError) as error:
        symgrad.module(symgrad.ops.build("conv2d", stride=2))
    message = str(error.value)
    assert message.startswith("conv2d: emitting code needs numbers for dilation, padding, symbolic here") and \
        "dilation=1, padding=0" in message and not any(s in message for s in ("d_1", "lo_1", "hi_1", "s_1"))
    with pytest.raises(symgrad.SymgradError, match=r"^conv1d: emitting code needs numbers for dilation, symbolic "
                                                   r"here; give it .*dilation=1,"):
        symgrad.module(symgrad.ops.build("conv1d", padding="same"))  # (its padding is the user's "same")


def test_an_op_modules_upstream_gradients_are_checked_in_the_callers_shapes():
    """An unbatched call (x without its batch axis, as PyTorch takes it) re-enters with a batch of one:
    its grad_output and ggx are checked first, in the caller's shapes; double_backward checks
    grad_output even where every gg is None (it once returned zeros for any shape), and names the
    gradients' rules as the caller knows them (not 'conv2d dx', not g)."""
    conv = symgrad.module(symgrad.ops.build("conv2d", stride=1, padding=0, dilation=1))
    x, w, b, g = np.ones((3, 8, 8)), np.ones((4, 3, 3, 3)), np.ones(4), np.ones((4, 6, 6))
    bad = [(lambda: conv.backward(g[None], x, w, b),
            "conv2d: grad_output must have shape (C_out, O_1, O_2) for an unbatched x, got (1, 4, 6, 6)"),
           (lambda: conv.double_backward(x[None], None, None, g, x, w, b),
            "conv2d double_backward: ggx must have shape (C_in, L_1, L_2) for an unbatched x, got (1, 3, 8, 8)"),
           (lambda: conv.double_backward(None, None, None, g[None], x, w, b),
            "conv2d double_backward: grad_output must have shape (C_out, O_1, O_2) for an unbatched x, got (1, 4, 6, 6)"),
           (lambda: conv.double_backward(None, w[0], None, g, x, w, b),
            "conv2d double_backward: ggw must have shape (C_out, C_in, K_1, K_2) = (4, 3, 3, 3), got (3, 3, 3)")]
    matmul = symgrad.module(symgrad.ops.matmul("B,M,K", "B,K,N"))
    a, c = np.ones((2, 3, 4)), np.ones((2, 4, 5))
    bad.append((lambda: matmul.double_backward(None, None, np.ones((1, 2, 3, 5)), a, c),
                "matmul: grad_output must have shape (B, M, N) = (2, 3, 5), got (1, 2, 3, 5)"))
    gelu = symgrad.module(symgrad.ops.gelu())
    bad.append((lambda: gelu.double_backward(np.ones(3), np.ones((2, 3)), np.ones((2, 3))),
                "gelu double_backward: ggx must have the shape of grad_output (2, 3), got (3,)"))
    for call, message in bad:
        with pytest.raises(ValueError) as error:
            call()
        assert str(error.value) == message
    assert [r.shape for r in conv.double_backward(x, None, None, g, x, w, b)] == [g.shape, x.shape, w.shape, b.shape]
