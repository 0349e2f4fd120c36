"""Random programs of the text syntax, reproducible by seed: elementwise functions, sums and means,
max with and without stop_gradient, broadcast and transposed reads, contractions, convolution-like
affine reads with and without brackets, padding maps, reads shifted past an edge, constant indices,
softmax / logsumexp / norm / attention chains, residual reads, scalar parameters and results, and
several outputs; 1–6 statements written (hoisting makes more).

:func:`program` builds the tree; :func:`sizes` draws concrete sizes for it, small (1 to a few) or,
with ``large``, with a tensor of at least 2^16 elements so the compiled loop nests and fused rows
run.  Every program is valid by construction: a refusal or a crash is the engine's.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .tree import (Affine, Bin, Brk, Cmp, Fn, IndexValue, Map, Neg, Num, Pow, Program, Read, Reduce, SizeRef,
                   Statement, Stop, Tensor, size_names, size_value)

SIZE_NAMES = ("N", "D", "C", "L", "K", "M", "E", "F")
BOUNDED = ("tanh", "sin", "cos", "erf", "sigmoid")
SMOOTH = ("exp", "tanh", "erf", "erfc", "sin", "cos", "sigmoid")
KINKED = ("abs", "relu")
#: every construct the generator can use (the closing counts name them)
CONSTRUCTS = ("pointwise", "function", "kink", "binary", "division", "power", "log_sqrt", "sum", "mean",
              "sum_in_function", "max", "max_stop", "max_scalar", "broadcast", "transpose", "contraction",
              "conv", "conv_bracket", "shift", "flip", "const_index", "outside_const", "bracket", "wrap",
              "reflect", "clamp", "softmax", "logsumexp", "layer_norm", "rms_norm", "attention", "causal",
              "residual", "scalar_param", "scalar_result", "outputs", "stop_gradient", "integer_size",
              "declared_range", "size_line", "index_value")


@dataclass
class _Scope:
    vars: list                      # (name, extent) of the statement's indices, then the summed ones'
    taken: set = field(default_factory=set)


class Generator:
    """One random program (``build``); ``rng`` decides everything."""

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

    def size_not_inferred(self):
        for _ in range(20):
            d = self.size()
            if not _inferred(d):
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
        dims = tuple(self.size_not_inferred() if _inferred(d) else d for d in dims)
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

    def scope(self, extents) -> _Scope:
        sc = _Scope([])
        for e in extents:
            v = self.var_for(e, sc.taken | set(self.dims))
            sc.taken.add(v)
            sc.vars.append((v, e))
        return sc

    def add_var(self, sc: _Scope, extent) -> str:
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
            must = not _read_bare(rhs, v, e, self.dims)
            if declare is not None:
                must = must or declare
            elif self.rng.random() < 0.15:
                must = True
            if must and not _read_bare(rhs, v, e, self.dims):
                self.tags.add("declared_range")
            out.append((v, e, must))
        self.statements.append(Statement(name, tuple(out), rhs))
        self.dims[name] = tuple(extents)
        return name

    # reads -----------------------------------------------------------------------------------------
    def readable(self, sc: _Scope, allow_scalar=True) -> list:
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

    def read(self, name: str, sc: _Scope, shifts: bool = True) -> Read:
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

    def leaf(self, sc: _Scope, shifts=True):
        names = self.readable(sc)
        if not names or self.rng.random() < 0.08:
            if sc.vars and self.rng.random() < 0.3:  # an index as a number: a position weight
                self.tags.add("index_value")
                return IndexValue(Affine.of(self.rng.choice(sc.vars)[0], 1, self.rng.choice((0, 1))))
            return Num(self.rng.choice(("2", "0.5", "3", "1.5")))
        return self.read(self.rng.choice(names), sc, shifts)

    # expressions -----------------------------------------------------------------------------------
    def expr(self, sc: _Scope, depth: int):
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

    def positive(self, sc: _Scope, depth: int):
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

    def bracketed(self, sc: _Scope, body):
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
        return Brk((Cmp((Affine((), 0), Affine.of(v, 1, -lo), _size_affine(e)), ("<=", "<")),), body)

    def inner_sum(self, sc: _Scope, depth: int):
        """``sum(k) …`` inside an expression (inside a function it is hoisted)."""
        extent = self.size()
        inner = _Scope(list(sc.vars), set(sc.taken))
        v = self.add_var(inner, extent)
        names = [n for n in self.readable(inner, allow_scalar=False) if extent in self.dims[n]]
        if not names:
            names = [self.new_input((extent,) + tuple(e for _, e in sc.vars[:1]))]
        body = self.read(self.rng.choice(names), inner)
        if self.rng.random() < 0.5:
            body = Bin("*", body, self.expr(inner, depth - 2) if depth > 1 else self.leaf(inner))
        declared = not _read_bare(body, v, extent, self.dims)
        total = Reduce("sum", ((v, extent, declared),), body)
        self.tags.add("sum")
        if self.rng.random() < 0.5:
            self.tags.add("sum_in_function")
            return Fn(self.rng.choice(("tanh", "sin", "sigmoid")), (total,))
        return total

    def inner_max(self, sc: _Scope):
        """``max(j) …`` inside an expression, through stop_gradient or not."""
        extent = self.size()
        inner = _Scope(list(sc.vars), set(sc.taken))
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

    # statements ------------------------------------------------------------------------------------
    def base(self) -> str:
        """A tensor to build a statement over (its axes become the statement's)."""
        names = [n for n, d in self.dims.items() if d]
        return self.rng.choice(names) if names else self.new_input((self.size(), self.size()))

    def pointwise(self):
        b = self.base()
        extents = list(self.dims[b])
        if len(extents) > 1 and self.rng.random() < 0.2:
            self.rng.shuffle(extents)
        if len(extents) < 3 and self.rng.random() < 0.15:
            extents.append(self.size())
        sc = self.scope(extents)
        rhs = self.expr(sc, self.rng.randrange(1, 4))
        if self.rng.random() < 0.4:
            rhs = Bin("+", self.read(b, sc), rhs) if all(e in extents for e in self.dims[b]) else rhs
        self.tags.add("pointwise")
        self.add([v for v, _ in sc.vars], extents, rhs)

    def reduction(self):
        b = self.base()
        extents = list(self.dims[b])
        sc = self.scope(extents)
        keep = [k for k in range(len(extents)) if self.rng.random() < 0.6]
        if len(keep) == len(extents):
            keep = keep[:-1]
        summed = [k for k in range(len(extents)) if k not in keep]
        body = self.read(b, sc, shifts=self.rng.random() < 0.3)
        if self.rng.random() < 0.6:
            body = Bin("*", body, self.expr(sc, 1)) if self.rng.random() < 0.5 else self.expr(sc, 2)
        over = tuple((sc.vars[k][0], sc.vars[k][1], not _read_bare(body, sc.vars[k][0], sc.vars[k][1], self.dims))
                     for k in summed)
        if self.rng.random() < 0.5 or not over:
            rhs, kind = Reduce("sum", over, body), "sum"
            if self.rng.random() < 0.4:
                rhs = Bin("/", rhs, SizeRef(over[0][1]))
                kind = "mean"
            if self.rng.random() < 0.3:
                rhs = Fn(self.rng.choice(("log", "sqrt")), (Bin("+", Pow(rhs, "2"), Num("1")),))
                self.tags.add("sum_in_function")
        else:  # a max's body: a read, or a function of one (no bracket of its own: brackets leave elements out)
            body = self.read(b, sc, shifts=False)
            if self.rng.random() < 0.4:
                body = Fn(self.rng.choice(SMOOTH), (body,))
            pairs = [(j, i) for j, ej, _ in over for i, ei in (sc.vars[k] for k in keep) if ej == ei]
            if pairs and self.rng.random() < 0.5:  # [j <= i] keeps j = 0 in every row
                j, i = self.rng.choice(pairs)
                body = Brk((Cmp((Affine.of(j), Affine.of(i)), ("<=",)),), body)
                self.tags.add("bracket")
            rhs, kind = Reduce("max", over, body), "max"
            if self.rng.random() < 0.5:
                rhs, kind = Stop(rhs), "max_stop"
        self.tags.add(kind)
        kept = [sc.vars[k] for k in keep]
        if not kept:
            self.tags.add("scalar_result")
            if kind.startswith("max"):
                self.tags.add("max_scalar")
        self.add([v for v, _ in kept], [e for _, e in kept], rhs)

    def contraction(self):
        a = self.base()
        da = self.dims[a]
        axes = [k for k, e in enumerate(da) if not _inferred(e)]  # (a new input cannot have an inferred axis)
        if not axes:
            return self.pointwise()
        k = self.rng.choice(axes)
        shared, other = da[k], self.size()
        first = self.rng.random() < 0.5
        param = self.new_input((shared, other) if first else (other, shared), param=True)
        keep = [e for i, e in enumerate(da) if i != k] + [other]
        sc = self.scope(keep)
        kv = self.add_var(sc, shared)
        names = [v for v, _ in sc.vars][:len(keep)]
        rest = iter(names)
        ia = tuple(Affine.of(kv) if i == k else Affine.of(next(rest)) for i in range(len(da)))
        ib = (Affine.of(kv), Affine.of(names[-1])) if first else (Affine.of(names[-1]), Affine.of(kv))
        self.tags.add("contraction")
        self.add(names, keep, Reduce("sum", ((kv, shared, False),), Bin("*", Read(a, ia), Read(param, ib))))

    def conv(self):
        n, c, ln = "N", self.rng.choice(("C", 1, 2)), "L"
        for s in (n, ln):
            if s not in self.used_sizes:
                self.used_sizes.append(s)
        x = self.new_input((n, c, ln), param=False)
        f = self.rng.choice(("F", 2))
        kk = self.rng.choice(("K", 2, 3))
        w = self.new_input((f, c, kk), param=True)
        s, d = self.rng.choice((1, 1, 2, 3)), self.rng.choice((1, 1, 2))
        sc = self.scope((n, f))
        nv, fv = sc.vars[0][0], sc.vars[1][0]
        iv = f"q{len(self.hidden) + 1}"  # an index no other statement names: the parser names its extent O_q1
        sc.taken.add(iv)
        cv, rv = self.add_var(sc, c), self.add_var(sc, kk)
        if self.rng.random() < 0.6:
            p = self.rng.choice((0, 1, 2))
            self.minimum[ln] = max(self.minimum.get(ln, 1), 2 * max(_int(kk), 3) * d)
            arg = Affine(((iv, s), (rv, d)), -p)
            extent = f"O_{iv}"
            self.hidden.append((extent, ("+", ("//", ("-", ("+", ln, 2 * p), _span(kk, d)), s), 1)))
            body = Bin("*", Read(w, (Affine.of(fv), Affine.of(cv), Affine.of(rv))), Read(x, (Affine.of(nv), Affine.of(cv), arg)))
            self.tags.add("conv")
        else:
            p = self.rng.choice((0, 1))
            arg = Affine(((iv, 1), (rv, 1)), -p)
            extent = ln
            body = Brk((Cmp((Affine((), 0), arg, Affine.of(ln)), ("<=", "<")),),
                       Bin("*", Read(w, (Affine.of(fv), Affine.of(cv), Affine.of(rv))),
                           Read(x, (Affine.of(nv), Affine.of(cv), arg))))
            self.tags.add("conv_bracket")
        rhs = Reduce("sum", ((cv, c, False), (rv, kk, False)), body)
        if self.rng.random() < 0.5:
            bias = self.new_input((f,), param=True)
            rhs = Bin("+", Read(bias, (Affine.of(fv),)), rhs)
        name = self.add([nv, fv, iv], [n, f, extent], rhs, declare=extent == ln)
        if extent != ln:  # the parser infers the extent: the statement leaves it undeclared
            st = self.statements[-1]
            self.statements[-1] = Statement(st.name, tuple((v, e, False) if v == iv else (v, e, dcl)
                                                          for v, e, dcl in st.out), st.rhs)
        return name

    def padded(self):
        kind = self.rng.choice(("wrap", "reflect", "clamp"))
        b = self.base()
        dims = self.dims[b]
        axis = len(dims) - 1
        ln = dims[axis]
        if isinstance(ln, int) and (ln < 2 or kind == "reflect") or _inferred(ln):
            b = self.new_input((self.size(), "L"))
            dims, axis, ln = self.dims[b], 1, "L"
        lo, hi = self.rng.choice((1, 2)), self.rng.choice((0, 1, 2))
        if isinstance(ln, str):
            self.minimum[ln] = max(self.minimum.get(ln, 1), max(lo, hi) + 1)
        pname = f"P{len(self.size_lines) + 1}"
        self.size_lines.append((pname, ("+", ln, lo + hi)))
        self.tags.add("size_line")
        sc = self.scope(dims[:axis] + (pname,))
        vars_ = [v for v, _ in sc.vars]
        index = tuple(Affine.of(v) for v in vars_[:axis]) + (Map(kind, Affine.of(vars_[axis], 1, -lo), ln),)
        rhs = Read(b, index)
        if self.rng.random() < 0.5:
            rhs = Bin("*", rhs, self.leaf(_Scope(sc.vars[:axis], set(sc.taken))))
        self.tags.add(kind)
        self.add(vars_, list(dims[:axis]) + [pname], rhs, declare=True)

    def shifted(self):
        b = self.base()
        dims = self.dims[b]
        sc = self.scope(dims)
        vars_ = [v for v, _ in sc.vars]
        axis = self.rng.randrange(len(dims))
        shifted = Read(b, tuple(Affine.of(v, 1, -1 if k == axis else 0) for k, v in enumerate(vars_)))
        bare = Read(b, tuple(Affine.of(v) for v in vars_))
        self.tags.add("shift")
        rhs = self.rng.choice((Bin("+", bare, shifted), Fn("cos", (shifted,)), Bin("*", bare, shifted),
                               Fn("sin", (Bin("*", bare, shifted),))))
        self.add(vars_, list(dims), rhs)

    def softmax(self):
        x = self.new_input((self.size(), self.size()), param=False) if self.rng.random() < 0.5 else None
        if x is None:
            cands = [n for n, d in self.dims.items() if len(d) == 2]
            x = self.rng.choice(cands) if cands else self.new_input((self.size(), self.size()), param=False)
        rows, cols = self.dims[x]
        sc = self.scope((rows, cols))
        n, d = [v for v, _ in sc.vars]
        stop = self.rng.random() < 0.7
        mx = Reduce("max", ((d, cols, False),), Read(x, (Affine.of(n), Affine.of(d))))
        m = self.add([n], [rows], Stop(mx) if stop else mx)
        kind = self.rng.choice(("softmax", "logsumexp"))
        e = Fn("exp", (Bin("-", Read(x, (Affine.of(n), Affine.of(d))), Read(m, (Affine.of(n),))),))
        if kind == "logsumexp":
            self.add([n], [rows], Bin("+", Fn("log", (Reduce("sum", ((d, cols, False),), e),)), Read(m, (Affine.of(n),))))
        else:
            u = self.add([n, d], [rows, cols], e)
            s = self.add([n], [rows], Reduce("sum", ((d, cols, False),), Read(u, (Affine.of(n), Affine.of(d)))))
            self.add([n, d], [rows, cols], Bin("/", Read(u, (Affine.of(n), Affine.of(d))), Read(s, (Affine.of(n),))))
        self.tags.add(kind)
        self.tags.add("max_stop" if stop else "max")

    def norm(self):
        cands = [n for n, d in self.dims.items() if len(d) == 2]
        x = self.rng.choice(cands) if cands and self.rng.random() < 0.5 else self.new_input((self.size(), self.size()), False)
        rows, cols = self.dims[x]
        sc = self.scope((rows, cols))
        n, d = [v for v, _ in sc.vars]
        xr = lambda: Read(x, (Affine.of(n), Affine.of(d)))
        if self.rng.random() < 0.5:
            mu = self.add([n], [rows], Bin("/", Reduce("sum", ((d, cols, False),), xr()), SizeRef(cols)))
            xc = self.add([n, d], [rows, cols], Bin("-", xr(), Read(mu, (Affine.of(n),))))
            var = self.add([n], [rows], Bin("/", Reduce("sum", ((d, cols, False),), Pow(Read(xc, (Affine.of(n), Affine.of(d))), "2")),
                                              SizeRef(cols)))
            y = Bin("/", Read(xc, (Affine.of(n), Affine.of(d))), Fn("sqrt", (Bin("+", Read(var, (Affine.of(n),)), Num("1e-5")),)))
            self.tags.add("layer_norm")
        else:
            ms = self.add([n], [rows], Bin("/", Reduce("sum", ((d, cols, False),), Pow(xr(), "2")), SizeRef(cols)))
            y = Bin("/", xr(), Fn("sqrt", (Bin("+", Read(ms, (Affine.of(n),)), Num("1e-5")),)))
            self.tags.add("rms_norm")
        if self.rng.random() < 0.6:
            w = self.new_input((cols,), param=True)
            y = Bin("*", y, Read(w, (Affine.of(d),)))
        self.add([n, d], [rows, cols], y)

    def attention(self):
        t, e = self.size(), self.size()
        causal = self.rng.random() < 0.5
        s2 = t if causal else self.size()
        q = self.new_input((t, e), False)
        k = self.new_input((s2, e), False)
        v = self.new_input((s2, self.size()), False)
        fd = self.dims[v][1]
        sc = self.scope((t, s2))
        i, j = [a for a, _ in sc.vars]
        ev = self.add_var(sc, e)
        score = Bin("/", Reduce("sum", ((ev, e, False),), Bin("*", Read(q, (Affine.of(i), Affine.of(ev))),
                                                             Read(k, (Affine.of(j), Affine.of(ev))))),
                    Fn("sqrt", (SizeRef(e),)))
        sname = self.add([i, j], [t, s2], score)
        sread = Read(sname, (Affine.of(i), Affine.of(j)))
        body = Brk((Cmp((Affine.of(j), Affine.of(i)), ("<=",)),), sread) if causal else sread
        m = self.add([i], [t], Stop(Reduce("max", ((j, s2, False),), body)))
        ex = Fn("exp", (Bin("-", sread, Read(m, (Affine.of(i),))),))
        ex = Brk((Cmp((Affine.of(j), Affine.of(i)), ("<=",)),), ex) if causal else ex
        pe = self.add([i, j], [t, s2], ex)
        z = self.add([i], [t], Reduce("sum", ((j, s2, False),), Read(pe, (Affine.of(i), Affine.of(j)))))
        sc2 = self.scope((t, fd))
        i2, f2 = [a for a, _ in sc2.vars]
        j2 = self.add_var(sc2, s2)
        out = Bin("/", Reduce("sum", ((j2, s2, False),), Bin("*", Read(pe, (Affine.of(i2), Affine.of(j2))),
                                                            Read(v, (Affine.of(j2), Affine.of(f2))))),
                  Read(z, (Affine.of(i2),)))
        self.add([i2, f2], [t, fd], out)
        self.tags.add("attention")
        if causal:
            self.tags.add("causal")

    def residual(self):
        made = [s.name for s in self.statements if s.dims]
        if not made:
            return self.pointwise()
        a = self.rng.choice(made)
        sc = self.scope(self.dims[a])
        rhs = Bin(self.rng.choice("+*"), self.read(a, sc, shifts=False), self.expr(sc, 1))
        self.tags.add("residual")
        self.add([v for v, _ in sc.vars], list(self.dims[a]), rhs)

    def build(self, statements: int) -> Program:
        if self.rng.random() < 0.2:
            self.new_input((), param=True)
        self.new_input(tuple(self.size() for _ in range(self.rng.choice((1, 2, 2, 3)))), param=False)
        makers = [(self.pointwise, 5), (self.reduction, 4), (self.contraction, 2), (self.conv, 1),
                  (self.padded, 1), (self.shifted, 1), (self.softmax, 1), (self.norm, 1), (self.attention, 1),
                  (self.residual, 2)]
        funcs, weights = zip(*makers)
        while len(self.statements) < statements:
            self.rng.choices(funcs, weights)[0]()
        given = {n for t in self.inputs for d in t.dims for n in size_names(d)} | {n for n, _ in self.size_lines} | \
            {n for n, _ in self.hidden}
        wanted = sorted({n for st in self.statements for e in st.dims for n in size_names(e)} - given)
        if wanted:  # a size only a statement's range uses: an input gives it (nothing reads that input)
            self.new_input(tuple(wanted), param=True)
        if len(self.statements) > 1 and self.rng.random() < 0.25:
            self.tags.add("outputs")
            k = self.rng.randrange(len(self.statements) - 1)
            self.statements[k] = _marked(self.statements[k])
            self.statements[-1] = _marked(self.statements[-1])
        return Program(tuple(self.inputs), tuple(self.statements), tuple(self.size_lines), frozenset(self.tags),
                       tuple(sorted(self.minimum.items())), tuple(self.hidden))


def _inferred(extent) -> bool:
    """An extent the parser infers from a convolution-like read (named O_q1 by it)."""
    return isinstance(extent, str) and extent.startswith("O_")


def _int(e) -> int:
    return e if isinstance(e, int) else 3


def _span(kk, d):
    """``d·(K − 1) + 1`` as a size expression."""
    return ("+", ("*", d, ("-", kk, 1)), 1) if not isinstance(kk, int) else d * (kk - 1) + 1


def _size_affine(e) -> Affine:
    return Affine((), e) if isinstance(e, int) else Affine.of(e)


def _marked(s: Statement) -> Statement:
    return Statement(s.name, s.out, s.rhs, True)


def _read_bare(e, v: str, extent, dims: dict) -> bool:
    """Whether ``e`` reads index ``v`` bare on an axis of size ``extent`` (the parser then infers it),
    outside every index map."""
    from .tree import walk
    for node in walk(e):
        if isinstance(node, Read):
            for i, d in zip(node.index, dims.get(node.tensor, ())):
                if isinstance(i, Affine) and i.bare == v and d == extent:
                    return True
    return False


def program(seed: int, large: bool = False, statements: int = None) -> Program:
    """The random program of ``seed`` (1–6 statements written, unless ``statements`` says)."""
    rng = random.Random(seed)
    count = statements or rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 6))
    return Generator(rng, large).build(count)


def sizes(p: Program, seed: int, large: bool = False) -> dict:
    """Concrete values of the program's free sizes: 1 to 4 (5 to 9 where a construct needs more), or
    with ``large``, rows and columns so a tensor holds at least 2^16 elements (each statement's index
    grid kept under 2^22 points)."""
    rng = random.Random(seed * 7919 + 1)
    names = sorted(p.size_names())
    need = dict(p.minimum)
    for _ in range(200):
        values = {n: max(rng.choice((1, 2, 2, 3, 3, 4)), need.get(n, 1)) for n in names}
        if large and names:
            big = rng.sample(names, min(2, len(names)))
            values[big[0]] = max(values[big[0]], rng.choice((256, 512, 1024)))
            if len(big) > 1:
                values[big[1]] = max(values[big[1]], rng.choice((64, 128, 256)))
        if _fits(p, values, large):
            return values
    return {n: max(2, need.get(n, 1)) for n in names}


def _grid(p: Program, values: dict) -> list:
    """Points of each statement's index grid, and each tensor's element count."""
    from .tree import walk
    conc = p.concrete(values)
    out = []
    for s in p.statements:
        base = 1
        for e in s.dims:
            base *= max(size_value(e, conc), 0)
        extra = 1
        for node in walk(s.rhs):
            if isinstance(node, Reduce):
                for _, e, _ in node.over:
                    extra *= max(size_value(e, conc), 1)
        out.append((base * extra, base))
    for t in p.inputs:
        n = 1
        for e in t.dims:
            n *= size_value(e, conc)
        out.append((n, n))
    return out


def _fits(p: Program, values: dict, large: bool) -> bool:
    try:
        grid = _grid(p, values)
    except (KeyError, ZeroDivisionError):
        return False
    conc = p.concrete(values)
    if any(size_value(e, conc) < 1 for s in p.statements for e in s.dims):
        return False
    if large:
        return max(g for g, _ in grid) <= 2 ** 22 and max(n for _, n in grid) >= 2 ** 16
    return max(g for g, _ in grid) <= 4096


__all__ = ["CONSTRUCTS", "Generator", "program", "sizes"]
