"""Assemble a standalone module from a program's derivation (:mod:`symgrad.reverse`): ``forward``,
``vjp`` (the forward, and a pullback that keeps the residuals), ``backward`` (both at once), each
statement's code and each adjoint contribution's from its recognised forms, poured into
``templates/program.py.j2``."""
from __future__ import annotations

import json
import re
from dataclasses import replace

import sympy as sp

from .. import __version__, naming
from ..forms import Target, jsonable
from ..forms.form import Code, Form
from ..forms.reduce_max import REDUCE_MAX
from ..forms.sum import form_summary, sum_code
from ..ir import Term, plain
from ..printing.text import shape_code, size_code, statement_text
from ..reverse import ProgramDerivation
from ..sizes import bind_statements, grad_output_statements, shape_text
from ..templating import environment
from .inline import import_block, inline
from .loops import nest as loop_nest
from .loops import reduction_nest
from .module import _module_backend, _require_concrete


def _alias(forms, target):
    """The tensor a contribution is, unchanged and whole (``xc = x − μ`` passes dxc to x), or None."""
    if len(forms) != 1 or forms[0].kind != "elementwise" or forms[0].term.guards:
        return None
    factor = forms[0].term.factor
    if isinstance(factor, sp.Indexed) and tuple(factor.indices) == tuple(target.out_vars) \
            and not target.tensors[factor.base.name].viewed and not target.tensor.viewed:
        return factor.base.name
    return None


def _fused(op: str, name: str, text: str, forms, target, body: Code, nests: list, into: str = None,
           add: bool = False) -> list:
    """Statements leaving ``forms``' value in ``target.out``: one numba loop nest (recorded in
    ``nests``) where it applies, ``body`` (the forms' array code) where it does not (no numba, small or
    mixed-dtype arrays); with ``into``, the value is then stored there, or added to it with ``add`` (a
    pointwise nest reads and adds it in the same pass)."""
    out = target.out
    alias = _alias(forms, target)
    fold = add and alias is None and all(f.kind == "elementwise" for f in forms)
    more = [Form("elementwise", {}, Term(target.tensors[into][tuple(target.out_vars)]))] if fold else []
    n = None if alias else reduction_nest(forms[0], out, target.out_vars, target.tensors, target.tensor) \
        if len(forms) == 1 and forms[0].kind == "reduce_sum" else \
        loop_nest(forms + more, out, target.out_vars, target.tensors, target.tensor)
    fold = fold and n is not None
    store = [] if into is None else [f"{into} = {into} + {out}" if add and not fold else f"{into} = {out}"]
    if alias:
        return [f"{out} = {alias}"] + store
    if n is None:
        return list(body.lines) + store
    nests.append({"name": name, "text": text, "nest": n})
    work = f", {size_code(sp.Mul(*target.tensor.dims, *[hi + 1 for _, _, hi in forms[0].term.sums]))}" \
        if forms[0].term.sums else ""  # a reduction visits its summand's grid
    call = (f"{out} = _nest({op!r}, _{name}_nest, ({''.join(f'{a}, ' for a in n.arrays)}), "
            f"({''.join(f'{s}, ' for s in n.scalars)}), {shape_code(target.tensor.dims)}, {n.arrays[0]}.dtype{work})")
    fallback = list(body.lines) + ([f"{out} = {into} + {out}"] if fold else [])
    return [call, f"if {out} is None:"] + ["    " + line for line in fallback] + store


def _forward(d: ProgramDerivation, tensors, spec, nests: list) -> tuple:
    code, blocks = Code(()), []
    for s in d.statements:
        stmt = s.statement
        target = Target(stmt.name, stmt.output, tuple(plain(i) for i in stmt.indices), tensors, True, spec)
        body = sum_code(s.op.name, s.forward, target)
        code += body
        lines = _fused(d.program.name, f"forward_{stmt.name}", statement_text(stmt), s.forward, target, body, nests)
        blocks.append({"text": statement_text(stmt), "lines": lines,
                       "forms": [{"kind": f.kind, "fields": form_summary(f)["fields"]} for f in s.forward]})
    return code, blocks


def _backward(d: ProgramDerivation, tensors, spec, nests: list) -> tuple:
    """The adjoint contributions, statement by statement backwards, each added to its tensor's
    adjoint ``d<name>`` (the outputs' start as the upstream gradients)."""
    code, blocks, started = Code(()), [], set(d.program.outputs)
    for s in reversed(d.statements):
        stmt, grads = s.statement, s.derivation.grads
        if not grads:
            continue
        lines = []
        if stmt.over:  # the max's derivative flows through its tie-splitting selector
            sel = Target(naming.selector(stmt.name), stmt.output, tuple(plain(i) for i in stmt.indices), tensors,
                         True, spec)
            selector = REDUCE_MAX.selector(s.forward[0], sel, stmt.name)
            code += selector
            lines += list(selector.lines)
        parts = []
        for name, grad in grads.items():
            part = f"_{naming.grad(name)}"
            target = Target(part, tensors[name], grad.indices, tensors, True, spec)
            body = sum_code(s.op.name, grad.forms, target)
            code += body
            adjoint = naming.grad(name)
            lines += _fused(d.program.name, f"{naming.grad(name)}_through_{stmt.name}",
                            f"∂ℒ/∂{name} through {stmt.name}", grad.forms, target, body, nests, into=adjoint,
                            add=name in started)
            started.add(name)
            parts.append({"of": name, "indices": ", ".join(map(str, grad.indices)),
                          "terms": [form_summary(f) for f in grad.forms]})
        blocks.append({"text": statement_text(stmt), "upstream": naming.grad(stmt.name), "lines": lines,
                       "parts": parts})
    return code, blocks, started


def program_context(d: ProgramDerivation) -> dict:
    """Everything ``templates/program.py.j2`` needs, from the derivation alone (NumPy: programs
    have no CuPy module yet)."""
    p = d.program
    spec = _module_backend("numpy")
    tensors = d.tensors
    nests = []
    forward_code, forward = _forward(d, tensors, spec, nests)
    backward_code, backward, started = _backward(d, tensors, spec, nests)
    interface = p.interface()
    bind, sizes = bind_statements(interface)
    for s in d.statements:
        _require_concrete(s.derivation, sizes + list(p.constants))
    code = forward_code + backward_code
    rows = [t for t in p.inputs if p.leading is not None and t.dims and t.dims[0] == p.leading]
    pieces = set(code.pieces) | {"owned", "inputs"} | ({"rows"} if rows else set()) | ({"jit"} if nests else set())
    pieces |= {f"jit_{'erf' if f == 'erfc' else f}" for n in nests for f in n["nest"].functions}  # erfc beside erf
    names, imports, runtime = inline(pieces, spec.substitutes)
    outputs = [p.tensors[name] for name in p.outputs]
    args = ", ".join(t.name for t in p.inputs)
    read = "\n".join(line for a in backward for line in a["lines"])
    read += "\n".join(line for t in outputs for line in grad_output_statements(_single(interface, t), "g"))
    kept = [s.statement.name for s in d.statements] + [str(v) for v in sizes] + [str(c) for c in p.constants]
    residuals = [t.name for t in p.inputs] + [n for n in kept if re.search(rf"\b{re.escape(n)}\b", read)]
    residuals += (["_lead"] if rows else []) + (["dim"] if p.dim else [])
    grad_outputs = [naming.GRAD_OUTPUT] if len(outputs) == 1 else [f"{naming.GRAD_OUTPUT}_{t.name}" for t in outputs]
    return {
        "op": p.name, "version": __version__, "params": json.dumps(jsonable(p.params), sort_keys=True),
        "inputs": ", ".join(f"{t.name} {shape_text(t)}" for t in p.inputs),
        "outputs": [{"name": t.name, "shape": shape_text(t), "rows": bool(rows) and t.dims[0] == p.leading, "rank": len(t.shape),
                     "grad": g, "checks": grad_output_statements(_single(interface, t), g)}
                    for t, g in zip(outputs, grad_outputs)],
        "statements": forward, "adjoints": backward, "notes": list(p.notes),
        "backend_name": spec.title, "array_module": spec.array_import.split()[1],
        "imports": import_block(list(imports) + list(code.imports) + ["import functools"], spec.array_import),
        "runtime": runtime, "residuals": residuals,
        "pieces": names, "bind": bind, "sizes": ", ".join(map(str, sizes)) + ("," if len(sizes) == 1 else ""),
        "constants": [f"{sym} = {value}" for sym, value in p.constants.items()],
        "args": args, "names": repr(tuple(t.name for t in p.inputs)), "one_input": len(p.inputs) == 1,
        "rows": {"names": repr(tuple(t.name for t in rows)), "args": ", ".join(t.name for t in rows),
                 "ranks": repr(tuple(len(t.shape) for t in rows)), "one": len(rows) == 1} if rows else None,
        "dim": p.dim,
        "grads": [{"name": t.name, "grad": naming.grad(t.name), "derived": t.name in started,
                   "rows": t in rows} for t in p.inputs],
        "grad_outputs": grad_outputs, "nests": nests,
    }


def _single(interface, t):
    """The interface with ``t`` as its output (each output's gradient is checked against its shape)."""
    return replace(interface, output=t)


def emit_program(d: ProgramDerivation) -> str:
    """The program's module source; deterministic (same derivation → same bytes).

    >>> from symgrad import ops
    >>> from symgrad.reverse import derive_program
    >>> "def vjp" in emit_program(derive_program(ops.build("softmax")))
    True
    """
    return environment().get_template("program.py.j2").render(**program_context(d))
