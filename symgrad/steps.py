"""What each stage of a derivation did, as typed records: the documents render these, so a
derivation document shows the steps the engine really took."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp


@dataclass(frozen=True)
class Step:
    """One stage's record: a short name and a sentence saying what it did."""

    name: str
    text: str


@dataclass(frozen=True)
class ChainRule(Step):
    """``∂ℒ/∂X[j] = Σ_out g[out] · ∂Y[out]/∂X[j]``, as one SymPy expression."""

    expr: sp.Expr


@dataclass(frozen=True)
class Differentiated(Step):
    """The terms ``sympy.diff`` gave, Kronecker deltas still in them."""

    terms: tuple


@dataclass(frozen=True)
class Dropped(Step):
    """Factors removed as zero almost everywhere (DiracDelta, the derivative of a step)."""

    what: str


@dataclass(frozen=True)
class Solution:
    """A delta solved for a summation variable: ``variable = value`` where ``guards`` hold."""

    variable: sp.Symbol
    value: sp.Expr
    guards: tuple


@dataclass(frozen=True)
class Eliminated(Step):
    """Delta elimination: the terms before and after, and each solution it used."""

    before: tuple
    after: tuple
    solved: tuple


@dataclass(frozen=True)
class Substituted(Step):
    """A change of the summed variable on the way to a closed form: ``substitution`` maps the new
    variable to its old expression (re-indexing) or the old one to its new (``flip``)."""

    before: object
    after: object
    substitution: dict
    flip: bool = False


@dataclass(frozen=True)
class Recognised(Step):
    """The closed form a term was recognised as (``kind``), or the named generic fallback."""

    kind: str


@dataclass(frozen=True)
class Rewritten(Step):
    """A pointwise term rewritten for floating point (:mod:`symgrad.engine.stable`): the rules used."""

    before: object
    after: object
    rules: tuple
