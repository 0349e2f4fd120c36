"""Blocks of layers as programs (definitions only): a convolution followed by its bias and GELU,
and the depthwise-separable block (depthwise convolution, then a pointwise one).  Each statement
is an existing op's rule, its tensors renamed where the block needs."""
from __future__ import annotations

import sympy as sp

from ..ir import Op, Tensor, index, size
from ..program import Program, Statement
from .conv import conv
from .gelu import gelu


def _statement(op: Op, output: Tensor = None) -> Statement:
    return Statement(output or op.output, op.indices, op.rhs)


def conv_bias_gelu(ndim: int = 2, approximate: str = "none", **conv_params) -> Program:
    """z = gelu(conv(x, w) + b): the convolution's rule, then GELU's rule at every output element.

    >>> [s.name for s in conv_bias_gelu().statements]
    ['y', 'z']
    """
    c = conv(ndim, **{"bias": True, **conv_params})
    act = gelu(approximate)
    z = Tensor("z", c.output.dims, c.output.split)
    element = c.output[c.indices]
    rhs = act.rhs.xreplace({act.inputs[0][act.indices]: element})
    params = {**c.params, "approximate": act.params["approximate"]}
    return Program(f"conv{ndim}d_bias_gelu", params, c.inputs, (_statement(c), Statement(z, c.indices, rhs)),
                   output_sizes=dict(c.output_sizes), requires=list(c.requires))


def _renamed(t: Tensor, name: str) -> Tensor:
    return Tensor(name, t.dims, t.split)


def depthwise_separable(ndim: int = 2, stride=1, dilation=1, padding=0, kernel_size=None, bias=True) -> Program:
    """y = pointwise(depthwise(x)): the depthwise convolution is conv's rule with groups G = C_in
    and one channel per group (PyTorch's weight layout (C_in, 1, *K)), its output ``h``; then
    ``y[n, f, i] = Σ_c w_pw[f, c, 0]·h[n, c, i] (+ b_pw[f])``, a 1×1 convolution.

    >>> [t.name for t in depthwise_separable().inputs]
    ['x', 'w_dw', 'b_dw', 'w_pw', 'b_pw']
    """
    one = {size("C_in"): 1, size("C_out"): 1}
    dw = conv(ndim, stride=stride, dilation=dilation, padding=padding, groups=None, kernel_size=kernel_size,
              bias=bias).specialised(one)
    names = {"x": "x", "w": "w_dw", "b": "b_dw", "y": "h"}
    tensors = {t.name: _renamed(t, names[t.name]) for t in (*dw.inputs, dw.output)}
    rhs = dw.rhs.xreplace({t.base: tensors[t.name].base for t in (*dw.inputs, dw.output)})
    h = tensors["y"]
    N, G, F = size("N"), size("G"), size("C_out")
    n, gamma, f = dw.indices[0], index("c", G), index("f", F)
    spatial = dw.indices[3:]
    w_pw = Tensor("w_pw", (F, G, *([1] * ndim)))
    y = Tensor("y", (N, F, *h.dims[3:]))
    point = sp.Sum(w_pw[(f, gamma, *([0] * ndim))] * h[(n, gamma, 0, *spatial)], (gamma, 0, G - 1))
    inputs = [tensors["x"], tensors["w"]] + ([tensors["b"]] if bias else [])
    if bias:
        b_pw = Tensor("b_pw", (F,))
        point = point + b_pw[f]
        inputs += [w_pw, b_pw]
    else:
        inputs.append(w_pw)
    params = {k: v for k, v in dw.params.items() if k not in ("groups",)}
    return Program("depthwise_separable", params, tuple(inputs), (Statement(h, dw.indices, rhs),
                                                                  Statement(y, (n, f, *spatial), point)),
                   output_sizes=dict(dw.output_sizes), requires=list(dw.requires))
