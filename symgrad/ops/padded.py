"""Convolution with PyTorch's padding modes (``padding_mode`` of ``nn.Conv*d``): a padding
statement reading the input through the mode's index map — circular (``Wrap``), reflect
(``Reflect``), replicate (``Clamp``) — then the convolution's rule with no padding.  Definitions
only: the padding statement's adjoint, which folds the gradient back onto the input, is derived."""
from __future__ import annotations

import sympy as sp

from ..ir import SymgradError, Tensor, plain
from ..program import PADDING_MODES, Program, Statement
from .conv import conv


def conv_padded(ndim: int, padding_mode: str = "circular", padding=None, **params) -> Program:
    """conv{ndim}d with ``padding_mode`` circular, reflect or replicate (zeros is :func:`conv`).

    >>> [s.name for s in conv_padded(1, "reflect", padding=1, stride=1, dilation=1).statements]
    ['xpad', 'y']
    """
    mode = padding_mode.strip().lower() if isinstance(padding_mode, str) else padding_mode
    if mode not in PADDING_MODES:
        raise SymgradError(f"conv{ndim}d: padding_mode must be one of zeros, {', '.join(PADDING_MODES)}, got "
                           f"{padding_mode!r} (zeros: the plain convolution)")
    padded = conv(ndim, padding=padding, **params)
    flat = conv(ndim, padding=0, **params)
    pads = padded.params["padding"]
    x = flat.input("x")
    spatial = x.dims[-ndim:]
    grown = {L: L + lo + hi for L, (lo, hi) in zip(spatial, pads)}
    sub = lambda e: sp.sympify(e).xreplace(grown)
    xpad = Tensor("xpad", tuple(sub(d) for d in x.dims), x.split)
    read = next(a for a in sp.sympify(flat.rhs).atoms(sp.Indexed) if a.base.name == "x")
    lead = read.indices[:-ndim]  # n, (gamma,) c: the batch and channel indices the rule reads x with
    idx = tuple(sp.Idx(plain(v), (0, d - 1)) for v, d in zip(lead, xpad.dims[:-ndim]))
    idx += tuple(sp.Idx(sp.Symbol(f"p_{k + 1}" if ndim > 1 else "p", integer=True), (0, sub(L) - 1))
                 for k, L in enumerate(spatial))
    mapper = PADDING_MODES[mode]
    body = x[tuple(plain(i) for i in idx[:-ndim]) + tuple(mapper(plain(i) - lo, L) for i, (lo, _), L
                                                           in zip(idx[-ndim:], pads, spatial))]
    rhs = sub(flat.rhs).xreplace({x.base: xpad.base})
    y = Tensor(flat.output.name, tuple(sub(d) for d in flat.output.dims), flat.output.split)
    conv_stmt = Statement(y, tuple(sp.Idx(plain(i), (0, sub(i.upper))) for i in flat.indices), rhs)
    requires = [(sub(c), m) for c, m in padded.requires]
    return Program(f"conv{ndim}d_{mode}", {**padded.params, "padding_mode": mode}, flat.inputs,
                   (Statement(xpad, idx, body), conv_stmt),
                   output_sizes={k: sub(v) for k, v in flat.output_sizes.items()}, requires=requires)
