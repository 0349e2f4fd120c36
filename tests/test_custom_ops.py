"""Acceptance 4: a new op is its index-notation definition and nothing else; the same pipeline
derives, recognises, emits and checks it."""
import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.verify.check import check
from symgrad.emit import emit, load
from symgrad.ir import Bracket, Op, SymgradError, Tensor, in_range, index, size
from conftest import needs_torch


def avg_pool1d(kernel=3, stride=2):
    """y[n, c, i] = (1/k) Σ_r x[n, c, s·i + r] — strided average pooling, no padding."""
    N, C, L, O = size("N"), size("C"), size("L"), size("O")
    n, c, i, r = index("n", N), index("c", C), index("i", O), index("r", kernel)
    x = Tensor("x", (N, C, L))
    rhs = sp.Sum(x[n, c, stride * i + r], (r, 0, kernel - 1)) / kernel
    return Op("mean_pool1d", {"kernel": kernel, "stride": stride}, (x,), Tensor("y", (N, C, O)), (n, c, i), rhs,
              output_sizes={O: sp.floor((L - kernel) / stride) + 1},
              requires=[(sp.Ge(L, kernel), "mean_pool1d: input length {L} shorter than the window " + str(kernel))])


def bilinear():
    """y[n, o] = Σ_{i,j} u[n, i] · A[o, i, j] · v[n, j] + b[o]  (torch.nn.functional.bilinear)."""
    N, I, J, O = size("N"), size("I"), size("J"), size("O")
    n, o, i, j = index("n", N), index("o", O), index("i", I), index("j", J)
    u, A, v, b = Tensor("u", (N, I)), Tensor("A", (O, I, J)), Tensor("v", (N, J)), Tensor("b", (O,))
    rhs = sp.Sum(u[n, i] * A[o, i, j] * v[n, j], (i, 0, I - 1), (j, 0, J - 1)) + b[o]
    return Op("bilinear", {}, (u, A, v, b), Tensor("y", (N, O)), (n, o), rhs)


def shifted_correlation():
    """y[i] = Σ_r x[2·i + r + 1] · w[r] · [2·i + r + 1 < L] — a strided, shifted 1-D correlation."""
    L, K, O = size("L"), size("K"), size("O")
    i, r = index("i", O), index("r", K)
    x, w = Tensor("x", (L,)), Tensor("w", (K,))
    pos = 2 * i + r + 1
    rhs = sp.Sum(x[pos] * w[r] * Bracket(in_range(pos, L)), (r, 0, K - 1))
    return Op("shifted_correlation", {}, (x, w), Tensor("y", (O,)), (i,), rhs,
              output_sizes={O: sp.floor((L - 2) / 2) + 1})


@pytest.mark.parametrize("make", [avg_pool1d, bilinear, shifted_correlation])
def test_custom_op_checks_against_finite_differences(make):
    results, ok = check(make(), trials=4, seed=3)
    assert ok, [r.errors for r in results]
    assert all(any(k.startswith("fd:") for k in r.errors) for r in results)


def test_avg_pool_gradient_is_a_spread_of_g():
    d = symgrad.derive(avg_pool1d())
    (term,) = d.grads["x"].terms
    assert not term.deltas
    assert any(g.has(sp.Mod) for g in term.guards)  # stride 2: only every other window start
    # a window sum is a depthwise convolution with a kernel of ones; its gradient a transposed one
    (form,) = d.grads["x"].forms
    assert form.kind == "conv_general_dilated" and form.fields["rhs"] == "ones"
    assert form.fields["lhs_dilation"] == [2] and form.fields["rhs_shape"] == [sp.Symbol("C", integer=True, positive=True), 1, 3]
    assert [f.kind for f in d.forward] == ["conv_general_dilated"] and d.forward[0].fields["window_strides"] == [2]


def test_shifted_correlation_is_recognised_as_convolution():
    d = symgrad.derive(shifted_correlation())
    assert d.forward[0].kind == "conv_general_dilated"
    fx, fw = d.grads["x"].forms[0].fields, d.grads["w"].forms[0].fields
    assert fx["lhs_dilation"] == [2] and fx["rhs_reverse"] == [True]
    assert fw["rhs_dilation"] == [2] and fw["window_strides"] == [1]


@needs_torch
def test_custom_ops_match_torch():
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(0)
    mod = load(emit(symgrad.derive(avg_pool1d())))
    x = rng.standard_normal((2, 3, 11))
    g = rng.standard_normal((2, 3, 5))
    xt = torch.tensor(x, requires_grad=True)
    F.avg_pool1d(xt, 3, 2).backward(torch.tensor(g))
    np.testing.assert_allclose(mod.forward(x), F.avg_pool1d(torch.tensor(x), 3, 2).numpy(), atol=1e-12)
    np.testing.assert_allclose(mod.backward(g, x)[0], xt.grad.numpy(), atol=1e-12)

    mod = load(emit(symgrad.derive(bilinear())))
    u, A, v, b = rng.standard_normal((4, 3)), rng.standard_normal((2, 3, 5)), rng.standard_normal((4, 5)), \
        rng.standard_normal(2)
    ts = [torch.tensor(a, requires_grad=True) for a in (u, A, v, b)]
    y = F.bilinear(ts[0], ts[2], ts[1], ts[3])
    g = rng.standard_normal(tuple(y.shape))
    y.backward(torch.tensor(g))
    np.testing.assert_allclose(mod.forward(u, A, v, b), y.detach().numpy(), atol=1e-12)
    for got, t in zip(mod.backward(g, u, A, v, b), ts):
        np.testing.assert_allclose(got, t.grad.numpy(), atol=1e-12)


def test_non_affine_index_is_refused():
    L, O = size("L"), size("O")
    i = index("i", O)
    x = Tensor("x", (L,))
    op = Op("square_index", {}, (x,), Tensor("y", (O,)), (i,), x[i * i])
    with pytest.raises(SymgradError, match="square_index.*not affine"):
        symgrad.derive(op)


def test_unknown_function_is_refused():
    E = size("E")
    e = index("e", E)
    x = Tensor("x", (E,))
    op = Op("mystery", {}, (x,), Tensor("y", (E,)), (e,), sp.Function("f")(x[e]), elementwise=True)
    with pytest.raises(SymgradError, match="mystery: unsupported function f"):
        symgrad.derive(op)


def _bad_rules():
    E, F = size("E"), size("F")
    e, f, g = index("e", E), index("f", F), index("g", F)
    x, w, v = Tensor("x", (E,)), Tensor("w", (E, F)), Tensor("v", (F,))
    y = Tensor("y", (E,))
    return [
        (Op("wrong_rank", {}, (w,), y, (e,), w[e]), "wrong_rank: w has 2 index axes (E, F) but the rule reads w[e] with 1"),
        (Op("free_index", {}, (w,), y, (e,), w[e, f]),
         "free_index: index f is neither an output index (e) nor summed over; add it to y's indices or sum over it"),
        (Op("gather", {}, (x, v), Tensor("y", (F,)), (f,), x[v[f]]), "gather: index v[f] of x reads a tensor"),
        (Op("diagonal", {}, (x,), Tensor("y", (E, E)), (e, e), x[e]), "diagonal: output index e appears twice in y[e, e]"),
        (Op("short_output", {}, (w,), Tensor("y", (E, F)), (e,), sp.Sum(w[e, f], (f, 0, F - 1))),
         "short_output: the output y has 2 index axes (E, F) but the rule gives 1 indices (e,)"),
        (Op("softmax", {}, (w,), Tensor("y", (E, F)), (e, f), sp.exp(w[e, f]) / sp.Sum(sp.exp(w[e, g]), (g, 0, F - 1))),
         "softmax: a sum inside a non-linear function is not supported yet"),
        (Op("stranger", {}, (x,), y, (e,), x[e] * Tensor("z", (E,))[e]), "stranger: the rule reads z, which is not an input"),
    ]


@pytest.mark.parametrize("op,message", _bad_rules(), ids=lambda v: v.name if isinstance(v, Op) else "")
def test_bad_rules_are_refused_naming_the_op_and_the_fault(op, message):
    with pytest.raises(SymgradError) as exc:
        symgrad.derive(op)
    assert str(exc.value).startswith(message), str(exc.value)


def _log_op(positive):
    E = size("E")
    e = index("e", E)
    x = Tensor("x", (E,), positive=positive)
    return Op("log_sqrt", {}, (x,), Tensor("y", (E,)), (e,), sp.log(x[e]) + sp.sqrt(x[e]), elementwise=True)


def test_positive_inputs_are_sampled_positive_and_simplify():
    results, ok = check(_log_op(True), trials=3, seed=1)
    assert ok, [r.errors for r in results]
    (term,) = symgrad.derive(_log_op(True)).grads["x"].terms
    assert not term.factor.has(sp.Abs, sp.sign)


def test_a_rule_undefined_at_the_samples_is_named_not_reported_as_a_mismatch():
    with pytest.raises(SymgradError, match=r"check log_sqrt: the forward is not finite at the sampled inputs .*"
                                           r"declare those inputs positive \(Tensor\(\.\.\., positive=True\)\)"):
        check(_log_op(False), trials=3, seed=1)


def conv_transpose1d(stride, dilation, padding):
    """y[n, f, j] = Σ_{c, r} [s | j + p − d·r] x[n, c, (j + p − d·r)/s] · w[c, f, r] — the transposed
    convolution written as a gather (torch.nn.functional.conv_transpose1d)."""
    N, C, F, L, K, O = (size(n) for n in ("N", "C_in", "C_out", "L", "K", "O"))
    n, f, j, c, r = index("n", N), index("f", F), index("j", O), index("c", C), index("r", K)
    x, w = Tensor("x", (N, C, L)), Tensor("w", (C, F, K))
    read = j + padding - dilation * r
    guard = sp.And(sp.Eq(sp.Mod(read, stride), 0), in_range(read / stride, L))
    rhs = sp.Sum(x[n, c, read / stride] * w[c, f, r] * Bracket(guard), (c, 0, C - 1), (r, 0, K - 1))
    return Op("conv_transpose1d", {"stride": stride, "dilation": dilation, "padding": padding}, (x, w),
              Tensor("y", (N, F, O)), (n, f, j), rhs,
              output_sizes={O: (L - 1) * stride - 2 * padding + dilation * (K - 1) + 1})


@needs_torch
@pytest.mark.parametrize("stride,dilation,padding", [(2, 1, 1), (3, 2, 0), (2, 2, 2), (1, 1, 0)])
def test_transposed_convolution_rule_is_convolutions_throughout(stride, dilation, padding):
    """Forward, input gradient and weight gradient of a transposed convolution written as a rule are
    all recognised as convolutions (the weight gradient by summing over the input's index instead of
    the output's) and equal PyTorch's."""
    import torch
    d = symgrad.derive(conv_transpose1d(stride, dilation, padding))
    assert [f.kind for f in d.forward] == ["conv_general_dilated"]
    assert {k: g.kinds for k, g in d.grads.items()} == {"x": ["conv_general_dilated"], "w": ["conv_general_dilated"]}
    module = load(emit(d))
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 5)), rng.standard_normal((3, 4, 3))
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv_transpose1d(tx, tw, stride=stride, padding=padding, dilation=dilation)
    g = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(module.forward(x, w), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    for got, t in zip(module.backward(g, x, w), (tx, tw)):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-12, atol=1e-12)


POOLS = [("avg_pool1d", {"kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 11)),
         ("avg_pool1d", {"kernel_size": 4}, (1, 2, 9)),
         ("avg_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 7, 8)),
         ("avg_pool2d", {"kernel_size": "2,3", "stride": "1,2"}, (1, 2, 5, 6)),
         ("avg_pool3d", {"kernel_size": 2}, (1, 2, 4, 4, 5))]


@needs_torch
@pytest.mark.parametrize("name,params,shape", POOLS)
def test_average_pooling_is_a_convolution_with_ones(name, params, shape):
    from symgrad.verify.reference import torch_reference
    op = symgrad.ops.build(name, **params)
    d = symgrad.derive(op)
    assert [f.kind for f in d.forward] == d.grads["x"].kinds == ["conv_general_dilated"]
    module = load(emit(d))
    x = np.random.default_rng(4).standard_normal(shape)
    y = module.forward(x)
    g = np.random.default_rng(5).standard_normal(y.shape)
    want_y, (want_dx,) = torch_reference(op, {"x": x}, g)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(module.backward(g, x)[0], want_dx, rtol=1e-12, atol=1e-12)
