"""Kernel fusion (CuPy program modules): consecutive pointwise steps of a program — statements and
adjoint contributions each computed by elementwise forms, with their stores into adjoints — run as
one CUDA kernel with several outputs, so the intermediates stay in registers and each array is read
from memory once (softmax's backward, ∂ℒ/∂x = (dy/s + ds)·u, is one kernel instead of three).

A step is a :class:`Step` (what :func:`step` finds in the forms): its value as a SymPy expression in
its reads, each read the array code the elementwise form would pass to its kernel.  A run of steps
of one shape, each reading what the run made only whole (the same element), becomes one kernel; a
step that reads a made array through a view (a row statistic broadcast, a transpose) ends the run.
Within the run each value is a local of the kernel's body; a made array is written out only when the
code after the run reads it (``live``).  A run of one step keeps the step's own code."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import sympy as sp

from .. import naming
from ..forms import kind
from ..forms.form import align, array_of
from ..forms.sum import views
from ..printing.scalar import c_code
from ..printing.text import shape_code
from .fusion import Unit, reads as reads_of


@dataclass(frozen=True)
class Step:
    """A pointwise step: ``name`` (the array it leaves, its adjoint when it adds into one) gets
    ``value``, an expression in the symbols of ``reads`` (read code -> symbol), of shape ``shape``;
    ``prelude``: the code of its other terms (a convolution), run first, whose results it reads.
    ``sources``: per read code, the array it reads (None: a result of the prelude); ``prelude_reads``:
    the arrays the prelude reads."""

    name: str
    value: sp.Expr
    reads: dict
    shape: str
    prelude: tuple = ()
    sources: dict = field(default_factory=dict)
    prelude_reads: frozenset = frozenset()


def step(forms, target, into: str = None, add: bool = False) -> Step | None:
    """The step computing ``forms`` into ``target.out`` — into ``into``, added to it with ``add`` —
    with its elementwise terms (unmasked, reading no sizes) in the kernel and any other term (a
    convolution, a reduction) computed first; None where the kernel would compute nothing of it or
    C has no function for part of it."""
    pointwise = [f for f in forms if f.kind == "elementwise" and not f.term.guards]
    if not pointwise or target.tensor.viewed:
        return None
    used = sorted({a.base.name for f in forms for a in f.term.accesses} & set(target.tensors))
    reads, value, prelude = {}, sp.S.Zero, list(views(target.tensors, used))
    sources, prelude_reads = {}, {name for name in used if target.tensors[name].viewed}  # (views: the prelude's)
    for k, form in enumerate(forms):
        if form not in pointwise:  # its own code leaves it whole, in the target's layout
            part = naming.term(target.out, k)
            prelude += list(kind(form.kind).code(form, replace(target, out=part)).lines)
            prelude_reads |= {a.base.name for a in form.term.accesses} | \
                {form.fields[f] for f in ("lhs", "rhs") if form.fields.get(f)}
            value += reads.setdefault(part, sp.Symbol(f"_p{len(reads)}"))
            sources[part] = None
            continue
        mapping = {}
        for acc, spec in zip(form.term.accesses, form.layout["operands"]):
            code = align(array_of(spec["tensor"], target.tensors), spec["vars"], target.out_vars, target.backend)
            mapping[acc] = reads.setdefault(code, sp.Symbol(f"_p{len(reads)}"))
            sources[code] = spec["tensor"]
        factor = form.term.factor.xreplace(mapping)
        if not factor.free_symbols <= set(reads.values()):
            return None  # a size in the expression: the form's own code passes it
        value += factor
    if add:
        value = reads.setdefault(into, sp.Symbol(f"_p{len(reads)}")) + value
        sources[into] = into
    if not reads:
        return None  # a constant: nothing for a kernel to read
    try:
        c_code(value)
    except (NotImplementedError, ValueError):  # polygamma, Bessel functions: array code computes it
        return None
    return Step(into or target.out, value, reads, shape_code(target.tensor.dims), tuple(prelude), sources,
                frozenset(prelude_reads))


def fuse_kernels(units: list, live: set, prefix: str) -> list:
    """``units`` with each run of two or more pointwise steps (``Unit.step``) replaced by one unit
    calling one kernel; ``live``: the names the code after ``units`` reads."""
    runs, run = [], []
    for unit in units:
        if unit.step is not None and (not run or _joins(run, unit.step)):
            run.append(unit)
            continue
        runs += [run] if run else []
        run = [unit] if unit.step is not None else []
        runs += [] if unit.step is not None else [[unit]]
    runs += [run] if run else []
    out, taken = [], set()
    for chunk in reversed(runs):
        if len(chunk) > 1:
            chunk = [_kernel_unit(chunk, live, prefix, taken)]
        out = chunk + out
        live = live | reads_of(chunk)
    return out


def _joins(run: list, s: Step) -> bool:
    """Whether ``s`` continues ``run``: the same shape, what the run made read only whole, and its
    prelude (run before the kernel) reading nothing the run made."""
    made = {u.step.name for u in run}
    if s.shape != run[0].step.shape or s.prelude_reads & made:
        return False
    # a made array through a view (another shape of access) ends the run
    return not any(code not in made and source in made for code, source in s.sources.items())


def _kernel_unit(run: list, live: set, prefix: str, taken: set) -> Unit:
    """One unit computing the run's steps in one kernel: each step's value a local ``vK`` of the body
    (in a block of its own, so the temporaries of its C code stay its own), the made arrays the code
    after reads written out (into fresh arrays: an input of the kernel may bear the same name)."""
    params, local = {}, {}    # read code -> parameter name; made name -> its current local
    bodies = {False: [], True: []}
    for k, unit in enumerate(run):
        s = unit.step
        rename = {}
        for code, symbol in s.reads.items():
            if code in local:
                rename[symbol] = sp.Symbol(local[code])
            else:
                rename[symbol] = sp.Symbol(params.setdefault(code, f"p{len(params)}"))
        value = s.value.xreplace(rename)
        for wide in (False, True):
            bodies[wide].append(f"double v{k}; {{ {c_code(value, widen=wide, out=f'v{k}')} }}")
        local[s.name] = f"v{k}"
    outputs = [name for name in dict.fromkeys(u.step.name for u in run) if name in live] or [run[-1].step.name]
    for wide in (False, True):
        bodies[wide] += [f"_o{j} = {local[name]};" for j, name in enumerate(outputs)]
    first = next(iter(params))
    name = naming.identifier(f"symgrad_{prefix}_{run[0].step.name}_to_{run[-1].step.name}")
    while name in taken:
        name += "_"
    taken.add(name)
    comment = [line for u in run for line in u.comment]
    lines = [line for u in run for line in u.step.prelude]
    lines += [f"# {len(run)} pointwise steps in one CUDA kernel ({', '.join(dict.fromkeys(u.step.name for u in run))})"]
    lines += [f"_o{j} = xp.empty({run[0].step.shape}, dtype={first}.dtype)" for j in range(len(outputs))]
    lines.append(f"body = {' '.join(bodies[False])!r} if {first}.dtype == xp.float64 else {' '.join(bodies[True])!r}")
    ins = ", ".join(f"T {p}" for p in params.values())
    outs = ", ".join(f"T _o{j}" for j in range(len(outputs)))
    args = ", ".join(list(params) + [f"_o{j}" for j in range(len(outputs))])
    lines.append(f"fused({ins!r}, body, {name!r}, {outs!r})({args})")
    lines += [f"{o} = _o{j}" for j, o in enumerate(outputs)]
    return replace(run[0], lines=tuple(comment + lines), step=None, out=None, into=None, add=False, comment=(),
                   reads=reads_of(run))
