"""Random programs of the text syntax, reproducible by seed: elementwise functions, sums and means,
max with and without stop_gradient, broadcast and transposed reads, contractions, convolution-like
affine reads with and without brackets, padding maps, reads shifted past an edge, constant indices,
softmax / logsumexp / norm / attention chains, residual reads, scalar parameters and results, and
several outputs; 1–6 statements written (hoisting makes more).

:func:`program` builds the tree (its expressions :mod:`.expressions`, its statements here);
:func:`.sizing.sizes` draws concrete sizes for it.  Every program is valid by construction: a refusal
or a crash is the engine's.
"""
from __future__ import annotations

import random

from .expressions import SMOOTH, Expressions, Scope, inferred, read_bare
from .tree import Affine, Bin, Brk, Cmp, Fn, Map, Num, Pow, Program, Read, Reduce, SizeRef, Statement, Stop, size_names

#: every construct the generator can use (the closing counts name them)
CONSTRUCTS = ("pointwise", "function", "kink", "binary", "division", "power", "log_sqrt", "sum", "mean",
              "sum_in_function", "max", "max_stop", "max_scalar", "broadcast", "transpose", "contraction",
              "conv", "conv_bracket", "shift", "flip", "const_index", "outside_const", "bracket", "wrap",
              "reflect", "clamp", "softmax", "logsumexp", "layer_norm", "rms_norm", "attention", "causal",
              "residual", "scalar_param", "scalar_result", "outputs", "stop_gradient", "integer_size",
              "declared_range", "size_line", "index_value")


class Generator(Expressions):
    """One random program (``build``): the statements made of :class:`Expressions`."""

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
        over = tuple((sc.vars[k][0], sc.vars[k][1], not read_bare(body, sc.vars[k][0], sc.vars[k][1], self.dims))
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
        axes = [k for k, e in enumerate(da) if not inferred(e)]  # (a new input cannot have an inferred axis)
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
        if isinstance(ln, int) and (ln < 2 or kind == "reflect") or inferred(ln):
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
            rhs = Bin("*", rhs, self.leaf(Scope(sc.vars[:axis], set(sc.taken))))
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


def _int(e) -> int:
    return e if isinstance(e, int) else 3


def _span(kk, d):
    """``d·(K − 1) + 1`` as a size expression."""
    return ("+", ("*", d, ("-", kk, 1)), 1) if not isinstance(kk, int) else d * (kk - 1) + 1


def _marked(s: Statement) -> Statement:
    return Statement(s.name, s.out, s.rhs, True)


def program(seed: int, large: bool = False, statements: int = None) -> Program:
    """The random program of ``seed`` (1–6 statements written, unless ``statements`` says)."""
    rng = random.Random(seed)
    count = statements or rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 6))
    return Generator(rng, large).build(count)


__all__ = ["CONSTRUCTS", "Generator", "program"]
