"""Programs before anything is derived: hoist what a single rule cannot hold into statements of its
own (a sum inside a non-linear function, ``stop_gradient(…)``, a max), expand reads through
declared index maps (padding modes) into their affine pieces, then check the statement
DAG and name the statement and the fault: an undefined tensor, one defined twice, a cycle, shapes
that disagree between statements.  A read outside its tensor's range is 0, that read alone
(:class:`_Hoister`).  Generic: no op knowledge."""
from __future__ import annotations

import itertools
import keyword
from dataclasses import replace

import sympy as sp

from .. import naming
from ..ir import Bracket, Inside, Op, SymgradError, Tensor, plain
from ..program import Clamp, IndexMap, MaxOver, Program, Statement, StopGradient, Wrap
from .validate import validate_rule

RESERVED = {"xp", "np", "cp", naming.GRAD_OUTPUT, naming.UPSTREAM, "dim", "self", "result"}


class _Hoister:
    """Rewrites one statement's right-hand side, appending the statements it hoists to ``made``.

    A read that may fall outside its tensor's range is 0 there, that read alone: where the read is a
    factor of a product (the rule is a sum of products) the product gets the bracket saying where the
    read is inside, so only that term vanishes (``x[n] + x[n − 1]`` keeps ``x[0]`` at n = 0; a
    convolution's padding); under a non-linear function the read becomes a statement of its own,
    ``[inside] x[…]``, so the function sees 0 (``cos(x[n − 1])`` is 1 at n = 0)."""

    def __init__(self, stmt: Statement, taken: set, program: str = "", dims: dict = None):
        self.stmt, self.taken, self.made, self.requires, self.program = stmt, taken, [], [], program
        self.ranges = {plain(i): (sp.S.Zero, plain(i.upper)) for i in stmt.indices}
        self.dims = dims or {}

    def fresh(self, stem: str) -> str:
        k = 1
        while f"{self.stmt.name}_{stem}{k}" in self.taken:
            k += 1
        name = f"{self.stmt.name}_{stem}{k}"
        self.taken.add(name)
        return name

    def hoist(self, expr, stem: str, over=(), stop=False):
        """A new statement computing ``expr`` over its free index variables; returns its read."""
        order = [v for v in self.ranges if v in expr.free_symbols]
        lows = {v: self.ranges[v][0] for v in order}
        indices = tuple(sp.Idx(v, (0, self.ranges[v][1] - self.ranges[v][0])) for v in order)
        dims = tuple(self.ranges[v][1] - self.ranges[v][0] + 1 for v in order)
        name = self.fresh(stem)
        shift = {v: v + lows[v] for v in order if lows[v] != 0}
        body = expr.xreplace(shift) if shift else expr
        self.made.append(Statement(Tensor(name, dims or (1,), scalar=not dims), indices or (sp.Idx(sp.Symbol(
            f"{name}_0", integer=True), (0, 0)),), body, over, stop, self.stmt.line))
        reads = tuple(v - lows[v] for v in order) or (0,)
        return Tensor(name, dims or (1,))[reads]

    def bounds(self, e) -> tuple:
        """``(low, high)``: the least and greatest values of ``e`` (affine) over the index ranges."""
        low, high = e, e
        for v, (lo, hi) in self.ranges.items():
            c = sp.expand(e).coeff(v)
            if c != 0:
                low = low.subs(v, lo if c > 0 else hi)
                high = high.subs(v, hi if c > 0 else lo)
        return sp.expand(low), sp.expand(high)

    def inside(self, read) -> sp.Basic:
        """The condition that every index of ``read`` (but a declared map's) is inside its tensor:
        only the bounds the index ranges do not already keep."""
        dims = self.dims.get(read.base.name)
        if dims is None:
            return sp.true
        conds = []
        for e, d in zip(read.indices, dims):
            if isinstance(e, IndexMap):
                continue
            low, high = self.bounds(e)
            if not sp.simplify(low).is_nonnegative:
                conds.append(sp.Le(0, e))
            if not sp.simplify(d - 1 - high).is_nonnegative:
                conds.append(sp.Lt(e, d))
        return sp.And(*conds)

    def read(self, expr, linear: bool):
        """A tensor read: as it is where it stays inside its tensor; else 0 where it is outside."""
        cond = self.inside(expr)
        value = self.unmapped(expr) if expr.has(IndexMap) else expr
        if cond is sp.true and (linear or value is expr):
            return value
        if cond is not sp.true:
            value = Inside(cond) * value
        return value if linear else self.hoist(value, "pad")

    def walk(self, expr, linear=True):
        if isinstance(expr, sp.Indexed):
            return self.read(expr, linear)
        if not linear and (isinstance(expr, Bracket) or isinstance(expr, sp.Mul) and expr.has(Bracket) and
                           any(isinstance(a, Bracket) for a in expr.args)):
            return self.hoist(self.walk(expr), "br")  # [c]·e under a function: 0 where c fails, as a statement
        if isinstance(expr, sp.Pow) and isinstance(expr.base, sp.Indexed) and expr.exp.is_Integer and expr.exp > 0 \
                and linear and not expr.base.has(IndexMap):  # x[n − 1]² is 0 where the read is
            cond = self.inside(expr.base)
            return expr if cond is sp.true else Inside(cond) * expr
        if isinstance(expr, StopGradient):
            return self.hoist(self.walk(expr.args[0]), "sg", stop=True)
        if isinstance(expr, MaxOver):
            return self.max_statement(expr)
        if isinstance(expr, sp.Sum):
            limits = [(plain(v), plain(lo), plain(hi)) for v, lo, hi in expr.limits]
            saved = dict(self.ranges)
            self.ranges.update({v: (lo, hi) for v, lo, hi in limits})
            body = self.walk(expr.function)  # a sum of products (hoisted whole where it is not linear)
            self.ranges = saved
            total = sp.Sum(body, *limits)
            return total if linear else self.hoist(total, "sum")
        if isinstance(expr, sp.Mul):
            return _guarded_once(sp.Mul(*[self.walk(a, linear) for a in expr.args]))
        if isinstance(expr, sp.Add):
            return expr.func(*[self.walk(a, linear) for a in expr.args])
        if isinstance(expr, Bracket) or not expr.args or not expr.has(sp.Sum, StopGradient, MaxOver, sp.Indexed, Bracket):
            return expr
        if isinstance(expr, sp.Pow) and expr.exp == 1:
            return self.walk(expr.base, linear)
        return expr.func(*[self.walk(a, False) for a in expr.args])

    def unmapped(self, read):
        """A read through declared index maps as the sum of its affine pieces under brackets, with
        the condition that every value of the index falls in a piece (checked by the module)."""
        choices = []
        for e in read.indices:
            if isinstance(e, IndexMap):
                inner, n = e.args
                self.domain(e, inner, n)
                choices.append(e.pieces(inner, n))
            elif e.has(IndexMap):
                raise SymgradError(f"{self.program}, statement {self.stmt.name}: an index map ({e}) must be the "
                                   f"whole index of {read.base.name}")
            else:
                choices.append([(sp.true, e)])
        total = sp.S.Zero
        for combo in itertools.product(*choices):
            cond = sp.And(*[c for c, _ in combo])
            total += Bracket(cond) * read.base[tuple(i for _, i in combo)] if cond is not sp.true else \
                read.base[tuple(i for _, i in combo)]
        return total

    def domain(self, mapped, e, n):
        """Record that ``e`` (affine in the statement's indices) stays where ``mapped`` is defined."""
        low, high = self.bounds(e)
        if isinstance(mapped, Clamp):
            return
        span = (-n, 2 * n - 1) if isinstance(mapped, Wrap) else (-n + 1, 2 * n - 2)
        name = type(mapped).__name__.lower()
        for cond, what in ((sp.Ge(low - span[0], 0), f"{low} >= {span[0]}"),
                           (sp.Ge(span[1] - high, 0), f"{high} <= {span[1]}")):
            where = f"{self.program}, statement {self.stmt.name}"
            if cond is sp.false:
                raise SymgradError(f"{where}: {name}({e}, {n}) is defined for one period of padding; "
                                   f"{what} does not hold")
            if cond is not sp.true:
                self.requires.append((cond, f"{where}: {name} padding wider than the input (size {{{n}}}): it "
                                            f"reads {{{low}}} .. {{{high}}}, and {name} is defined on "
                                            f"{{{span[0]}}} .. {{{span[1]}}}"))

    def max_body(self, expr, limits):
        """The body of a max over ``limits``: brackets (they leave elements out) times one plain read
        (anything else hoisted; a read outside its tensor is 0, so it is taken as 0, not left out)."""
        saved = dict(self.ranges)
        self.ranges.update({v: (lo, hi) for v, lo, hi in limits})
        args = sp.Mul.make_args(expr)
        guards = [a for a in args if isinstance(a, Bracket)]
        value = self.walk(sp.Mul(*[a for a in args if not isinstance(a, Bracket)]), linear=False)
        bare = isinstance(value, sp.Indexed) and all(isinstance(e, sp.Symbol) for e in value.indices) \
            and len(set(value.indices)) == len(value.indices)
        if not bare:
            value = self.hoist(value, "body")
        self.ranges = saved
        return sp.Mul(*guards, value)

    def max_statement(self, expr):
        body, limits = _max_chain(expr)
        return self.hoist(self.max_body(body, limits), "max", over=limits)


def _max_chain(expr):
    """``(body, limits)`` of nested MaxOver, each range shifted to start at 0."""
    limits = []
    while isinstance(expr, MaxOver):
        body, v, lo, hi = expr.args
        if lo != 0:
            body, hi = body.xreplace({v: v + lo}), hi - lo
        limits.append((v, sp.S.Zero, hi))
        expr = body
    return expr, tuple(limits)


def _hoisted(stmt: Statement, taken: set, program: str, dims: dict) -> tuple:
    """``stmt`` and the statements hoisted out of it (those first), and the conditions on sizes
    its index maps need."""
    h = _Hoister(stmt, taken, program, dims)
    rhs = plain(stmt.rhs)
    if isinstance(rhs, MaxOver) and not stmt.over:  # the whole rule is a max: the statement is the max statement
        body, limits = _max_chain(rhs)
        body = h.max_body(body, limits)
        return h.made + [replace(stmt, rhs=body, over=limits)], h.requires
    if stmt.over:  # a max statement already (normalised before): its body, as then
        return h.made + [replace(stmt, rhs=h.max_body(rhs, stmt.over))], h.requires
    return h.made + [replace(stmt, rhs=h.walk(rhs))], h.requires


def _guarded_once(product):
    """``product`` with each condition of its brackets once: a bracket is 0 or 1, so a power of one
    is the bracket, and a condition the engine put on a read (``Inside``) that another bracket of the
    product already holds goes (a program normalised again, as a JVP program is, adds nothing)."""
    factors = [a.base if isinstance(a, sp.Pow) and isinstance(a.base, Bracket) and a.exp.is_Integer and a.exp > 0
               else a for a in sp.Mul.make_args(product)]
    held = set().union(*[sp.And.make_args(f.args[0]) for f in factors if isinstance(f, Bracket)
                         and not isinstance(f, Inside)])
    out, seen = [], set()
    for f in factors:
        if isinstance(f, Inside):
            rest = [c for c in sp.And.make_args(f.args[0]) if c not in held and c not in seen]
            seen |= set(rest)
            if rest:
                out.append(Inside(sp.And(*rest)))
            continue
        out.append(f)
    return sp.Mul(*out)


def normalise(program: Program) -> Program:
    """The program with every sum inside a non-linear function, every ``stop_gradient`` and every
    max hoisted into a statement of its own (named after the statement it came from)."""
    taken = set(program.tensors)
    dims = {name: t.dims for name, t in program.tensors.items()}
    statements, requires = [], list(program.requires)
    for stmt in program.statements:
        made, needs = _hoisted(stmt, taken, program.name, dims)
        statements.extend(made)
        requires += [r for r in needs if r not in requires]
    return replace(program, statements=tuple(statements), requires=requires)


def statement_op(program: Program, k: int, stmt: Statement = None) -> Op:
    """Statement ``k`` as a rule of its own: its inputs the tensors it reads, its upstream the
    adjoint ``d<output>``.  A max statement's rule is ``Σ_over sel·body`` with ``sel`` the
    tie-splitting selector (its derivative is the max's)."""
    stmt = stmt or program.statements[k]
    tensors = program.tensors
    rhs = stmt.rhs
    if stmt.over:
        sel = selector(stmt)
        head = () if stmt.output.scalar else tuple(plain(i) for i in stmt.indices)  # (a scalar's one axis is no axis of sel)
        rhs = sp.Sum(sel.base[head + tuple(v for v, _, _ in stmt.over)] * rhs, *stmt.over)
        tensors = {**tensors, sel.name: sel}
    names = sorted({a.base.name for a in sp.sympify(rhs).atoms(sp.Indexed)})
    missing = [n for n in names if n not in tensors]
    if missing:
        defined = ", ".join(tensors)
        raise SymgradError(f"{stmt.where(program.name, k)}: reads {missing[0]}, which is neither an input nor "
                           f"defined by a statement (tensors: {defined})")
    return Op(stmt.where(program.name, k), dict(program.params), tuple(tensors[n] for n in names), stmt.output,
              stmt.indices, rhs, upstream=naming.grad(stmt.name), prefer=stmt.prefer)


def selector(stmt: Statement) -> Tensor:
    """The tie-splitting selector of a max statement: 1/count at the maxima, 0 elsewhere."""
    dims = tuple(stmt.output.dims if not stmt.output.scalar else ()) + tuple(hi + 1 for _, _, hi in stmt.over)
    return Tensor(naming.selector(stmt.name), dims)


def _names(program: Program):
    seen = {}
    for t in program.inputs:
        if t.name in seen:
            raise SymgradError(f"{program.name}: input {t.name} is declared twice")
        seen[t.name] = "an input"
    for k, s in enumerate(program.statements):
        if s.name in seen:
            raise SymgradError(f"{s.where(program.name, k)}: {s.name} is defined twice (it is already {seen[s.name]})")
        seen[s.name] = f"defined by statement {k + 1}"
    for name in seen:
        if not name.isidentifier() or keyword.iskeyword(name) or name in RESERVED or name.startswith("_"):
            raise SymgradError(f"{program.name}: {name!r} cannot name a tensor (a Python identifier, not a keyword, "
                               f"not starting with _, not one of {', '.join(sorted(RESERVED))})")
        if naming.grad(name) in seen:
            raise SymgradError(f"{program.name}: tensors {name} and {naming.grad(name)} collide: "
                               f"{naming.grad(name)} names the gradient of {name}; rename one")
    for out in program.outputs:
        if out not in seen:
            raise SymgradError(f"{program.name}: output {out} is not defined (tensors: {', '.join(seen)})")
    if not program.statements:
        raise SymgradError(f"{program.name}: a program needs at least one statement")


def _order(program: Program):
    """Every read is of an input or of an earlier statement's output (else: undefined, or a cycle)."""
    where = {s.name: k for k, s in enumerate(program.statements)}
    inputs = {t.name for t in program.inputs}
    for k, s in enumerate(program.statements):
        for name in s.reads:
            if name in inputs or (name in where and where[name] < k):
                continue
            if name not in where:
                raise SymgradError(f"{s.where(program.name, k)}: reads {name}, which is neither an input nor defined "
                                   f"by a statement (inputs: {', '.join(sorted(inputs)) or 'none'})")
            path = _cycle(program, name, s.name)
            if path:
                raise SymgradError(f"{s.where(program.name, k)}: cycle {' → '.join(path)}: a tensor may only read "
                                   "inputs and tensors defined before it")
            raise SymgradError(f"{s.where(program.name, k)}: reads {name} before statement {where[name] + 1} defines "
                               "it; statements run in order")


def _cycle(program: Program, start: str, goal: str):
    """A path of reads from ``goal`` back to itself through ``start`` (``[goal, start, …, goal]``)."""
    reads = {s.name: s.reads for s in program.statements}
    stack = [(start, [goal, start])]
    seen = set()
    while stack:
        name, path = stack.pop()
        if name == goal:
            return path
        if name in seen:
            continue
        seen.add(name)
        stack.extend((r, path + [r]) for r in reads.get(name, []))
    return None


def _shapes(program: Program, k: int, stmt: Statement):
    """The output's dims are its indices' ranges; a bare index reads an axis of its own range."""
    where = stmt.where(program.name, k)
    out = stmt.output
    if not out.scalar:
        for i, d in zip(stmt.indices, out.dims):
            if sp.simplify(plain(i.upper) + 1 - d) != 0:
                raise SymgradError(f"{where}: output axis {plain(i)} runs over 0..{plain(i.upper)} but {out.name} "
                                   f"has size {d} there")
    ranges = {plain(i): plain(i.upper) + 1 for i in stmt.indices}
    ranges.update({v: hi + 1 for v, lo, hi in stmt.over})
    bracketed = set().union(*[b.free_symbols for b in sp.sympify(stmt.rhs).atoms(Bracket)
                              if not isinstance(b, Inside)]) if stmt.rhs.has(Bracket) else set()
    tensors = program.tensors
    for acc, ranges in _scoped_reads(plain(stmt.rhs), ranges):
        t = tensors.get(acc.base.name)
        if t is None or len(acc.indices) != len(t.dims):
            continue  # the rule check names it
        for axis, (e, d) in enumerate(zip(acc.indices, t.dims)):
            if isinstance(e, sp.Symbol) and e in ranges and e not in bracketed and not t.scalar:
                if sp.simplify(ranges[e] - d) != 0:
                    raise SymgradError(f"{where}: {acc} reads axis {axis} of {t.name} (size {d}) with {e}, which runs "
                                       f"over {ranges[e]} values: the shapes disagree (to read {t.name} zero-padded, "
                                       f"guard it with a bracket [{e} < {d}])")


def _scoped_reads(expr, ranges: dict):
    """Every tensor read of ``expr`` with the index ranges where it stands (a sum's own variables
    inside it: two sums may use one name for different ranges)."""
    if isinstance(expr, sp.Indexed):
        yield expr, ranges
        return
    if isinstance(expr, sp.Sum):
        inner = dict(ranges)
        for v, lo, hi in expr.limits:
            if lo == 0:
                inner[v] = hi + 1
            else:
                inner.pop(v, None)
        yield from _scoped_reads(expr.function, inner)
        return
    for a in expr.args:
        yield from _scoped_reads(a, ranges)


def validate_program(program: Program):
    """Raise a :class:`SymgradError` naming the program, the statement and the fault."""
    _names(program)
    _order(program)
    for k, stmt in enumerate(program.statements):
        _shapes(program, k, stmt)
        validate_rule(statement_op(program, k))
