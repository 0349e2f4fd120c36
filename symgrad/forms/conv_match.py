"""The recogniser of ``conv_general_dilated`` forms: ``Σ P[…] · Q[…]`` with affine spatial indices read
as ``jax.lax.conv_general_dilated``.

Per spatial axis XLA computes ``out[o] = Σ_t lhs′[ws·o + rd·t] · rhs[t]`` where ``lhs′`` is the
lhs dilated by ``ld`` (zeros between elements) and padded by ``(plo, phi)``: reading ``lhs′`` at
``p`` reads ``lhs[(p − plo)/ld]`` where ``ld`` divides ``p − plo`` and the quotient is in range,
else 0.  So a term matches when one operand (rhs) is read at a bare summation index ``t`` and the
other (lhs) at ``(ws·o + rd·t − plo)/ld`` with ``ws, rd > 0``, guarded only by that read's
divisibility and range.  Two changes of variable bring a term into that shape:

* flip ``t → K−1−t′`` when ``t`` enters the lhs read with a negative coefficient: the kernel
  reversal (``rhs_reverse``) of a transposed convolution;
* re-index ``t′ = (read of one operand)`` when that read has a unit coefficient in ``t``, which
  makes that operand the one read bare (needed when the other read runs backwards in ``o``).

Batch/feature/group axes are read off which operands share which plain indices: a plain index in
lhs and out is a batch axis, in rhs and out an output feature, summed in both the input feature,
and in all three a group axis (→ ``feature_group_count`` when it sits on the lhs feature axis,
``batch_group_count`` when on the lhs batch axis).
"""
from __future__ import annotations

import sympy as sp

from ..engine.deltas import prune
from ..ir import Tensor, Term
from ..steps import Substituted
from .form import Form, constant_scale, plain_var


#: the constant kernel of a window sum (pooling) as a form's rhs: a tensor of ones the code makes
ONES = "ones"
SPATIAL_LETTERS = {1: "W", 2: "HW", 3: "DHW"}
MORE_LETTERS = "ABDEFGHJKLMPQRSTUVWXYZ"  # every letter but N, C, O and I: 22 spatial axes


def spatial_letters(n: int) -> str:
    return SPATIAL_LETTERS.get(n, MORE_LETTERS[:n])


def _composites(term, out_vars, sums):
    """[(operand, axis, expr, o, t)] for every read that mixes one output and one summed index."""
    found = []
    for acc in term.accesses:
        for axis, e in enumerate(acc.indices):
            if plain_var(e) is not None or e.is_Integer:
                continue
            vs = e.free_symbols & (set(out_vars) | set(sums))
            os_, ts = [v for v in vs if v in out_vars], [v for v in vs if v in sums]
            if len(os_) != 1 or len(ts) != 1:
                return None
            found.append((acc, axis, e, os_[0], ts[0]))
    return found


def _bare_axis(access, t):
    hits = [k for k, e in enumerate(access.indices) if e == t]
    return hits[0] if len(hits) == 1 else None


def _reindex(term, acc, axis, e, t, tensors, free_ranges):
    """Sum over u = e instead of t (|∂e/∂t| = 1); t's old range becomes a guard."""
    ct = sp.diff(e, t)
    u = sp.Symbol(f"{t.name}'", integer=True)
    t_of_u = sp.expand((u - (e - ct * t)) / ct)
    lo, hi = next((lo, hi) for v, lo, hi in term.sums if v == t)
    dim = tensors[acc.base.name].dims[axis]
    sums = tuple((u, 0, dim - 1) if v == t else (v, a, b) for v, a, b in term.sums)
    new = Term(term.factor, sums, term.guards + (sp.Le(lo, t_of_u), sp.Le(t_of_u, hi)), term.deltas)
    new = new.subs({t: t_of_u})
    new = new.replace(sums=sums)
    step = Substituted("change of variable", f"Sum over {u} = {e} (the index of {acc.base.name}) instead of {t}.",
                       term, new, {u: e})
    return prune(new, free_ranges), step


def _orient(term, tensors, out_vars, free_ranges):
    """Re-index until every composite read pairs with a bare read of its summed index."""
    steps = []
    for _ in range(8):
        sums = {v: (lo, hi) for v, lo, hi in term.sums}
        comps = _composites(term, out_vars, sums)
        if comps is None:
            return None
        todo = None
        for acc, axis, e, o, t in comps:
            other = next(a for a in term.accesses if a is not acc)
            b = _bare_axis(other, t)
            numer, den = sp.fraction(sp.together(e))
            ok_range = b is not None and sums[t] == (0, tensors[other.base.name].dims[b] - 1)
            if ok_range and sp.diff(numer, o).is_positive:
                continue
            if abs(sp.diff(numer, t)) == 1 and sp.diff(numer, o) != 0 and (den == 1 or _divides(term, numer, den)):
                todo = (acc, axis, e, t)  # every integer index of acc comes from one t: sum over it instead
                break
            return None
        if todo is None:
            return term, comps, steps
        term, step = _reindex(term, *todo, tensors, free_ranges)
        steps.append(step)
    return None


def _divides(term, numer, den) -> bool:
    """Does a guard of ``term`` say that ``den`` divides ``numer`` (so numer/den is an integer)?"""
    return any(isinstance(g, sp.Eq) and isinstance(g.lhs, sp.Mod) and g.rhs == 0 and g.lhs.args[1] == den
               and sp.expand((g.lhs.args[0] - numer) / den).is_integer for g in term.guards)


def _multiple_of(e, den, index_vars) -> bool:
    """Is ``e`` an integer multiple of ``den`` for every integer index (SymPy reduces Mod's argument)?"""
    q = sp.expand(e / den)
    if q == 0:
        return True
    vars_ = sorted(q.free_symbols & {index_vars["o"], index_vars["t"]}, key=str)
    poly = sp.Poly(q, *vars_) if vars_ else None
    coeffs = poly.coeffs() if poly is not None else [q]
    return all(c.is_integer for c in coeffs)


def _guard_ok(g, pairs):
    """Is ``g`` the divisibility or the range condition of one lhs read (implied by conv semantics)?"""
    for p in pairs:
        if not (g.free_symbols & {p["o"], p["t"]}) or g.free_symbols & p["others"]:
            continue
        value, numer, den, dim = p["value"], p["numer"], p["den"], p["lhs_dim"]
        if isinstance(g, sp.Eq) and isinstance(g.lhs, sp.Mod) and g.rhs == 0:
            return g.lhs.args[1] == den and _multiple_of(sp.expand(g.lhs.args[0] - numer), den, index_vars=p)
        if isinstance(g, (sp.Ge, sp.Gt)):
            g = g.reversed
        if not isinstance(g, (sp.Le, sp.Lt)):
            return False
        gap = g.rhs - g.lhs  # >= 0, or > 0 when strict
        strict = isinstance(g, sp.Lt)
        k = sp.expand(gap - value)
        if not k.free_symbols & {p["o"], p["t"]}:  # value + k >= 0 : a lower bound
            return sp.expand(k - (1 if strict else 0)) == 0
        k = sp.expand(gap + value)
        if not k.free_symbols & {p["o"], p["t"]}:  # k - value >= 0 : an upper bound
            return sp.expand(k - (dim if strict else dim - 1)) == 0
        return False
    return False


def match_window_sum(term: Term, tensors, out_vars, target):
    """``Σ_t c · P[…, s·o + d·t − p, …]``: one operand summed over window taps with no kernel (average
    pooling, its gradient) is a depthwise convolution of P with a kernel of ones.  Read as
    ``match_conv`` reads ``Σ_t P[…] · ones[t]``, P's pass-through axes its batch and channels."""
    _, rest = constant_scale(term.factor)
    if not isinstance(rest, sp.Indexed) or not term.sums or ONES in tensors or any(lo != 0 for _, lo, _ in term.sums):
        return None
    kernel = Tensor(ONES, tuple(hi + 1 for _, _, hi in term.sums))
    taps = tuple(v for v, _, _ in term.sums)
    return match_conv(term.replace(factor=term.factor * kernel[taps]), {**tensors, ONES: kernel}, out_vars, target)


def match_conv(term: Term, tensors, out_vars, target):
    scale, rest = constant_scale(term.factor)
    if not (isinstance(rest, sp.Mul) and len(rest.args) == 2 and all(isinstance(a, sp.Indexed) for a in rest.args)):
        return None
    if rest.args[0].base == rest.args[1].base:
        return None
    free_ranges = {v: (0, d - 1) for v, d in zip(out_vars, target.dims)}
    oriented = _orient(term, tensors, out_vars, free_ranges)
    if oriented is None:
        return None
    term, comps, steps = oriented
    if not comps or len({c[0].base for c in comps}) != 1:
        return None
    lhs = comps[0][0]
    rhs = next(a for a in term.accesses if a is not lhs)
    L, R = tensors[lhs.base.name], tensors[rhs.base.name]
    sums = {v: (lo, hi) for v, lo, hi in term.sums}
    index_vars = set(out_vars) | set(sums)

    pairs = []
    for acc, axis, e, o, t in sorted(comps, key=lambda c: list(out_vars).index(c[3])):
        numer, den = sp.fraction(sp.together(e))
        co, ct = sp.diff(numer, o), sp.diff(numer, t)
        if not (co.is_positive and den.is_positive and ct.is_nonzero and ct.is_positive is not None):
            return None
        b = _bare_axis(rhs, t)
        K = R.dims[b]
        flipped = bool(ct.is_negative)
        c0 = sp.expand(numer - co * o - ct * t)
        plo = sp.expand(-(c0 + ct * (K - 1))) if flipped else -c0
        rd = abs(ct)
        out_size = target.dims[list(out_vars).index(o)]
        lhs_dim = L.dims[axis]
        phi = sp.expand((out_size - 1) * co + (K - 1) * rd + 1 - plo - ((lhs_dim - 1) * den + 1))
        pairs.append(dict(o=o, t=t, lhs_axis=axis, rhs_axis=b, numer=numer, den=den, value=e, lhs_dim=lhs_dim,
                          ws=co, rd=rd, ld=den, padding=[plo, phi], flipped=flipped,
                          others=index_vars - {o, t}))
    if not all(_guard_ok(g, pairs) for g in term.guards):
        return None
    if any(p["den"] != 1 for p in pairs) and not all(
            any(isinstance(g, sp.Eq) and isinstance(g.lhs, sp.Mod) and g.free_symbols & {p["o"]} for g in term.guards)
            for p in pairs if p["den"] != 1):
        return None
    numbers = _window_sum_numbers if rhs.base.name == ONES else _dimension_numbers
    specs = numbers(lhs, rhs, L, R, target, out_vars, sums, pairs)
    if specs is None:
        return None
    if any(p["flipped"] for p in pairs):
        flip = {p["t"]: R.dims[p["rhs_axis"]] - 1 - sp.Symbol(f"{p['t'].name}'", integer=True) for p in pairs if p["flipped"]}
        flipped_term = term.subs(flip).replace(
            sums=tuple((sp.Symbol(f"{v.name}'", integer=True), lo, hi) if v in flip else (v, lo, hi)
                       for v, lo, hi in term.sums))
        steps.append(Substituted("flip the kernel", "Substituting " + ", ".join(f"{t} = {e}" for t, e in flip.items())
                                 + " makes the summed index enter with a positive coefficient: the kernel is read "
                                 "reversed.", term, flipped_term, flip, flip=True))
        term = flipped_term
    fields = {
        "lhs": lhs.base.name, "rhs": rhs.base.name,
        "rhs_reverse": [p["flipped"] for p in pairs],
        "window_strides": [p["ws"] for p in pairs],
        "padding": [p["padding"] for p in pairs],
        "lhs_dilation": [p["ld"] for p in pairs],
        "rhs_dilation": [p["rd"] for p in pairs],
        "dimension_numbers": specs["dimension_numbers"],
        "feature_group_count": specs["feature_group_count"],
        "batch_group_count": specs["batch_group_count"],
    }
    for key in ("rhs_regroup", "rhs_shape"):
        if specs.get(key):
            fields[key] = specs[key]
    if scale != 1:
        fields["scale"] = scale
    return Form("conv_general_dilated", fields, term, steps=steps)


def _dimension_numbers(lhs, rhs, L, R, target, out_vars, sums, pairs):
    """lhs/rhs/out specs over real axes, group counts and any rhs regrouping; None if no fit."""
    letters = spatial_letters(len(pairs))
    spatial_lhs = {p["lhs_axis"]: letters[k] for k, p in enumerate(pairs)}
    spatial_rhs = {p["rhs_axis"]: letters[k] for k, p in enumerate(pairs)}
    spatial_out = {list(out_vars).index(p["o"]): letters[k] for k, p in enumerate(pairs)}
    lv = {e: k for k, e in enumerate(lhs.indices) if plain_var(e) is not None}
    rv = {e: k for k, e in enumerate(rhs.indices) if plain_var(e) is not None and k not in spatial_rhs}
    if len(lv) + len(spatial_lhs) != len(lhs.indices) or len(rv) + len(spatial_rhs) != len(rhs.indices):
        return None
    role = {}
    for v in set(lv) | set(rv) | set(out_vars):
        if v in {p["o"] for p in pairs} or v in {p["t"] for p in pairs}:
            continue
        where = (v in lv, v in rv, v in out_vars, v in sums)
        role[v] = {(True, True, True, False): "group", (True, False, True, False): "N",
                   (False, True, True, False): "O", (True, True, False, True): "I"}.get(where)
        if role[v] is None:
            return None
    groups = [v for v, r in role.items() if r == "group"]
    if len(groups) > 1 or any(list(role.values()).count(r) > 1 for r in ("N", "O", "I")):
        return None
    gvar = groups[0] if groups else None
    gcount = target.dims[list(out_vars).index(gvar)] if gvar is not None else 1
    lhs_letter = {"N": "N", "I": "C"}
    out_letter = {"N": "N", "O": "C"}

    def spec(tensor, index_of, spatial, letter_of):
        text, merged = "", None
        for run in tensor.runs:
            vs = [e for e in (index_of.get(ax) for ax in run)]
            if len(run) == 1 and run[0] in spatial:
                text += spatial[run[0]]
                continue
            if any(v is None for v in vs) or len(vs) > 2:
                return None, None
            if len(vs) == 2:
                if vs[0] != gvar:
                    return None, None
                merged = role[vs[1]]
            elif vs[0] == gvar:
                return None, None
            text += letter_of[role[vs[-1]]]
        return text, merged

    inv = lambda d: {k: v for v, k in d.items()}
    lhs_spec, lhs_merge = spec(L, inv(lv), spatial_lhs, lhs_letter)
    rhs_spec, rhs_merge = spec(R, inv(rv), spatial_rhs, {"O": "O", "I": "I"})
    out_spec, out_merge = spec(target, dict(enumerate(out_vars)), spatial_out, out_letter)
    if None in (lhs_spec, rhs_spec, out_spec):
        return None
    result = {"feature_group_count": 1, "batch_group_count": 1}
    if gvar is not None:
        if out_merge != "O" or lhs_merge not in ("I", "N") or rhs_merge not in ("O", "I"):
            return None
        result["feature_group_count" if lhs_merge == "I" else "batch_group_count"] = gcount
        if rhs_merge == "I":  # the group factor sits on rhs's I axis; XLA wants it on O
            result["rhs_regroup"] = {"groups": gcount, "from_axis": rhs_spec.index("I"), "to_axis": rhs_spec.index("O")}
    result["dimension_numbers"] = [lhs_spec, rhs_spec, out_spec]
    return result


def _window_sum_numbers(lhs, rhs, L, R, target, out_vars, sums, pairs):
    """The specs of a window sum: P's one or two pass-through axes (in out) are its channels, or its
    batch and channels; the ones kernel has one output channel per input channel (depthwise)."""
    letters = spatial_letters(len(pairs))
    spatial = {p["lhs_axis"]: letters[k] for k, p in enumerate(pairs)}
    through = [e for k, e in enumerate(lhs.indices) if k not in spatial]
    if any(plain_var(e) is None or e not in out_vars or e in sums for e in through) or not 1 <= len(through) <= 2 \
            or len(L.split) != len(L.dims) or len(target.split) != len(target.dims):
        return None
    spatial_out = {list(out_vars).index(p["o"]): letters[k] for k, p in enumerate(pairs)}
    if {v for k, v in enumerate(out_vars) if k not in spatial_out} != set(through):
        return None
    letter = dict(zip(through, "NC" if len(through) == 2 else "C"))
    lhs_spec = "".join(spatial[k] if k in spatial else letter[e] for k, e in enumerate(lhs.indices))
    out_spec = "".join(spatial_out[k] if k in spatial_out else letter[v] for k, v in enumerate(out_vars))
    by_axis = {p["rhs_axis"]: (letters[k], R.dims[p["rhs_axis"]]) for k, p in enumerate(pairs)}
    channels = target.dims[list(out_vars).index(through[-1])]
    return {"feature_group_count": channels, "batch_group_count": 1,
            "dimension_numbers": [lhs_spec, "OI" + "".join(by_axis[a][0] for a in sorted(by_axis)), out_spec],
            "rhs_shape": [channels, 1] + [by_axis[a][1] for a in sorted(by_axis)]}
