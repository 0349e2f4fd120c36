"""Assemble a standalone module from a derivation: the forms' code (each kind's generator), the
shape checks (:mod:`symgrad.sizes`), the runtime pieces that code calls (inlined), all poured into
the per-op skeleton ``templates/module.py.j2``."""
from __future__ import annotations

import json

import sympy as sp

from .. import naming
from ..version import __version__
from ..backends import backend as find_backend
from ..derive import Derivation
from ..forms import Target, jsonable, kind
from ..forms.sum import form_summary, sum_code
from ..ir import SymgradError
from ..printing.text import terms_text
from ..second_order import SecondOrder, derive_second_order
from ..sizes import bind_statements, grad_output_statements, shape_text
from ..templating import environment
from .concrete import require_concrete
from .program import forward_mode_parts
from .loops import function_pieces
from .loops import loop as make_loop
from .second import contributions, second_context


def header_context(d: Derivation, spec, blockwise: bool = False, jit: dict = None, usage: str = None) -> dict:
    """What the header docstring says (templates/header.j2): the rule, each form and how ``spec``
    computes it; ``jit`` the numba loops (emit.loops.Loop) by gradient (None for the forward) where
    the forms run as one; ``usage`` a paragraph on how to call the module."""
    op, jit = d.op, jit or {}
    said = lambda f, name: kind(f.kind).formulation(f, spec, blockwise=blockwise, jit=jit.get(name))
    return {
        "op": op.name, "version": __version__,
        "params": json.dumps(jsonable(op.params), sort_keys=True),
        "inputs": ", ".join(f"{t.name} {shape_text(t)}" for t in op.inputs),
        "output": f"{op.output.name} {shape_text(op.output)}", "output_name": op.output.name,
        "forward_rule": f"{op.output.name}[{', '.join(str(i.label) for i in op.indices)}] = "
                        f"{terms_text([f.term for f in d.forward])}",
        "forward_forms": [{"kind": f.kind, "formulation": said(f, None)} for f in d.forward],
        "gradients": [{"name": t.name, "indices": ", ".join(map(str, d.grads[t.name].indices)), "terms": [
            {**form_summary(f), "formulation": said(f, t.name)} for f in d.grads[t.name].forms]} for t in op.inputs],
        "backend_name": spec.title, "array_module": spec.array_import.split()[1], "xp": spec.xp,
        "grad_output": naming.GRAD_OUTPUT, "usage": usage, "second": [],
    }


def code_context(d: Derivation, spec) -> dict:
    """The forms' code for ``spec``: the forward's statements (leaving ``y``) and, per input, the
    gradient's (leaving its result), with the runtime pieces and imports they need."""
    op = d.op
    out_vars = tuple(sp.Symbol(i.label.name, integer=True) for i in op.indices)
    shaped = not op.elementwise
    code = sum_code(op.name, d.forward, Target("y", op.output, out_vars, d.tensors, shaped, spec))
    forward, grads = list(code.lines), {}
    for t in op.inputs:
        g = d.grads[t.name]
        body = sum_code(op.name, g.forms, Target(naming.grad(t.name), t, g.indices, d.tensors, shaped, spec))
        code += body
        grads[t.name] = list(body.lines)
    bind, sizes = ([], []) if op.elementwise else bind_statements(op)
    if not op.elementwise:
        require_concrete(d, sizes)
    return {"forward": forward, "grads": grads, "pieces": set(code.pieces), "imports": list(code.imports),
            "bind": bind, "sizes": ", ".join(map(str, sizes)) + ("," if len(sizes) == 1 else ""),
            "args": ", ".join(t.name for t in op.inputs),
            "grad_output_checks": grad_output_statements(op, naming.GRAD_OUTPUT)}


def module_context(d: Derivation, backend: str = "numpy", second: SecondOrder = None, jvp: bool = True) -> dict:
    """Everything the skeleton needs, from the derivation alone (and from ``second``, the
    gradients' own derivations, the double backward; none without it; ``jvp``: forward mode)."""
    op = d.op
    spec = _module_backend(backend)
    blockwise = op.elementwise and spec.blockwise  # CuPy fuses elementwise work into one kernel instead
    code = code_context(d, spec)
    blocks, second_code = second_context(second, spec, blockwise) if second else ([], None)
    if second_code:
        code.update(pieces=code["pieces"] | second_code.pieces, imports=code["imports"] + sorted(second_code.imports))
    args = code["args"]
    forward = code["forward"] + [f"return _owned(y.astype(xp.result_type({args}), copy=False))"]
    forward_loop = make_loop(d.forward, "y", [t.name for t in op.inputs]) if blockwise else None
    backward, grads = [], []
    for t in op.inputs:
        g = d.grads[t.name]
        result = naming.grad(t.name)
        loop = make_loop(g.forms, result, [naming.UPSTREAM] + [u.name for u in op.inputs]) if blockwise else None
        backward.append({"name": t.name, "function": naming.grad_function(t.name), "loop": loop,
                         "body": code["grads"][t.name] + [f"return _owned({result}.astype({t.name}.dtype, copy=False))"]})
        grads.append(f"{naming.grad_function(t.name)}({naming.GRAD_OUTPUT}, {args})")
    unbatched = _unbatched(op)
    for b, t in zip(backward, op.inputs):
        b["batched"] = bool(unbatched) and t.name in unbatched["inputs"]
    loops = [lp for lp in [forward_loop] + [b["loop"] for b in backward] if lp] + \
        [r["loop"] for b in blocks if b["looped"] for r in b["results"]]
    pieces = code["pieces"] | {"owned", "inputs"} | ({"blockwise"} if blockwise else set()) | ({"numba/elementwise"} if loops else set())
    pieces |= function_pieces(f for lp in loops for f in lp.functions)
    pieces |= {"double_double"} if any(lp.wide for lp in loops) else set()
    forward_mode = forward_mode_parts(op, backend, {"piece_set": pieces, "code_imports": code["imports"],
                                                    "sizes": code["sizes"], "args": args},
                                      [op.output.name], {f.kind for f in d.forward}, op.elementwise, jvp)
    names, imports, runtime = forward_mode["pieces"], forward_mode["imports"], forward_mode["runtime"]
    jit = {None: forward_loop, **{b["name"]: b["loop"] for b in backward}}
    return {
        **header_context(d, spec, blockwise, jit), **code,
        "pieces": names,
        "imports": imports, "jvp": forward_mode["jvp"], "jvp_refused": forward_mode["jvp_refused"],
        "jvp_flat": op.elementwise,
        "runtime": runtime, "blockwise": blockwise, "forward_loop": forward_loop,
        "forward": forward, "backward": backward,
        "grads": ", ".join(grads) + ("," if len(grads) == 1 else ""),
        "upstream": naming.UPSTREAM, "unbatched": unbatched,
        "names": repr(tuple(t.name for t in op.inputs)), "one_input": len(op.inputs) == 1,
        "grad_names": repr((naming.GRAD_OUTPUT,) + tuple(t.name for t in op.inputs)),
        "second": blocks, "gg_args": ", ".join(naming.grad_grad(t.name) for t in op.inputs),
        "second_sums": [{"name": naming.GRAD_OUTPUT if name == naming.UPSTREAM else name, "parts": parts} for name, parts
                        in contributions(blocks, [naming.UPSTREAM] + [t.name for t in op.inputs]).items()],
    }


def _module_backend(backend: str):
    """The backend of a standalone module (numpy, cupy); a framework target's name is refused."""
    spec = find_backend(backend)
    if spec.framework:
        raise SymgradError(f"emit: {backend} is a target; emit_target(derivation, {backend!r}) writes its module")
    return spec


def _unbatched(op) -> dict:
    """How the module takes inputs without the op's optional batch axis (as PyTorch does): the
    test, and the arguments of the same call with a batch of one; None when the op has no batch."""
    batched = [t.name for t in op.inputs if op.batch is not None and t.dims and t.dims[0] == op.batch]
    if not batched or op.output.dims[0] != op.batch:
        return None
    first = op.input(batched[0])
    args = lambda: [f"{t.name}[None]" if t.name in batched else t.name for t in op.inputs]

    def rank(name, t, label):  # an unbatched call's upstream gradient (or gg) has no batch axis either
        want = "(" + ", ".join(str(d) for d in t.shape[1:]) + ("," if len(t.shape) == 2 else "") + ")"
        return [f"if {name}.ndim != {len(t.shape) - 1}:",
                f'    raise ValueError(f"{label}: {name} must have shape {want} for an unbatched {first.name}, '
                f'got {{{name}.shape}}")']
    gg = [(naming.grad_grad(t.name), t) for t in op.inputs if t.name in batched]
    return {"test": f"{first.name}.ndim == {len(first.split) - 1}", "inputs": batched,
            "grad_check": rank(naming.GRAD_OUTPUT, op.output, op.name),
            "second_check": rank(naming.GRAD_OUTPUT, op.output, f"{op.name} double_backward") +
            [line for name, t in gg for line in [f"if {name} is not None:"] +
             ["    " + r for r in rank(name, t, f"{op.name} double_backward")]],
            "args": ", ".join(args()), "grad_args": ", ".join([f"{naming.GRAD_OUTPUT}[None]"] + args()),
            "shape": f"({', '.join(str(d) for d in first.shape[1:])})",
            "gg_args": ", ".join(f"None if {gg} is None else {gg}[None]" if t.name in batched else gg
                                 for t, gg in ((t, naming.grad_grad(t.name)) for t in op.inputs)),
            "tangents": ", ".join(naming.tangent(t.name) for t in op.inputs),
            "tangent_args": ", ".join(naming.tangent(t.name) + ("[None]" if t.name in batched else "") for t in op.inputs),
            "second_results": ", ".join(["result[0][0]"] + [f"result[{k + 1}]" + ("[0]" if t.name in batched else "")
                                                            for k, t in enumerate(op.inputs)])}


def emit(d: Derivation, backend: str = "numpy", order: int = 2, jvp: bool = True) -> str:
    """The module's source text; deterministic (same derivation → same bytes).  ``backend``
    ``numpy`` or ``cupy`` (a framework target is :func:`symgrad.emit.framework.emit_target`'s, whose
    double backward is the framework's own autograd through the backward).  ``order=2`` gives the
    module a ``double_backward`` derived by closure (:mod:`symgrad.second_order`); ``order=1``
    leaves it out.  ``jvp``: the module has ``jvp``, forward mode derived (:mod:`symgrad.forward_mode`).

    >>> from symgrad import ops, derive
    >>> src = emit(derive(ops.gelu()))
    >>> "def backward" in src
    True
    """
    _module_backend(backend)
    if order not in (1, 2):
        raise SymgradError(f"{d.op.name}: order must be 1 or 2, got {order!r}")
    second = derive_second_order(d) if order == 2 else None
    return environment().get_template("module.py.j2").render(**module_context(d, backend, second, jvp))


def load(source: str, name: str = "symgrad_emitted"):
    """Execute emitted source as a module object, registered in ``sys.modules`` under ``name`` as an
    imported module is (torch.compile's inductor imports the module its functions name; a module
    loaded again under the same name replaces the entry).  A module with compiled loops runs from a
    file in the cache directory (:func:`cache_directory`, named by its source's hash), so that the
    loops compiled once are loaded from disk by later processes; where that directory cannot be
    written, from the string."""
    import importlib.util
    import sys
    import types
    code = compile(source, f"<{name}>", "exec")
    path = _cached_file(source, name) if "_on_disk" in code.co_names else None  # (it defines the disk cache)
    if path is None:
        module = types.ModuleType(name)
        sys.modules[name] = module
        exec(code, module.__dict__)
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def cache_directory():
    """Where emitted modules and their compiled loops are cached: ``SYMGRAD_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/symgrad``, else ``~/.cache/symgrad``."""
    import os
    from pathlib import Path
    given = os.environ.get("SYMGRAD_CACHE_DIR")
    if given:
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "symgrad"


def _cached_file(source: str, name: str):
    """The module file holding ``source`` in the cache directory (written once: its time stamp keys
    the compiled loops' cache), or None where it cannot be written."""
    import hashlib
    import os
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    stem = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name)
    path = cache_directory() / "modules" / f"{stem}_{digest}.py"
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == source:  # (what runs is what was emitted, byte for byte)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
        partial.write_text(source, encoding="utf-8")
        os.replace(partial, path)  # (atomic: another process writing the same module writes the same text)
    except OSError:
        return None
    return path
