"""The index-notation representation every stage shares.

An :class:`Op` is a forward rule ``Y[indices] = rhs`` over SymPy ``IndexedBase`` tensors, with
symbolic sizes.  A :class:`Term` is one product in a sum of products: the shape in which
differentiation, delta elimination, recognition and emission all see an expression.  The upstream
gradient ``g`` = ∂ℒ/∂Y is a tensor of the output's shape (:func:`upstream`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .naming import UPSTREAM


class SymgradError(ValueError):
    """A user-facing error: names the op, the parameter and what was expected."""


def size(name: str) -> sp.Symbol:
    """A positive integer size symbol, e.g. ``size("H")``."""
    return sp.Symbol(name, integer=True, positive=True)


def integer(name: str) -> sp.Symbol:
    """An integer symbol of either sign (paddings may be negative)."""
    return sp.Symbol(name, integer=True)


def index(name: str, extent) -> sp.Idx:
    """An index variable running over ``0 .. extent-1``."""
    return sp.Idx(sp.Symbol(name, integer=True), (0, extent - 1))


class Bracket(sp.Function):
    """Iverson bracket ``[cond]``: 1 where ``cond`` holds, 0 elsewhere (zero padding is one)."""

    nargs = 1

    @classmethod
    def eval(cls, cond):
        if cond is sp.true:
            return sp.S.One
        if cond is sp.false:
            return sp.S.Zero
        return None

    def _eval_derivative(self, s):
        return sp.S.Zero  # a guard on integer indices has no derivative w.r.t. tensor values

    def _latex(self, printer):
        return r"\left[%s\right]" % printer._print(self.args[0])


class Inside(Bracket):
    """``[0 <= e < n]`` that the engine put on a read which may fall outside its tensor (the read is 0
    there): a bracket like the user's, told apart only where the checks of the user's text need to."""


class IsInf(sp.logic.boolalg.BooleanFunction):
    """``IsInf(x, 1)``: x is +∞; ``IsInf(x, -1)``: x is −∞ (a condition in a pointwise expression)."""

    nargs = 2

    @classmethod
    def eval(cls, x, sign):
        if x.is_number:
            return sp.true if x == sign * sp.oo else sp.false
        return None

    def _latex(self, printer):
        return r"%s = %s\infty" % (printer._print(self.args[0]), "+" if self.args[1] > 0 else "-")


class sigmoid(sp.Function):
    """The logistic function σ(u) = 1/(1 + e^(−u)), which the stable forms are written in
    (:mod:`symgrad.engine.stable`): bounded in [0, 1] and a function every target computes without
    overflow — and whose derivative σ(u)·σ(−u) the frameworks' autograd computes from the value, so
    differentiating an emitted backward again gives no ∞·0 either.  Printers without a sigmoid of
    their own print its :meth:`definition` (not ``rewrite(sp.exp)``, which rewrites the argument's
    powers too: erf(w)² as exp(2·log(erf(w))), NaN for erf(w) < 0)."""

    nargs = 1

    @classmethod
    def eval(cls, u):
        if u is sp.oo:
            return sp.S.One
        if u is sp.S.NegativeInfinity:
            return sp.S.Zero
        if u.is_zero:
            return sp.S.Half
        if u.is_Float:
            return 1 / (1 + sp.exp(-u))
        return None

    def fdiff(self, argindex=1):
        u = self.args[0]
        return sigmoid(u) * sigmoid(-u)

    def definition(self) -> sp.Expr:
        """1/(1 + exp(−u)), the argument as it is."""
        return 1 / (1 + sp.exp(-self.args[0]))

    def _eval_evalf(self, prec):
        return self.definition()._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return True if self.args[0].is_real else None

    def _latex(self, printer):
        return r"\sigma\left(%s\right)" % printer._print(self.args[0])


class Shielded(sp.Function):
    """``Shielded(x, cond, at)``: the element x inside the formula a limit guard ``cond`` selects away
    (:func:`symgrad.engine.stable.limit_guards`); where ``cond`` holds, ``at``, a point where the
    formula and its derivative are finite.  The value never depends on it, so array, loop, CUDA and
    double-double code read x itself; the frameworks read ``where(cond, at, x)``: autograd through an
    emitted backward (the torch target's double backward) differentiates every branch of a where, and
    the formula's derivative past the threshold is ∞·0 = NaN, which its gradient of 0 does not cancel.
    Text and LaTeX show x."""

    nargs = 3
    is_commutative = True  # a number (SymPy reads a condition among the arguments as "unknown" otherwise)

    @classmethod
    def eval(cls, x, cond, at):
        return x if x.is_number else None

    @staticmethod
    def lift(expr):
        """``expr`` with every shield taken off (code that computes values only: one subexpression
        fewer to name)."""
        return expr.replace(Shielded, lambda x, cond, at: x)

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def _eval_is_finite(self):
        return self.args[0].is_finite

    def _sympystr(self, printer):
        return printer._print(self.args[0])

    def _latex(self, printer, exp=None):
        text = printer._print(self.args[0])
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)


def in_sympy_functions(expr):
    """``expr`` with the engine's own functions as SymPy's: σ as its definition, a shielded element
    as the element (for evaluation and comparison, which know SymPy's functions only)."""
    return expr.replace(sigmoid, lambda u: sigmoid(u).definition()).replace(Shielded, lambda x, cond, at: x)


def in_range(expr, extent) -> sp.Basic:
    """The bounds guard ``0 <= expr < extent`` as one condition."""
    return sp.And(sp.Le(0, expr), sp.Lt(expr, extent))


@dataclass(frozen=True)
class Tensor:
    """A tensor as the index notation sees it.

    ``dims`` is the index-space shape; ``split`` says how many index axes each real axis holds
    (a grouped channel axis ``C_in`` seen as ``(G, C_in/G)`` has split 2), so the real shape is
    the product of the dims of each run.  Elements are real; ``positive`` ones are > 0 (a rule
    that takes their log or a fractional power needs that, and ``check`` samples them so).  A
    ``scalar`` tensor is one element, seen as one index axis of size 1 (SymPy has no Indexed
    without an index); its real shape is ``()``.
    """

    name: str
    dims: tuple
    split: tuple = None
    positive: bool = False
    scalar: bool = False

    def __post_init__(self):
        object.__setattr__(self, "dims", tuple(sp.sympify(d) for d in self.dims))
        if self.split is None:
            object.__setattr__(self, "split", (1,) * len(self.dims))

    @property
    def base(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.name, real=True, **({"positive": True} if self.positive else {}))

    @property
    def runs(self) -> tuple:
        """The index axes each real axis holds: ``((0,), (1, 2), (3,))`` for a grouped channel axis."""
        out, k = [], 0
        for n in self.split:
            out.append(tuple(range(k, k + n)))
            k += n
        return tuple(out)

    @property
    def shape(self) -> tuple:
        """The real (array) shape, products of the split runs."""
        return () if self.scalar else tuple(sp.Mul(*[self.dims[a] for a in run]) for run in self.runs)

    @property
    def viewed(self) -> bool:
        """Whether code reads it through an index-space view (split axes, or a scalar's one axis)."""
        return self.scalar or len(self.split) != len(self.dims)

    def __getitem__(self, idx):
        return self.base[idx]

    def like(self, name: str) -> "Tensor":
        """A tensor of this one's shape named ``name`` (a gradient of it: its elements not known positive)."""
        return Tensor(name, self.dims, self.split, scalar=self.scalar)


@dataclass
class Op:
    """A forward rule in index notation: ``output[indices] = rhs``.

    ``output_sizes`` gives each output size symbol as an expression of the input sizes;
    ``requires`` lists ``(condition, message)`` pairs that concrete sizes must satisfy;
    ``params`` are the user-facing parameters (shown in documents, headers and JSON), ``spec``
    what the op's builder was given as written (e.g. ``padding="same"``), kept for reference;
    ``elementwise`` ops apply to arrays of any shape.  ``batch`` is a size symbol that leads the
    shape of some inputs and of the output and may be left out (PyTorch's unbatched input: a batch
    of one) or be 0; ``empty_ok`` lists other size symbols that may be 0 (NumPy's empty operands).
    ``upstream`` names the upstream gradient ∂ℒ/∂output (``g``; a gradient taken as a rule of its
    own, :mod:`symgrad.second_order`, names its upstream after it: ``ggx`` for ``dx``).  Delta
    elimination solves for the output's indices first, then for those in ``prefer`` (for such a
    gradient's rule, the op's output indices: every axis is then solved the same way, as the first
    order solved them).
    """

    name: str
    params: dict
    inputs: tuple
    output: Tensor
    indices: tuple
    rhs: sp.Expr
    output_sizes: dict = field(default_factory=dict)
    requires: list = field(default_factory=list)
    elementwise: bool = False
    notes: list = field(default_factory=list)
    spec: dict = field(default_factory=dict)
    batch: sp.Symbol = None
    empty_ok: frozenset = frozenset()
    upstream: str = UPSTREAM
    prefer: tuple = ()

    def input(self, name: str) -> Tensor:
        for t in self.inputs:
            if t.name == name:
                return t
        raise SymgradError(f"{self.name}: no input named {name!r}")

    @property
    def tensors(self) -> dict:
        return {t.name: t for t in (*self.inputs, self.output)}

    def specialised(self, sizes: dict) -> "Op":
        """The same rule with the size symbols of ``sizes`` replaced by their values (concrete shapes:
        every expression derived from it is then in numbers)."""
        sub = lambda e: sp.sympify(e).xreplace(sizes)
        tensor = lambda t: Tensor(t.name, tuple(sub(d) for d in t.dims), t.split, t.positive, t.scalar)

        def value(v):  # a parameter: sizes in it (kernel_size) become numbers too
            if isinstance(v, (list, tuple)):
                return type(v)(value(x) for x in v)
            return sub(v) if isinstance(v, sp.Basic) else v
        return Op(self.name, {k: value(v) for k, v in self.params.items()}, tuple(tensor(t) for t in self.inputs),
                  tensor(self.output), tuple(sub(i) for i in self.indices), sub(self.rhs),
                  {k: sub(v) for k, v in self.output_sizes.items()},
                  [(sub(c), m) for c, m in self.requires if sub(c) is not sp.true], self.elementwise,
                  list(self.notes), dict(self.spec), self.batch if self.batch not in sizes else None,
                  frozenset(e for e in self.empty_ok if e not in sizes), self.upstream, self.prefer)


@dataclass(frozen=True)
class Term:
    """One product: ``Σ_{sums} [guards] · Π deltas · factor``.

    ``sums`` holds ``(variable, lo, hi)`` with inclusive bounds; ``deltas`` holds pairs ``(a, b)``
    for ``δ(a, b)``; ``guards`` are conditions on integer indices; ``factor`` is everything else
    (tensor elements, functions of them, constants).
    """

    factor: sp.Expr
    sums: tuple = ()
    guards: tuple = ()
    deltas: tuple = ()

    def replace(self, **kw) -> "Term":
        data = dict(factor=self.factor, sums=self.sums, guards=self.guards, deltas=self.deltas)
        data.update(kw)
        return Term(**data)

    def subs(self, mapping: dict) -> "Term":
        """Substitute index variables everywhere (factor, guards, deltas, bounds)."""
        sub = lambda e: sp.sympify(e).xreplace(mapping) if mapping else e
        return Term(
            factor=sub(self.factor),
            sums=tuple((v, sub(lo), sub(hi)) for v, lo, hi in self.sums if v not in mapping),
            guards=tuple(g for g in (sub(g) for g in self.guards) if g is not sp.true),
            deltas=tuple((sub(a), sub(b)) for a, b in self.deltas),
        )

    @property
    def accesses(self) -> list:
        """The tensor elements the factor reads, in a stable order."""
        return sorted(self.factor.atoms(sp.Indexed), key=sp.default_sort_key)

    def expr(self) -> sp.Expr:
        """The term as one SymPy expression (deltas as KroneckerDelta, guards as brackets)."""
        body = self.factor
        for a, b in self.deltas:
            body = body * sp.KroneckerDelta(a, b, evaluate=False)
        for g in self.guards:
            body = body * Bracket(g, evaluate=False)
        if self.sums:
            body = sp.Sum(body, *[(v, lo, hi) for v, lo, hi in self.sums])
        return body


def plain(e):
    """Replace every ``Idx`` by its label symbol (ranges live in ``Term.sums``).

    >>> plain(index("i", 3) + 1)
    i + 1
    """
    e = sp.sympify(e)
    idxs = e.atoms(sp.Idx)
    return e.xreplace({i: i.label for i in idxs}) if idxs else e


def upstream(op: Op) -> Tensor:
    """The upstream gradient g = ∂ℒ/∂Y: a tensor of the output's shape (named ``op.upstream``)."""
    return op.output.like(op.upstream)


def grad_indices(t: Tensor, taken=frozenset()) -> tuple:
    """Fresh index symbols for the element of ``t`` we differentiate by: ``j_0, j_1, …``, or
    ``p_0, …`` (then ``q_0, …``) where the rule already uses the j's (a gradient taken as a rule)."""
    names = {str(s) for s in taken}
    for stem in ("j", "p", "q", "jj"):
        if not any(f"{stem}_{k}" in names for k in range(len(t.dims))):
            break
    return tuple(sp.Symbol(f"{stem}_{k}", integer=True) for k in range(len(t.dims)))
