"""``conv_general_dilated``: ``Σ P[…] · Q[…]`` with affine spatial indices, recognised as
``jax.lax.conv_general_dilated`` and computed by the runtime's implementation of it.

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
from ..ir import Term
from ..printing.latex import tex
from ..printing.text import shape_code, size_code, text
from ..runtime import conv as runtime_conv
from ..runtime import flat_shift
from ..steps import Substituted
from .form import Code, Form, Kind, constant_scale, plain_var, scaled

SPATIAL_LETTERS = {1: "W", 2: "HW", 3: "DHW"}
MORE_LETTERS = "ABEFGJKLMPQRSTUVXYZ"


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
            if den == 1 and abs(sp.diff(e, t)) == 1 and sp.diff(e, o) != 0:
                todo = (acc, axis, e, t)
                break
            return None
        if todo is None:
            return term, comps, steps
        term, step = _reindex(term, *todo, tensors, free_ranges)
        steps.append(step)
    return None


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
    specs = _dimension_numbers(lhs, rhs, L, R, target, out_vars, sums, pairs)
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
    if specs.get("rhs_regroup"):
        fields["rhs_regroup"] = specs["rhs_regroup"]
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


# How the runtime computes a form: one clause per path of runtime/conv.py's dispatch.
_PATHS = {
    runtime_conv._output_phases: "by output phase (no zero insertion): each phase of the output a unit-stride "
                                 "convolution of the undilated input with the taps that reach it",
    flat_shift._flat_shift_taps: "one GEMM per kernel tap on the flattened padded input (no im2col copy)",
    flat_shift._flat_shift_outputs: "one GEMM per output position when there are fewer outputs than kernel taps "
                                    "(a weight gradient)",
    runtime_conv._im2col: "im2col windows and one GEMM per group",
}


def _all_one(values) -> bool:
    return all(sp.sympify(v) == 1 for v in values)


class ConvGeneralDilated(Kind):
    name = "conv_general_dilated"
    fresh_result = True
    numeric_fields = ("window_strides", "padding", "lhs_dilation", "rhs_dilation", "feature_group_count",
                      "batch_group_count", "rhs_regroup", "scale")

    match = staticmethod(match_conv)

    def code(self, form, target):
        f = form.fields
        rhs_spec, rhs, lines = f["dimension_numbers"][1], f["rhs"], []
        rev = [rhs_spec.index(c) for c, r in zip([c for c in rhs_spec if c not in "OI"], f["rhs_reverse"]) if r]
        kernel = f"xp.flip({rhs}, axis={tuple(rev)})" if rev else rhs
        if "rhs_regroup" in f:
            rg = f["rhs_regroup"]
            kernel = f"regroup({kernel}, {size_code(rg['groups'])}, {rg['from_axis']}, {rg['to_axis']})"
        if kernel != rhs:
            lines.append(f"{rhs}_kernel = {kernel}")
            rhs = f"{rhs}_kernel"
        pads = "(" + "".join(f"({size_code(lo)}, {size_code(hi)}), " for lo, hi in f["padding"]) + ")"
        call = (f"conv_general_dilated({f['lhs']}, {rhs}, window_strides={shape_code(f['window_strides'])}, "
                f"padding={pads}, lhs_dilation={shape_code(f['lhs_dilation'])}, "
                f"rhs_dilation={shape_code(f['rhs_dilation'])}, "
                f"dimension_numbers={tuple(f['dimension_numbers'])!r}, "
                f"feature_group_count={size_code(f['feature_group_count'])}, "
                f"batch_group_count={size_code(f['batch_group_count'])})")
        call = scaled(call, f, target.backend.make_printer())
        lines.append(f"{target.out} = {call}.reshape{shape_code(target.tensor.dims)}")
        return Code(tuple(lines), frozenset({"conv"}))

    def describe(self, form):
        f = form.fields
        out = [f"a convolution of {f['lhs']} (input) with {f['rhs']} (kernel), dimension numbers "
               f"{tuple(f['dimension_numbers'])}"]
        lhs_spec = f["dimension_numbers"][0]
        if lhs_spec.find("N") > lhs_spec.find("C") >= 0:
            out.append(f"batch and channel axes of {f['lhs']} swapped ({lhs_spec})")
        for k, (ws, ld, rd, (lo, hi), rev) in enumerate(zip(f["window_strides"], f["lhs_dilation"], f["rhs_dilation"],
                                                          f["padding"], f["rhs_reverse"])):
            parts = [f"window stride {text(ws)}", f"kernel dilation {text(rd)}"]
            if ld != 1:
                parts.append(f"{text(ld)}−1 zeros inserted between elements of {f['lhs']} (lhs dilation {text(ld)}: "
                             "a transposed convolution)")
            if rev:
                parts.append("kernel reversed")
            negative = any(sp.sympify(v).is_negative for v in (lo, hi))
            parts.append(f"padding ({text(lo)}, {text(hi)})" + (" — negative values crop" if negative else ""))
            out.append(f"spatial axis {k + 1}: " + ", ".join(parts))
        if f["feature_group_count"] != 1:
            out.append(f"feature_group_count {text(f['feature_group_count'])}")
        if f["batch_group_count"] != 1:
            out.append(f"batch_group_count {text(f['batch_group_count'])} (forward groups become batch groups)")
        if "rhs_regroup" in f:
            rg = f["rhs_regroup"]
            out.append(f"kernel regrouped: the group factor of axis {rg['from_axis']} moves onto axis {rg['to_axis']} "
                       "(in/out channels swapped within each group)")
        return out

    def formulation(self, form, backend, blockwise=False, jit=False):
        f = form.fields
        batch_groups = sp.sympify(f["batch_group_count"])
        clauses = []
        if runtime_conv._by_output_phases(f["window_strides"], f["lhs_dilation"], batch_groups):
            clauses.append(_PATHS[runtime_conv._output_phases] + ", in turn")
        elif not _all_one(f["lhs_dilation"]):
            clauses.append("on the zero-inserted input (lhs_dilation)")
        outputs = _PATHS[flat_shift._flat_shift_outputs]
        if not _all_one(f["rhs_dilation"]):
            outputs += ", the input split into the phases of the kernel dilation"
        few_taps = _PATHS[runtime_conv._im2col if batch_groups != 1 else flat_shift._flat_shift_taps]
        if not _all_one(f["window_strides"]) and batch_groups == 1:
            few_taps += ", the input split into its window-stride phases"
        clauses.append(f"{outputs}, else {few_taps}")
        return "; ".join(clauses) + f"; {backend.conv_runs}"

    def relate(self, name, form, forward):
        """Sentences (LaTeX math) comparing this gradient's convolution with the forward one."""
        fwd = next((f for f in forward if f.kind == self.name), None)
        if fwd is None:
            return []
        F, f = fwd.fields, form.fields
        tup = lambda values: tex(values[0]) if len(values) == 1 else tex(sp.Tuple(*values))
        lead = f"$\\partial L/\\partial {name}$"
        out = []
        if f["window_strides"] == F["rhs_dilation"] and f["rhs_dilation"] == F["window_strides"] \
                and F["window_strides"] != F["rhs_dilation"]:
            out.append(f"{lead}: the forward stride ${tup(F['window_strides'])}$ becomes the kernel "
                       f"dilation and the forward dilation ${tup(F['rhs_dilation'])}$ the window "
                       "stride — stride and dilation trade places.")
        lhs_spec = f["dimension_numbers"][0]
        if "N" in lhs_spec and "C" in lhs_spec and lhs_spec.index("C") < lhs_spec.index("N"):
            out.append(f"{lead}: the batch and channel axes of ${f['lhs']}$ are swapped "
                       f"(\\texttt{{{lhs_spec}}}); the upstream gradient plays the kernel.")
        if any(ld != 1 for ld in f["lhs_dilation"]):
            los = [tex(p[0]) for p in f["padding"]]
            out.append(f"{lead}: ${f['lhs']}$ is dilated by the forward stride — "
                       f"${tup(f['lhs_dilation'])} - 1$ zeros between its elements — then padded by "
                       f"${', '.join(los)}$ on the low side ($K' - 1 - p^{{\\mathrm{{lo}}}}$ with $K'$ the dilated "
                       "kernel), and convolved with stride 1 and the reversed kernel: the transposed convolution "
                       f"(conv\\_transpose with stride ${tup(F['window_strides'])}$; for symmetric "
                       "padding its output padding is the high minus the low padding shown in the table).")
        elif any(f["rhs_reverse"]):
            out.append(f"{lead}: a convolution with the reversed kernel.")
        highs = [sp.sympify(p[1]) for p in f["padding"]]
        if any(h.free_symbols for h in highs) and name != "x" or any(h.is_negative for h in highs):
            out.append(f"{lead}: the high padding can be negative — a crop — when the forward pass never read "
                       "the trailing input (stride and kernel leave it untouched).")
        return out


CONV = ConvGeneralDilated()
