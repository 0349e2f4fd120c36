"""``conv_general_dilated``: a term recognised as ``jax.lax.conv_general_dilated`` (:mod:`conv_match`
reads its fields off the index expressions), computed by the runtime's implementation of it
(``symgrad/runtime/conv.py``; ``plain_conv.py`` where a NumPy module's lhs is undilated and its batch
ungrouped), described, and related to the forward's convolution."""
from __future__ import annotations

import sympy as sp

from ..printing.latex import tex
from ..printing.text import shape_code, size_code, text, tuple_code
from ..runtime import conv as runtime_conv
from ..runtime import flat_shift
from .conv_match import ONES, match_conv, match_window_sum
from .form import Code, Kind, scaled


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


def _torch_call(f) -> str:
    """The torch call that computes a form (runtime/torch/conv.py's choice, read off the fields)."""
    n = len(f["window_strides"])
    if not _all_one(f["lhs_dilation"]) and _all_one(f["window_strides"]):
        call = (f"torch.nn.functional.conv_transpose{n}d with stride {tuple(f['lhs_dilation'])} (the kernel reversed, "
                "in and out channels swapped within each group)")
    elif _all_one(f["lhs_dilation"]) and sp.sympify(f["feature_group_count"]) == 1:
        groups = ", the batch groups as the layer's groups" if sp.sympify(f["batch_group_count"]) != 1 else ""
        return (f"torch.nn.grad.conv{n}d_weight where its kernel is larger than its output (a weight gradient: batch "
                f"and channel axes swapped{groups}), else torch.nn.functional.conv{n}d")
    else:
        call = f"torch.nn.functional.conv{n}d"
    if sp.sympify(f["batch_group_count"]) != 1:
        call += ", the batch groups folded into feature groups"
    return call


class ConvGeneralDilated(Kind):
    name = "conv_general_dilated"
    reads_views = False  # (its groups are conv_general_dilated's feature and batch group counts)
    fresh_result = True
    numeric_fields = ("window_strides", "padding", "lhs_dilation", "rhs_dilation", "feature_group_count",
                      "batch_group_count", "rhs_regroup", "rhs_shape", "scale")

    def match(self, term, tensors, out_vars, target):
        return match_conv(term, tensors, out_vars, target) or match_window_sum(term, tensors, out_vars, target)

    def code(self, form, target):
        f = form.fields
        rhs_spec, rhs, lines, pieces = f["dimension_numbers"][1], f["rhs"], [], {"conv"}
        rev = [rhs_spec.index(c) for c, r in zip([c for c in rhs_spec if c not in "OI"], f["rhs_reverse"]) if r]
        kernel = target.backend.flipped(rhs, rev) if rev else rhs
        if rhs == ONES:  # a window sum: the kernel is ones, the same reversed
            kernel = target.backend.new("ones", shape_code(f["rhs_shape"]), f["lhs"])
        if "rhs_regroup" in f:
            pieces.add("regroup")
            rg = f["rhs_regroup"]
            kernel = f"regroup({kernel}, {size_code(rg['groups'])}, {rg['from_axis']}, {rg['to_axis']})"
        if kernel != rhs:
            lines.append(f"{rhs}_kernel = {kernel}")
            rhs = f"{rhs}_kernel"
        pads = tuple_code(f"({size_code(lo)}, {size_code(hi)})" for lo, hi in f["padding"])
        if target.backend.plain_conv and _all_one(f["lhs_dilation"]) and _all_one([f["batch_group_count"]]):
            pieces = (pieces - {"conv"}) | {"plain_conv"}
            call = (f"plain_conv({f['lhs']}, {rhs}, window_strides={shape_code(f['window_strides'])}, "
                    f"padding={pads}, rhs_dilation={shape_code(f['rhs_dilation'])}, "
                    f"dimension_numbers={tuple(f['dimension_numbers'])!r}, "
                    f"feature_group_count={size_code(f['feature_group_count'])})")
        else:
            call = (f"conv_general_dilated({f['lhs']}, {rhs}, window_strides={shape_code(f['window_strides'])}, "
                    f"padding={pads}, lhs_dilation={shape_code(f['lhs_dilation'])}, "
                    f"rhs_dilation={shape_code(f['rhs_dilation'])}, "
                    f"dimension_numbers={tuple(f['dimension_numbers'])!r}, "
                    f"feature_group_count={size_code(f['feature_group_count'])}, "
                    f"batch_group_count={size_code(f['batch_group_count'])})")
        call = scaled(call, f, target.backend.make_printer())
        lines.append(f"{target.out} = {call}.reshape{shape_code(target.tensor.dims)}")
        return Code(tuple(lines), frozenset(pieces))

    def describe(self, form, show=None):
        f = form.fields
        show = show or text
        kernel = f"a kernel of ones of shape ({', '.join(show(sp.sympify(d)) for d in f['rhs_shape'])}) (a window sum)" \
            if f["rhs"] == ONES else f"{f['rhs']} (kernel)"
        out = [f"a convolution of {f['lhs']} (input) with {kernel}, dimension numbers {tuple(f['dimension_numbers'])}"]
        lhs_spec = f["dimension_numbers"][0]
        if lhs_spec.find("N") > lhs_spec.find("C") >= 0:
            out.append(f"batch and channel axes of {f['lhs']} swapped ({lhs_spec})")
        for k, (ws, ld, rd, (lo, hi), rev) in enumerate(zip(f["window_strides"], f["lhs_dilation"], f["rhs_dilation"],
                                                          f["padding"], f["rhs_reverse"])):
            ws, ld, rd, lo, hi = (sp.sympify(v) for v in (ws, ld, rd, lo, hi))
            parts = [f"window stride {show(ws)}", f"kernel dilation {show(rd)}"]
            if ld != 1:
                zeros = "1 zero" if ld - 1 == 1 else f"{show(ld - 1)} zeros"
                parts.append(f"{zeros} inserted between elements of {f['lhs']} (lhs dilation {show(ld)}: "
                             "a transposed convolution)")
            if rev:
                parts.append("kernel reversed")
            negative = lo.is_negative or hi.is_negative
            parts.append(f"padding ({show(lo)}, {show(hi)})" + (" — negative values crop" if negative else ""))
            out.append(f"spatial axis {k + 1}: " + ", ".join(parts))
        if f["feature_group_count"] != 1:
            out.append(f"feature_group_count {show(sp.sympify(f['feature_group_count']))}")
        if f["batch_group_count"] != 1:
            out.append(f"batch_group_count {show(sp.sympify(f['batch_group_count']))} (forward groups become batch groups)")
        if "rhs_regroup" in f:
            rg = f["rhs_regroup"]
            out.append(f"kernel regrouped: the group factor of axis {rg['from_axis']} moves onto axis {rg['to_axis']} "
                       "(in/out channels swapped within each group)")
        return out

    def formulation(self, form, backend, blockwise=False, jit=False):
        f = form.fields
        if backend.name == "torch":
            return _torch_call(f) + "; " + backend.conv_runs
        if not backend.conv_paths:
            return backend.conv_runs
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
        lead = f"$\\partial \\mathcal{{L}}/\\partial {name}$"
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
            zeros = " and ".join(f"${tex(sp.sympify(ld) - 1)}$" for ld in f["lhs_dilation"])
            out.append(f"{lead}: ${f['lhs']}$ is dilated by the forward stride — "
                       f"{zeros} zeros between its elements{' (per axis)' if len(f['lhs_dilation']) > 1 else ''} — then padded by "
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
