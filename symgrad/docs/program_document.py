"""Derivation documents of programs: the forward statement by statement, then reverse mode, each
statement's vector-Jacobian products with the steps the engine took (the sections of
:func:`~symgrad.docs.document.gradient_sections`), and each adjoint's accumulation."""
from __future__ import annotations

import sympy as sp

from ..engine.diff import forward_terms
from ..ir import plain
from ..printing.latex import indexed_tex, tex, terms_aligned
from .document import LOSS, _forward_forms, _shape_tex, _tex_value, gradient_sections


def _bar(name: str) -> str:
    """The adjoint of ``name`` as the documents write it: ∂ℒ/∂name, the bar over the whole name."""
    return r"\overline{%s}" % tex(sp.Symbol(name))


def _statement_math(s) -> str:
    stmt = s.statement
    idx = ", ".join(tex(plain(i)) for i in stmt.indices)
    lhs = indexed_tex(stmt.name, idx)
    if stmt.over:
        over = ", ".join(tex(v) for v, _, _ in stmt.over)
        body = tex(plain(stmt.rhs))
        return f"{lhs} = \\max_{{{over}}} {body}"
    return terms_aligned(lhs, forward_terms(s.op))


def program_document_context(d, title: str, command: str, notes=()) -> dict:
    """What ``templates/program.{md,tex}.j2`` need, from a :class:`~symgrad.reverse.ProgramDerivation`."""
    p = d.program
    statements = []
    for s in d.statements:
        stmt = s.statement
        said = _forward_forms(s.derivation) if not stmt.over else "the maximum (reduce_max); tied maxima share its gradient"
        statements.append({"name": stmt.name, "tex": tex(sp.Symbol(stmt.name)), "math": _statement_math(s),
                           "forms": said, "stop": stmt.stop})
    backward = []
    for s in reversed(d.statements):
        if not s.derivation.grads:
            continue
        sections = gradient_sections(s.derivation)
        backward.append({"name": s.statement.name, "tex": tex(sp.Symbol(s.statement.name)),
                         "upstream": _bar(s.statement.name), "grad": tex(sp.Symbol("d" + s.statement.name)),
                         "gradients": sections, "max": bool(s.statement.over)})
    adjoints = []
    for name, parts in d.adjoints.items():
        terms = [f"\\left.{_bar(name)}\\right|_{{{tex(sp.Symbol(d.statements[k].statement.name))}}}" for k, _ in parts]
        adjoints.append({"name": name, "math": f"{_bar(name)} = " + " + ".join(terms), "count": len(parts)})
    return {
        "title": title, "op": p.name, "command": command, "loss": LOSS,
        "params": [(r"\text{%s}" % k.replace("_", r"\_"), _tex_value(v)) for k, v in p.params.items()],
        "inputs": [(t.name, _shape_tex(t.shape)) for t in p.inputs],
        "outputs": [(name, _shape_tex(p.tensors[name].shape)) for name in p.outputs],
        "output_sizes": [(tex(k), tex(v)) for k, v in p.output_sizes.items()],
        "statements": statements, "backward": backward, "adjoints": adjoints,
        "output_bars": [_bar(name) for name in p.outputs], "notes": list(notes),
        "closed_forms": [f"{note}: the engine does not find that form; its backward is the chain of adjoints "
                         "above, equal to it (the checks compare it with PyTorch's)" for note in p.notes],
        "leading": p.leading is not None,
    }

