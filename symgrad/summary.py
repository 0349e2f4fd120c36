"""A derivation as text (what ``symgrad derive`` and ``print(derivation)`` show) and as JSON; each
form described by its kind."""
from __future__ import annotations

import json

import sympy as sp

from .forms import jsonable, kind
from .forms.sum import form_json, form_text
from .printing.text import statement_text, text


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


def as_json(d, sizes=None) -> dict:
    """The JSON summary; with ``sizes`` every size expression is evaluated."""
    op = d.op
    return jsonable(_concrete({
        "op": op.name,
        "params": op.params,
        "inputs": [t.name for t in op.inputs],
        "shapes": {t.name: [str(s) for s in t.shape] for t in (*op.inputs, op.output)},
        "output_sizes": {str(k): v for k, v in op.output_sizes.items()},
        "forward": {"expr": " + ".join(form_text(f) for f in d.forward),
                    "forms": [dict(kind=f.kind, **f.fields) for f in d.forward]},
        "grads": _grads_json(d.grads),
    }, sizes))


def _grads_json(grads: dict) -> dict:
    return {name: {"indices": [str(i) for i in g.indices], "expr": " + ".join(form_text(f) for f in g.forms) or "0",
                   "form": form_json(g.forms)} for name, g in grads.items()}


def as_text(d, sizes=None) -> str:
    op = d.op
    lines = [f"{op.name}  " + ", ".join(f"{k}={text(v) if isinstance(v, sp.Basic) else v}"
                                         for k, v in op.params.items())]
    shapes = ", ".join(f"{t.name} {tuple(map(str, t.shape))}" for t in op.inputs)
    lines.append(f"shapes: {shapes} -> {op.output.name} {tuple(map(str, op.output.shape))}".replace("'", ""))
    for k, v in op.output_sizes.items():
        lines.append(f"  {k} = {text(v)}" + (f" = {sizes[k]}" if sizes and k in sizes and v != sizes[k] else ""))
    if sizes:
        lines.append("  sizes: " + ", ".join(f"{k}={v}" for k, v in sizes.items()))
    for note in op.notes:
        lines.append(f"  note: {note}")
    idx = ", ".join(str(i.label) for i in op.indices)
    lines += ["", "forward:", f"  {op.output.name}[{idx}] = " + " + ".join(form_text(f) for f in d.forward)]
    for f in d.forward:
        lines.append(f"    form: {f.kind}" + (f" {json.dumps(jsonable(f.fields))}" if f.kind != "elementwise" else ""))
    for name, g in d.grads.items():
        lines += [""] + _gradient_lines(f"dℒ/d{name}", g, sizes)
    return "\n".join(lines) + "\n"


def _gradient_lines(label: str, g, sizes, indent: str = "") -> list:
    """``label[indices] =`` and each term with its form, described."""
    lines = [f"{indent}{label}[{', '.join(map(str, g.indices))}] ="]
    for k, f in enumerate(g.forms):
        lines.append(f"{indent}  {'+ ' if k else ''}{form_text(f)}")
        lines.append(f"{indent}    form: {f.kind}")
        for sentence in kind(f.kind).describe(f):
            lines.append(f"{indent}      - {sentence}")
        if f.kind not in ("elementwise",):
            lines.append(f"{indent}      fields: {json.dumps(jsonable(_concrete(f.fields, sizes)))}")
    return lines


def second_as_text(s, sizes=None) -> str:
    """``derive --order 2``: the first order, then each gradient's own gradients (ℒ₂ = Σ ggx·dx)."""
    lines = [as_text(s.first, sizes), "second order: each gradient dx taken as a rule of its own (inputs g and the op's "
             "inputs), derived for ℒ₂ = Σ ggx·dx, ggx = ∂ℒ₂/∂dx"]
    for x, dd in s.of.items():
        lines += ["", f"{dd.op.name}:"]
        for y, g in dd.grads.items():
            lines += _gradient_lines(f"d(Σ {dd.op.upstream}·{dd.op.output.name})/d{y}", g, sizes, "  ")
    return "\n".join(lines) + "\n"


def second_as_json(s, sizes=None) -> dict:
    """The JSON summary with ``second_order``: per gradient, its own gradients' forms."""
    return {**as_json(s.first, sizes), "second_order": {
        x: jsonable(_concrete({"upstream": dd.op.upstream, "grads": _grads_json(dd.grads)}, sizes))
        for x, dd in s.of.items()}}


def program_as_text(d) -> str:
    """A program's derivation (:class:`symgrad.reverse.ProgramDerivation`): each statement with its
    forms, then the backward statement by statement with each adjoint contribution's form."""
    p = d.program
    params = ", ".join(f"{k}={v}" for k, v in p.params.items())
    lines = [f"{p.name}  (a program of {len(p.statements)} statements){'  ' + params if params else ''}",
             "inputs: " + ", ".join(f"{t.name} {tuple(map(str, t.shape))}" for t in p.inputs).replace("'", "")
             + "; output" + ("s" if len(p.outputs) > 1 else "") + ": " + ", ".join(p.outputs)]
    for k, v in p.output_sizes.items():
        lines.append(f"  {k} = {text(v)}")
    lines += ["", "forward:"]
    for s in d.statements:
        lines.append(f"  {s.index + 1}. {statement_text(s.statement)}")
        for f in s.forward:
            described = "; ".join(kind(f.kind).describe(f))
            lines.append(f"       form: {f.kind} ({described})")
    if d.adjoints:  # (forward mode derives nothing backwards)
        lines += ["", "backward (reverse mode): the adjoint dT = ∂ℒ/∂T of a tensor is the sum of what each statement "
                  "reading it passes back; " + ", ".join(f"d{o} = grad_output" for o in p.outputs)]
    for s in reversed(d.statements):
        if not s.derivation.grads:
            continue
        lines += ["", f"  through {statement_text(s.statement)}  (upstream d{s.statement.name}):"]
        for name, g in s.derivation.grads.items():
            lines += _gradient_lines(f"+= d{name}", g, None, "    ")
    for note in p.notes:
        lines += ["", f"note: {note}; the engine does not find that form: its backward is the chain of adjoints above "
                      "(equal to it: the checks compare both with PyTorch)"]
    return "\n".join(lines) + "\n"


def program_second_as_text(s) -> str:
    """``derive PROGRAM --order 2``: the first order, then the backward as a program of its own and
    its derivation (its adjoints of the inputs and of the upstream gradients: the double backward)."""
    if s.second is None:
        return "\n".join([program_as_text(s.first), ZERO_SECOND])
    return "\n".join([program_as_text(s.first), SECOND_PROGRAM, "", program_as_text(s.second)])


#: what ``derive PROGRAM --order 2`` says where no input has a gradient
ZERO_SECOND = "second order: no input has a gradient, so the backward is 0 and so is its derivative"


#: what ``derive PROGRAM --order 2`` says before the backward program
SECOND_PROGRAM = ("second order: the backward taken as a program of its own (the forward's statements, then each "
                  "adjoint xbar = Σ of what the statements reading x pass back, deltas kept), differentiated by "
                  "reverse mode; its adjoints of the inputs and of the upstream gradients are the double backward")


def program_second_as_json(s) -> dict:
    """The JSON summary with ``second_order``: the backward program's own summary."""
    return {**program_as_json(s.first), "second_order": program_as_json(s.second) if s.second else None}


def program_as_json(d) -> dict:
    """A program's derivation as JSON: statements with their forms, adjoint contributions with theirs."""
    p = d.program
    return jsonable({
        "program": p.name, "params": p.params, "inputs": [t.name for t in p.inputs], "outputs": list(p.outputs),
        "shapes": {name: [str(s) for s in t.shape] for name, t in p.tensors.items()},
        "output_sizes": {str(k): v for k, v in p.output_sizes.items()},
        "statements": [{"name": s.statement.name, "rule": statement_text(s.statement), "stop": s.statement.stop,
                        "forms": [dict(kind=f.kind, **f.fields) for f in s.forward]} for s in d.statements],
        "adjoints": {name: [{"through": d.statements[k].statement.name, **_grads_json({name: g})[name]}
                            for k, g in parts] for name, parts in d.adjoints.items()},
        "notes": list(p.notes),
    })
