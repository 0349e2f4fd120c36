"""Framework targets (`emit --target torch|jax`): the derivation as a torch.autograd.Function and a
jax.custom_vjp, on a sample of the sweep (every op family: strided, dilated, grouped and depthwise
convolutions with asymmetric and negative padding and stride > kernel; numpy.convolve in each mode;
broadcast matmuls; both GELUs; average pooling):

- the values equal the NumPy module's in float64 (which test_sweep holds to PyTorch's);
- torch.autograd.gradcheck and gradgradcheck pass (float64), and the double backward equals torch's
  own; jax.test_util.check_grads(order=2, modes=["rev"]) passes, also under jax.jit;
- a small network (two strided convolutions, GELU, a linear layer) trained for 20 SGD steps with the
  emitted Functions follows torch.nn's layers from the same initial weights to 1e-10;
- the modules import only their framework and the standard library, are byte-deterministic, and
  refuse what they cannot run with one clear error.
"""
import numpy as np
import pytest

import symgrad
from symgrad.emit import emit, emit_target, load
from symgrad.ir import SymgradError
from conftest import needs_jax, needs_torch, sliced
from sweep_configs import all_configs
from support import imports_of

SAMPLE = all_configs()[::10]
IDS = [f"{name}-{k}" for k, (name, _, _) in enumerate(SAMPLE)]


def _derived(name, params):
    return symgrad.derive(symgrad.ops.build(name, **params))


def _values(op, shapes, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shapes[t.name]) for t in op.inputs]


@needs_torch
@pytest.mark.parametrize("name,params,shapes", sliced(SAMPLE, 6, ids=IDS))
def test_torch_function_matches_numpy_and_passes_gradcheck(name, params, shapes):
    import torch
    d = _derived(name, params)
    module, reference = load(emit_target(d, "torch"), "torch_target"), load(emit(d, jvp=False), "numpy_module")
    values = _values(d.op, shapes, 0)
    tensors = [torch.tensor(v, requires_grad=True) for v in values]
    fn = getattr(module, d.op.name)
    y = fn(*tensors)
    g = np.random.default_rng(1).standard_normal(tuple(y.shape))
    grads = torch.autograd.grad(y, tensors, torch.tensor(g))
    want = (reference.forward(*values),) + tuple(reference.backward(g, *values))
    for got, w in zip((y,) + grads, want):
        np.testing.assert_allclose(got.detach().numpy(), w, rtol=1e-10, atol=1e-10)
    assert torch.autograd.gradcheck(fn, tensors, fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, tensors, fast_mode=True)


@needs_torch
@pytest.mark.parametrize("stride,groups", [(2, 1), (3, 2)])
def test_torch_double_backward_equals_torchs_own(stride, groups):
    """The gradient of ⟨∂ℒ/∂(x, w), v⟩ through the emitted Function's backward is torch's double
    backward of F.conv2d (its hand-written _convolution_double_backward)."""
    import torch
    d = _derived("conv2d", {"stride": stride, "padding": "1:0,2:1", "dilation": 1, "groups": groups})
    fn = getattr(load(emit_target(d, "torch"), "torch_target"), "conv2d")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2 * groups, 9, 8, dtype=torch.float64, generator=gen)
    w = torch.randn(2 * groups, 2, 3, 2, dtype=torch.float64, generator=gen)
    b = torch.randn(2 * groups, dtype=torch.float64, generator=gen)
    grads = []
    for conv in (fn, lambda x, w, b: torch.nn.functional.conv2d(
            torch.nn.functional.pad(x, (2, 1, 1, 0)), w, b, stride=stride, groups=groups)):
        inputs = [t.clone().requires_grad_() for t in (x, w, b)]
        y = conv(*inputs)
        g = torch.ones_like(y, requires_grad=True)
        first = torch.autograd.grad(y, inputs, g, create_graph=True)
        total = sum((f * torch.cos(f.detach())).sum() for f in first)
        grads.append(torch.autograd.grad(total, inputs + [g], allow_unused=True, materialize_grads=True))
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


@needs_jax
@pytest.mark.parametrize("name,params,shapes", SAMPLE, ids=IDS)
def test_jax_custom_vjp_matches_numpy_and_passes_check_grads(name, params, shapes):
    import jax
    from jax.test_util import check_grads
    jax.config.update("jax_enable_x64", True)
    d = _derived(name, params)
    module, reference = load(emit_target(d, "jax"), "jax_target"), load(emit(d, jvp=False), "numpy_module")
    values = _values(d.op, shapes, 0)
    fn = getattr(module, d.op.name)
    y, pullback = jax.vjp(fn, *values)
    g = np.random.default_rng(1).standard_normal(y.shape)
    want = (reference.forward(*values),) + tuple(reference.backward(g, *values))
    for got, w in zip((y,) + tuple(pullback(g)), want):
        np.testing.assert_allclose(np.asarray(got), w, rtol=1e-10, atol=1e-10)
    check_grads(fn, values, order=2, modes=["rev"])
    np.testing.assert_allclose(np.asarray(jax.jit(fn)(*values)), want[0], rtol=1e-10, atol=1e-10)


@needs_torch
def test_a_network_trains_as_torch_nn_does():
    """Two strided convolutions, GELU, a linear layer (matmul), mean squared error, 20 SGD steps in
    float64: the emitted Functions and torch.nn's layers, from the same initial weights, give the same
    loss at every step."""
    import torch
    conv1 = load(emit_target(_derived("conv2d", {"stride": 2, "padding": 1, "dilation": 1, "groups": 1}), "torch"), "c1")
    conv2 = load(emit_target(_derived("conv2d", {"stride": 2, "padding": 0, "dilation": 1, "groups": 2}), "torch"), "c2")
    gelu = load(emit_target(_derived("gelu", {"approximate": "none"}), "torch"), "gelu")
    linear = load(emit_target(_derived("matmul", {"a_shape": "B,K", "b_shape": "K,N"}), "torch"), "mm")
    gen = torch.Generator().manual_seed(0)
    data, target = torch.randn(4, 3, 12, 12, dtype=torch.float64, generator=gen), torch.randn(4, 5, dtype=torch.float64,
                                                                                             generator=gen)
    layer1 = conv1.Conv2d(3, 4, 3, dtype=torch.float64)
    layer2 = conv2.Conv2d(4, 6, 2, dtype=torch.float64)
    head = torch.randn(6 * 3 * 3, 5, dtype=torch.float64, generator=gen) / 5
    ours = [layer1.weight, layer1.bias, layer2.weight, layer2.bias, torch.nn.Parameter(head)]
    torch_layers = [torch.nn.Conv2d(3, 4, 3, stride=2, padding=1, dtype=torch.float64),
                    torch.nn.Conv2d(4, 6, 2, stride=2, groups=2, dtype=torch.float64)]
    with torch.no_grad():
        for layer, mine in zip(torch_layers, (layer1, layer2)):
            layer.weight.copy_(mine.weight)
            layer.bias.copy_(mine.bias)
    theirs = [torch_layers[0].weight, torch_layers[0].bias, torch_layers[1].weight, torch_layers[1].bias,
              torch.nn.Parameter(head.clone())]

    def network(x, emitted):
        if emitted:
            h = gelu.gelu(layer2(gelu.gelu(layer1(x))))
            return linear.matmul(h.reshape(len(x), -1), ours[4])
        h = torch.nn.functional.gelu(torch_layers[1](torch.nn.functional.gelu(torch_layers[0](x))))
        return h.reshape(len(x), -1) @ theirs[4]

    losses = {True: [], False: []}
    for emitted, params in ((True, ours), (False, theirs)):
        optimiser = torch.optim.SGD(params, lr=0.05)
        for _ in range(20):
            optimiser.zero_grad()
            loss = ((network(data, emitted) - target) ** 2).mean()
            loss.backward()
            optimiser.step()
            losses[emitted].append(loss.item())
    assert losses[True][-1] < 0.8 * losses[True][0]  # it learns
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("target,allowed", [("torch", {"torch", "math", "contextlib"}), ("jax", {"jax", "jax.numpy", "math"})])
def test_modules_import_their_framework_only_and_are_deterministic(target, allowed):
    for name, params, _ in [SAMPLE[0], SAMPLE[-1], ("matmul", {"a_shape": "B,M,K", "b_shape": "K"}, None)]:
        d = _derived(name, params)
        first, second = emit_target(d, target), emit_target(_derived(name, params), target)
        assert first == second
        assert imports_of(first) - {"jax.scipy.special"} <= allowed, imports_of(first)
        assert "recognised form: conv_general_dilated" in first or not name.startswith("conv")


def test_torch_refuses_more_spatial_axes_than_its_kernels_have():
    d = symgrad.derive(symgrad.ops.build("conv", ndim=4, stride=1, padding=0, dilation=1, groups=1))
    with pytest.raises(SymgradError, match="torch's kernels, which have 1 to 3 spatial axes; this op's convolutions have 4"):
        emit_target(d, "torch")
    assert "lax.conv_general_dilated" in emit_target(d, "jax")


@needs_torch
def test_torch_inputs_are_checked():
    import torch
    d = _derived("conv1d", {"stride": 1, "padding": 0, "dilation": 1, "groups": 1})
    fn = load(emit_target(d, "torch"), "torch_target").conv1d
    x, w, b = torch.ones(1, 2, 5), torch.ones(3, 2, 2), torch.ones(3)
    with pytest.raises(TypeError, match="conv1d: input x must be a torch tensor, got ndarray"):
        fn(np.ones((1, 2, 5)), w, b)
    with pytest.raises(TypeError, match="conv1d: input w is torch.float64 on cpu but x is torch.float32"):
        fn(x, w.double(), b)
    with pytest.raises(TypeError, match="input b must hold real floating-point numbers, got torch.int64"):
        fn(x, w, torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"conv1d: input w must have shape \(C_out, C_in, K\)"):
        fn(x, torch.ones(3, 3, 2), b)
    assert fn(x[0], w, b).shape == (3, 4)  # unbatched, as torch takes it


@needs_torch
def test_gelu_target_keeps_the_limits_in_float32():
    """Where an input is not finite or beyond torch's GELU kernels' range (test_kernels.py), the torch
    target computes the derived expression in double and rounds once, as the NumPy modules do:
    gelu'(±inf) = 1, 0 and no NaN at float32's largest values (torch's own: NaN at ±inf)."""
    import torch
    fn = load(emit_target(_derived("gelu", {"approximate": "tanh"}), "torch"), "gelu").gelu
    x = torch.tensor([-float("inf"), float("inf"), -3.4e38, 3.4e38, 1.0], requires_grad=True)
    y = fn(x)
    (dx,) = torch.autograd.grad(y.sum(), x)
    assert y.dtype == dx.dtype == torch.float32
    assert y.tolist()[:2] == [0.0, float("inf")] and dx.tolist()[:4] == [0.0, 1.0, 0.0, 1.0]


@needs_torch
@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu_target_double_backward_past_its_limit_guards(approximate):
    """The torch target's double backward is autograd through the emitted backward, which takes the
    formula's limit beyond a threshold (where x³ overflows): autograd differentiates the unselected
    formula too, ∞·0 = NaN there, so the formula reads a finite point where the guard holds (the
    "double where", ir.Shielded).  GELU'' → 0 at ±∞; the tanh form once gave NaN at ±1e150."""
    import torch
    fn = load(emit_target(_derived("gelu", {"approximate": approximate}), "torch"), "gelu").gelu
    x = torch.tensor([1e150, -1e150, 1e30, -1e30, 30.0, -30.0, 0.5], dtype=torch.float64, requires_grad=True)
    (dx,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
    (ddx,) = torch.autograd.grad(dx.sum(), x)
    t = x.detach().clone().requires_grad_(True)
    (want,) = torch.autograd.grad(torch.nn.functional.gelu(t, approximate=approximate).sum(), t, create_graph=True)
    (want2,) = torch.autograd.grad(want.sum(), t)
    assert torch.isfinite(ddx).all(), ddx
    assert ddx[:6].abs().max() < 1e-100 and abs(ddx[6] - want2[6]) < 1e-12
