"""Programs as torch.autograd.Functions (``emit --target torch``) and jax.custom_vjp functions
(``--target jax``): every case of the programs' sweep against torch's own functions (gradcheck and
gradgradcheck, float64; float32 values) and against the NumPy modules (check_grads of order 2, under
jit too), and the pieces only some programs have (a max that is differentiated, index maps, several
outputs)."""
import io
import tokenize

import numpy as np
import pytest

from conftest import HAS_JAX, needs_jax, needs_torch, sliced
from symgrad import ops
from symgrad.emit import load
from symgrad.emit.program import emit_program
from symgrad.ir import SymgradError
from symgrad.reverse import derive_program
from symgrad.second_order import derive_program_second_order
from symgrad.syntax import parse_program
from support import SWEEP, builder_params, program_module, run, torch_case


def torch_module(program, target="torch"):
    """The target's module as `symgrad emit --target` writes it: its backward's own backward the derived
    double backward where that is derived (else the framework differentiates the backward's code)."""
    d = derive_program(program)
    try:
        second = derive_program_second_order(d)
    except SymgradError:
        second = None
    return load(emit_program(d, target, second=second), f"{target}_{program.name}")


def _function(name, params):
    program = ops.build(name, **builder_params(name, params))
    return getattr(torch_module(program), program.name)


@needs_torch
@pytest.mark.parametrize("name,params,shapes", sliced(SWEEP, 2, ids=[f"{n}-{k}" for k, (n, _, _) in enumerate(SWEEP)]))
def test_torch_function_against_torch(name, params, shapes, request):
    """Forward and gradients equal torch's own (float64 ≤ 1e-10, float32 ≤ 1e-5 relative), and
    torch.autograd's gradcheck and gradgradcheck pass: the backward is made of torch operations,
    so double backward differentiates it again."""
    import torch
    f = _function(name, params)
    arrays, reference, extra = torch_case(name, params, shapes)
    results = {}
    for dtype in (torch.float64, torch.float32):
        ts = [torch.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
        ours, theirs = f(*ts, *extra), reference(*ts)
        assert ours.dtype == dtype
        g = torch.tensor(np.random.default_rng(2).standard_normal(tuple(theirs.shape)), dtype=dtype)
        results[dtype] = [[r.detach().double() for r in [y] + list(torch.autograd.grad(y, ts, g))]
                          for y in (ours, theirs)]
    truth = results[torch.float64][1]
    for got, want in zip(results[torch.float64][0], truth):
        assert (got - want).abs().max().item() <= 1e-10 * max(want.abs().max().item(), 1e-3)
    for got, torch32, want in zip(*results[torch.float32], truth):  # 1e-5, or no worse than torch's float32
        worst = max(1e-5 * max(want.abs().max().item(), 1e-3), (torch32 - want).abs().max().item())
        assert (got - want).abs().max().item() <= worst
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    # fast mode: the Jacobians' products with random vectors (every element of both orders is compared
    # above and in test_programs_second_order; --full checks the whole Jacobians)
    fast = not request.config.getoption("--full")
    assert torch.autograd.gradcheck(lambda *a: f(*a, *extra), ts, fast_mode=fast)
    assert torch.autograd.gradgradcheck(lambda *a: f(*a, *extra), ts, fast_mode=fast)


@needs_torch
def test_differentiated_max_and_several_outputs():
    """A max whose gradient flows (through its selector) and a program of two outputs: gradcheck
    and gradgradcheck."""
    import torch
    rng = np.random.default_rng(3)
    m = torch_module(parse_program("input x[N, D]\ny[n] = max(d) x[n, d]"))
    x = torch.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    assert torch.allclose(m.rule(x), x.amax(1))
    assert torch.autograd.gradcheck(m.rule, (x,)) and torch.autograd.gradgradcheck(m.rule, (x,))
    two = torch_module(parse_program("input x[N]\noutput s[i] = x[i]^2\noutput c[i] = 3 * x[i]"))
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    s, c = two.rule(x)
    assert torch.equal(s, x.detach() ** 2) and torch.equal(c, 3 * x.detach())
    (s.sum() + 2 * c.sum()).backward()
    assert torch.equal(x.grad, 2 * x.detach() + 6)
    assert torch.autograd.gradgradcheck(two.rule, (x,))


@needs_torch
def test_torch_program_module_imports_torch_only_and_is_deterministic():
    program = ops.build("layer_norm")
    first = emit_program(derive_program(program), "torch")
    assert first == emit_program(derive_program(ops.build("layer_norm")), "torch")
    imports = sorted(line for line in first.splitlines() if line.startswith(("import ", "from ")))
    assert "import torch" in imports and set(imports) <= {"import contextlib", "import math", "import torch"}, \
        imports  # (the standard library's: autocast's null context, the JVP's constants)
    assert "class LayerNormFunction(torch.autograd.Function)" in first and "recognised form: reduce_sum" in first
    # torch's own names: no alias of the array module (the NumPy modules' ``xp``) anywhere in the code
    names = {t.string for t in tokenize.generate_tokens(io.StringIO(first).readline) if t.type == tokenize.NAME}
    assert "xp" not in names and "torch.sum(" in first


@needs_torch
def test_torch_program_refuses_other_inputs():
    """The torch Function takes tensors of one dtype and device, and says so by name."""
    import torch
    f = _function("layer_norm", {})
    with pytest.raises(TypeError, match="layer_norm: input weight is torch.float32"):
        f(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(3), torch.zeros(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="layer_norm: input x must be a torch tensor"):
        f(np.zeros((2, 3)), torch.zeros(3), torch.zeros(3))


def test_cli_emits_framework_programs(capsys):
    code, out, _ = run(capsys, "emit", "softmax", "--target", "torch")
    assert code == 0 and "class SoftmaxFunction(torch.autograd.Function)" in out
    code, out, _ = run(capsys, "emit", "softmax", "--target", "jax")
    assert code == 0 and "@jax.custom_vjp" in out and "import jax.numpy as xp" in out


@needs_jax
@pytest.mark.parametrize("name,params,shapes", SWEEP, ids=[f"{n}-{k}" for k, (n, _, _) in enumerate(SWEEP)])
def test_jax_function_against_numpy_module_and_check_grads(name, params, shapes):
    """The jax.custom_vjp's value and VJP equal the NumPy module's (float64, 1e-10), and
    jax.test_util.check_grads of order 2 (reverse over reverse) passes, as does jax.jit."""
    import jax
    from jax.test_util import check_grads
    jax.config.update("jax_enable_x64", True)
    program = ops.build(name, **builder_params(name, params))
    jax_module = torch_module(program, "jax")
    reference = program_module(name, **builder_params(name, params))
    arrays, _, extra = torch_case(name, params, shapes)
    f = lambda *a: getattr(jax_module, program.name)(*a, *extra)  # noqa: E731
    y, pullback = jax.vjp(f, *arrays)
    want, want_pullback = reference.vjp(*arrays, *extra)
    g = np.random.default_rng(1).standard_normal(np.shape(want))
    for got, w in zip((y,) + tuple(pullback(g)), (want,) + tuple(want_pullback(g))):
        np.testing.assert_allclose(np.asarray(got), w, rtol=1e-10, atol=1e-10)
    check_grads(f, arrays, order=2, modes=["rev"])
    np.testing.assert_allclose(np.asarray(jax.jit(f)(*arrays)), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("mode", ["circular", "reflect", "replicate"])
def test_padding_modes_on_both_targets(ndim, mode):
    """The padding modes' index maps (slices copied, flipped for reflect) on torch (gradcheck,
    gradgradcheck) and JAX (arrays immutable: slices written with .at[].set; check_grads order 2):
    both equal F.pad + F.conv."""
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    from jax.test_util import check_grads
    import torch.nn.functional as F
    jax.config.update("jax_enable_x64", True)
    program = ops.conv_padded(ndim, mode, padding=2, stride=1, dilation=1)
    d = derive_program(program)
    rng = np.random.default_rng(7)
    x, w, b = (rng.standard_normal(s) for s in (((2, 3, 7), (4, 3, 3)) if ndim == 1 else ((2, 3, 6, 5), (4, 3, 3, 2)))
               + ((4,),))
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    want = (F.conv1d if ndim == 1 else F.conv2d)(F.pad(ts[0], (2, 2) * ndim, mode=mode), ts[1], ts[2])
    f_torch = getattr(load(emit_program(d, "torch"), "padded_torch"), program.name)
    f_jax = getattr(load(emit_program(d, "jax"), "padded_jax"), program.name)
    assert (f_torch(*ts) - want).abs().max().item() <= 1e-12
    np.testing.assert_allclose(np.asarray(f_jax(x, w, b)), want.detach().numpy(), rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(f_torch, ts) and torch.autograd.gradgradcheck(f_torch, ts)
    check_grads(f_jax, (x, w, b), order=2, modes=["rev"])


@needs_torch
@pytest.mark.parametrize("target", ["numpy", "torch"] + (["jax"] if HAS_JAX else []))
@pytest.mark.parametrize("shapes", [[(4, 3, 8), (4, 4, 6, 8), (4, 4, 6, 5)], [(2, 1, 3, 8), (1, 4, 6, 8), (4, 6, 5)]],
                         ids=["q-broadcast", "each-broadcast"])
def test_attention_broadcasts_batch_axes_as_torch(target, shapes):
    """q, k and v's batch axes broadcast together as in F.scaled_dot_product_attention; each gradient
    comes back in its input's shape, summed over the axes it was broadcast along."""
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(s) for s in shapes]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    want = F.scaled_dot_product_attention(*ts)
    g = rng.standard_normal(tuple(want.shape))
    want_grads = torch.autograd.grad(want, ts, torch.tensor(g))
    if target == "numpy":
        m = program_module("attention")
        got, grads = m.forward(*arrays), m.backward(g, *arrays)
    else:
        from symgrad.emit.program import emit_program
        from symgrad.reverse import derive_program
        m = load(emit_program(derive_program(ops.build("attention")), target), f"attention_{target}")
        if target == "torch":
            xs = [torch.tensor(a, requires_grad=True) for a in arrays]
            y = m.attention(*xs)
            got, grads = y.detach().numpy(), [t.numpy() for t in torch.autograd.grad(y, xs, torch.tensor(g))]
        else:
            import jax
            jax.config.update("jax_enable_x64", True)
            y, pullback = jax.vjp(m.attention, *arrays)
            got, grads = np.asarray(y), [np.asarray(t) for t in pullback(g)]
    assert np.allclose(got, want.detach().numpy(), rtol=1e-12, atol=1e-12)
    for a, t in zip(grads, want_grads):
        assert a.shape == tuple(t.shape) and np.allclose(a, t.numpy(), rtol=1e-11, atol=1e-12)
