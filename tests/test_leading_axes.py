"""Programs over rows (softmax, log_softmax, layer_norm, rms_norm, attention) called as a user calls
them: random leading axes (none, or 0-d along ``dim``; an empty batch), ``dim`` anywhere, batch axes of attention's q,
k and v broadcast against each other. Every order the module derives (forward, backward,
double_backward, jvp) against PyTorch's autograd on the same call (attention as its definition in
torch operations), and an upstream gradient of another shape with as many elements refused by name.
An empty axis along ``dim`` is refused by name (torch returns an empty result). A failure names its
case: rerun it with
``pytest tests/test_leading_axes.py -k '<name>-<seed>'``."""
import numpy as np
import pytest

from conftest import needs_torch, sliced
from symgrad import module, ops

NAMES = ("softmax", "log_softmax", "layer_norm", "rms_norm", "attention", "attention_causal")
CASES = sliced([(name, seed) for seed in range(60) for name in NAMES], every=10,
               ids=[f"{name}-{seed}" for seed in range(60) for name in NAMES])
_MODULES = {}


def close(got, want, tol):
    """Within ``tol`` of the reference, relative to its largest value, or absolutely where that is under 1
    (the inputs are O(1): a near-zero gradient is the difference of O(1) terms)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.abs(got - want).max(initial=0) <= tol * max(1.0, np.abs(want).max(initial=0)), np.abs(got - want).max()


def _attention(causal):
    """Attention as its definition, in torch operations (torch's own scaled_dot_product_attention takes
    its output's batch axes from q alone where an input is empty; matmul broadcasts them all)."""
    import torch

    def attention(q, k, v):
        s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
        if causal:
            s = s.masked_fill(~torch.ones(s.shape[-2:], dtype=torch.bool).tril(), float("-inf"))
        return torch.softmax(s, -1) @ v
    return attention


def _module(name):
    if name not in _MODULES:
        _MODULES[name] = module(ops.build("attention", is_causal=True) if name == "attention_causal" else ops.build(name))
    return _MODULES[name]


def _lead(rng, most=3):
    """Up to ``most`` leading axes of 1 to 3, now and then one of 0 (an empty batch, as torch takes it)."""
    lead = [int(n) for n in rng.integers(1, 4, int(rng.integers(0, most + 1)))]
    if lead and rng.random() < 0.15:
        lead[int(rng.integers(0, len(lead)))] = 0
    return tuple(lead)


def _spread(rng, lead):
    """A leading shape that broadcasts to ``lead``: some of its first axes dropped, some others 1."""
    kept = lead[int(rng.integers(0, len(lead) + 1)):]
    return tuple(1 if rng.random() < 0.3 else n for n in kept)


def draw(name, seed):
    """(arrays, keyword arguments, torch's function of the tensors) for case ``seed`` of ``name``: every
    twentieth case (10, 30, …) wide enough (over 1,024 elements) that the compiled loops run, where numba is there."""
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(seed)
    wide = seed % 20 == 10
    width = 300 if wide else int(rng.integers(1, 5))
    if name in ("softmax", "log_softmax"):
        shape = _lead(rng) + ((width,) if wide or rng.random() < 0.8 else ())
        if wide:
            shape = (4,) + shape
        dim = int(rng.integers(-max(len(shape), 1), max(len(shape), 1)))
        if wide:
            dim = -1 if rng.random() < 0.5 else len(shape) - 1
        return [rng.standard_normal(shape)], {"dim": dim}, lambda x: getattr(torch, name)(x, dim)
    if name in ("layer_norm", "rms_norm"):
        x = rng.standard_normal(((4,) if wide else ()) + _lead(rng) + (width,))
        w, b = rng.standard_normal(width), rng.standard_normal(width)
        if name == "layer_norm":
            return [x, w, b], {}, lambda x, w, b: F.layer_norm(x, (width,), w, b, eps=1e-5)
        return [x, w], {}, lambda x, w: F.rms_norm(x, (width,), w)
    lead = ((8,) if wide else ()) + _lead(rng, 2)
    t, s, e, f = (int(n) for n in rng.integers(1, 4, 4))
    if wide:
        t, s, e, f = 12, 12, 16, 16
    shapes = [_spread(rng, lead) + (t, e), _spread(rng, lead) + (s, e), _spread(rng, lead) + (s, f)]
    if lead and rng.random() < 0.2:  # v's last batch axis another size: broadcast only where q's and k's are 1
        shapes[2] = lead[:-1] + (lead[-1] + 1,) + shapes[2][-2:]
    return [rng.standard_normal(sh) for sh in shapes], {}, _attention(name == "attention_causal")


@needs_torch
@pytest.mark.parametrize("name, seed", CASES)
def test_every_order_at_any_leading_shape_against_torch(name, seed):
    import torch
    arrays, kw, reference = draw(name, seed)
    m = _module(name)
    try:
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        want = reference(*ts)
    except RuntimeError:  # torch refuses the call (q, k, v that do not broadcast): so must the module
        with pytest.raises(ValueError, match=f"^{name.split('_causal')[0]}: "):
            m.forward(*arrays, **kw)
        return
    if "dim" in kw and arrays[0].ndim and not arrays[0].shape[kw["dim"]]:  # an empty axis along dim: torch's
        with pytest.raises(ValueError, match="with D >= 1"):                # result is empty, the module
            m.forward(*arrays, **kw)                                        # refuses it by name
        return
    rng = np.random.default_rng(seed + 1)
    close(m.forward(*arrays, **kw), want.detach().numpy(), 1e-10)
    g = torch.tensor(rng.standard_normal(tuple(want.shape)), requires_grad=True)
    grads = torch.autograd.grad(want, ts, g, create_graph=True)
    got = m.backward(g.detach().numpy(), *arrays, **kw)
    assert [np.shape(a) for a in got] == [a.shape for a in arrays]
    for a, b in zip(got, grads):
        close(a, b.detach().numpy(), 1e-10)
    # second order: ℒ₂ = Σ <gg, gradient>, differentiated with respect to grad_output and each input
    ggs = [rng.standard_normal(a.shape) for a in arrays]
    total = sum((torch.tensor(gg) * grad).sum() for gg, grad in zip(ggs, grads))
    seconds = torch.autograd.grad(total, [g] + ts, allow_unused=True)
    got = m.double_backward(*ggs, g.detach().numpy(), *arrays, **kw)
    for a, b, like in zip(got, seconds, [g] + ts):
        close(a, np.zeros(like.shape) if b is None else b.detach().numpy(), 1e-9)
    # forward mode
    tangents = [rng.standard_normal(a.shape) for a in arrays]
    _, want_dot = torch.func.jvp(reference, tuple(torch.tensor(a) for a in arrays),
                                 tuple(torch.tensor(t) for t in tangents))
    y, y_dot = m.jvp(arrays, tangents, **kw)
    close(y_dot, want_dot.numpy(), 1e-9)
    # an upstream gradient of another shape, as many elements: refused, never read as the output's
    shape = tuple(want.shape)
    other = shape[::-1] if shape[::-1] != shape else (int(np.prod(shape)),) if len(shape) != 1 else (1,) + shape
    with pytest.raises(ValueError, match="grad_output must have the output's shape"):
        m.backward(np.ones(other), *arrays, **kw)


_TORCH = {}


def _torch_function(name):
    """The torch target's function for ``name`` (an autograd function over rows, double backward by autograd)."""
    if name not in _TORCH:
        from symgrad.emit import load
        from symgrad.emit.program import emit_program
        from symgrad.reverse import derive_program
        program = ops.build("attention", is_causal=True) if name == "attention_causal" else ops.build(name)
        _TORCH[name] = getattr(load(emit_program(derive_program(program), "torch"), f"rows_{name}_torch"), program.name)
    return _TORCH[name]


@needs_torch
@pytest.mark.parametrize("name, seed", sliced([(name, seed) for seed in range(60) for name in NAMES], every=20,
                                              ids=[f"{name}-{seed}" for seed in range(60) for name in NAMES]))
def test_the_torch_target_at_any_leading_shape(name, seed):
    """The torch target's function on the same calls: output, gradients, second-order gradients (autograd
    through its backward) and forward mode (torch.func.jvp), against the reference's."""
    import torch
    arrays, kw, reference = draw(name, seed)
    f = _torch_function(name)
    try:
        want = reference(*[torch.tensor(a) for a in arrays])
    except RuntimeError:
        with pytest.raises((RuntimeError, ValueError)):
            f(*[torch.tensor(a) for a in arrays], **kw)
        return
    if "dim" in kw and arrays[0].ndim and not arrays[0].shape[kw["dim"]]:
        with pytest.raises(ValueError, match="with D >= 1"):
            f(torch.tensor(arrays[0]), **kw)
        return
    rng = np.random.default_rng(seed + 2)
    g = torch.tensor(rng.standard_normal(tuple(want.shape)), requires_grad=True)
    ggs = [torch.tensor(rng.standard_normal(a.shape)) for a in arrays]
    tangents = tuple(torch.tensor(rng.standard_normal(a.shape)) for a in arrays)
    results = []
    for function in (f, reference):
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        y = function(*ts, **kw) if function is f else function(*ts)
        grads = torch.autograd.grad(y, ts, g, create_graph=True)
        total = sum((gg * grad).sum() for gg, grad in zip(ggs, grads))
        seconds = torch.autograd.grad(total, [g] + ts, allow_unused=True)
        seconds = [torch.zeros(like.shape, dtype=like.dtype) if s is None else s for s, like in zip(seconds, [g] + ts)]
        _, y_dot = torch.func.jvp((lambda *xs: f(*xs, **kw)) if function is f else function,
                                  tuple(torch.tensor(a) for a in arrays), tangents)
        results.append([y, *grads, *seconds, y_dot])
    for a, b in zip(*results):
        close(a.detach().numpy(), b.detach().numpy(), 1e-9)
