"""Structural checks: each gradient of the listed ops gets its expected form kind, and no
Kronecker delta survives elimination.  One row per case, with what it exercises."""
import pytest
import sympy as sp

import symgrad

O = symgrad.ops
CONV = "conv_general_dilated"
ROWS = [
    # (op, {input: kinds}, forward kinds)
    (O.conv(1), {"x": [CONV], "w": [CONV], "b": ["reduce_sum"]}, ["elementwise", CONV]),   # all symbolic
    (O.conv(2, groups="G"), {"x": [CONV], "w": [CONV], "b": ["reduce_sum"]}, ["elementwise", CONV]),  # symbolic groups
    (O.conv(3, stride=2, dilation=3, padding=1, bias=False), {"x": [CONV], "w": [CONV]}, [CONV]),
    (O.conv(1, stride=1, dilation=2, padding="causal"), {"x": [CONV], "w": [CONV], "b": ["reduce_sum"]}, None),
    (O.conv(2, stride=1, padding="same", groups=4), {"x": [CONV], "w": [CONV], "b": ["reduce_sum"]}, None),  # even K ok
    (O.conv(1, stride=5, dilation=1, padding="2:-3"), {"x": [CONV], "w": [CONV], "b": ["reduce_sum"]}, None),  # crop
    (O.conv(4, stride=2, dilation=1, padding=0), {"x": [CONV], "w": [CONV], "b": ["reduce_sum"]}, None),  # 4-d
    (O.convolve("full"), {"x": [CONV], "y": [CONV]}, [CONV]),
    (O.convolve("same"), {"x": [CONV], "y": [CONV]}, [CONV]),
    (O.convolve("valid"), {"x": [CONV], "y": [CONV]}, [CONV]),
    (O.matmul(), {"a": ["matmul"], "b": ["matmul"]}, ["matmul"]),
    (O.matmul("1,M,K", "B,K,N"), {"a": ["matmul"], "b": ["matmul"]}, ["matmul"]),  # broadcast: summed over B
    (O.matmul("M,K", "K"), {"a": ["elementwise"], "b": ["matmul"]}, ["matmul"]),   # da is an outer product
    (O.gelu("none"), {"x": ["elementwise"]}, ["elementwise"]),
    (O.gelu("tanh"), {"x": ["elementwise"]}, ["elementwise"]),
]


@pytest.mark.parametrize("op,grads,forward", ROWS, ids=[f"{r[0].name}-{k}" for k, r in enumerate(ROWS)])
def test_form_kinds(op, grads, forward):
    d = symgrad.derive(op)
    assert {k: g.kinds for k, g in d.grads.items()} == grads
    if forward is not None:
        assert [f.kind for f in d.forward] == forward
    for g in d.grads.values():
        for t in g.terms:
            assert not t.deltas and not t.expr().has(sp.KroneckerDelta)
        assert any(t.deltas for t in g.raw) or not g.raw[0].sums  # differentiation produced deltas


def test_convolve_mode_swap_for_odd_kernels():
    """grad_x of convolve(x, y, mode) is a correlation with y whose window is the 'swapped' mode:
    padding (K-1-off) ... read off the form rather than a table."""
    Lx, Ly = sp.Symbol("L_x", integer=True, positive=True), sp.Symbol("L_y", integer=True, positive=True)
    O_ = sp.Symbol("O", integer=True, positive=True)
    for mode, out in (("full", Lx + Ly - 1), ("same", Lx), ("valid", Lx - Ly + 1)):
        d = symgrad.derive(O.convolve(mode))
        f = d.grads["x"].forms[0].fields
        lo, hi = (sp.sympify(p).subs(O_, out).subs({Ly: 3, Lx: 7}) for p in f["padding"][0])
        # conv of g (length O) with y (3 taps) giving 7 outputs: lo + O + hi - 3 + 1 == 7
        assert lo + out.subs({Ly: 3, Lx: 7}) + hi - 2 == 7
        expected_mode = {"full": "valid", "same": "same", "valid": "full"}[mode]
        assert (lo, hi) == {"valid": (0, 0), "same": (1, 1), "full": (2, 2)}[expected_mode]
        assert f["rhs_reverse"] == [False]  # convolve(g, y[::-1]) = correlation of g with y
