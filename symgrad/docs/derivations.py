"""The documents kept in derivations/: which ops, which examples; ``symgrad docs`` regenerates them."""
from __future__ import annotations

from pathlib import Path

import sympy as sp

from .. import ops
from ..derive import derive
from ..reverse import derive_program
from ..second_order import derive_second_order
from .document import document_context, jacobian_example, render
from .program_document import program_document_context


def _size(name):
    return sp.Symbol(name, integer=True, positive=True)


def _int(name):
    return sp.Symbol(name, integer=True)


def _conv1d_sizes(L, K, extra=None):
    sizes = {_size("N"): 1, _size("C_in"): 1, _size("C_out"): 1, _size("L"): L, _size("K"): K}
    sizes.update(extra or {})
    return sizes


def _output_size(op_, sizes):
    (expr,) = op_.output_sizes.values()
    return int(sp.sympify(expr).subs(sizes))


def _conv_example(op_, L, K, formula):
    sizes = _conv1d_sizes(L, K)
    out = _output_size(op_, sizes)
    sizes[_size("O")] = out
    jac = jacobian_example(op_, sizes, out, L, (0, 0), (0, 0))
    return dict(jac, caption=f"L = {L}, K = {K}", text=f"Row $i$, column $j$: {formula}.")


def _convolve_example(mode, Lx, Ly, formula):
    op_ = ops.convolve(mode)
    sizes = {_size("L_x"): Lx, _size("L_y"): Ly}
    out = _output_size(op_, sizes)
    sizes[_size("O")] = out
    jac = jacobian_example(op_, sizes, out, Lx)
    return dict(jac, caption=f"numpy.convolve(x, y, '{mode}') with len(x) = {Lx}, len(y) = {Ly}",
                text=f"Row $i$, column $j$ (with $L_y = {Ly}$): {formula}.")


def specs():
    """(file stem, title, op, notes, shapes example, Jacobian example or None)."""
    conv1 = ops.conv(1)
    simple = ops.conv(1, stride=1, dilation=1, padding=0, bias=False)
    causal = ops.conv(1, stride=1, dilation=1, padding="causal")
    conv2 = ops.conv(2, groups="G")
    o = conv1.output_sizes[_size("O")]
    ex1 = int(o.subs({_size("L"): 64, _size("K"): 3, _size("s"): 1, _size("d"): 1, _int("lo"): 0, _int("hi"): 0}))
    o1, o2 = conv2.output_sizes.values()
    pad = {_int("lo_1"): 1, _int("hi_1"): 1, _int("lo_2"): 2, _int("hi_2"): 2, _size("s_1"): 1, _size("s_2"): 1,
           _size("d_1"): 1, _size("d_2"): 1, _size("K_1"): 3, _size("K_2"): 5, _size("L_1"): 64, _size("L_2"): 128}
    return [
        ("conv1d", "1-D convolution: stride, dilation and padding symbolic", conv1,
         ["PyTorch semantics (a cross-correlation); zero padding is the bracket $[0 \\le s i + d r - p^{lo} < L]$."],
         f"$L = 64$, $K = 3$, stride 1, no padding: $O = {ex1}$.",
         _conv_example(simple, 6, 3, "$w_{j-i}$ for $0 \\le j - i < K$, zero elsewhere. That is PyTorch's convention, a "
                       "cross-correlation. The textbook convolution reads the kernel reversed: its Jacobian is "
                       "$\\partial y_i/\\partial x_j = w_{i+K-1-j}$ for $0 \\le i + K - 1 - j < K$, the same band with "
                       "the kernel's entries in the opposite order (the convolve documents show it)")),
        ("conv2d", "2-D convolution: stride, dilation, padding and groups symbolic", conv2,
         ["With $G$ groups the channel axes are seen as $(G, C/G)$: $x_{n,\\gamma,c,\\cdot}$, "
          "$w_{\\gamma,f,c,\\cdot}$, $y_{n,\\gamma,f,\\cdot}$."],
         f"Conv2d(20, 16, (3, 5), padding=(1, 2)) on $64 \\times 128$ keeps "
         f"${int(o1.subs(pad))} \\times {int(o2.subs(pad))}$.", None),
        ("conv1d_causal", "Causal (left-padded) 1-D convolution", causal,
         ["Padding $(k-1)d$ on the left and none on the right: output $i$ sees inputs up to $i$."],
         None, _conv_example(ops.conv(1, stride=1, dilation=1, padding="causal", bias=False), 6, 3,
                             "$w_{j-i+K-1}$ for $0 \\le i - j < K$ (cross-correlation; with the kernel reversed, as "
                             "in a true convolution, this is $w_{i-j}$)")),
        ("convolve_full", "numpy.convolve, mode 'full'", ops.convolve("full"), [], None,
         _convolve_example("full", 6, 3, "$y_{i-j}$ for $0 \\le i - j < L_y$")),
        ("convolve_same", "numpy.convolve, mode 'same'", ops.convolve("same"), [], None,
         _convolve_example("same", 6, 3, "$y_{i-j+1}$ for $0 \\le i - j + 1 < L_y$")),
        ("convolve_same_even", "numpy.convolve, mode 'same', even kernel", ops.convolve("same"),
         ["An even kernel shifts the 'same' window by one: the offset is $\\lfloor (\\min(L_x, L_y) - 1)/2 \\rfloor$."],
         None, _convolve_example("same", 6, 4, "$y_{i-j+1}$ for $0 \\le i - j + 1 < L_y$")),
        ("convolve_valid", "numpy.convolve, mode 'valid'", ops.convolve("valid"), [], None,
         _convolve_example("valid", 6, 3, "$y_{i+L_y-1-j}$ for $0 \\le i + L_y - 1 - j < L_y$")),
        ("matmul_batched", "Batched matrix product", ops.matmul("B,M,K", "B,K,N"), [], None, None),
        ("gelu_exact", "GELU, exact (erf) form", ops.gelu("none"),
         ["$\\Phi(x) = \\tfrac12(1 + \\mathrm{erf}(x/\\sqrt2))$; its derivative is the Gaussian density."], None, None),
        ("gelu_tanh", "GELU, tanh approximation", ops.gelu("tanh"), [], None, None),
    ]


def second_order_specs():
    """(file stem, title, op, notes): documents of the gradients' own gradients (double backward)."""
    return [
        ("conv2d_double_backward", "2-D convolution, double backward: the gradients of the gradients",
         ops.conv(2, groups="G"),
         ["Stride, dilation, padding and groups symbolic, as in the conv2d document. The first order is "
          "repeated here because each of its gradients is the rule the second order starts from.",
          "Every second-order term is a convolution again: $\\partial {\\mathcal{L}_2}/\\partial g$ from "
          "$\\mathit{ggx}$ and from $\\mathit{ggw}$ is the forward convolution with $\\mathit{ggx}$ in place of "
          "$x$ and $\\mathit{ggw}$ in place of $w$; the other two have the fields of the first order's weight and "
          "input gradients, with the parameters moved as the first order moved them."]),
    ]


def program_specs():
    """(file stem, title, program): documents of programs, statement by statement."""
    return [
        ("softmax", "Softmax (stable): a program of four statements", ops.softmax()),
        ("layer_norm", "Layer norm over the last axis: a program of five statements", ops.layer_norm()),
        ("attention_causal", "Scaled dot-product attention with the causal mask", ops.attention(is_causal=True)),
    ]


def generate(outdir: Path) -> list:
    """Write every document (Markdown, LaTeX, and the SVG pictures of worked Jacobians); returns the
    paths written."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, title, op_, notes, shapes_example, jac in specs():
        if jac is not None:
            image = f"{stem}_jacobian.svg"
            (outdir / image).write_text(jac["svg"])
            written.append(outdir / image)
            jac = dict(jac, image=image)
        context = document_context(derive(op_), title, notes, shapes_example, jac, command="symgrad docs")
        written += _write(outdir, stem, context)
    for stem, title, op_, notes in second_order_specs():
        d = derive(op_)
        context = document_context(d, title, notes, command="symgrad docs", second=derive_second_order(d))
        written += _write(outdir, stem, context)
    for stem, title, program in program_specs():
        context = program_document_context(derive_program(program), title, command="symgrad docs")
        written += _write(outdir, stem, context, program=True)
    return written


def _write(outdir: Path, stem: str, context: dict, program: bool = False) -> list:
    paths = []
    for fmt, ext in (("markdown", "md"), ("latex", "tex")):
        path = outdir / f"{stem}.{ext}"
        path.write_text(render(context, fmt, program=program))
        paths.append(path)
    return paths
