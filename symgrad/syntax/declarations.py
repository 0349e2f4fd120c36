"""The text syntax's words (keywords, functions) and the parser's first layer: reading tokens, and the
declarations of a program's text (inputs, size lines, size expressions), with the check that every
size a statement uses is given (:class:`.parser.Parser` adds statements and expressions)."""
from __future__ import annotations

import re

import sympy as sp

from ..ir import SymgradError, Tensor, size
from ..program import Clamp, Reflect, StopGradient, Wrap
from .tokens import Source, Token, tokens


def _extremum(f):
    """sp.Max or sp.Min of the arguments; unevaluated where SymPy cannot tell that one is real (a
    function of a bracket, cos(2·[i ≤ n]): the bracket becomes a tensor read before anything is derived)."""
    def make(*args):
        try:
            return f(*args)
        except ValueError:
            return f(*args, evaluate=False)
    return make


_MAX, _MIN = _extremum(sp.Max), _extremum(sp.Min)

FUNCTIONS = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "tanh": sp.tanh, "erf": sp.erf, "erfc": sp.erfc,
    "sin": sp.sin, "cos": sp.cos, "abs": sp.Abs, "sigmoid": lambda v: 1 / (1 + sp.exp(-v)),
    "relu": lambda v: _MAX(0, v), "maximum": _MAX, "minimum": _MIN, "stop_gradient": StopGradient,
    "wrap": Wrap, "reflect": Reflect, "clamp": Clamp,
}
ARITY = {"maximum": 2, "minimum": 2, "wrap": 2, "reflect": 2, "clamp": 2}
INDEX_MAPS = ("wrap", "reflect", "clamp")
KEYWORDS = {"input", "param", "size", "output", "sum", "max", "and", "pi"}


class Declarations:
    """The parser's state over the tokens of a program's text, its token reading and its declarations;
    errors point at the token."""

    def __init__(self, src: Source, name: str):
        self.src, self.name = src, name
        self.toks, self.k = tokens(src), 0
        self.tensors, self.inputs, self.sizes = {}, [], {}
        self.statements, self.outputs, self.output_sizes, self.requires = [], [], {}, []
        self.ranges = None  # per statement: index symbol -> extent (None: not known yet)
        self.where = {}     # per statement: index symbol -> token that introduced it
        self.later = {}     # tensor -> the line of the statement defining it (for reads before it)
        self.reads = []     # per statement: (Indexed, token) of each read
        self.summed = {}    # per statement: summed index -> its extent
        self.in_index = False  # parsing a tensor's index (where index maps may appear)

    # tokens
    @property
    def tok(self) -> Token:
        return self.toks[self.k]

    def take(self, text=None, kind=None) -> Token:
        t = self.tok
        if (text is not None and t.text != text) or (kind is not None and t.kind != kind):
            want = repr(text) if text is not None else {"name": "a name", "newline": "the end of the line"}.get(kind, kind)
            got = "the end of the line" if t.kind == "newline" else ("the end of the text" if t.kind == "end"
                                                                     else repr(t.text))
            raise self.src.error(t, f"expected {want}, got {got}")
        self.k += 1
        return t

    def at(self, *texts) -> bool:
        return self.tok.kind in ("op", "name") and self.tok.text in texts

    def declaration(self):
        self.take()
        while True:
            t = self.take(kind="name")
            self.fresh_tensor(t)
            dims = []
            if self.at("["):
                self.take("[")
                while True:
                    dims.append(self.size_expr())
                    if not self.at(","):
                        break
                    self.take(",")
                self.take("]")
            positive = self.at(">")
            if positive:  # ``x[N] > 0``: its elements are positive (check samples them so)
                self.take(">")
                zero = self.take(kind="number")
                if float(zero.text) != 0:
                    raise self.src.error(zero, f"an input is declared positive with `> 0`, got `> {zero.text}`")
            tensor = Tensor(t.text, tuple(dims) or (1,), positive=positive, scalar=not dims)
            self.tensors[t.text] = tensor
            self.inputs.append(tensor)
            if not self.at(","):
                return
            self.take(",")

    def unbound_sizes(self):
        """Every size a statement or a size line uses is an input's or a size line's: the module reads
        sizes from its inputs' shapes and has no other way to know one."""
        bound = set().union(*[d.free_symbols for t in self.inputs for d in t.dims]) | set(self.output_sizes)
        for sym, expr in self.output_sizes.items():
            loose = sorted(str(x) for x in expr.free_symbols if x.is_positive and x not in bound)
            if loose:
                raise SymgradError(f"{self.name}: size {sym} = {expr} uses {loose[0]}, which no input's shape gives "
                                   f"(declare an input with an axis of size {loose[0]})")
        for stmt in self.statements:
            rhs = sp.sympify(stmt.rhs)
            labels = {b.label for b in rhs.atoms(sp.IndexedBase)}  # (a positive tensor's name is no size)
            used = set().union(*[sp.sympify(d).free_symbols for d in stmt.output.dims]) | \
                {x for x in rhs.free_symbols - labels if isinstance(x, sp.Symbol) and x.is_positive}
            for s in sp.sympify(stmt.rhs).atoms(sp.Sum):
                used |= set().union(*[sp.sympify(hi).free_symbols for _, _, hi in s.limits])
            loose = sorted(str(x) for x in used if x.is_positive and x not in bound)
            if loose:
                raise SymgradError(f"{self.name}, statement {stmt.name} (line {stmt.line}): size {loose[0]} is neither "
                                   f"an input's size nor defined by a size line: the module could not know it")

    def size_line(self):
        self.take("size")
        t = self.take(kind="name")
        if t.text in self.sizes or t.text in self.tensors:
            raise self.src.error(t, f"{t.text} is already defined")
        self.take("=")
        value = self.size_expr()
        sym = size(t.text)
        self.sizes[t.text] = sym
        self.output_sizes[sym] = value

    def fresh_tensor(self, t: Token):
        if t.text in KEYWORDS or t.text in FUNCTIONS:
            raise self.src.error(t, f"{t.text} is a keyword or function; name the tensor otherwise")
        if t.text in self.tensors:
            raise self.src.error(t, f"{t.text} is defined twice (a tensor is defined once)")

    def size_expr(self):
        """A size: integers, size names (new ones are declared by their first use in an input),
        + - * // and parentheses."""
        e = self.size_term()
        while self.at("+", "-"):
            op = self.take().text
            e = e + self.size_term() if op == "+" else e - self.size_term()
        return e

    def size_term(self):
        e = self.size_atom()
        while self.at("*", "//"):
            op = self.take().text
            right = self.size_atom()
            e = e * right if op == "*" else sp.floor(e / right)
        return e

    def size_atom(self):
        t = self.tok
        if t.kind == "number" and re.fullmatch(r"\d+", t.text):
            self.k += 1
            return sp.Integer(int(t.text))
        if t.kind == "name" and t.text not in KEYWORDS:
            self.k += 1
            return self.sizes.setdefault(t.text, size(t.text))
        if self.at("("):
            self.take("(")
            e = self.size_expr()
            self.take(")")
            return e
        raise self.src.error(t, f"expected a size (an integer or a size name), got {t.text or 'the end of the line'!r}")


__all__ = ["ARITY", "FUNCTIONS", "INDEX_MAPS", "KEYWORDS", "Declarations"]
