"""Acceptance 3: the symbolic expressions themselves — straight from differentiation (with their
Kronecker deltas) and after delta elimination — evaluated at concrete sizes agree with central
finite differences of the forward definition, element by element.  Symbolic parameters are
substituted only at evaluation time."""
import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.verify.evaluate import evaluate
from support import fd_gradient, sizes_for

# (op, values for its symbols, input shapes)
CASES = [
    (lambda: symgrad.ops.conv(1), {"s": 2, "d": 2, "lo": 2, "hi": -1}, {"x": (1, 2, 9), "w": (2, 2, 2), "b": (2,)}),
    (lambda: symgrad.ops.conv(1), {"s": 3, "d": 3, "lo": 2, "hi": 2}, {"x": (2, 1, 8), "w": (1, 1, 3), "b": (1,)}),
    (lambda: symgrad.ops.conv(1, groups="G"), {"s": 2, "d": 1, "lo": 1, "hi": 0, "G": 2},
     {"x": (1, 4, 7), "w": (2, 2, 3), "b": (2,)}),
    (lambda: symgrad.ops.conv(2), {"s_1": 2, "s_2": 1, "d_1": 1, "d_2": 2, "lo_1": 1, "hi_1": 0, "lo_2": 0, "hi_2": 2},
     {"x": (1, 1, 5, 4), "w": (2, 1, 2, 2), "b": (2,)}),
    (lambda: symgrad.ops.conv(1, padding="causal", stride=1, dilation=2), {}, {"x": (1, 1, 6), "w": (1, 1, 3), "b": (1,)}),
    (lambda: symgrad.ops.convolve("same"), {}, {"x": (6,), "y": (4,)}),
    (lambda: symgrad.ops.convolve("valid"), {}, {"x": (3,), "y": (5,)}),
    (lambda: symgrad.ops.matmul("1,M,K", "B,K,N"), {}, {"a": (1, 2, 3), "b": (2, 3, 2)}),
    (lambda: symgrad.ops.gelu(), {}, {"x": (5,)}),
    (lambda: symgrad.ops.gelu("tanh"), {}, {"x": (5,)}),
]


@pytest.mark.parametrize("make,values,shapes", CASES)
def test_raw_and_eliminated_terms_match_finite_differences(make, values, shapes):
    op = make()
    d = symgrad.derive(op)
    rng = np.random.default_rng(7)
    arrays = {n: rng.standard_normal(s) for n, s in shapes.items()}
    sizes = sizes_for(op, values, arrays)
    out_shape = [int(sp.sympify(s).subs(sizes)) for s in op.output.shape]
    if op.elementwise:
        out_shape = list(shapes["x"])
        sizes[sp.Symbol("E", integer=True, positive=True)] = arrays["x"].size
    g = rng.standard_normal(out_shape)
    arrays_g = dict(arrays, g=g)
    eps = 1e-6 if op.name == "gelu" else 0.5  # the bilinear ops are exact for any step
    for name, grad in d.grads.items():
        t = op.input(name)
        raw = evaluate(grad.raw, t, d.tensors, grad.raw_indices, sizes, arrays_g)
        eliminated = evaluate(grad.terms, t, d.tensors, grad.indices, sizes, arrays_g)
        fd = fd_gradient(op, d.tensors, sizes, arrays, name, g, eps)
        tol = 1e-7 if op.name == "gelu" else 1e-10
        np.testing.assert_allclose(raw, fd, rtol=tol, atol=tol, err_msg=f"raw d{name}")
        np.testing.assert_allclose(eliminated, fd, rtol=tol, atol=tol, err_msg=f"eliminated d{name}")
        assert not any(term.deltas for term in grad.terms)
        assert not any(term.expr().has(sp.KroneckerDelta) for term in grad.terms)


def test_divisibility_guard_is_emitted_and_needed():
    """The stride's divisibility guard (which SymPy's deltasummation drops) is emitted, holds
    exactly where the raw delta does, and without it no convolution form is claimed."""
    from symgrad.forms.conv_match import match_conv
    op = symgrad.ops.conv(1, stride=2, dilation=1, padding=0)
    d = symgrad.derive(op)
    (term,) = d.grads["x"].terms
    mods = [g for g in term.guards if isinstance(g, sp.Eq) and g.lhs.has(sp.Mod)]
    assert len(mods) == 1
    (j,) = [v for v in d.grads["x"].indices if v.name.startswith("j")]
    r = sp.Symbol("r", integer=True)
    # δ(2·i + r, j) has a solution i exactly where 2 | (j − r)
    for jv in range(6):
        for rv in range(3):
            assert bool(mods[0].subs({j: jv, r: rv})) == ((jv - rv) % 2 == 0)
    without = term.replace(guards=tuple(x for x in term.guards if x not in mods))
    assert match_conv(term, d.tensors, d.grads["x"].indices, op.input("x")) is not None
    assert match_conv(without, d.tensors, d.grads["x"].indices, op.input("x")) is None
