"""The expressions of a random program (:mod:`.generate`): sizes and names, each statement's scope of
indices, reads (bare, broadcast, transposed, shifted, through a padding map, at a constant index),
elementwise functions, inner sums and maxima.  :class:`Expressions` holds the program being built;
:class:`.generate.Generator` adds the statements made of them."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .tree import (Affine, Bin, Brk, Cmp, Fn, IndexValue, Neg, Num, Pow, Read, Reduce, SizeRef, Statement, Stop,
                   Tensor, size_names)

SIZE_NAMES = ("N", "D", "C", "L", "K", "M", "E", "F")
BOUNDED = ("tanh", "sin", "cos", "erf", "sigmoid")
SMOOTH = ("exp", "tanh", "erf", "erfc", "sin", "cos", "sigmoid")
KINKED = ("abs", "relu")


@dataclass
class Scope:
    vars: list                      # (name, extent) of the statement's indices, then the summed ones'
    taken: set = field(default_factory=set)


class Expressions:
    """The program being built and the expressions of its statements; ``rng`` decides everything."""

    def __init__(self, rng: random.Random, large: bool = False):
        self.rng, self.large = rng, large
        self.inputs, self.statements, self.size_lines = [], [], []
        self.dims = {}              # tensor name -> dims (inputs and statements)
        self.tags = set()
        self.minimum = {}           # size name -> least value the program needs
        self.used_sizes = []
        self.hidden = []            # (name, expression) of the extents the parser infers

    # names -----------------------------------------------------------------------------------------
    def size(self) -> object:
        """A size for a new axis: mostly an existing name, sometimes a new one or an integer."""
        r = self.rng.random()
        if self.used_sizes and r < 0.55:
            return self.rng.choice(self.used_sizes)
        if r < 0.62 and not self.large:
            self.tags.add("integer_size")
            return self.rng.choice((1, 2, 3))
        free = [n for n in SIZE_NAMES if n not in self.used_sizes]
        name = free[0] if free else self.rng.choice(self.used_sizes)
        if name not in self.used_sizes:
            self.used_sizes.append(name)
        return name

    def size_notinferred(self):
        for _ in range(20):
            d = self.size()
            if not inferred(d):
                return d
        return 2

    def tensor_name(self, param: bool = False) -> str:
        stems = ("w", "u", "v", "b", "p") if param else ("x", "z", "h", "a", "q")
        for s in stems + tuple(f"{stems[0]}{k}" for k in range(2, 9)):
            if s not in self.dims:
                return s
        raise RuntimeError("out of names")

    def new_input(self, dims: tuple, param: bool = None) -> str:
        """A new input of ``dims`` (an extent the parser infers, O_q1, cannot size an input: it is known only
        once its statement is read; such an axis gets a size of its own, and the caller reads it bare)."""
        dims = tuple(self.size_notinferred() if inferred(d) else d for d in dims)
        param = self.rng.random() < 0.4 if param is None else param
        name = self.tensor_name(param)
        self.inputs.append(Tensor(name, tuple(dims), "param" if param else "input"))
        self.dims[name] = tuple(dims)
        for d in dims:
            for n in size_names(d):
                if n not in self.used_sizes:
                    self.used_sizes.append(n)
        return name

    @staticmethod
    def var_for(extent, taken: set) -> str:
        stem = extent.lower() if isinstance(extent, str) else "i"
        stem = {"e": "e", "l": "l", "k": "k"}.get(stem, stem)
        for cand in [stem, "i", "j", "r", "s", "t", "m"] + [f"{stem}{k}" for k in range(2, 9)]:
            if cand not in taken and cand.upper() != cand:
                return cand
        raise RuntimeError("out of index names")

    def scope(self, extents) -> Scope:
        sc = Scope([])
        for e in extents:
            v = self.var_for(e, sc.taken | set(self.dims))
            sc.taken.add(v)
            sc.vars.append((v, e))
        return sc

    def add_var(self, sc: Scope, extent) -> str:
        v = self.var_for(extent, sc.taken | set(self.dims))
        sc.taken.add(v)
        sc.vars.append((v, extent))
        return v

    def statement_name(self) -> str:
        return f"t{len(self.statements) + 1}"

    def add(self, out_vars, extents, rhs, declare=None) -> str:
        """Append ``name[out_vars] = rhs``; an output index is declared where the rhs reads it bare on
        no axis of its extent (or, at random, anyway)."""
        name = self.statement_name()
        out = []
        for v, e in zip(out_vars, extents):
            must = not read_bare(rhs, v, e, self.dims)
            if declare is not None:
                must = must or declare
            elif self.rng.random() < 0.15:
                must = True
            if must and not read_bare(rhs, v, e, self.dims):
                self.tags.add("declared_range")
            out.append((v, e, must))
        self.statements.append(Statement(name, tuple(out), rhs))
        self.dims[name] = tuple(extents)
        return name

    # reads -----------------------------------------------------------------------------------------
    def readable(self, sc: Scope, allow_scalar=True) -> list:
        """Tensors whose every axis can be read in scope (bare or through an index of its extent)."""
        ext = [e for _, e in sc.vars]
        out = []
        for name, dims in self.dims.items():
            if not dims:
                if allow_scalar:
                    out.append(name)
                continue
            if all(d in ext for d in dims):
                out.append(name)
        return out

    def read(self, name: str, sc: Scope, shifts: bool = True) -> Read:
        dims = self.dims[name]
        if not dims:
            self.tags.add("scalar_param")
            return Read(name, ())
        index, used = [], set()
        for axis, d in enumerate(dims):
            cands = [v for v, e in sc.vars if e == d and v not in used]
            r = self.rng.random()
            if not cands or (r < 0.05 and shifts):
                c = self.rng.choice((0, 0, 1, 2, 5))
                self.tags.add("const_index")
                if isinstance(d, int) and c >= d:
                    self.tags.add("outside_const")
                index.append(Affine((), c))
                continue
            v = self.rng.choice(cands)
            if [u for u, _ in sc.vars].index(v) != axis:
                self.tags.add("transpose")
            used.add(v)
            if shifts and r < 0.14:
                self.tags.add("shift")
                index.append(Affine.of(v, 1, self.rng.choice((-1, 1, -2))))
            elif shifts and r < 0.18 and isinstance(d, str):
                self.tags.add("flip")
                index.append(Affine(((d, 1), (v, -1)), -1))
            else:
                index.append(Affine.of(v))
        if len(dims) < len(sc.vars):
            self.tags.add("broadcast")
        return Read(name, tuple(index))

    def leaf(self, sc: Scope, shifts=True):
        names = self.readable(sc)
        if not names or self.rng.random() < 0.08:
            if sc.vars and self.rng.random() < 0.3:  # an index as a number: a position weight
                self.tags.add("index_value")
                return IndexValue(Affine.of(self.rng.choice(sc.vars)[0], 1, self.rng.choice((0, 1))))
            return Num(self.rng.choice(("2", "0.5", "3", "1.5")))
        return self.read(self.rng.choice(names), sc, shifts)

    # expressions -----------------------------------------------------------------------------------
    def expr(self, sc: Scope, depth: int):
        if depth <= 0:
            return self.leaf(sc)
        r = self.rng.random()
        sub = lambda: self.expr(sc, depth - 1)
        if r < 0.25:
            self.tags.add("binary")
            return Bin(self.rng.choice("+-*"), sub(), sub())
        if r < 0.33:
            self.tags.add("division")
            return Bin("/", sub(), self.positive(sc, depth - 1))
        if r < 0.55:
            self.tags.add("function")
            fn = self.rng.choice(SMOOTH)
            arg = sub()
            if fn == "exp" and depth > 1:
                arg = Fn(self.rng.choice(BOUNDED), (arg,))
            return Fn(fn, (arg,))
        if r < 0.61:
            self.tags.add("kink")
            if self.rng.random() < 0.5:
                return Fn(self.rng.choice(KINKED), (sub(),))
            return Fn(self.rng.choice(("maximum", "minimum")), (sub(), sub()))
        if r < 0.67:
            self.tags.add("power")
            if self.rng.random() < 0.6:
                return Pow(sub(), self.rng.choice(("2", "3")))
            return Pow(self.positive(sc, depth - 1), self.rng.choice(("0.5", "-1", "1.5")))
        if r < 0.72:
            self.tags.add("log_sqrt")
            return Fn(self.rng.choice(("log", "sqrt")), (self.positive(sc, depth - 1),))
        if r < 0.76:
            self.tags.add("stop_gradient")
            return Stop(sub())
        if r < 0.80:
            return Neg(sub())
        if r < 0.86:
            return self.bracketed(sc, sub())
        if r < 0.93:
            return self.inner_sum(sc, depth)
        return self.inner_max(sc)

    def positive(self, sc: Scope, depth: int):
        """An expression > 0 (a denominator, a log's or a root's argument)."""
        e = self.expr(sc, max(depth, 0))
        k = self.rng.randrange(6)
        if k == 0:
            return Bin("+", Pow(e, "2"), Num("1"))
        if k == 1:
            return Bin("+", Fn("sigmoid", (e,)), Num("1"))
        if k == 2:
            return Fn("exp", (Fn(self.rng.choice(BOUNDED), (e,)),))
        if k == 3:
            return Bin("+", Num("1"), Fn("abs", (e,)))
        if k == 4:
            return SizeRef(self.rng.choice([d for _, d in sc.vars] or [2]))
        return Bin("+", Fn("exp", (Fn("tanh", (e,)),)), Num("0.5"))

    def bracketed(self, sc: Scope, body):
        vs = sc.vars
        self.tags.add("bracket")
        pairs = [(a, b) for a, ea in vs for b, eb in vs if a < b and ea == eb]
        if pairs and self.rng.random() < 0.5:
            a, b = self.rng.choice(pairs)
            op = self.rng.choice(("<=", "<", "!=", "=="))
            return Brk((Cmp((Affine.of(a), Affine.of(b)), (op,)),), body)
        if not vs:
            return body
        v, e = self.rng.choice(vs)
        lo = self.rng.choice((1, 2))
        return Brk((Cmp((Affine((), 0), Affine.of(v, 1, -lo), size_affine(e)), ("<=", "<")),), body)

    def inner_sum(self, sc: Scope, depth: int):
        """``sum(k) …`` inside an expression (inside a function it is hoisted)."""
        extent = self.size()
        inner = Scope(list(sc.vars), set(sc.taken))
        v = self.add_var(inner, extent)
        names = [n for n in self.readable(inner, allow_scalar=False) if extent in self.dims[n]]
        if not names:
            names = [self.new_input((extent,) + tuple(e for _, e in sc.vars[:1]))]
        body = self.read(self.rng.choice(names), inner)
        if self.rng.random() < 0.5:
            body = Bin("*", body, self.expr(inner, depth - 2) if depth > 1 else self.leaf(inner))
        declared = not read_bare(body, v, extent, self.dims)
        total = Reduce("sum", ((v, extent, declared),), body)
        self.tags.add("sum")
        if self.rng.random() < 0.5:
            self.tags.add("sum_in_function")
            return Fn(self.rng.choice(("tanh", "sin", "sigmoid")), (total,))
        return total

    def inner_max(self, sc: Scope):
        """``max(j) …`` inside an expression, through stop_gradient or not."""
        extent = self.size()
        inner = Scope(list(sc.vars), set(sc.taken))
        v = self.add_var(inner, extent)
        names = [n for n in self.readable(inner, allow_scalar=False) if extent in self.dims[n]]
        if not names:
            names = [self.new_input(tuple(e for _, e in sc.vars[:1]) + (extent,))]
        body = self.read(self.rng.choice(names), inner, shifts=False)
        if not any(a.bare == v for a in body.index if isinstance(a, Affine)):
            body = Read(body.tensor, tuple(Affine.of(v) if e == extent else i
                                           for i, e in zip(body.index, self.dims[body.tensor])))
        m = Reduce("max", ((v, extent, False),), body)
        if self.rng.random() < 0.6:
            self.tags.add("max_stop")
            return Stop(m)
        self.tags.add("max")
        return m


def inferred(extent) -> bool:
    """An extent the parser infers from a convolution-like read (named O_q1 by it)."""
    return isinstance(extent, str) and extent.startswith("O_")


def size_affine(e) -> Affine:
    return Affine((), e) if isinstance(e, int) else Affine.of(e)


def read_bare(e, v: str, extent, dims: dict) -> bool:
    """Whether ``e`` reads index ``v`` bare on an axis of size ``extent`` (the parser then infers it),
    outside every index map."""
    from .tree import walk
    for node in walk(e):
        if isinstance(node, Read):
            for i, d in zip(node.index, dims.get(node.tensor, ())):
                if isinstance(i, Affine) and i.bare == v and d == extent:
                    return True
    return False


__all__ = ["BOUNDED", "KINKED", "SIZE_NAMES", "SMOOTH", "Expressions", "Scope", "inferred", "read_bare", "size_affine"]
