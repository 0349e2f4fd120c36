"""The text syntax's recursive-descent parser: declarations, statements and expressions into
SymPy, index ranges inferred or declared (the grammar is in :mod:`symgrad.syntax`)."""
from __future__ import annotations

import re

import sympy as sp

from ..ir import Bracket, Tensor, size
from ..program import IndexMap, MaxOver, Program, Statement
from .declarations import ARITY, FUNCTIONS, INDEX_MAPS, Declarations
from .tokens import Token


def _index_symbol(name: str) -> sp.Symbol:
    return sp.Symbol(name, integer=True)


class Parser(Declarations):
    """One pass over the tokens of a program's text: its declarations (:class:`.declarations.Declarations`),
    its statements, each statement's expressions and index ranges; errors point at the token."""

    # file
    def parse(self) -> Program:
        while self.tok.kind != "end":
            if self.tok.kind == "newline":
                self.k += 1
                continue
            if self.at("input", "param") and self.toks[self.k + 1].kind == "name":
                self.declaration()
            elif self.at("size") and self.toks[self.k + 1].kind == "name" and self.toks[self.k + 2].text == "=":
                self.size_line()
            else:
                self.statement()
            self.take(kind="newline")
        if not self.statements:
            raise self.src.error(self.tok, "no statement: write a rule such as y[i] = x[i]^2")
        self.unbound_sizes()
        return Program(self.name, {}, tuple(self.inputs), tuple(self.statements), tuple(self.outputs),
                       self.output_sizes, self.requires, origin=self.src.origin)

    # statements
    def statement(self):
        output = self.at("output") and self.toks[self.k + 1].kind == "name"
        if output:
            self.take("output")
        head = self.take(kind="name")
        self.fresh_tensor(head)
        self.ranges, self.where, self.reads, self.summed = {}, {}, [], {}
        indices = []
        if self.at("["):
            self.take("[")
            while True:
                t = self.take(kind="name")
                v = _index_symbol(t.text)
                if v in self.ranges:
                    raise self.src.error(t, f"output index {t.text} appears twice in {head.text}[…]")
                self.ranges[v], self.where[v] = None, t
                if self.at("<", ":"):
                    self.take()
                    self.ranges[v] = self.size_expr()
                indices.append(v)
                if not self.at(","):
                    break
                self.take(",")
            self.take("]")
        self.take("=")
        rhs = self.expr()
        if self.tok.kind != "newline":
            raise self.src.error(self.tok, f"unexpected {self.tok.text!r} after the expression")
        self.infer(rhs)
        for v in indices:
            if self.ranges[v] is None:
                self.ranges[v] = self.affine_extent(v, head)
        dims = tuple(self.ranges[v] for v in indices)
        out = Tensor(head.text, dims or (1,), scalar=not dims)
        idx = tuple(sp.Idx(v, (0, d - 1)) for v, d in zip(indices, dims)) or \
            (sp.Idx(_index_symbol(f"{head.text}_0"), (0, 0)),)
        self.tensors[head.text] = out
        self.statements.append(Statement(out, idx, rhs, line=head.line))
        if output:
            self.outputs.append(head.text)

    def infer(self, rhs):
        """Ranges of indices read bare; a bare read of an axis of another size is a disagreement."""
        for acc, t in self.reads:
            tensor = self.tensors[acc.base.name]
            if tensor.scalar:
                continue
            for axis, (e, d) in enumerate(zip(acc.indices, tensor.dims)):
                if isinstance(e, sp.Symbol) and e in self.ranges:
                    have = self.ranges[e]
                    if have is None:
                        self.ranges[e] = d
                    elif sp.simplify(have - d) != 0 and not rhs.has(Bracket):
                        raise self.src.error(t, f"index {e} runs over {have} values but reads axis {axis} of "
                                                f"{tensor.name} (size {d}) here: the shapes disagree")

    def affine_extent(self, v, head: Token):
        """PyTorch's convolution extent for an output index read only through ``s·v + d·r − p``."""
        for acc, _ in self.reads:
            tensor = self.tensors[acc.base.name]
            for e, n in zip(acc.indices, tensor.dims):
                if v not in e.free_symbols:
                    continue
                poly = sp.Poly(sp.expand(e), *sorted(e.free_symbols, key=str))
                s = poly.coeff_monomial(v)
                if not (s.is_Integer and s > 0) or poly.total_degree() > 1:
                    continue
                span, offset = sp.S.Zero, e.subs({x: 0 for x in e.free_symbols})
                ok = True
                for r in e.free_symbols - {v}:
                    d, extent = poly.coeff_monomial(r), self.summed.get(r)
                    if extent is None or not (d.is_Integer and d >= 0):
                        ok = False
                        break
                    span += d * (extent - 1)
                if not ok:
                    continue
                pad = -offset
                extent = sp.floor((n + 2 * pad - span - 1) / s) + 1
                name = self.extent_name(f"O_{v}", extent)
                self.output_sizes[name] = extent
                self.sizes[name.name] = name  # later statements may name it
                cond = sp.Ge(n + 2 * pad, span + 1)
                if cond is not sp.true:
                    self.requires.append((cond, f"{self.name}: {head.text}'s index {v} has no values: the window "
                                                f"({{{span + 1}}}) is larger than the padded input ({{{n + 2 * pad}}})"))
                return name
        raise self.src.error(self.where[v], f"cannot tell the range of output index {v}: it is not read bare from "
                                            f"any tensor; declare it as {head.text}[…, {v} < SIZE, …]")

    def extent_name(self, stem: str, extent) -> sp.Symbol:
        """The size naming an inferred extent: ``O_i``, or ``O_i2``, … where another statement's index
        ``i`` already named a different one."""
        for k in range(1, len(self.output_sizes) + 2):
            name = size(stem if k == 1 else f"{stem}{k}")
            have = self.output_sizes.get(name)
            if have is None and name.name not in self.sizes or have is not None and sp.simplify(have - extent) == 0:
                return name
        raise AssertionError("unreachable")

    # expressions
    def expr(self):
        e = self.term()
        while self.at("+", "-"):
            op = self.take().text
            right = self.term()
            e = e + right if op == "+" else e - right
        return e

    def term(self):
        e = self.unary()
        while self.at("*", "/"):
            op = self.take().text
            right = self.unary()
            e = e * right if op == "*" else e / right
        return e

    def _starts_value(self) -> bool:
        return self.tok.kind in ("name", "number") or self.at("(", "[")

    def unary(self):
        if self.at("-"):
            self.take()
            return -self.unary()
        if self.at("+"):
            self.take()
            return self.unary()
        return self.power()

    def power(self):
        base = self.atom()
        if self.at("^", "**"):
            self.take()
            return base ** self.unary()
        return base

    def atom(self):
        t = self.tok
        if t.kind == "number":
            self.k += 1
            return sp.Integer(int(t.text)) if re.fullmatch(r"\d+", t.text) else sp.Rational(t.text)
        if self.at("("):
            self.take("(")
            e = self.expr()
            self.take(")")
            return e
        if self.at("["):  # [cond] x: a bracket multiplies the factor that follows it
            b = self.bracket()
            return b * self.power() if self._starts_value() else b
        if t.kind != "name":
            raise self.src.error(t, f"expected a value, got {t.text or 'the end of the line'!r}")
        if t.text in ("sum", "max") and self.toks[self.k + 1].text == "(":
            return self.reduction()
        if t.text == "pi":
            self.k += 1
            return sp.pi
        if t.text in FUNCTIONS:
            return self.call()
        self.k += 1
        if self.at("["):
            return self.read(t)
        v = _index_symbol(t.text)
        if v in self.ranges:
            return v
        if t.text in self.sizes:
            return self.sizes[t.text]
        if t.text in self.tensors:
            tensor = self.tensors[t.text]
            if tensor.scalar:
                return tensor[0]
            raise self.src.error(t, f"{t.text} has {len(tensor.dims)} axes; read it as {t.text}[…]")
        raise self.src.error(t, f"unknown name {t.text!r}: not a tensor, an index of this statement or a size")

    def call(self):
        t = self.take(kind="name")
        if t.text in INDEX_MAPS and not self.in_index:
            raise self.src.error(t, f"{t.text}(e, n) maps an index; it goes inside a tensor's brackets, "
                                    f"x[{t.text}(i - 1, L)]")
        args = self.listed("(", ")", self.expr)
        want = ARITY.get(t.text, 1)
        if len(args) != want:
            raise self.src.error(t, f"{t.text} takes {want} argument{'s' if want > 1 else ''}, got {len(args)}")
        return FUNCTIONS[t.text](*args)

    def read(self, t: Token):
        if t.text not in self.tensors:
            if t.text == self.statements_head():
                raise self.src.error(t, f"{t.text} reads itself: a cycle (a tensor may only read inputs and "
                                        "tensors defined before it)")
            if t.text in self.later:
                raise self.src.error(t, f"{t.text} is read before the statement that defines it (line "
                                        f"{self.later[t.text]}); statements run in order")
            raise self.src.error(t, f"{t.text} is not defined: declare it with `input {t.text}[…]` or define it "
                                    "in an earlier statement")
        tensor = self.tensors[t.text]
        outer, self.in_index = self.in_index, True
        indices = self.listed("[", "]", self.expr)
        self.in_index = outer
        if len(indices) != len(tensor.dims) and not (tensor.scalar and len(indices) == 1):
            axes = 0 if tensor.scalar else len(tensor.dims)
            raise self.src.error(t, f"{t.text} has {axes} ax{'i' if axes == 1 else 'e'}s, read with {len(indices)} "
                                    f"ind{'ex' if len(indices) == 1 else 'ices'}")
        for e in indices:
            if isinstance(e, IndexMap):  # a declared map (padding mode): its argument must be affine
                e = e.args[0]
            elif e.has(IndexMap):
                raise self.src.error(t, f"an index map ({', '.join(INDEX_MAPS)}) must be the whole index of {t.text}")
            bound = [v for v in e.free_symbols if v in self.ranges]
            if any(sp.diff(e, v).free_symbols & set(bound) for v in bound) or e.has(sp.floor, sp.Mod, sp.Abs):
                raise self.src.error(t, f"index {e} of {t.text} is not affine in the indices: write a·i + b·r + c "
                                        "with integer coefficients")
            loose = [s for s in e.free_symbols if s not in self.ranges and s not in self.sizes.values()]
            if loose:
                raise self.src.error(t, f"index {e} of {t.text} uses {loose[0]}, which is not an index of this "
                                        "statement (output indices and summed ones)")
        acc = tensor[tuple(indices)]
        self.reads.append((acc, t))
        return acc

    def statements_head(self) -> str:
        """The name of the statement being parsed (the token after an optional ``output``)."""
        k = self.k
        while k > 0 and self.toks[k - 1].kind != "newline":
            k -= 1
        return self.toks[k + 1].text if self.toks[k].text == "output" else self.toks[k].text

    def reduction(self):
        t = self.take(kind="name")
        self.take("(")
        limits = []
        while True:
            v_tok = self.take(kind="name")
            v = _index_symbol(v_tok.text)
            if v in self.ranges:
                raise self.src.error(v_tok, f"index {v_tok.text} is already in use in this statement")
            extent = None
            if self.at("<", ":"):
                self.take()
                extent = self.size_expr()
            self.ranges[v], self.where[v] = extent, v_tok
            limits.append((v, v_tok))
            if not self.at(","):
                break
            self.take(",")
        self.take(")")
        start = len(self.reads)
        body = self.term()
        for acc, _ in self.reads[start:]:  # ranges from the body's bare reads
            tensor = self.tensors[acc.base.name]
            for e, d in zip(acc.indices, tensor.dims):
                if isinstance(e, sp.Symbol) and any(e == v for v, _ in limits) and self.ranges[e] is None:
                    self.ranges[e] = d
        for v, v_tok in limits:
            if self.ranges[v] is None:
                raise self.src.error(v_tok, f"cannot tell the range of summed index {v}: it is not read bare from any "
                                            f"tensor; declare it as {t.text}({v} < SIZE)")
        for v, _ in reversed(limits):
            extent = self.ranges.pop(v)
            self.summed[v] = extent
            body = sp.Sum(body, (v, 0, extent - 1)) if t.text == "sum" else MaxOver(body, v, 0, extent - 1)
        return body

    def bracket(self):
        return Bracket(sp.And(*self.listed("[", "]", self.comparison, "and")))

    def listed(self, opening: str, closing: str, item, separator: str = ",") -> list:
        """``opening item (separator item)* closing``: the items."""
        self.take(opening)
        items = [item()]
        while self.at(separator):
            self.take(separator)
            items.append(item())
        self.take(closing)
        return items

    def comparison(self):
        ops = {"<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge, "==": sp.Eq, "!=": sp.Ne}
        left = self.expr()
        if not self.at(*ops):
            raise self.src.error(self.tok, "expected a comparison (< <= > >= == !=) inside [ ]")
        parts = []
        while self.at(*ops):
            op = self.take().text
            right = self.expr()
            parts.append(ops[op](left, right))
            left = right
        return sp.And(*parts)
