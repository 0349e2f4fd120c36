"""Plain-language readings of recognised forms and the text/JSON renderings of a derivation."""
from __future__ import annotations

import json

import sympy as sp

from .derive import Derivation
from .forms import Form, jsonable
from .printing import term_text, text


def describe(form: Form) -> list:
    """Sentences a person would write about a form, read off its fields."""
    f = form.fields
    if form.kind == "reduce_sum":
        return [f"sum of {f['operand']} over axes {tuple(f['axes'])}"]
    if form.kind == "matmul":
        return [f"contraction {f['einsum']} of {f['lhs']} with {f['rhs']} (one batched GEMM)"]
    if form.kind == "elementwise":
        return ["pointwise expression (no sums)"]
    if form.kind == "generic":
        return [f"generic: {f['reason']}; computed by {f['method']}"]
    out = [f"a convolution of {f['lhs']} (input) with {f['rhs']} (kernel), dimension numbers "
           f"{tuple(f['dimension_numbers'])}"]
    lhs_spec, rhs_spec, out_spec = f["dimension_numbers"]
    if lhs_spec.find("N") > lhs_spec.find("C") >= 0:
        out.append(f"batch and channel axes of {f['lhs']} swapped ({lhs_spec})")
    for k, (ws, ld, rd, (lo, hi), rev) in enumerate(zip(f["window_strides"], f["lhs_dilation"], f["rhs_dilation"],
                                                      f["padding"], f["rhs_reverse"])):
        axis = f"spatial axis {k + 1}"
        parts = [f"window stride {text(ws)}", f"kernel dilation {text(rd)}"]
        if ld != 1:
            parts.append(f"{text(ld)}−1 zeros inserted between elements of {f['lhs']} (lhs dilation {text(ld)}: "
                         "a transposed convolution)")
        if rev:
            parts.append("kernel reversed")
        parts.append(f"padding ({text(lo)}, {text(hi)})" + (" — negative values crop" if _maybe_negative(lo, hi) else ""))
        out.append(f"{axis}: " + ", ".join(parts))
    if f["feature_group_count"] != 1:
        out.append(f"feature_group_count {text(f['feature_group_count'])}")
    if f["batch_group_count"] != 1:
        out.append(f"batch_group_count {text(f['batch_group_count'])} (forward groups become batch groups)")
    if "rhs_regroup" in f:
        rg = f["rhs_regroup"]
        out.append(f"kernel regrouped: the group factor of axis {rg['from_axis']} moves onto axis {rg['to_axis']} "
                   "(in/out channels swapped within each group)")
    return out


def _maybe_negative(*values) -> bool:
    return any(sp.sympify(v).is_negative for v in values)


def _concrete(value, sizes):
    if not sizes:
        return value
    if isinstance(value, dict):
        return {k: _concrete(v, sizes) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_concrete(v, sizes) for v in value]
    if isinstance(value, sp.Basic):
        return sp.sympify(value).subs(sizes)
    return value


def as_json(d: Derivation, sizes=None) -> dict:
    """The JSON summary; with ``sizes`` every size expression is evaluated."""
    op = d.op
    return jsonable(_concrete({
        "op": op.name,
        "params": {k: v for k, v in op.params.items() if k != "padding_spec"},
        "inputs": [t.name for t in op.inputs],
        "shapes": {t.name: [str(s) for s in t.shape] for t in (*op.inputs, op.output)},
        "output_sizes": {str(k): v for k, v in op.output_sizes.items()},
        "forward": {"expr": " + ".join(term_text(f.term) for f in d.forward),
                    "forms": [dict(kind=f.kind, **f.fields) for f in d.forward]},
        "grads": {name: {"indices": [str(i) for i in g.indices],
                         "expr": " + ".join(term_text(f.term) for f in g.forms) or "0",
                         "form": _form_json(g.forms)}
                  for name, g in d.grads.items()},
        "seconds": round(d.seconds, 3),
    }, sizes))


def _form_json(forms) -> dict:
    if len(forms) == 1:
        return dict(kind=forms[0].kind, **forms[0].fields)
    return {"kind": "sum", "terms": [dict(kind=f.kind, **f.fields) for f in forms]}


def as_text(d: Derivation, sizes=None) -> str:
    op = d.op
    lines = [f"{op.name}  " + ", ".join(f"{k}={text(v) if isinstance(v, sp.Basic) else v}"
                                         for k, v in op.params.items() if k != "padding_spec")]
    shapes = ", ".join(f"{t.name} {tuple(map(str, t.shape))}" for t in op.inputs)
    lines.append(f"shapes: {shapes} -> {op.output.name} {tuple(map(str, op.output.shape))}".replace("'", ""))
    for k, v in op.output_sizes.items():
        lines.append(f"  {k} = {text(v)}" + (f" = {sizes[k]}" if sizes and k in sizes else ""))
    if sizes:
        lines.append("  sizes: " + ", ".join(f"{k}={v}" for k, v in sizes.items()))
    for note in op.notes:
        lines.append(f"  note: {note}")
    idx = ", ".join(str(i.label) for i in op.indices)
    lines += ["", "forward:", f"  {op.output.name}[{idx}] = " + " + ".join(term_text(f.term) for f in d.forward)]
    for f in d.forward:
        lines.append(f"    form: {f.kind}" + (f" {json.dumps(jsonable(f.fields))}" if f.kind != "elementwise" else ""))
    for name, g in d.grads.items():
        lines += ["", f"dL/d{name}[{', '.join(map(str, g.indices))}] ="]
        for k, f in enumerate(g.forms):
            lines.append(f"  {'+ ' if k else ''}{term_text(f.term)}")
            lines.append(f"    form: {f.kind}")
            for sentence in describe(f):
                lines.append(f"      - {sentence}")
            if f.kind not in ("elementwise",):
                lines.append(f"      fields: {json.dumps(jsonable(_concrete(f.fields, sizes)))}")
    lines.append("")
    lines.append(f"derived in {d.seconds:.2f} s")
    return "\n".join(lines)
