"""Recognise a delta-free term as a closed form.  Recognisers are tried in order, first match wins;
``generic`` (gather + sum over index grids) is the named fallback and is always correct.
"""
from __future__ import annotations

import sympy as sp

from .forms import Form, constant_scale, plain_var
from .ir import Step, Term
from .recognise_conv import match_conv


def _plain_access(access, tensors) -> list | None:
    """Index vars of an access, None per size-1 axis read at 0; None if any index is composite."""
    t = tensors[access.base.name]
    out = []
    for e, dim in zip(access.indices, t.dims):
        if plain_var(e) is not None:
            out.append(e)
        elif e == 0 and dim == 1:
            out.append(None)
        else:
            return None
    return out


def _subscripts(accesses, tensors, out_vars):
    plain = [_plain_access(a, tensors) for a in accesses]
    if any(p is None for p in plain):
        return None
    for p in plain:
        named = [v for v in p if v is not None]
        if len(set(named)) != len(named):
            return None  # a diagonal x[i, i] is not one of these forms
    return plain


def match_elementwise(term: Term, tensors, out_vars, target):
    if term.sums or term.guards:
        return None
    accesses = term.accesses
    plain = _subscripts(accesses, tensors, out_vars)
    if plain is None or any(v not in out_vars for p in plain for v in p if v is not None):
        return None
    operands = [{"tensor": a.base.name, "vars": p} for a, p in zip(accesses, plain)]
    return Form("elementwise", {"expr": term.factor, "operands": [a.base.name for a in accesses]}, term,
                layout={"operands": operands})


def match_reduce(term: Term, tensors, out_vars, target):
    scale, rest = constant_scale(term.factor)
    if not term.sums or term.guards or not isinstance(rest, sp.Indexed):
        return None
    plain = _subscripts([rest], tensors, out_vars)
    sums = {v for v, _, _ in term.sums}
    if plain is None or set(v for v in plain[0] if v is not None) - sums - set(out_vars):
        return None
    if sums - set(plain[0]):
        return None  # a sum over a variable nothing reads: a count, not a reduction
    axes = [k for k, v in enumerate(plain[0]) if v in sums or v is None]
    return Form("reduce_sum", {"operand": rest.base.name, "axes": axes, "scale": scale}, term,
                layout={"operands": [{"tensor": rest.base.name, "vars": plain[0]}]})


def match_matmul(term: Term, tensors, out_vars, target):
    scale, rest = constant_scale(term.factor)
    if term.guards or not isinstance(rest, sp.Mul) or len(rest.args) != 2:
        return None
    if not all(isinstance(a, sp.Indexed) for a in rest.args) or rest.args[0].base == rest.args[1].base:
        return None
    order = list(tensors)  # the op's inputs in order, then its output, then g
    lhs, rhs = sorted(rest.args, key=lambda a: order.index(a.base.name))
    plain = _subscripts([lhs, rhs], tensors, out_vars)
    if plain is None:
        return None
    pl, pr = ([v for v in p if v is not None] for p in plain)
    sums = {v for v, _, _ in term.sums}
    if any(v not in sums and v not in out_vars for v in pl + pr):
        return None
    contract = [v for v in pl if v in sums and v in pr]
    if not contract:
        return None
    batch = [v for v in out_vars if v in pl and v in pr]
    fields = {
        "lhs": lhs.base.name, "rhs": rhs.base.name,
        "dimension_numbers": [[[plain[0].index(v) for v in contract], [plain[1].index(v) for v in contract]],
                              [[plain[0].index(v) for v in batch], [plain[1].index(v) for v in batch]]],
        "einsum": _einsum(plain, out_vars), "scale": scale,
    }
    operands = [{"tensor": lhs.base.name, "vars": plain[0]}, {"tensor": rhs.base.name, "vars": plain[1]}]
    return Form("matmul", fields, term, layout={"operands": operands})


def _einsum(plain, out_vars):
    letters = {}
    for v in [*out_vars, *(v for p in plain for v in p if v is not None)]:
        letters.setdefault(v, "abcdefghijklmnopqrstuvwxyz"[len(letters)])
    spec = lambda vs: "".join("1" if v is None else letters[v] for v in vs)
    return f"{spec(plain[0])},{spec(plain[1])}->{spec(out_vars)}"


def generic(term: Term, tensors, out_vars, target, reason: str) -> Form:
    return Form("generic", {"reason": reason, "method": "gather + sum over index grids"}, term)


RECOGNISERS = [
    ("conv_general_dilated", match_conv),
    ("matmul", match_matmul),
    ("elementwise", match_elementwise),
    ("reduce_sum", match_reduce),
]


def recognise(term: Term, tensors: dict, out_vars: tuple, target) -> Form:
    """The first form whose recogniser accepts ``term``; else the ``generic`` fallback."""
    for _name, matcher in RECOGNISERS:
        form = matcher(term, tensors, out_vars, target)
        if form is not None:
            form.steps.insert(0, Step("recognise", f"The term has the shape of a {form.kind}.", term, form))
            return form
    form = generic(term, tensors, out_vars, target, "no closed form matched")
    form.steps.append(Step("recognise", "No closed form matched; the named generic fallback computes it "
                                        "by gathering over the index grid.", term, form))
    return form
