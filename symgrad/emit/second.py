"""The double backward of an emitted NumPy/CuPy module: per gradient ``dx`` whose rule was derived
(:mod:`symgrad.second_order`), one function computing its contributions with the recognised forms'
code; ``double_backward`` adds them up, as PyTorch's double backward does."""
from __future__ import annotations

from .. import naming
from ..forms import Target
from ..forms.form import Code, tensors_read
from ..forms.sum import form_summary, sum_code
from ..second_order import SecondOrder
from ..sizes import grad_output_reads, grad_output_statements
from .loops import loop as make_loop


def second_context(second: SecondOrder, spec, blockwise: bool = False) -> tuple:
    """``(blocks, code)``: per gradient, what its function computes and returns, and the forms' code
    together (its runtime pieces and imports).  ``blockwise`` (an elementwise op's NumPy module): each
    contribution is also one compiled loop over the arrays (``loop``; with its own NumPy ``body`` for
    the fallback), as the first order's gradients are, where the loop applies to every contribution."""
    op = second.first.op
    shaped = not op.elementwise
    # (a gradient's rule "conv2d dx" reads the upstream gradient g: double_backward's grad_output)
    shown = {dd.op.name: f"{op.name} double_backward" for dd in second.of.values()} | {naming.UPSTREAM: naming.GRAD_OUTPUT}
    blocks, code = [], Code(())
    for x, dd in second.of.items():
        body, results, terms = Code(()), [], []
        for y, grad in dd.grads.items():
            out = naming.contribution(y, x)
            own = sum_code(dd.op.name, grad.forms, Target(out, dd.tensors[y], grad.indices, dd.tensors, shaped, spec))
            body += own
            loop = make_loop(grad.forms, out, [dd.op.upstream, naming.UPSTREAM] + [t.name for t in op.inputs]) \
                if blockwise else None
            results.append({"of": y, "var": out, "loop": loop, "body": list(own.lines),
                            "function": f"double_backward_{x}_{y}",
                            "kind": f"{naming.GRAD_OUTPUT if y == naming.UPSTREAM else y}.dtype"})
            terms.append({"of": y, "indices": ", ".join(map(str, grad.indices)),
                          "terms": [form_summary(f) for f in grad.forms]})
        code += body
        reads = tensors_read([f for grad in dd.grads.values() for f in grad.forms]) | grad_output_reads(dd.op)
        looped = blockwise and all(r["loop"] for r in results)
        blocks.append({"wrt": x, "grad": naming.grad(x), "gg": dd.op.upstream, "function": f"_double_backward_{x}",
                       "looped": looped,
                       "reads_upstream": naming.UPSTREAM in reads,
                       "checks": grad_output_statements(dd.op, dd.op.upstream, shown), "body": list(body.lines),
                       "results": results, "terms": terms,
                       "returns": ", ".join(r["var"] for r in results) + ("," if len(results) == 1 else "")})
    return blocks, code + Code((), frozenset({"total"}))


def contributions(blocks, names) -> dict:
    """name -> the contribution variables that add up to ∂ℒ₂/∂name."""
    out = {name: [] for name in names}
    for block in blocks:
        for r in block["results"]:
            out[r["of"]].append(r["var"])
    return out
