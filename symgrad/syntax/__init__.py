"""A text syntax for rules and programs, so a user needs no Python.

::

    # layer_norm.sg — one declaration or statement per line (or separated by ';')
    input x[N, D]
    param weight[D], bias[D]
    mu[n] = sum(k) x[n, k] / D
    xc[n, d] = x[n, d] - mu[n]
    var[n] = sum(k) xc[n, k]^2 / D
    output y[n, d] = xc[n, d] / sqrt(var[n] + 1e-5) * weight[d] + bias[d]

* ``input``/``param`` declare the caller's tensors with their sizes (names or integers); both get
  gradients (``param`` says it is a parameter); ``input x[N] > 0`` says its elements are positive
  (a rule taking their log or a fractional power needs that, and ``check`` samples them so).  ``size O = (L + 2 - K) // 2 + 1`` names a size
  computed from the inputs' (``//`` floors).
* A statement defines one tensor: ``name[i, j] = expression`` (``name = …`` for a scalar).
  ``output`` marks the tensors returned (default: the last statement's).
* Expressions: numbers, ``+ - * / ^ **``, parentheses, tensor reads ``x[n, 2*i + r - 1]`` (indices
  affine in the index names; reads outside a tensor's range are zero, so padding falls out),
  brackets ``[0 <= i - 1 < L]`` (1 where the condition holds, 0 elsewhere; ``and`` joins
  conditions), ``sum(c, r) body`` (the body is the product that follows: ``sum(c) a*b + d`` is
  ``(Σ_c a·b) + d``), ``max(j) body`` (a maximum; brackets in its body leave elements out),
  ``stop_gradient(e)``, and the functions exp, log, sqrt, tanh, erf, erfc, sin, cos, abs,
  sigmoid, relu, maximum(a, b), minimum(a, b); ``pi``.  Inside a tensor's brackets only, the index
  maps of PyTorch's padding modes: ``x[wrap(i - 1, L)]`` (circular), ``reflect(…, L)``,
  ``clamp(…, L)`` (replicate), each the whole index of its axis.
* Index ranges: an index read bare (``x[n, d]``) runs over that axis; a summed index may be
  declared ``sum(r < K)``; an output index may be declared ``y[n, i < O]``.  An output index read
  only through affine reads ``s·i + d·r − p`` of an axis of size L, with summed indices r over K,
  gets PyTorch's convolution extent with padding p on both sides, ⌊(L + 2p − d·(K − 1) − 1)/s⌋ + 1
  (a size named ``O_i``); declare anything else.

Parsed by a tokenizer and a recursive-descent parser into SymPy (no ``eval``); an error names the
line and column and shows where.
"""
from __future__ import annotations

from ..ir import Tensor, size
from ..program import Program
from .parser import Parser
from .tokens import Source


def parse_program(text: str, name: str = "rule", origin: str = "<rule>") -> Program:
    """A program from its text (see the module docstring).  Inputs may be left undeclared in a
    one-line rule: every tensor read that no statement defines becomes an input, its sizes named
    after the tensor's axes (``x`` read with 3 indices: ``x_0, x_1, x_2``) unless declared.

    >>> p = parse_program("input x[N, D]\\ny[n] = sum(d) x[n, d]^2")
    >>> [s.name for s in p.statements], p.statements[0].output.dims
    (['y'], (N,))
    """
    src = Source(text, origin)
    parser = Parser(src, name)
    _declare_undeclared(parser, src)
    return parser.parse()


def _declare_undeclared(parser: Parser, src: Source):
    """Inputs of a rule written without declarations: every tensor read and never defined, with one
    size per axis named from the upper-case index read there where it is bare (``x[n, c, l]`` gives
    ``(N, C, L)``), else ``<tensor>_<axis>``."""
    toks = parser.toks
    defined, declared, reads = set(), set(), {}
    line_start = True
    k = 0
    while k < len(toks):
        t = toks[k]
        if line_start and t.text in ("input", "param") and toks[k + 1].kind == "name":
            j = k + 1
            while toks[j].kind != "newline":
                if toks[j].kind == "name" and toks[j - 1].text in ("input", "param", ","):
                    declared.add(toks[j].text)
                j += 1
        if line_start and t.kind == "name" and t.text not in ("input", "param", "size"):
            head = toks[k + 1] if t.text == "output" and toks[k + 1].kind == "name" else t
            defined.add(head.text)
            parser.later.setdefault(head.text, head.line)
        if t.kind == "name" and k + 1 < len(toks) and toks[k + 1].text == "[" and not line_start and \
                t.text not in defined and t.text not in declared and toks[k - 1].text != "output":
            reads.setdefault(t.text, _read_axes(toks, k + 1))
        line_start = t.kind == "newline"
        k += 1
    for name, axes in reads.items():
        if name in defined or name in declared:
            continue
        dims = []
        for a, index in enumerate(axes):
            label = index.upper() if index and index.upper() not in reads else f"{name}_{a}"
            dims.append(parser.sizes.setdefault(label, size(label)))
        tensor = Tensor(name, tuple(dims))
        parser.tensors[name] = tensor
        parser.inputs.append(tensor)


def _read_axes(toks, k) -> list:
    """The bare index name read on each axis of ``name[ … ]`` starting at token ``k`` (None where the
    index is an expression)."""
    axes, depth, current = [], 0, []
    for t in toks[k + 1:]:
        if t.text in ("(", "[") and t.kind == "op":
            depth += 1
        elif t.text in (")", "]") and t.kind == "op":
            if depth == 0:
                axes.append(current[0].text if len(current) == 1 and current[0].kind == "name" else None)
                return axes
            depth -= 1
        elif t.text == "," and depth == 0:
            axes.append(current[0].text if len(current) == 1 and current[0].kind == "name" else None)
            current = []
            continue
        current.append(t)
    return axes
