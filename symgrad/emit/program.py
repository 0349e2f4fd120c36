"""Assemble a standalone module from a program's derivation (:mod:`symgrad.reverse`): ``forward``,
``vjp`` (the forward, and a pullback that keeps the residuals), ``backward`` (both at once), each
statement's code and each adjoint contribution's from its recognised forms, poured into
``templates/program.py.j2``."""
from __future__ import annotations

import json
from dataclasses import replace

import sympy as sp

from .. import naming
from ..version import __version__
from ..backends import backend as find_backend
from ..forms import Target, jsonable
from ..forms.form import Code, Form, tensors_read
from ..forms.reduce_max import REDUCE_MAX
from ..forms.sum import form_summary, sum_code
from ..ir import Op, SymgradError, Term, plain
from ..printing.text import comment, shape_code, size_code, statement_text, tuple_code
from ..forward_mode import jvp_program, op_program
from ..engine.program import normalise
from ..reverse import ProgramDerivation, derive_program
from ..second_order import ProgramSecondOrder
from ..sizes import bind_statements, grad_output_statements, shape_text
from ..templating import environment
from .inline import import_block, inline
from .loops import nest as loop_nest
from .loops import function_pieces, max_nest, reduction_nest
from .concrete import require_concrete
from .fusion import Unit, assign, fuse, reads, stored
from .layers import conv_layer, norm_layer
from .native import native_context
from .kernel_fusion import fuse_kernels, step


def _alias(forms, target):
    """The tensor a contribution is, unchanged and whole (``xc = x − μ`` passes dxc to x), or None."""
    if len(forms) != 1 or forms[0].kind != "elementwise" or forms[0].term.guards:
        return None
    factor = forms[0].term.factor
    if isinstance(factor, sp.Indexed) and tuple(factor.indices) == tuple(target.out_vars) \
            and not target.tensors[factor.base.name].viewed and not target.tensor.viewed:
        return factor.base.name
    return None


def _reads(forms, target, *names) -> frozenset:
    """The names the code computing ``forms`` into ``target`` reads (besides ``names``): the tensors
    the forms read and every size in their terms and in those tensors' and the target's shapes (a
    superset of what the code prints: liveness, residuals)."""
    tensors = tensors_read(forms)
    shapes = [target.tensor] + [target.tensors[n] for n in sorted(tensors) if n in target.tensors]
    symbols = set().union(*[f.term.expr().free_symbols for f in forms],
                          *[sp.sympify(d).free_symbols for t in shapes for d in t.dims])
    return frozenset(tensors | {str(s) for s in symbols} | {n for n in (target.like, *names) if n})


def _fused(op: str, name: str, text: str, forms, target, body: Code, nests: list, into: str = None,
           add: bool = False, shared: str = None) -> Unit:
    """The step leaving ``forms``' value in ``target.out``: one numba loop nest (recorded in
    ``nests``; ``shared``: the name of the same nest, already in the module) where it applies,
    ``body`` (the forms' array code) where it does not (no numba, small or mixed-dtype arrays); with
    ``into``, the value is then stored there, or added to it with ``add`` (a pointwise nest reads and
    adds it in the same pass)."""
    out = target.out
    alias = _alias(forms, target)
    fold = add and alias is None and all(f.kind == "elementwise" for f in forms)
    more = [Form("elementwise", {}, Term(target.tensors[into][tuple(target.out_vars)]))] if fold else []
    if alias or not target.backend.blockwise or not forms:  # loop nests are numba's: NumPy modules only
        n = None
    elif len(forms) == 1 and forms[0].kind == "reduce_sum":
        n = reduction_nest(forms[0], out, target.out_vars, target.tensors, target.tensor)
    elif len(forms) == 1 and forms[0].kind == "reduce_max":
        n = max_nest(forms[0], out, target.out_vars, target.tensors, target.tensor)
    else:
        n = loop_nest(forms + more, out, target.out_vars, target.tensors, target.tensor)
    fold = fold and n is not None
    added = add and not fold
    store = [] if into in (None, out) else [assign(into, out, added)]
    read = _reads(forms, target, *([into] if add else []))
    if alias:
        unit = Unit((), out=out, into=into, add=added, alias=alias, reads=read | {alias})
        return replace(unit, lines=tuple(stored(unit, alias)))
    if n is None:  # (CuPy: a pointwise step a fused kernel may take, emit/kernel_fusion.py)
        pointwise = step(forms, target, into, added) if target.backend.fused else None
        return Unit(tuple(body.lines) + tuple(store), step=pointwise, reads=read)
    if shared is None:
        nests.append({"name": name, "text": text, "nest": n})
    name = shared or name
    work = sp.Mul(*target.tensor.dims, *[hi + 1 for _, _, hi in forms[0].term.sums])  # a reduction visits its summand's grid
    extra = f", {size_code(work)}" if forms[0].term.sums else ""
    call = (f"{out} = _nest({op!r}, _{name}_nest, {tuple_code(n.arrays)}, {tuple_code(n.scalars)}, "
            f"{shape_code(target.tensor.dims)}, {n.arrays[0]}.dtype{extra})")
    fallback = list(body.lines) + ([f"{out} = {into} + {out}"] if fold else [])
    lines = [call, f"if {out} is None:"] + ["    " + line for line in fallback] + store
    dims = target.tensor.dims
    return Unit(tuple(lines), out=out, nest=n, nest_name=name, numpy=tuple(fallback + store), text=text,
                shape=shape_code(dims), extent=dims[0],
                work=work, into=into, add=added, row=shape_code(dims[1:]) if len(dims) > 1 else None, reads=read)


def _forward(d: ProgramDerivation, label: str, tensors, spec, nests: list, groups: list, live: set, prefix: str,
             shared: dict, made: dict, called: set) -> tuple:
    """The statements' code in order (runs that go row by row fused; ``live``: the names read
    after it), and their summaries; ``prefix`` starts the names of its loops.  A statement whose
    forms ``shared`` holds (``name -> (forms, nest)``, another program's in the same module) runs
    that program's nest; ``made`` gets this program's; ``called``, the nests the code calls."""
    code, blocks, units = Code(()), [], []
    for k, s in enumerate(d.statements, start=1):
        stmt = s.statement
        if d.live and stmt.name not in d.live:  # no output depends on it
            continue
        target = Target(stmt.name, stmt.output, tuple(plain(i) for i in stmt.indices), tensors, True, spec,
                        like=d.program.inputs[0].name)  # (a statement that is 0: zeros like the first input)
        body = sum_code(s.op.name, s.forward, target)
        code += body
        forms, nest = shared.get(stmt.name, (None, None))
        unit = _fused(label, f"{prefix}forward_{stmt.name}", statement_text(stmt), s.forward, target, body,
                      nests, shared=nest if forms is s.forward else None)
        if unit.nest is not None:
            made[stmt.name] = (s.forward, nest if forms is s.forward else f"{prefix}forward_{stmt.name}")
        units.append(replace(unit, comment=comment(f"{k}. {statement_text(stmt)}")))
        if stmt.stop and spec.stop:  # stop_gradient: no gradient through it, of any order
            units.append(Unit((f"{stmt.name} = {spec.stop.format(stmt.name)}",), reads=frozenset({stmt.name})))
        blocks.append({"text": statement_text(stmt),
                       "forms": [{"kind": f.kind, "fields": form_summary(f)["fields"]} for f in s.forward]})
    if spec.fused:
        units = fuse_kernels(units, live, f"{prefix}forward")
    return code, blocks, fuse(label, units, f"{prefix}forward", groups, live, called)


def _backward(d: ProgramDerivation, label: str, tensors, spec, nests: list, groups: list, prefix: str,
              called: set) -> tuple:
    """The adjoint contributions, statement by statement backwards, each added to its tensor's
    adjoint ``d<name>`` (the outputs' start as the upstream gradients), runs that go row by row
    fused; and their summaries (``called``: the nests the code calls)."""
    code, blocks, started, units = Code(()), [], set(d.program.outputs), []
    for s in reversed(d.statements):
        stmt, grads = s.statement, s.derivation.grads
        if not grads:
            continue
        steps = []
        if stmt.over:  # the max's derivative flows through its tie-splitting selector
            sel = Target(naming.selector(stmt.name), stmt.output, tuple(plain(i) for i in stmt.indices), tensors,
                         True, spec)
            selector = REDUCE_MAX.selector(s.forward[0], sel, stmt.name)
            code += selector
            steps.append(Unit(tuple(selector.lines), reads=_reads(s.forward, sel, stmt.name)))
        parts = []
        for name, grad in grads.items():
            if not grad.forms:  # the statement's value does not depend on it (every read outside its range)
                continue
            # the first contribution is the adjoint itself; a later one a part added to it
            part = f"_{naming.grad(name)}" if name in started else naming.grad(name)
            target = Target(part, tensors[name], grad.indices, tensors, True, spec)
            body = sum_code(s.op.name, grad.forms, target)
            code += body
            adjoint = naming.grad(name)
            steps.append(_fused(label, f"{prefix}{naming.grad(name)}_through_{stmt.name}",
                                f"∂ℒ/∂{name} through {stmt.name}", grad.forms, target, body, nests, into=adjoint,
                                add=name in started))
            started.add(name)
            parts.append({"of": name, "indices": ", ".join(map(str, grad.indices)),
                          "terms": [form_summary(f) for f in grad.forms]})
        if not steps:  # every contribution is zero
            continue
        units += [replace(steps[0], comment=comment(f"through {statement_text(stmt)}"))] + steps[1:]
        blocks.append({"text": statement_text(stmt), "upstream": naming.grad(stmt.name), "parts": parts})
    live = {naming.grad(t.name) for t in d.program.inputs}  # the gradients returned
    read = reads(units)
    if spec.fused:
        units = fuse_kernels(units, live, f"{prefix}backward")
    return code, blocks, started, fuse(label, units, f"{prefix}backward", groups, live, called), read


def program_context(d: ProgramDerivation, backend: str = "numpy", prefix: str = "", shared: dict = None,
                    checked=(), shown: dict = None, upstream=(), gradients: dict = None) -> dict:
    """Everything ``templates/program.py.j2`` (``program_<target>.py.j2`` for torch and jax) needs,
    from the derivation alone, for ``backend`` (NumPy: numba loop nests, runs of row statements
    fused; CuPy: each pointwise statement and contribution one CUDA kernel, the rest CuPy's array
    functions; torch, jax: the framework's operations, differentiable again).  ``prefix`` starts the
    names of its loops (a second program in the same module), whose statements run the first's loop nests
    where ``shared`` (the first's ``"forward_nests"``) has the same statement's forms; the inputs named in
    ``checked`` have had their shapes checked by the caller (a JVP's tangents); ``shown``: the names its
    messages give the program, its inputs and its upstream gradients where the caller knows them by
    others (:func:`_second_context`); the inputs named in ``upstream`` are upstream gradients (a second
    program's), which must have the output's leading axes, not broadcast to them, and the outputs in
    ``gradients`` (name -> input) an input's gradient, of that input's shape."""
    p = d.program
    spec = find_backend(backend)
    tensors = d.tensors
    say = (shown or {}).get
    label = say(p.name, p.name)  # (what its messages call the program)
    nests, groups, called = [], [], set()
    backward_code, backward, started, backward_lines, backward_reads = _backward(d, label, tensors, spec, nests,
                                                                                 groups, prefix, called)
    made = {}
    forward_code, forward, forward_lines = _forward(d, label, tensors, spec, nests, groups,
                                                    backward_reads | set(p.outputs), prefix, shared or {}, made, called)
    # a nest only a fused group's members had is never called: the group falls back to NumPy
    nests = [n for n in nests if n["name"] in called]
    made = {name: (forms, nest) for name, (forms, nest) in made.items() if nest in called}
    interface = p.interface()
    rows = [t for t in p.inputs if p.leading is not None and t.dims and t.dims[0] == p.leading]
    how = f"as rows (leading axes flattened into {p.leading}{', dim last' if p.dim else ''})"
    bind, sizes = bind_statements(interface, checked=checked, shown=shown, ranked={t.name: how for t in rows})
    for s in d.statements:
        require_concrete(s.derivation, sizes + list(p.constants))
    code = forward_code + backward_code
    pieces = set(code.pieces) | ({"inputs"} if spec.framework else {"owned", "inputs"}) | \
        ({"fused"} if spec.fused else set()) | \
        ({"saved"} if spec.name == "torch" else set()) | \
        ({"rows"} if rows else set()) | ({"upstream"} if rows and not spec.framework else set()) | \
        ({"numba/nests"} if nests else set()) | ({"numba/fused_rows"} if groups else set())
    pieces |= function_pieces([f for n in nests for f in n["nest"].functions] + [f for g in groups for f in g["functions"]])
    pieces |= {q for n in nests for q in n["nest"].pieces} | {q for g in groups for q in g["pieces"]}
    names, imports, runtime = _inlined(pieces, code.imports, spec)
    outputs = [p.tensors[name] for name in p.outputs]
    args = ", ".join(t.name for t in p.inputs)
    # what the pullback reads: the backward's code, and the sizes of the outputs its checks compare with
    read = backward_reads | {str(s) for t in outputs for d in t.dims for s in sp.sympify(d).free_symbols}
    kept = [s.statement.name for s in d.statements] + [str(v) for v in sizes] + [str(c) for c in p.constants]
    residuals = [t.name for t in p.inputs] + [n for n in kept if n in read]
    residuals += (["_lead"] if rows else []) + (["dim"] if p.dim else []) + (["_kinds"] if spec.fused else [])
    grad_outputs = naming.grad_outputs(p.outputs)
    context = {
        "op": label, "version": __version__, "params": json.dumps(jsonable(p.params), sort_keys=True),
        "inputs": ", ".join(f"{t.name} {shape_text(t)}" for t in p.inputs),
        "outputs": [{"name": t.name, "shape": shape_text(t), "rows": bool(rows) and t.dims[0] == p.leading, "rank": len(t.shape),
                     "grad": g, "shown": say(g, g), "checks": grad_output_statements(_single(interface, t), g, shown),
                     "tail": shape_code(t.dims[1:]), "of": (gradients or {}).get(t.name)}
                    for t, g in zip(outputs, grad_outputs)],
        "statements": forward, "adjoints": backward, "notes": list(p.notes),
        "backend_name": spec.title, "array_module": spec.array_import.split()[1], "xp": spec.xp,
        "imports": imports, "runtime": runtime, "residuals": residuals,
        "piece_set": pieces, "code_imports": code.imports,
        "pieces": names, "bind": bind, "sizes": ", ".join(map(str, sizes)) + ("," if len(sizes) == 1 else ""),
        "constants": [f"{sym} = {value.replace('{xp}', spec.xp)}" for sym, value in p.constants.items()],
        "args": args, "names": repr(tuple(say(t.name, t.name) for t in p.inputs)), "one_input": len(p.inputs) == 1,
        "rows": {"names": repr(tuple(say(t.name, t.name) for t in rows)), "args": ", ".join(t.name for t in rows),
                 "ranks": repr(tuple(len(t.shape) for t in rows)), "one": len(rows) == 1,
                 "exact": repr(tuple(say(t.name, t.name) for t in rows if t.name in upstream)) if upstream else None}
        if rows else None,
        "dim": p.dim,
        "grads": [{"name": t.name, "shown": say(t.name, t.name), "grad": naming.grad(t.name), "derived": t.name in started,
                   "rows": t in rows, "kind": f"_kinds[{k}]" if spec.fused else f"{t.name}.dtype"}
                  for k, t in enumerate(p.inputs)],
        "grad_outputs": grad_outputs, "nests": nests, "groups": groups, "one_dtype": spec.fused,
        "first": p.inputs[0].name,
        "forward_lines": forward_lines, "backward_lines": backward_lines,
        "kept": [s.statement.name for s in d.statements if s.statement.name in residuals],
        "class_name": f"{naming.camel(p.name)}Function", "function": p.name, "second": None, "forward_nests": made,
    }
    context["this"] = {k: context[k] for k in ("args", "bind", "sizes", "constants", "forward_lines", "outputs", "kept",
                                               "grad_outputs", "backward_lines", "grads")}
    return context


def jvp_context(source, backend: str, primal: bool = False, known: ProgramDerivation = None,
                shared: dict = None, module_sizes: tuple = None) -> dict:
    """The JVP of ``source`` (an op or a program; :mod:`symgrad.forward_mode`) derived and printed for
    ``backend``: a framework's functions (``this``, rendered under ``_jvp`` names: ``_jvp_forward(*inputs,
    *tangents)[0]`` are the outputs' tangents), or a standalone module's (``code``: ``_jvp_forward``
    returns the outputs, with ``primal``, and their tangents), with the runtime pieces they call.  The
    program's own statements, which the JVP program begins with, are taken from ``known`` (the program's
    derivation), not derived again, and run the program's loop nests (``shared``: its ``forward_nests``);
    a standalone module's JVP reads its sizes with the module's own ``_sizes`` where that binds the same
    ones (``module_sizes``: those sizes, and the primal inputs it takes)."""
    jvp = jvp_program(source, primal=primal)
    tangents = [t.name for t in jvp.inputs[len(jvp.inputs) // 2:]]  # each of its primal's shape (tangents.py)
    shown = {jvp.name: f"{source.name} jvp", **{t: f"{p.name}'s tangent" for t, p in zip(tangents, jvp.inputs)}}
    c = program_context(derive_program(jvp, wrt=(), known=known), backend, prefix="jvp_", shared=shared,
                        checked=tangents, shown=shown)
    if module_sizes and module_sizes[0] == c["sizes"]:  # (the tangents' shapes are each their primal's)
        c["sizes_call"] = f"_sizes({module_sizes[1]})"
    code = None if find_backend(backend).framework else environment().get_template("program_functions.py.j2").render(
        **c, private="_jvp_", public="_jvp_", forward_only=True)
    return {"this": c["this"], "piece_set": c["piece_set"], "code_imports": c["code_imports"], "code": code}


def forward_mode_parts(source, backend: str, context: dict, results: list, kinds: set,
                       elementwise: bool = False, jvp: bool = True, known: ProgramDerivation = None) -> dict:
    """What a module adds for forward mode: ``jvp`` (the derived JVP: a framework's functions, a standalone
    module's code; or ``jvp_refused``, the reason it is not derived) and the runtime they call, with
    ``context``'s; for torch also ``native``, the native torch op of the ``results`` (the outputs, then
    the residuals; :mod:`symgrad.emit.native`) over which its autograd function runs.  ``jvp=False``
    (a standalone module only): no forward mode, the runtime alone."""
    program = normalise(op_program(source)) if isinstance(source, Op) else source  # (a derivation's: normalised)
    spec = find_backend(backend)
    derived, refused = {"piece_set": set(), "code_imports": []}, None
    if jvp or spec.framework:
        try:
            derived = jvp_context(program, backend, primal=not spec.framework, known=known,
                                  shared=context.get("forward_nests"),
                                  module_sizes=(context["sizes"], context["args"]) if "sizes" in context else None)
        except SymgradError as exc:
            refused = str(exc)
    torch = backend == "torch"
    pieces = context["piece_set"] | derived["piece_set"] | ({"native"} if torch else set()) | \
        ({"tangents"} if derived.get("code") else set())
    names, imports, runtime = _inlined(pieces, sorted(set(context["code_imports"]) | set(derived["code_imports"])),
                                       spec, program=not isinstance(source, Op))
    return {"pieces": names, "imports": imports, "runtime": runtime, "jvp_refused": refused,
            "jvp": derived.get("this") if spec.framework else derived.get("code"),
            "native": native_context(program, results, kinds, elementwise) if torch else None}


def _inlined(pieces, code_imports, spec, program: bool = True) -> tuple:
    """(names, import lines, source) of the runtime ``pieces``, with the forms' own ``code_imports``
    (and functools for a ``program``'s standalone module, whose vjp returns a partial)."""
    names, imports, runtime = inline(pieces, spec.name, spec.xp)
    imports = import_block(list(imports) + list(code_imports) + (["import jax"] if spec.name == "jax" else []) +
                           ([] if spec.framework or not program else ["import functools"]), spec.array_import)
    return names, imports, runtime


def _second_context(second: ProgramSecondOrder, context: dict, backend: str) -> dict:
    """What ``program.py.j2`` adds for ``double_backward``: the backward program's functions under
    ``_second_`` names (its code, as any program's) and how double_backward calls them; for a
    framework target, those functions as the framework's (``this``), which the backward's own
    autograd function (torch) or custom_vjp (jax) calls as its backward."""
    spec = find_backend(backend)
    xp = spec.xp
    p = second.first.program
    if second.second is None:  # no input has a gradient: every second-order gradient is 0
        if spec.framework:
            return {}
        args = context["args"]
        zeros = [f"{xp}.zeros({xp}.shape({g}), {xp}.result_type({args}))" for g in context["grad_outputs"]] + \
            [f"{xp}.zeros({t.name}.shape, {t.name}.dtype)" for t in p.inputs]
        return {"second": {"zero": True, "gg_args": ", ".join(naming.grad_grad(t.name) for t in p.inputs),
                           "results": ", ".join(zeros) + ("," if len(zeros) == 1 else "")}}
    bp = second.backward
    derived = {t.name for t in p.inputs if t.name in second.first.adjoints}  # (bp's outputs, in input order)
    gg = [{"name": naming.grad_grad(t.name), "input": t.name, "derived": t.name in derived} for t in p.inputs]
    passed = [g["name"] for g in gg if g["derived"]]
    inner = program_context(second.second, backend, prefix="second_", shared=context["forward_nests"],
                            shown=_second_names(second, context["grad_outputs"], passed),
                            upstream=[u.name for u in bp.inputs[len(p.inputs):]],
                            gradients=dict(zip(bp.outputs, [g["input"] for g in gg if g["derived"]])))
    code = None if spec.framework else environment().get_template("program_functions.py.j2").render(
        **inner, private="_second_", public="_second_", wrappers=False)
    names, imports, runtime = _inlined(context["piece_set"] | inner["piece_set"],
                                       sorted(set(context["code_imports"]) | set(inner["code_imports"])), spec)
    upstreams = [f"{xp}.reshape({o['grad']}, (1,))" if o["rank"] == 0 else o["grad"] for o in context["outputs"]]
    results = [f"{xp}.reshape(_grads[{len(p.inputs) + k}], ())" if o["rank"] == 0 else f"_grads[{len(p.inputs) + k}]"
               for k, o in enumerate(context["outputs"])] + [f"_grads[{k}]" for k in range(len(p.inputs))]
    added = [statement_text(s) for s in bp.statements[len(p.statements):]]
    said = [(t.name, t.name) for t in p.inputs] + [(u.name, f"{g} ({u.name})") for u, g in
                                                    zip(bp.inputs[len(p.inputs):], context["grad_outputs"])]
    terms = [{"of": text, "kinds": sorted({k for _, g in second.second.adjoints.get(name, []) for k in g.kinds})}
             for name, text in said]
    return {"pieces": names, "imports": imports, "runtime": runtime,
            "piece_set": context["piece_set"] | inner["piece_set"],
            "code_imports": sorted(set(context["code_imports"]) | set(inner["code_imports"])), "second": {
        "code": code, "gg": gg, "gg_args": ", ".join(g["name"] for g in gg),
        "gg_call": ", ".join(passed),
        "gg_derived": ", ".join(f"gg[{k}]" for k, g in enumerate(gg) if g["derived"]),
        "upstreams": ", ".join(upstreams), "results": ", ".join(results) + ("," if len(results) == 1 else ""),
        "upstream_results": [f"{xp}.reshape(_grads[{len(p.inputs) + k}], ())" if o["rank"] == 0
                             else f"_grads[{len(p.inputs) + k}]" for k, o in enumerate(context["outputs"])],
        "statements": added, "terms": terms, "count": len(bp.statements), "this": inner["this"]}}


def _second_names(second: ProgramSecondOrder, grad_outputs: list, passed: list) -> dict:
    """The names double_backward's caller knows the backward program's by, for its messages: the
    program ``softmax double_backward``, each upstream gradient ``ybar`` as the module's ``grad_output``,
    and the upstream gradients of that program's own pullback (``grad_output``, ``grad_output_xbar``),
    one per derived gradient, as double_backward's argument for it (``passed``: ``ggx``, …)."""
    p, bp = second.first.program, second.backward
    shown = {bp.name: f"{p.name} double_backward"}
    shown.update((u.name, g) for u, g in zip(bp.inputs[len(p.inputs):], grad_outputs))
    shown.update(zip(naming.grad_outputs(bp.outputs), passed))
    return shown


def _single(interface, t):
    """The interface with ``t`` as its output (each output's gradient is checked against its shape)."""
    return replace(interface, output=t)


def emit_program(d: ProgramDerivation, backend: str = "numpy", second: ProgramSecondOrder = None,
                 jvp: bool = True, second_refused: str = None) -> str:
    """The program's module source for ``backend`` (numpy, cupy, or a target: torch, a native op and
    an autograd function over it; jax, a jax.custom_jvp and a custom_vjp); deterministic (same
    derivation → same bytes).
    With ``second`` (:func:`symgrad.second_order.derive_program_second_order` of the same program), a
    NumPy or CuPy module has ``double_backward`` too (with ``second_refused``, why second order could not be
    derived, one that raises NotImplementedError saying so); ``jvp`` (every NumPy and CuPy module unless
    False; the targets always): forward mode, derived (:mod:`symgrad.forward_mode`).

    >>> from symgrad import ops
    >>> from symgrad.reverse import derive_program
    >>> "def vjp" in emit_program(derive_program(ops.build("softmax")))
    True
    """
    template = f"program_{backend}.py.j2" if backend in ("torch", "jax") else "program.py.j2"
    context = dict(program_context(d, backend), second_refused=None)
    if second is not None:
        context.update(_second_context(second, context, backend))
    elif second_refused and not find_backend(backend).framework:
        context.update(second_refused=second_refused, gg_args=", ".join(naming.grad_grad(t.name) for t in d.program.inputs))
    if backend == "torch":
        context["layer"] = conv_layer(d.program) or norm_layer(d.program)
        context["piece_set"] = context["piece_set"] | ({"layer"} if context["layer"] else set())
    kinds = {f.kind for s in d.statements for f in s.forward}
    context.update(forward_mode_parts(d.program, backend, context, list(d.program.outputs) + context["kept"], kinds,
                                      jvp=jvp, known=d))
    return environment().get_template(template).render(**context)
