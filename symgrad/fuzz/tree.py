"""Random programs as trees: what the generator builds, the shrinker cuts down, the printer writes
as ``.sg`` text and the evaluators (:mod:`.evaluate`) compute.  Nothing here comes from symgrad's
parser or IR: the tree is the test's own account of the text syntax, so the engine's reading of the
text is held to an independent one.

Sizes are named (``N``, ``D``) or integers; ``size P = L + 2`` lines name computed ones.  Index
expressions are affine: integer coefficients on index names and size names, and a constant.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace


# sizes ---------------------------------------------------------------------------------------------

def size_text(e) -> str:
    """A size expression: an int, a name, or ``(op, a, b)`` with op in ``+ - * //``."""
    if isinstance(e, tuple):
        op, a, b = e
        return f"({size_text(a)} {op} {size_text(b)})"
    return str(e)


def size_value(e, sizes: dict) -> int:
    if isinstance(e, tuple):
        op, a, b = e
        a, b = size_value(a, sizes), size_value(b, sizes)
        return {"+": a + b, "-": a - b, "*": a * b, "//": a // b if b else 0}[op]
    return e if isinstance(e, int) else sizes[e]


def size_names(e) -> set:
    if isinstance(e, tuple):
        return size_names(e[1]) | size_names(e[2])
    return set() if isinstance(e, int) else {e}


# index expressions ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Affine:
    """``Σ coef·name + const`` over index names and size names (``terms``: ``((name, coef), …)``)."""

    terms: tuple = ()
    const: int = 0

    @staticmethod
    def of(name: str, coef: int = 1, const: int = 0) -> "Affine":
        return Affine(((name, coef),), const)

    def text(self) -> str:
        parts = []
        for name, c in self.terms:
            if c == 0:
                continue
            sign = "-" if c < 0 else "+"
            mag = abs(c)
            body = name if mag == 1 else f"{mag}*{name}"
            parts.append((sign, body))
        if self.const or not parts:
            parts.append(("-" if self.const < 0 else "+", str(abs(self.const))))
        head_sign, head = parts[0]
        out = ("-" if head_sign == "-" else "") + head
        for sign, body in parts[1:]:
            out += f" {sign} {body}"
        return out

    @property
    def bare(self) -> str | None:
        """The index name when the expression is one index read as it is."""
        if self.const == 0 and len(self.terms) == 1 and self.terms[0][1] == 1:
            return self.terms[0][0]
        return None

    def names(self) -> set:
        return {n for n, c in self.terms if c}


@dataclass(frozen=True)
class Map:
    """A padding mode's index map, ``wrap(e, n)`` / ``reflect(e, n)`` / ``clamp(e, n)``."""

    kind: str
    arg: Affine
    extent: object

    def text(self) -> str:
        return f"{self.kind}({self.arg.text()}, {size_text(self.extent)})"

    def names(self) -> set:
        return self.arg.names()


# expressions ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Num:
    value: str           # as written: "2", "0.5", "1e-5"

    def text(self, ctx=0) -> str:
        return self.value


@dataclass(frozen=True)
class SizeRef:
    """A size used as a value (``/ D``)."""

    extent: object

    def text(self, ctx=0) -> str:
        return size_text(self.extent)


@dataclass(frozen=True)
class IndexValue:
    """An index expression used as a number (``x[n] * (n + 1)``: a position weight)."""

    index: Affine

    def text(self, ctx=0) -> str:
        return f"({self.index.text()})"


@dataclass(frozen=True)
class Read:
    tensor: str
    index: tuple          # Affine or Map per axis; () for a scalar

    def text(self, ctx=0) -> str:
        if not self.index:
            return self.tensor
        return f"{self.tensor}[{', '.join(i.text() for i in self.index)}]"


@dataclass(frozen=True)
class Bin:
    op: str               # + - * /
    a: object
    b: object

    PREC = {"+": 1, "-": 1, "*": 2, "/": 2}

    def text(self, ctx=0) -> str:
        p = self.PREC[self.op]
        right = p + 1 if self.op in "-/" else p  # a - (b + c), a / (b * c)
        out = f"{self.a.text(p)} {self.op} {self.b.text(right)}"
        return f"({out})" if p < ctx else out


@dataclass(frozen=True)
class Neg:
    a: object

    def text(self, ctx=0) -> str:
        out = f"-{self.a.text(3)}"
        return f"({out})" if ctx > 0 else out


@dataclass(frozen=True)
class Pow:
    base: object
    exp: str              # "2", "3", "0.5", "-1"

    def text(self, ctx=0) -> str:
        exp = self.exp if not self.exp.startswith("-") else f"({self.exp})"
        out = f"{self.base.text(4)}^{exp}"
        return f"({out})" if ctx >= 4 else out  # ^ is right-associative: (a^b)^c needs its brackets


@dataclass(frozen=True)
class Fn:
    name: str
    args: tuple

    def text(self, ctx=0) -> str:
        return f"{self.name}({', '.join(a.text() for a in self.args)})"


@dataclass(frozen=True)
class Reduce:
    """``sum(v, w < K) body`` or ``max(…) body``; ``over`` holds ``(name, extent, declared)``."""

    kind: str
    over: tuple
    body: object

    def text(self, ctx=0) -> str:
        vs = ", ".join(f"{v} < {size_text(e)}" if declared else v for v, e, declared in self.over)
        return f"({self.kind}({vs}) ({self.body.text()}))"


@dataclass(frozen=True)
class Cmp:
    """A chain ``a < b <= c`` of affine index expressions (``ops`` between consecutive parts)."""

    parts: tuple
    ops: tuple

    def text(self) -> str:
        out = self.parts[0].text()
        for op, part in zip(self.ops, self.parts[1:]):
            out += f" {op} {part.text()}"
        return out


@dataclass(frozen=True)
class Brk:
    """``[c1 and c2] body``: the body where every condition holds, 0 elsewhere."""

    conds: tuple
    body: object

    def text(self, ctx=0) -> str:
        out = f"[{' and '.join(c.text() for c in self.conds)}] {self.body.text(4)}"
        return f"({out})" if ctx > 2 else out


@dataclass(frozen=True)
class Stop:
    a: object

    def text(self, ctx=0) -> str:
        return f"stop_gradient({self.a.text()})"


def children(e) -> tuple:
    """The sub-expressions of ``e`` (for walking and shrinking)."""
    if isinstance(e, Bin):
        return (e.a, e.b)
    if isinstance(e, (Neg, Stop)):
        return (e.a,)
    if isinstance(e, Pow):
        return (e.base,)
    if isinstance(e, Fn):
        return e.args
    if isinstance(e, (Reduce, Brk)):
        return (e.body,)
    return ()


def with_children(e, kids: tuple):
    if isinstance(e, Bin):
        return replace(e, a=kids[0], b=kids[1])
    if isinstance(e, Neg):
        return Neg(kids[0])
    if isinstance(e, Stop):
        return Stop(kids[0])
    if isinstance(e, Pow):
        return replace(e, base=kids[0])
    if isinstance(e, Fn):
        return replace(e, args=tuple(kids))
    if isinstance(e, (Reduce, Brk)):
        return replace(e, body=kids[0])
    return e


def walk(e):
    yield e
    for c in children(e):
        yield from walk(c)


# programs ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tensor:
    name: str
    dims: tuple           # size expressions; () for a scalar
    kind: str = "input"   # input | param


@dataclass(frozen=True)
class Statement:
    """``name[i < E, j] = rhs``: ``out`` holds ``(index, extent, declared)``; ``output`` marks it."""

    name: str
    out: tuple
    rhs: object
    output: bool = False

    @property
    def dims(self) -> tuple:
        return tuple(e for _, e, _ in self.out)

    def text(self) -> str:
        head = self.name
        if self.out:
            head += "[" + ", ".join(f"{v} < {size_text(e)}" if declared else v for v, e, declared in self.out) + "]"
        return f"{'output ' if self.output else ''}{head} = {self.rhs.text()}"


@dataclass(frozen=True)
class Program:
    inputs: tuple                       # Tensor
    statements: tuple                   # Statement
    sizes: tuple = ()                   # (name, size expression) of ``size`` lines
    tags: frozenset = field(default_factory=frozenset)   # the constructs it uses (for the counts)
    minimum: tuple = ()                 # (size name, least value) the constructs need
    hidden: tuple = ()                  # (name, size expression) of sizes the parser infers (O_i), not written

    @property
    def arguments(self) -> tuple:
        """The inputs in the order the text declares them (``input`` lines, then ``param`` lines): the
        emitted functions' argument order."""
        return tuple(t for kind in ("input", "param") for t in self.inputs if t.kind == kind)

    def text(self) -> str:
        lines = [f"size {name} = {size_text(e)}" for name, e in self.sizes]  # (an input may have such an axis)
        for kind in ("input", "param"):
            decl = [t for t in self.inputs if t.kind == kind]
            if decl:
                lines.append(f"{kind} " + ", ".join(
                    t.name + (f"[{', '.join(size_text(d) for d in t.dims)}]" if t.dims else "") for t in decl))
        lines += [s.text() for s in self.statements]
        return "\n".join(lines) + "\n"

    @property
    def outputs(self) -> tuple:
        marked = tuple(s.name for s in self.statements if s.output)
        return marked or (self.statements[-1].name,)

    def tensor_dims(self) -> dict:
        dims = {t.name: t.dims for t in self.inputs}
        dims.update({s.name: s.dims for s in self.statements})
        return dims

    def size_names(self) -> set:
        names = set()
        for t in self.inputs:
            for d in t.dims:
                names |= size_names(d)
        return names - {n for n, _ in self.sizes}

    def concrete(self, values: dict) -> dict:
        """Every size's value: the free ones from ``values``, the ``size`` lines computed."""
        out = dict(values)
        for name, e in self.sizes + self.hidden:
            out[name] = size_value(e, out)
        return out
