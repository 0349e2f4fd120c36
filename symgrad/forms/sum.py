"""``sum``: a gradient of several terms (a bias and a convolution, the two halves of a product
rule), each with its own form.  The JSON gives ``{"kind": "sum", "terms": [...]}``; the emitted
code computes each term and adds them, into a convolution's own fresh result where there is one."""
from __future__ import annotations

import json
from dataclasses import replace

from .. import naming
from ..ir import SymgradError
from ..printing.text import comment, shape_code, term_text
from . import kind
from .form import Code, jsonable, tensors_read


def form_json(forms) -> dict:
    """One form's fields with its kind, or the ``sum`` of several (SymPy values: pass the result
    through :func:`~symgrad.forms.form.jsonable`)."""
    if len(forms) == 1:
        return dict(kind=forms[0].kind, **forms[0].fields)
    return {"kind": "sum", "terms": [dict(kind=f.kind, **f.fields) for f in forms]}


def form_text(form) -> str:
    """A form's term on one line, its summed indices a max's where the form is a maximum."""
    return term_text(form.term, "max" if form.kind == "reduce_max" else "sum")


def form_summary(form) -> dict:
    """A form as the emitted modules' headers list it: the term's text, the kind, its fields as JSON."""
    return {"text": form_text(form), "kind": form.kind, "fields": json.dumps(jsonable(form.fields), sort_keys=True)}


def views(tensors, names) -> list:
    """The index-space views (grouped axes split) of the tensors ``names`` that need one."""
    out = []
    for name in names:
        t = tensors[name]
        if t.viewed:
            out.append(f"{naming.view(name)} = {name}.reshape({shape_code(t.dims)})")
    return out


def sum_code(op_name: str, forms, target) -> Code:
    """Statements leaving Σ forms in ``target.out``, in the target tensor's real shape (an
    elementwise op's result keeps its arrays' shape)."""
    used = sorted(name for name in tensors_read([f for f in forms if kind(f.kind).reads_views]) if name in target.tensors)
    code, parts = Code(tuple(views(target.tensors, used))), []
    for k, form in enumerate(forms):
        part = naming.term(target.out, k)
        try:
            body = kind(form.kind).code(form, replace(target, out=part))
        except SymgradError:  # already names the op and the fault
            raise
        except (NotImplementedError, ValueError) as exc:  # a printer without code for a function
            raise SymgradError(f"{op_name}: no array code for {form_text(form)}: "
                               f"{str(exc).splitlines()[0]}") from None
        code += Code(comment(f"{form.kind}: {form_text(form)}")) + body
        parts.append(part)
    fresh = [p for p, f in zip(parts, forms) if kind(f.kind).fresh_result]
    if fresh and len(parts) > 1 and target.backend.in_place:  # add into the convolution's own result, not a new temporary
        value = f"_add_terms({', '.join(fresh[:1] + [p for p in parts if p != fresh[0]])})"
        code += Code((), frozenset({"add_terms"}))
    else:
        shape = shape_code(target.tensor.dims) if target.shaped else f"{target.tensor.name}.shape"  # elementwise: any shape
        value = " + ".join(parts) if parts else target.backend.new("zeros", shape, target.like or target.tensor.name)
    t = target.tensor  # every part has the target's index-space shape already
    line = f"{target.out} = {value}" if not target.shaped else f"{target.out} = ({value}).reshape({shape_code(t.shape)})"
    return code + Code((line,))
