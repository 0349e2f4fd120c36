"""Emit a standalone backward module: templates hold the file, codegen/printers the statements."""
from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jinja2
import sympy as sp

from . import __version__, naming
from .codegen import element_code, form_code, helpers_for, shape_code
from .derive import Derivation
from .forms import jsonable
from .formulation import formulation
from .ir import SymgradError
from .printing import ELEMENT_FUNCTIONS, FLOAT32_APPROXIMATED, CuPyArrayPrinter, ModuleArrayPrinter, size_code, term_text, terms_text

#: backend -> what differs between the emitted files: the array module, where erf lives, what the GEMMs need
BACKENDS = {
    "numpy": {"name": "NumPy", "array_module": "numpy", "import": "import numpy as xp",
              "printer": ModuleArrayPrinter, "special_import": "import scipy.special", "chunk_bytes": "1 << 20", "blockwise": True,
              "threads": True, "gemm_import": None},
    "cupy": {"name": "CuPy", "array_module": "cupy", "import": "import cupy as xp",
             "printer": CuPyArrayPrinter, "special_import": "import cupyx.scipy.special", "chunk_bytes": "None", "blockwise": False,
             "threads": False, "gemm_import": "import numpy  # host scalars for cuBLAS"},
}


def template_dir() -> Path:
    """templates/ of a source checkout, or the copy packaged inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    return Path(str(resources.files("symgrad") / "templates"))


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir())),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True)


def _shape_text(t) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def bind_code(op) -> tuple:
    """Statements that read every size from the inputs and check that the shapes agree."""
    lines, bound = [], []
    for t in op.inputs:
        want = _shape_text(t)
        lines.append(f"if {t.name}.ndim != {len(t.split)}:")
        lines.append(f'    raise ValueError(f"{op.name}: input {t.name} must have shape {want}, got {{{t.name}.shape}}")')
        for axis, run in enumerate([t.dims[a] for a in r] for r in t.runs):
            unknown = [d for d in run if d.is_Symbol and d not in bound]
            known = sp.Mul(*[d for d in run if d not in unknown])
            if len(unknown) > 1:
                raise SymgradError(f"{op.name}: emitting code needs concrete values for {', '.join(map(str, unknown))}")
            if unknown:
                u = unknown[0]
                if known == 1:
                    lines.append(f"{u} = {t.name}.shape[{axis}]")
                else:
                    lines.append(f"{u}, _rest = divmod({t.name}.shape[{axis}], {size_code(known)})")
                    lines.append("if _rest:")
                    lines.append(f'    raise ValueError(f"{op.name}: axis {axis} of input {t.name} must be a multiple '
                                 f'of {known} (shape {want}), got {{{t.name}.shape}}")')
                lines.append(f"if {u} < 1:")
                lines.append(f'    raise ValueError(f"{op.name}: input {t.name} must have shape {want} with {u} >= 1, '
                             f'got {{{t.name}.shape}}")')
                bound.append(u)
            else:
                lines.append(f"if {t.name}.shape[{axis}] != {size_code(sp.Mul(*run))}:")
                lines.append(f'    raise ValueError(f"{op.name}: input {t.name} must have shape {want}, '
                             f'got {{{t.name}.shape}} (axis {axis} should be {{{size_code(sp.Mul(*run))}}})")')
    for sym, expr in op.output_sizes.items():
        lines.append(f"{sym} = {size_code(expr)}")
        bound.append(sym)
    for cond, message in op.requires:
        text = re.sub(r"\{([^{}]*)\}", lambda m: "{" + size_code(sp.sympify(m.group(1), locals=_locals(op))) + "}",
                      message)
        lines.append(f"if not ({size_code(cond.lhs)} >= {size_code(cond.rhs)}):")
        lines.append(f"    raise ValueError(f{text!r})")
    for sym in op.output_sizes:
        lines.append(f"if {sym} < 1:")
        lines.append(f'    raise ValueError(f"{op.name}: output size {sym} = {{{sym}}} < 1 for these shapes")')
    return lines, bound


def _locals(op):
    syms = set()
    for t in (*op.inputs, op.output):
        for d in t.dims:
            syms |= d.free_symbols
    for e in op.output_sizes.values():
        syms |= e.free_symbols
    for c, _ in op.requires:
        syms |= c.free_symbols
    return {s.name: s for s in syms}


def _views(tensors, names) -> list:
    out = []
    for name in names:
        t = tensors[name]
        if len(t.split) != len(t.dims):
            out.append(f"{naming.view(name)} = {name}.reshape{shape_code(t.dims)}")
    return out


# forms whose code returns an array made for the term (never a view of an input): sums may go into it
FRESH_RESULT = ("conv_general_dilated",)


def _sum_terms(forms, target, tensors, out_vars, op, result: str, printer) -> list:
    lines, parts = [], []
    used = sorted({a.base.name for f in forms for a in f.term.accesses} | {f.fields.get(k) for f in forms
                  for k in ("lhs", "rhs") if f.fields.get(k)})
    lines += _views(tensors, used)
    for k, form in enumerate(forms):
        part = naming.term(result, k)
        lines.append(f"# {form.kind}: {term_text(form.term)}")
        try:
            lines += form_code(form, part, target, tensors, out_vars, op, printer)
        except SymgradError:  # already names the op and the fault
            raise
        except (NotImplementedError, ValueError) as exc:  # a printer without code for a function
            raise SymgradError(f"{op.name}: no array code for {term_text(form.term)}: "
                               f"{str(exc).splitlines()[0]}") from None
        parts.append(part)
    fresh = [p for p, f in zip(parts, forms) if f.kind in FRESH_RESULT]
    if fresh and len(parts) > 1:  # add into the convolution's own result, not a new temporary
        value = f"_add_terms({', '.join(fresh[:1] + [p for p in parts if p != fresh[0]])})"
    else:
        value = " + ".join(parts) if parts else "0"
    if op.elementwise:
        lines.append(f"{result} = {value}")
    else:
        lines.append(f"{result} = xp.broadcast_to({value}, {shape_code(target.dims)}).reshape{shape_code(target.shape)}")
    return lines


def module_context(d: Derivation, backend: str = "numpy") -> dict:
    op = d.op
    spec = BACKENDS[backend]
    printer = spec["printer"]({"fully_qualified_modules": True})
    tensors = d.tensors
    args = ", ".join(t.name for t in op.inputs)
    out_vars = tuple(sp.Symbol(i.label.name, integer=True) for i in op.indices)
    blockwise = op.elementwise and spec["blockwise"]  # CuPy fuses elementwise work into one kernel instead
    forward = _sum_terms(d.forward, op.output, tensors, out_vars, op, "y", printer)
    forward.append(f"return y.astype(xp.result_type({args}), copy=False)")
    forward_loop = _loop(d.forward, "y", [t.name for t in op.inputs]) if blockwise else None
    backward, grads = [], []
    for t in op.inputs:
        g = d.grads[t.name]
        body = _sum_terms(g.forms, t, tensors, g.indices, op, naming.grad(t.name), printer)
        body.append(f"return {naming.grad(t.name)}.astype({t.name}.dtype, copy=False)")
        loop = _loop(g.forms, naming.grad(t.name), [naming.UPSTREAM] + [u.name for u in op.inputs]) if blockwise else None
        backward.append({"name": t.name, "function": naming.grad_function(t.name), "body": body, "loop": loop})
        grads.append(f"{naming.grad_function(t.name)}({naming.GRAD_OUTPUT}, {args})")
    loops = [forward_loop] + [b["loop"] for b in backward]
    jit = any(loops)
    if op.elementwise:
        bind, sizes = [], []
        check = [f"if {naming.GRAD_OUTPUT}.shape != {op.inputs[0].name}.shape:",
                 f'    raise ValueError(f"{op.name}: grad_output must have the shape of {op.inputs[0].name} '
                 f'{{{op.inputs[0].name}.shape}}, got {{{naming.GRAD_OUTPUT}.shape}}")']
    else:
        bind, sizes = bind_code(op)
        _require_concrete(d, sizes)
        want = shape_code(op.output.shape)
        check = [f"if {naming.GRAD_OUTPUT}.shape != {want}:",
                 f'    raise ValueError(f"{op.name}: grad_output must have shape {_shape_text(op.output)} = '
                 f'{{{want}}}, got {{{naming.GRAD_OUTPUT}.shape}}")']
    all_forms = d.forward + [f for g in d.grads.values() for f in g.forms]
    helpers = helpers_for(all_forms)
    code = "\n".join(forward + [line for b in backward for line in b["body"]])
    special = [f for f in FLOAT32_APPROXIMATED if f"_{f}(" in code]  # the helpers/special functions used
    element = "\n".join(line for loop in loops if loop for line in loop["lines"])
    scalar = [f for f in ELEMENT_FUNCTIONS if f"_{f}(" in element]  # the loops' float32 functions (helpers/jit)
    return {
        "op": op.name, "version": __version__,
        "params": json.dumps(jsonable(_public_params(op)), sort_keys=True),
        "forward_rule": f"{op.output.name}[{', '.join(str(i.label) for i in op.indices)}] = {terms_text(_fwd_terms(d))}",
        "gradients": [{"name": t.name, "indices": ", ".join(map(str, d.grads[t.name].indices)),
                       "terms": [{"text": term_text(f.term), "kind": f.kind,
                                  "fields": json.dumps(jsonable(f.fields), sort_keys=True),
                                  "formulation": formulation(f.kind, f.fields, backend, blockwise, b["loop"] is not None)}
                                 for f in d.grads[t.name].forms]}
                      for t, b in zip(op.inputs, backward)],
        "forward_forms": [f.kind for f in d.forward],
        "forward_formulations": [f"{f.kind}: {formulation(f.kind, f.fields, backend, blockwise, forward_loop is not None)}"
                                  for f in d.forward],
        "helpers": helpers + (["fused_elementwise"] if "fused(" in code else [])
        + (["add_terms"] if "_add_terms(" in code else []) + (["blockwise"] if blockwise else [])
        + (["special"] if special else []) + (["jit"] if jit else []), "special": special, "scalar": scalar,
        "blockwise": blockwise, "forward_loop": forward_loop,
        "scalar_params": "".join(f", _{f}" for f in scalar),
        "scalar32": "".join(f"_{f}32, " for f in scalar), "scalar64": "".join(f"math.{f}, " for f in scalar),
        "backend_name": spec["name"], "array_module": spec["array_module"], "chunk_bytes": spec["chunk_bytes"],
        "threads": spec["threads"],
        "imports": _standard_imports(blockwise, jit, helpers, spec["threads"])
        + [spec["import"]] + ([spec["gemm_import"]] if spec["gemm_import"] and "gemm" in helpers else [])
        + ([spec["special_import"]] if "scipy.special." in code or "erf" in special else []),
        "args": args, "sizes": ", ".join(map(str, sizes)) + ("," if len(sizes) == 1 else ""),
        "bind": bind, "forward": forward, "check": check, "backward": backward,
        "grads": ", ".join(grads) + ("," if len(grads) == 1 else ""),
        "grad_output": naming.GRAD_OUTPUT, "upstream": naming.UPSTREAM,
    }


def _standard_imports(blockwise: bool, jit: bool, helpers: list, threads: bool) -> list:
    """The standard-library imports the module's helpers use, then a blank line (none: no lines)."""
    pool = threads and "threads" in helpers
    names = (["concurrent.futures"] if blockwise or pool else []) + (["math"] if blockwise or helpers else []) \
        + (["os"] if blockwise or pool else []) + (["warnings"] if jit else [])
    return [f"import {name}" for name in names] + [""] if names else []


def _loop(forms, result: str, names: list):
    """The numba loop's parts for one elementwise function of the arrays ``names`` (helpers/jit),
    or None without one."""
    lines = element_code(forms, result)
    if lines is None:
        return None
    return {"params": ", ".join(names), "lines": lines, "result": result,
            "reads": ", ".join(f"{name}[k]" for name in names)}


def _require_concrete(d: Derivation, bound):
    """Every symbol the code uses must be a size read from the inputs; parameters must be numbers."""
    used = set()
    numeric = ("window_strides", "padding", "lhs_dilation", "rhs_dilation", "feature_group_count",
               "batch_group_count", "rhs_regroup", "axes", "scale")
    for f in d.forward + [f for g in d.grads.values() for f in g.forms]:
        for v in _walk([f.fields[k] for k in numeric if k in f.fields]):
            used |= sp.sympify(v).free_symbols if isinstance(v, sp.Basic) else set()
    for e in d.op.output_sizes.values():
        used |= e.free_symbols
    loose = sorted(str(s) for s in used - set(bound))
    if loose:
        raise SymgradError(f"{d.op.name}: emitting code needs concrete parameter values; symbolic: "
                           f"{', '.join(loose)} (the CLI's emit fills unset ones with PyTorch's defaults)")


def _walk(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _walk(v)
    else:
        yield value


def _fwd_terms(d):
    return [f.term for f in d.forward]


def _public_params(op) -> dict:
    return {k: v for k, v in op.params.items() if k != "padding_spec"}


def emit(d: Derivation, backend: str = "numpy") -> str:
    """The module's source text; deterministic (same derivation → same bytes).

    >>> from symgrad import ops, derive
    >>> src = emit(derive(ops.gelu()))
    >>> "def backward" in src
    True
    """
    if backend not in BACKENDS:
        raise SymgradError(f"emit: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return environment().get_template("module.py.j2").render(**module_context(d, backend))


def load(source: str, name: str = "symgrad_emitted"):
    """Execute emitted source as a module object (for checks and tests)."""
    import types
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module
