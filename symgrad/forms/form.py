"""What every form kind shares: the recognised :class:`Form`, the :class:`Code` a kind's generator
returns, the :class:`Kind` interface each kind module implements, and the small pieces of code
generation several kinds use (aligning an operand's axes to the target's, scaling)."""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .. import naming
from ..ir import Tensor, Term
from ..printing.array import array_code
from ..printing.text import size_code


@dataclass
class Form:
    """A term recognised as a closed form of kind ``kind``.

    ``fields`` are the public parameters (JAX/XLA vocabulary; JSON-ready through :func:`jsonable`);
    ``term`` is the (possibly re-indexed) term the form computes; ``layout`` holds what the code
    generator needs beyond the fields (operand index orders); ``steps`` what recognising it took.
    """

    kind: str
    fields: dict
    term: Term
    layout: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)


@dataclass(frozen=True)
class Code:
    """Statements computing a form, and what they need: runtime pieces (module names under
    ``symgrad/runtime``) and import lines besides the array module's."""

    lines: tuple
    pieces: frozenset = frozenset()
    imports: frozenset = frozenset()

    def __add__(self, other: "Code") -> "Code":
        return Code(self.lines + other.lines, self.pieces | other.pieces, self.imports | other.imports)


def tensors_read(forms) -> set:
    """The tensors the code of ``forms`` reads: every tensor their terms access, and a convolution's
    operands (its ``lhs`` and ``rhs`` fields, which may name a padded or flipped view)."""
    return {a.base.name for f in forms for a in f.term.accesses} | \
        {f.fields[k] for f in forms for k in ("lhs", "rhs") if f.fields.get(k)}


def printed(lines, printer, pieces=()) -> Code:
    """``lines`` with the modules and runtime pieces ``printer`` recorded while printing them."""
    return Code(tuple(lines), frozenset(pieces) | frozenset(printer.used_pieces),
                frozenset(f"import {m}" for m in printer.used_modules))


@dataclass(frozen=True)
class Target:
    """Where a form's code puts its result: the variable ``out``, holding ``tensor`` (its index-space
    axes named ``out_vars``) with every other tensor in ``tensors``.  ``shaped``: align the result
    to the target's index space (an elementwise op's arrays keep their own shapes instead)."""

    out: str
    tensor: Tensor
    out_vars: tuple
    tensors: dict
    shaped: bool
    backend: object
    like: str = None     # the array whose dtype (and device) a result made from nothing takes (default: tensor's)


class Kind:
    """One form kind: how to recognise it, emit it, and say what it is and how it runs.

    Subclasses set ``name`` and implement the four methods; ``fresh_result`` says the code returns
    an array made for the term (a gradient's other terms may be added into it), ``numeric_fields``
    which fields must be numbers before code can be emitted, ``reads_views`` whether the code reads a
    grouped tensor through its index-space view (:func:`array_of`) or, as a convolution does, whole.
    """

    name = ""
    fresh_result = False
    numeric_fields = ()
    reads_views = True

    def match(self, term: Term, tensors: dict, out_vars: tuple, target: Tensor):
        """The form if ``term`` has this kind's shape, else None."""
        raise NotImplementedError

    def code(self, form: Form, target: Target) -> Code:
        """Statements that leave the form's value in ``target.out`` (index-space layout)."""
        raise NotImplementedError

    def describe(self, form: Form, show=None) -> list:
        """Sentences a person would write about the form, read off its fields; ``show`` writes a
        value into a sentence (plain text by default; the documents typeset it)."""
        raise NotImplementedError

    def formulation(self, form: Form, backend, blockwise: bool = False, jit=None) -> str:
        """One sentence: how the emitted code computes the form on ``backend`` (``blockwise``: in an
        elementwise op's blocks; ``jit``: also as this numba loop, an emit.loops.Loop)."""
        raise NotImplementedError

    def relate(self, name: str, form: Form, forward: list) -> list:
        """Sentences for the documents relating the gradient of ``name`` to the forward's forms."""
        return []


def jsonable(value):
    """SymPy numbers -> int, other SymPy expressions -> their text; containers recursively."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, sp.Basic):
        if value.is_Integer:
            return int(value)
        if value in (sp.true, sp.false):
            return bool(value)
        return str(value)
    return value


def plain_var(e):
    """The index symbol when ``e`` is a bare index, else None."""
    return e if isinstance(e, sp.Symbol) else None


def constant_scale(factor):
    """Split ``factor`` into (scale, product of the rest): the scale a number times the factors made
    of sizes alone (positive symbols, no index and no tensor element: attention's 1/√E)."""
    scale, rest = factor.as_coeff_Mul()
    args = sp.Mul.make_args(rest)
    sized = [a for a in args if a.free_symbols and not a.has(sp.Indexed) and all(s.is_positive for s in a.free_symbols)]
    if not sized:
        return scale, rest
    return scale * sp.Mul(*sized), sp.Mul(*[a for a in args if a not in sized])


def plain_reads(accesses, tensors) -> list | None:
    """Per access its index variables (None for a size-1 axis read at 0), or None when any index
    is composite or an access reads a diagonal (``x[i, i]``)."""
    out = []
    for access in accesses:
        t = tensors[access.base.name]
        read = []
        for e, dim in zip(access.indices, t.dims):
            if plain_var(e) is not None:
                read.append(e)
            elif e == 0 and dim == 1:
                read.append(None)
            else:
                return None
        named = [v for v in read if v is not None]
        if len(set(named)) != len(named):
            return None
        out.append(read)
    return out


def same_size(a, b) -> bool:
    """Whether two sizes are equal for every value of the size symbols."""
    return a == b or sp.simplify(sp.sympify(a) - sp.sympify(b)) == 0


def align(src: str, vars_, out_vars, backend) -> str:
    """Index/transpose/expand ``src`` (axes named ``vars_``, None = size-1 axis read at 0) to ``out_vars``."""
    code = src
    if any(v is None for v in vars_):
        code += "[" + ", ".join("0" if v is None else ":" for v in vars_) + "]"
    present = [v for v in vars_ if v is not None]
    order = sorted(range(len(present)), key=lambda k: list(out_vars).index(present[k]))
    if order != list(range(len(present))):
        code = backend.permuted(code, order)
    kept = {present[k] for k in order}
    if len(kept) != len(out_vars):
        code += "[" + ", ".join(":" if v in kept else "None" for v in out_vars) + "]"
    return code


def array_of(name: str, tensors) -> str:
    """The array a form reads: the index-space view when the tensor has split axes."""
    t = tensors[name]
    return naming.view(name) if t.viewed else name


def scaled(code: str, fields: dict, printer) -> str:
    """``code`` times the form's constant factor, when it has one other than 1."""
    scale = sp.sympify(fields.get("scale", 1))
    if scale == 1:
        return code
    if scale.is_Number:
        return f"{array_code(scale, printer)} * {code}"
    value = size_code(scale)  # of sizes: a Python float, which keeps float32 arrays float32 (and is no tensor)
    if "math." in value:
        printer.used_modules.add("math")
    return f"float({value}) * {code}"


def index_bound(guard, out_vars):
    """``(var, lower, upper)``: the inclusive bound (the other None) a guard puts on one of
    ``out_vars`` with coefficient ±1, or None for any other guard."""
    if not isinstance(guard, (sp.Lt, sp.Le, sp.Gt, sp.Ge)):
        return None
    used = [v for v in out_vars if v in guard.free_symbols]
    if len(used) != 1:
        return None
    v = used[0]
    diff = sp.expand(guard.lhs - guard.rhs)  # guard: diff < 0 (Lt), <= 0 (Le), > 0, >= 0
    coef = diff.coeff(v)
    if coef not in (1, -1):
        return None
    rest = sp.expand(diff - coef * v)
    strict = isinstance(guard, (sp.Lt, sp.Gt))
    below = isinstance(guard, (sp.Lt, sp.Le)) == (coef == 1)  # v below a bound (v < b or v <= b)
    edge = -rest if coef == 1 else rest
    if below:
        return v, None, edge - 1 if strict else edge
    return v, edge + 1 if strict else edge, None
