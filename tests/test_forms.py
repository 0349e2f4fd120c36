"""Acceptance 1: the recognised conv forms have the parameters the mathematics says, and pasting
them into jax.lax.conv_general_dilated (or a loop reference of it) reproduces the gradient."""
import json

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.verify.reference import REFERENCES
from symgrad.cli import main
from conftest import needs_torch
from support import apply_form, conv_impls


def derive_json(capsys, *argv):
    assert main(["derive", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_conv2d_acceptance_form_fields(capsys):
    d = derive_json(capsys, "conv2d", "--stride", "2,1", "--dilation", "1,2", "--padding", "1:0,2:1")
    dx, dw, db = (d["grads"][k]["form"] for k in "xwb")
    assert dw["kind"] == "conv_general_dilated"
    assert dw["window_strides"] == [1, 2]          # = forward dilation
    assert dw["rhs_dilation"] == [2, 1]            # = forward stride
    assert dw["lhs"] == "x" and dw["rhs"] == "g"
    assert dw["dimension_numbers"][0] == "CNHW"    # batch and channel axes of x swapped
    assert dx["kind"] == "conv_general_dilated"
    assert dx["lhs_dilation"] == [2, 1]            # zero insertion by the stride
    assert dx["rhs_dilation"] == [1, 2]
    assert dx["window_strides"] == [1, 1]
    assert dx["rhs_reverse"] == [True, True]
    assert dx["dimension_numbers"][1] == "IOHW"    # kernel in/out channels swapped
    assert db["kind"] == "reduce_sum" and db["axes"] == [0, 2, 3]
    # padding low sides: dW keeps the forward's, dX gets K' - 1 - lo (K' = dilated kernel)
    assert dw["padding"][0][0] == 1 and dw["padding"][1][0] == 2
    assert sp.sympify(dx["padding"][0][0]) == sp.sympify("K_1 - 2")
    assert sp.sympify(dx["padding"][1][0]) == sp.sympify("2*K_2 - 4")


def test_symbolic_conv1d_stride_dilation_interchanged():
    d = symgrad.derive(symgrad.ops.conv(1))
    s, dil, lo = sp.Symbol("s", integer=True, positive=True), sp.Symbol("d", integer=True, positive=True), \
        sp.Symbol("lo", integer=True)
    dw, dx = d.grads["w"].forms[0].fields, d.grads["x"].forms[0].fields
    assert dw["window_strides"] == [dil] and dw["rhs_dilation"] == [s]
    assert dx["lhs_dilation"] == [s] and dx["rhs_dilation"] == [dil] and dx["rhs_reverse"] == [True]
    K, L, O = (sp.Symbol(n, integer=True, positive=True) for n in ("K", "L", "O"))
    # DESIGN §2: dX padding (K'-1-lo, n - O' + lo), dW padding (lo, O' - n - lo + K' - 1)
    Kd, Od = (K - 1) * dil + 1, (O - 1) * s + 1
    assert sp.simplify(dx["padding"][0][0] - (Kd - 1 - lo)) == 0
    assert sp.simplify(dx["padding"][0][1] - (L - Od + lo)) == 0
    assert sp.simplify(dw["padding"][0][1] - (Od - L - lo + Kd - 1)) == 0


CASES = [  # every parameter given, so the forms carry numbers and sizes only
    ("conv2d", ["--stride", "2,1", "--dilation", "1,2", "--padding", "1:0,2:1", "--groups", "1"], (2, 3, 7, 9), (4, 3, 3, 2)),
    ("conv1d", ["--stride", "3", "--dilation", "2", "--padding", "2:-1", "--groups", "1"], (2, 2, 13), (3, 2, 3)),
    ("conv1d", ["--stride", "2", "--dilation", "1", "--groups", "2", "--padding", "1"], (3, 4, 9), (6, 2, 3)),
    ("conv2d", ["--dilation", "2,1", "--groups", "3", "--padding", "same"], (2, 3, 5, 6), (3, 1, 2, 3)),
    ("conv3d", ["--stride", "1,2,1", "--dilation", "1", "--groups", "2", "--padding", "0:1,1:0,causal"],
     (1, 4, 4, 5, 3), (2, 2, 2, 1, 2)),
]


@needs_torch
@pytest.mark.parametrize("name,argv,xshape,wshape", CASES)
def test_forms_pasted_into_conv_general_dilated(capsys, name, argv, xshape, wshape):
    import torch
    op = symgrad.ops.build(name, **{k.lstrip("-"): v for k, v in zip(argv[::2], argv[1::2])})
    d = derive_json(capsys, name, *argv)
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(xshape), rng.standard_normal(wshape)
    b = rng.standard_normal(wshape[0])
    arrays = {"x": x, "w": w, "b": b}
    from symgrad.sizes import concrete_sizes
    sizes = {str(k): v for k, v in concrete_sizes(op, {n: a.shape for n, a in arrays.items()}).items()}
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    out = REFERENCES[name](op, *ts)
    g = rng.standard_normal(tuple(out.shape))
    out.backward(torch.tensor(g))
    arrays["g"] = g
    for label, conv in conv_impls():
        for k, t in zip("xw", ts[:2]):
            got = apply_form(d["grads"][k]["form"], arrays, sizes, conv)
            np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-10, atol=1e-10, err_msg=f"{label} d{k}")


EINSUM_PATTERNS = [("P,1,M,K", "Q,K,N"), ("B,M,K", "B,K,N"), ("1,M,K", "B,K,N"), ("4,1,M,K", "3,K,N"),
                   ("M,K", "K"), ("K", "K,N"), ("K", "B,K,N"), ("A,B,M,K", "A,1,K,N")]


@needs_torch
@pytest.mark.parametrize("a_shape,b_shape", EINSUM_PATTERNS)
def test_matmul_einsum_fields_run_in_numpy(capsys, a_shape, b_shape):
    """Every matmul form's ``einsum`` string runs in numpy.einsum on the operands it names and, times
    ``scale`` and broadcast along ``broadcast``, gives PyTorch's gradient."""
    import torch
    d = derive_json(capsys, "matmul", "--a-shape", a_shape, "--b-shape", b_shape)
    sizes = {"P": 2, "Q": 3, "M": 4, "K": 5, "N": 3, "B": 2, "A": 2}
    shape = lambda pattern: tuple(int(p) if p.isdigit() else sizes[p] for p in pattern.split(","))
    rng = np.random.default_rng(0)
    arrays = {"a": rng.standard_normal(shape(a_shape)), "b": rng.standard_normal(shape(b_shape))}
    ts = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    out = torch.matmul(ts["a"], ts["b"])
    arrays["g"] = rng.standard_normal(tuple(out.shape))
    out.backward(torch.tensor(arrays["g"]))
    forms = [d["forward"]["forms"][0]] + [d["grads"][k]["form"] for k in "ab"]
    wants = [out.detach().numpy(), ts["a"].grad.numpy(), ts["b"].grad.numpy()]
    assert forms[0]["kind"] == "matmul"
    for form, want in zip(forms, wants):
        if form["kind"] != "matmul":  # an outer product (a vector operand's gradient) is elementwise
            continue
        got = form["scale"] * np.einsum(form["einsum"], arrays[form["lhs"]], arrays[form["rhs"]])
        got = np.broadcast_to(np.expand_dims(got, tuple(form.get("broadcast", ()))), want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_matmul_module_names_its_output_and_its_batch_index():
    """The header calls the upstream gradient ∂ℒ/∂out (matmul's output is ``out``), and the batch
    index is not ``b``, the second input's name."""
    from symgrad.emit import emit
    header = emit(symgrad.derive(symgrad.ops.matmul("B,M,K", "B,K,N"))).split('"""')[1]
    assert "g = ∂ℒ/∂out the upstream gradient" in header and "∂ℒ/∂y" not in header
    assert "out[beta, m, n] = sum_{k=0..K - 1} a[beta, m, k]*b[beta, k, n]" in header
