"""The torch target as a native op (runtime/torch_native.py, templates/torch_native.py.j2): the emitted
operation is registered with torch.library.custom_op (a fake kernel, the derived backward as its autograd
rule, a derived batching rule), and the public function is an autograd.Function over it with the derived
JVP, so that
- torch.library.opcheck passes for the conv, GELU, matmul and layer_norm targets;
- torch.func.vmap(torch.func.grad(...)) gives per-sample gradients equal to a loop over samples with
  torch's own op; jacfwd (the derived JVP) equals jacrev (the derived VJP) and torch's own Jacobian;
  hessian equals torch's; vmap over an input the batch cannot fold into loops;
- torch.compile(fullgraph=True) and torch.export run it;
- under torch.autocast (bfloat16, CPU) it casts as torch's own op of its kind, and a training loop runs
  with the emitted layer in place of nn.Conv2d; the layer takes nn.Conv2d's constructor, has its
  attributes and repr, and loads its state_dict both ways.
The batching rule itself (symgrad/batching.py) is derived from the index structure: tested without torch.
"""
import functools

import pytest

from conftest import needs_torch
from symgrad import api, ops
from symgrad.batching import folds
from symgrad.engine.program import normalise
from symgrad.forward_mode import op_program

CONV = {"stride": 2, "padding": 1, "dilation": 1, "groups": 2}


@functools.lru_cache(maxsize=None)
def _module(name, frozen=()):
    return api.module(ops.build(name, **dict(frozen)), target="torch")


def module(name, **params):
    return _module(name, tuple(sorted(params.items())))


def references():
    """torch's own op of each target, and float64 sample inputs."""
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    return {
        "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, groups=2), (r(3, 4, 6, 5), r(6, 2, 3, 3), r(6))),
        "gelu": (F.gelu, (r(4, 5),)),
        "matmul": (torch.matmul, (r(2, 3, 4), r(2, 4, 5))),
        "layer_norm": (lambda x, w, b: F.layer_norm(x, (6,), w, b), (r(3, 4, 6), r(6), r(6))),
        "softmax": (lambda x: F.softmax(x, -1), (r(3, 7),)),
    }


def target(name):
    return getattr(module(name, **(CONV if name == "conv2d" else {})), name)


def test_batching_rules_are_derived_from_the_index_structure():
    """A batch folds into an axis every statement treats as rows: conv's x (not w, whose first axis is
    the output channel), layer_norm's rows; batch_norm (statistics over the batch) and a mean over
    the rows (cross_entropy) fold nowhere; attention folds q, k and v together (a batched q broadcasts
    k and v over the batch)."""
    def table(name, **params):
        source = ops.build(name, **params)
        program = normalise(op_program(source) if isinstance(source, ops.Op) else source)
        return folds(program, list(program.outputs))
    assert table("conv2d", **CONV) == {("x",): (("x",), (True,))}
    assert table("layer_norm") == {("x",): (("x",), (True,))}
    assert table("batch_norm") == {} and table("cross_entropy") == {}
    attention = table("attention")
    assert attention[("q",)] == (("q", "k", "v"), (True,)) and len(attention) == 7


@needs_torch
@pytest.mark.parametrize("name", ["conv2d", "gelu", "matmul", "layer_norm"])
def test_opcheck_passes(name):
    import torch
    m = module(name, **(CONV if name == "conv2d" else {}))
    _, inputs = references()[name]
    if name == "layer_norm":  # the op takes the rows (the public function flattens the leading axes)
        inputs = (inputs[0].reshape(-1, 6),) + inputs[1:]
    torch.library.opcheck(m._OP, inputs)
    torch.library.opcheck(m._OP, tuple(a.clone().requires_grad_() for a in inputs))


@needs_torch
def test_per_sample_gradients_equal_a_loop_over_samples():
    import torch
    from torch.func import grad, vmap
    conv = target("conv2d")
    own, (x, w, b) = references()["conv2d"]
    loss = lambda f: lambda w, x: f(x[None], w, b).pow(2).sum()
    per_sample = vmap(grad(loss(conv)), in_dims=(None, 0))(w, x)
    loop = torch.stack([grad(loss(own))(w, x[k]) for k in range(len(x))])
    assert (per_sample - loop).abs().max() <= 1e-12 * loop.abs().max()
    # a batch over w cannot fold into the op (w's first axis is the output channel): one call per element
    ws = torch.stack([w, -2 * w])
    per_weight = vmap(grad(lambda w: conv(x, w, b).pow(2).sum()))(ws)
    loop = torch.stack([grad(lambda w: own(x, w, b).pow(2).sum())(v) for v in ws])
    assert (per_weight - loop).abs().max() <= 1e-12 * loop.abs().max()


@needs_torch
@pytest.mark.parametrize("name", ["conv2d", "gelu", "matmul", "layer_norm", "softmax"])
def test_jacfwd_equals_jacrev_and_torchs_jacobian(name):
    from torch.func import jacfwd, jacrev
    ours = target(name)
    own, inputs = references()[name]
    small = (inputs[0][:1],) + inputs[1:] if name != "matmul" else inputs  # (one sample: a small Jacobian)
    for k in range(len(small)):
        f = lambda a, k=k: ours(*small[:k], a, *small[k + 1:])
        g = lambda a, k=k: own(*small[:k], a, *small[k + 1:])
        forward, reverse, want = jacfwd(f)(small[k]), jacrev(f)(small[k]), jacrev(g)(small[k])
        scale = want.abs().max().clamp(min=1)
        assert (forward - reverse).abs().max() <= 1e-12 * scale and (forward - want).abs().max() <= 1e-12 * scale


@needs_torch
@pytest.mark.parametrize("name", ["conv2d", "layer_norm"])
def test_hessian_equals_torchs(name):
    from torch.func import hessian
    ours = target(name)
    own, inputs = references()[name]
    x, rest = inputs[0][:1, :, :3] if name == "conv2d" else inputs[0][0, :2], inputs[1:]
    h = hessian(lambda x: ours(x, *rest).pow(3).sum())(x)
    want = hessian(lambda x: own(x, *rest).pow(3).sum())(x)
    assert (h - want).abs().max() <= 1e-11 * want.abs().max()


@needs_torch
def test_torch_compile_fullgraph_and_export():
    import torch
    for name in ("conv2d", "layer_norm"):
        ours = target(name)
        own, inputs = references()[name]
        compiled = torch.compile(lambda *a: ours(*a).square().sum(), fullgraph=True, backend="eager")
        mine, theirs = ([a.clone().requires_grad_() for a in inputs] for _ in range(2))
        got, want = compiled(*mine), own(*theirs).square().sum()
        got.backward()
        want.backward()  # (training: Dynamo traces the native op and its autograd rule, not the Function's jvp)
        assert abs(got - want) <= 1e-12 * abs(want)
        assert all((a.grad - b.grad).abs().max() <= 1e-11 * b.grad.abs().max() for a, b in zip(mine, theirs))

        class Layer(torch.nn.Module):
            def forward(self, *args):
                return ours(*args)

        exported = torch.export.export(Layer(), inputs)
        assert any(str(node.target).startswith("symgrad.") for node in exported.graph.nodes)
        assert (exported.module()(*inputs) - own(*inputs)).abs().max() <= 1e-12


@needs_torch
def test_autocast_casts_as_torchs_own_op_and_a_training_loop_runs():
    """A convolution runs in bfloat16 under CPU autocast (as F.conv2d); layer_norm keeps its input's
    dtype with float32 parameters (as F.layer_norm); gradients of float32 parameters are float32."""
    import torch
    m = module("conv2d", stride=2, padding=1, dilation=1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              m.Conv2d(8, 4, 3, stride=2, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 5, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x, labels = torch.randn(8, 3, 9, 9), torch.tensor([0, 1] * 4)
    losses = []
    for _ in range(4):
        with torch.autocast("cpu", torch.bfloat16):
            out = net[2](net[1](net[0](x)))
            assert out.dtype == torch.bfloat16
            loss = torch.nn.functional.cross_entropy(net[4](net[3](out)), labels)
        opt.zero_grad()
        loss.backward()
        assert net[2].weight.grad.dtype == torch.float32 and torch.isfinite(net[2].weight.grad).all()
        opt.step()
        losses.append(loss.item())
    assert all(map(lambda v: v == v, losses))
    layer_norm = target("layer_norm")
    with torch.autocast("cpu", torch.bfloat16):
        y = layer_norm(torch.randn(4, 6, dtype=torch.bfloat16), torch.ones(6), torch.zeros(6))
    assert y.dtype == torch.bfloat16


@needs_torch
def test_the_layer_is_nn_conv2ds_drop_in():
    import torch
    m = module("conv2d", stride=2, padding=1, dilation=1)
    for kwargs in ({}, {"bias": False}):
        ours, theirs = m.Conv2d(3, 4, 3, stride=2, padding=1, **kwargs), torch.nn.Conv2d(3, 4, 3, stride=2, padding=1, **kwargs)
        assert repr(ours) == repr(theirs)
        for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                     "padding_mode", "output_padding", "transposed"):
            assert getattr(ours, name) == getattr(theirs, name), name
        ours.load_state_dict(theirs.state_dict())
        x = torch.randn(2, 3, 9, 9)
        assert (ours(x) - theirs(x)).abs().max() <= 1e-6
        theirs.load_state_dict(m.Conv2d(3, 4, 3, **kwargs).state_dict())
    for bad, said in ((dict(stride=1), "derived for stride=(2, 2), got stride=(1, 1); emit it again with --stride 1,1"),
                      (dict(groups=3), "derived for groups=1, got groups=3"),
                      (dict(padding="same", stride=1), "derived for stride=(2, 2)"),
                      (dict(padding_mode="reflect"), "emit it again with --padding-mode reflect")):
        with pytest.raises(ValueError, match=r"^conv2d: .*") as error:
            m.Conv2d(3, 3, 3, **bad)
        assert said in str(error.value)


@needs_torch
@pytest.mark.parametrize("mode", ["reflect", "circular", "replicate"])
def test_a_padding_modes_program_has_nn_conv2ds_layer(mode):
    """--padding-mode writes a program (its padding statement, then the convolution); its torch target
    has the layer too, with that padding_mode, as nn.Conv2d's."""
    import torch
    m = api.module(ops.conv_padded(2, mode, padding=1, stride=1, dilation=1), target="torch")
    ours, theirs = m.Conv2d(3, 4, 3, padding=1, padding_mode=mode), torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode)
    assert repr(ours) == repr(theirs)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    assert (ours.double()(x) - theirs.double()(x)).abs().max() <= 1e-12
    with pytest.raises(ValueError, match=f"derived for padding_mode='{mode}', got padding_mode='zeros'"):
        m.Conv2d(3, 4, 3, padding=1, padding_mode="zeros")


@needs_torch
@pytest.mark.parametrize("name,cls", [("layer_norm", "LayerNorm"), ("rms_norm", "RMSNorm")])
def test_norm_layers_are_torch_nns(name, cls):
    """LayerNorm and RMSNorm with torch.nn's constructor, repr and state_dict (both ways), the same
    values with and without the affine parameters; other settings refused by name."""
    import torch
    ours_class, theirs_class = getattr(module(name), cls), getattr(torch.nn, cls)
    x = torch.randn(3, 4, 6, dtype=torch.float64)
    extra = [{}, {"elementwise_affine": False}] + ([{"bias": False}] if name == "layer_norm" else [])
    for kwargs in extra:
        ours, theirs = ours_class(6, dtype=torch.float64, **kwargs), theirs_class(6, dtype=torch.float64, **kwargs)
        assert repr(ours) == repr(theirs) and ours.state_dict().keys() == theirs.state_dict().keys()
        with torch.no_grad():
            for p in theirs.parameters():
                p.uniform_(-1, 1)
        ours.load_state_dict(theirs.state_dict())
        theirs.load_state_dict(ours.state_dict())
        assert (ours(x) - theirs(x)).abs().max() <= 1e-12
    with pytest.raises(ValueError, match=f"^{name}: this module was derived for a normalized_shape of 1 axis, got "
                                         r"\(2, 3\); emit it again with --ndim 2"):
        ours_class((2, 3))
    with pytest.raises(ValueError, match="emit it again with --eps 0.001"):
        ours_class(6, eps=1e-3)


@needs_torch
def test_forward_mode_refused_is_said_and_two_configurations_are_two_ops():
    import torch
    m = api.module("input x[N, D]\nm[n] = max(d) x[n, d]\ny[n, d] = x[n, d] - m[n]", target="torch")
    with pytest.raises(NotImplementedError, match="forward mode through a max is not derived"):
        torch.func.jvp(m.rule,
                       (torch.randn(2, 3),), (torch.randn(2, 3),))
    a, b = module("conv2d", **CONV), module("conv2d", stride=1, padding=0, dilation=1)
    assert a._OP.name() != b._OP.name() and a._OP.name().startswith("symgrad::conv2d_")
    again = api.module(ops.build("conv2d", **CONV), target="torch")  # loaded again: the op it registered
    assert again._OP.name() == a._OP.name()
