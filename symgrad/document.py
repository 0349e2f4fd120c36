"""Derivation documents (Markdown and LaTeX) rendered from the steps the engine really took."""
from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
from pathlib import Path

import sympy as sp

from .derive import Derivation
from .describe import describe
from .diff import forward_terms, plain
from .emit import environment
from .ir import SymgradError
from .latex import tex, terms_aligned
from .png import grid_png


def _shape_tex(shape) -> str:
    return "(" + ", ".join(tex(d) for d in shape) + ")"


def _d(name, idx):
    return r"\frac{\partial L}{\partial %s_{%s}}" % (name, ", ".join(tex(i) for i in idx))


def _form_rows(form) -> list:
    rows = []
    for key, value in form.fields.items():
        if key in ("expr",):
            continue
        rows.append((key.replace("_", r"\_"), _tex_value(value)))
    return rows


def _tex_value(value) -> str:
    if value is None:
        return r"\text{--}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_tex_value(v) for v in value) + ")"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_tex_value(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return r"\text{%s}" % ("yes" if value else "no")
    if isinstance(value, str):
        return r"\texttt{%s}" % value.replace("_", r"\_")
    return tex(sp.sympify(value))


def gradient_sections(d: Derivation) -> list:
    out = []
    op = d.op
    for name, g in d.grads.items():
        t = op.input(name)
        raw_vars = tuple(sp.Symbol(f"j_{k}", integer=True) for k in range(len(t.dims)))
        out_idx = ", ".join(tex(plain(i)) for i in op.indices)
        y = op.output.name
        steps = [{
            "title": "Chain rule",
            "text": f"With $g = \\partial L/\\partial {y}$ (the upstream gradient) and "
                    f"$L = \\sum g\\,{y}$, each element of ${name}$ collects the outputs it influences.",
            "math": _d(name, raw_vars) + f" = \\sum_{{{out_idx}}} g_{{{out_idx}}}\\,"
                    f"\\frac{{\\partial {y}_{{{out_idx}}}}}{{\\partial {name}_{{{', '.join(tex(v) for v in raw_vars)}}}}}"}, {
            "title": "Differentiate",
            "text": f"Differentiating each tensor element (`sympy.diff`) gives one Kronecker delta per index of ${name}$.",
            "math": terms_aligned(_d(name, raw_vars), g.raw)}]
        solved = getattr(g.steps[-1], "solved", [])
        sols = ", ".join(dict.fromkeys(f"${tex(v)} = {tex(val)}$" for v, val, _ in solved))
        guard_text = ""
        if any(any(isinstance(c, sp.Eq) and c.has(sp.Mod) for c in gs) for _, _, gs in solved):
            guard_text = (" A solution with a coefficient other than ±1 exists only where the divisor divides the "
                          "numerator: that divisibility bracket is the zero-insertion of a transposed convolution "
                          "(only every s-th position receives a contribution).")
        steps.append({
            "title": "Eliminate the deltas",
            "text": "Each delta is solved over the integers for a summation variable" + (f": {sols}." if sols else ".")
                    + " The solution must lie in the variable's range — the range brackets, which act as zero "
                      "padding or cropping." + guard_text + " Brackets implied by the index ranges are dropped.",
            "math": terms_aligned(_d(name, g.indices), g.terms)})
        for form in g.forms:
            for st in form.steps[1:] if form.steps and form.steps[0].name == "recognise" else form.steps:
                if st.name in ("change of variable", "flip the kernel"):
                    sub = ", ".join(f"${tex(k)} = {tex(v)}$" for k, v in st.substitution.items())
                    text = (f"Substituting {sub} makes the summed index enter with a positive coefficient: the "
                            "kernel is read reversed." if st.name == "flip the kernel" else
                            f"Summing over {sub} (the index of the operand read with a unit coefficient) instead; "
                            "the old range becomes a bracket.")
                    steps.append({"title": st.name.capitalize(), "text": text,
                                  "math": terms_aligned(_d(name, g.indices), [st.after])})
        out.append({
            "name": name, "steps": steps,
            "result": terms_aligned(_d(name, g.indices), [f.term for f in g.forms]),
            "forms": [{"kind": f.kind, "rows": _form_rows(f), "sentences": describe(f)} for f in g.forms],
        })
    return out


def _expand_output(op, sizes, index_values):
    """The forward rule at one output position, as an explicit SymPy sum (small sizes only)."""
    total = 0
    for term in forward_terms(op):
        term = term.subs(sizes)
        subs = dict(zip((plain(i) for i in op.indices), index_values))
        term = term.subs(subs)
        ranges = [range(int(lo), int(hi) + 1) for _, lo, hi in term.sums]
        names = [v for v, _, _ in term.sums]
        for values in itertools.product(*ranges):
            here = dict(zip(names, values))
            if all(bool(sp.sympify(gd).subs(here)) for gd in term.guards):
                total += term.factor.subs(here)
    return total


def jacobian_example(op, sizes: dict, out_len: int, in_len: int, out_prefix=(), in_prefix=(), wrt="x"):
    """∂y_i/∂x_j at tiny 1-D sizes: the matrix (LaTeX) and its band structure (PNG)."""
    base = op.input(wrt).base
    rows = []
    for i in range(out_len):
        yi = _expand_output(op, sizes, (*out_prefix, i))
        rows.append([sp.diff(yi, base[(*in_prefix, j)]) for j in range(in_len)])
    matrix = sp.Matrix(rows)
    names = {a: sp.Symbol(f"{a.base.label}_{a.indices[-1]}") for a in matrix.atoms(sp.Indexed)}
    shown = matrix.xreplace(names)
    png = grid_png([[0 if e != 0 else 255 for e in row] for row in rows])
    return {"matrix": tex(shown), "png": png}


def document_context(d: Derivation, title: str, notes=(), shapes_example=None, jacobian=None) -> dict:
    op = d.op
    idx = ", ".join(tex(plain(i)) for i in op.indices)
    return {
        "title": title, "op": op.name,
        "params": [(r"\text{%s}" % k.replace("_", r"\_"), _tex_value(v))
                   for k, v in op.params.items() if k != "padding_spec"],
        "inputs": [(t.name, _shape_tex(t.shape)) for t in op.inputs],
        "output": (op.output.name, _shape_tex(op.output.shape)),
        "output_sizes": [(tex(k), tex(v)) for k, v in op.output_sizes.items()],
        "forward": terms_aligned(f"{op.output.name}_{{{idx}}}", forward_terms(op)),
        "forward_forms": [f.kind for f in d.forward],
        "gradients": gradient_sections(d),
        "notes": list(notes), "relations": relations(d), "shapes_example": shapes_example, "jacobian": jacobian,
        "elementwise": op.elementwise,
    }


def tex_text(text: str) -> str:
    """Prose for LaTeX: outside $…$ escape underscores and turn `code` into \texttt; math untouched."""
    parts = text.split("$")
    for k in range(0, len(parts), 2):
        chunk = parts[k].replace("_", r"\_")
        pieces = chunk.split("`")
        parts[k] = "".join(p if n % 2 == 0 else r"\texttt{%s}" % p for n, p in enumerate(pieces))
    return "$".join(parts)


def md_text(text: str) -> str:
    """The LaTeX-isms of shared sentences, for Markdown: \\texttt{x} -> `x`, \\_ -> _ (outside math)."""
    import re
    parts = text.split("$")
    for k in range(0, len(parts), 2):
        parts[k] = re.sub(r"\\texttt\{([^}]*)\}", r"`\1`", parts[k]).replace("\\_", "_")
    return "$".join(parts)


def render(context: dict, fmt: str) -> str:
    template = {"markdown": "derivation.md.j2", "latex": "derivation.tex.j2"}[fmt]
    env = environment()
    env.filters["textex"] = tex_text
    env.filters["mdtext"] = md_text
    return env.get_template(template).render(**context)


def compile_pdf(tex_source: str, pdf_path: Path, assets: dict = None):
    """pdflatex (or lualatex) on the source; assets are extra files (e.g. PNGs) beside it."""
    engine = shutil.which("pdflatex") or shutil.which("lualatex")
    if engine is None:
        raise SymgradError("no TeX engine found (pdflatex or lualatex); on Debian/Ubuntu: "
                           "apt-get install texlive-latex-base texlive-latex-recommended")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "doc.tex").write_text(tex_source)
        for name, data in (assets or {}).items():
            (Path(tmp) / name).write_bytes(data)
        proc = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp,
                              capture_output=True, text=True)
        if proc.returncode:
            tail = "\n".join(proc.stdout.splitlines()[-15:])
            raise SymgradError(f"{Path(engine).name} failed:\n{tail}")
        shutil.copy(Path(tmp) / "doc.pdf", pdf_path)


def _tup(values) -> str:
    return tex(values[0]) if len(values) == 1 else tex(sp.Tuple(*values))


def relations(d: Derivation) -> list:
    """Sentences comparing each gradient's convolution with the forward one, read off the forms."""
    fwd = next((f for f in d.forward if f.kind == "conv_general_dilated"), None)
    if fwd is None:
        return []
    F = fwd.fields
    out = []
    for name, g in d.grads.items():
        for form in g.forms:
            if form.kind != "conv_general_dilated":
                continue
            f = form.fields
            lead = f"$\\partial L/\\partial {name}$"
            if f["window_strides"] == F["rhs_dilation"] and f["rhs_dilation"] == F["window_strides"] \
                    and F["window_strides"] != F["rhs_dilation"]:
                out.append(f"{lead}: the forward stride ${_tup(F['window_strides'])}$ becomes the kernel "
                           f"dilation and the forward dilation ${_tup(F['rhs_dilation'])}$ the window "
                           "stride — stride and dilation trade places.")
            lhs_spec = f["dimension_numbers"][0]
            if "N" in lhs_spec and "C" in lhs_spec and lhs_spec.index("C") < lhs_spec.index("N"):
                out.append(f"{lead}: the batch and channel axes of ${f['lhs']}$ are swapped "
                           f"(\\texttt{{{lhs_spec}}}); the upstream gradient plays the kernel.")
            if any(ld != 1 for ld in f["lhs_dilation"]):
                los = [tex(p[0]) for p in f["padding"]]
                out.append(f"{lead}: ${f['lhs']}$ is dilated by the forward stride — "
                           f"${_tup(f['lhs_dilation'])} - 1$ zeros between its elements — then padded by "
                           f"${', '.join(los)}$ on the low side ($K' - 1 - p^{{\\mathrm{{lo}}}}$ with $K'$ the dilated "
                           "kernel), and convolved with stride 1 and the reversed kernel: the transposed convolution "
                           f"(conv\\_transpose with stride ${_tup(F['window_strides'])}$; for symmetric "
                           "padding its output padding is the high minus the low padding shown in the table).")
            elif any(f["rhs_reverse"]):
                out.append(f"{lead}: a convolution with the reversed kernel.")
            if any(sp.sympify(p[1]).free_symbols for p in f["padding"]) and name != "x" or \
                    any(sp.sympify(p[1]).is_negative for p in f["padding"]):
                out.append(f"{lead}: the high padding can be negative — a crop — when the forward pass never read "
                           "the trailing input (stride and kernel leave it untouched).")
    return out
