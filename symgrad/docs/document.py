"""Derivation documents (Markdown and LaTeX) rendered from the steps the engine really took."""
from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import sympy as sp

from ..derive import Derivation
from ..engine.diff import forward_terms
from ..forms import kind
from ..ir import SymgradError, plain
from ..printing.latex import indexed_tex, subscripted, tex, terms_aligned
from ..steps import Dropped, Eliminated, Rewritten, Substituted
from ..templating import environment
from .picture import jacobian_svg, jacobian_table


def _shape_tex(shape) -> str:
    return "(" + ", ".join(tex(d) for d in shape) + ")"


#: the loss, in the documents: not L, which names an input length
LOSS = r"\mathcal{L}"


#: the second loss of double backward, Σ ggx·dx over the gradients
LOSS2 = r"\mathcal{L}_2"


def _d(name, idx, loss=LOSS):
    return r"\frac{\partial %s}{\partial %s}" % (loss, indexed_tex(name, ", ".join(tex(i) for i in idx)))


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


def _substitution_text(step: Substituted) -> str:
    sub = ", ".join(f"${tex(k)} = {tex(v)}$" for k, v in step.substitution.items())
    if step.flip:
        return f"Substituting {sub} makes the summed index enter with a positive coefficient: the kernel is read reversed."
    return (f"Summing over {sub} (the index of the operand read with a unit coefficient) instead; "
            "the old range becomes a bracket.")


def _elimination_text(step: Eliminated) -> str:
    sols = ", ".join(dict.fromkeys(f"${tex(s.variable)} = {tex(s.value)}$" for s in step.solved))
    text = ("Each delta is solved over the integers for a summation variable" + (f": {sols}." if sols else ".")
            + " The solution must lie in the variable's range — the range brackets, which act as zero "
              "padding or cropping.")
    if any(isinstance(c, sp.Eq) and c.has(sp.Mod) for s in step.solved for c in s.guards):
        text += (" A solution with a coefficient other than ±1 exists only where the divisor divides the "
                 "numerator: that divisibility bracket is the zero-insertion of a transposed convolution "
                 "(only every s-th position receives a contribution).")
    return text + " Brackets implied by the index ranges are dropped."


def gradient_sections(d: Derivation, loss: str = LOSS) -> list:
    """Per gradient: its steps as the engine recorded them (title, prose, the expression after), the
    boxed result and its forms; ``loss`` the loss's symbol (ℒ₂ for a gradient taken as a rule)."""
    out = []
    op = d.op
    y, g_ = tex(sp.Symbol(op.output.name)), tex(sp.Symbol(op.upstream))
    _d_ = lambda name, idx: _d(name, idx, loss)  # noqa: E731
    out_idx = ", ".join(tex(plain(i)) for i in op.indices)
    for name, g in d.grads.items():
        raw = g.raw_indices
        exact = {s.after: s.before for s in g.steps if isinstance(s, Rewritten)}  # the result boxed as maths
        steps = [{
            "title": "Chain rule",
            "text": f"With ${g_} = \\partial {loss}/\\partial {y}$ (the upstream gradient) and "
                    f"${loss} = \\sum {g_}\\,{y}$, each element of ${tex(sp.Symbol(name))}$ collects the outputs it "
                    "influences.",
            "math": _d_(name, raw) + f" = \\sum_{{{out_idx}}} {subscripted(g_, out_idx)}\\,"
                    f"\\frac{{\\partial {subscripted(y, out_idx)}}}{{\\partial {indexed_tex(name, ', '.join(tex(v) for v in raw))}}}"}, {
            "title": "Differentiate",
            "text": f"Differentiating each tensor element (`sympy.diff`) gives one Kronecker delta per index of "
                    f"${tex(sp.Symbol(name))}$.",
            "math": terms_aligned(_d_(name, raw), g.raw)}]
        for step in g.steps:
            if isinstance(step, Dropped):
                steps.append({"title": "Drop the steps' derivatives", "text": step.text,
                              "math": terms_aligned(_d_(name, raw), g.raw)})
            elif isinstance(step, Eliminated):
                steps.append({"title": "Eliminate the deltas", "text": _elimination_text(step),
                              "math": terms_aligned(_d_(name, g.indices), g.terms)})
            elif isinstance(step, Rewritten):
                steps.append({"title": "Rewrite for floating point", "text": step.text,
                              "math": terms_aligned(_d_(name, g.indices), [step.after])})
        for form in g.forms:
            for step in form.steps:
                if isinstance(step, Substituted):
                    steps.append({"title": step.name.capitalize(), "text": _substitution_text(step),
                                  "math": terms_aligned(_d_(name, g.indices), [step.after])})
        out.append({
            "name": name, "tex": tex(sp.Symbol(name)), "steps": steps,
            "result": terms_aligned(_d_(name, g.indices), [exact.get(f.term, f.term) for f in g.forms]),
            "forms": [{"kind": f.kind, "rows": _form_rows(f), "sentences": kind(f.kind).describe(f, show=_math)}
                      for f in g.forms],
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
    """∂out_i/∂x_j at tiny 1-D sizes: the matrix (LaTeX), and its band as an SVG picture and a
    shaded table, rows i and columns j labelled."""
    base = op.input(wrt).base
    rows = []
    for i in range(out_len):
        yi = _expand_output(op, sizes, (*out_prefix, i))
        rows.append([sp.diff(yi, base[(*in_prefix, j)]) for j in range(in_len)])
    matrix = sp.Matrix(rows)
    names = {a: sp.Symbol(f"{a.base.label}_{a.indices[-1]}") for a in matrix.atoms(sp.Indexed)}
    shown = matrix.xreplace(names)
    return {"matrix": tex(shown), "svg": jacobian_svg(shown), "table": jacobian_table(shown),
            "lhs": r"\frac{\partial %s_i}{\partial %s_j}" % (op.output.name, wrt)}


def _math(value) -> str:
    """A value in a sentence of the documents: SymPy as inline maths, the rest as it is."""
    return f"${tex(value)}$" if isinstance(value, sp.Basic) else str(value)


def _forward_forms(d: Derivation) -> str:
    """What computes each term of the forward rule: the kind, and the term's own summand or sum."""
    parts = []
    for f in d.forward:
        what = ("the sum over $" + ", ".join(tex(v) for v, _, _ in f.term.sums) + "$") if f.term.sums \
            else f"${tex(f.term.factor)}$"
        parts.append(f"{what} ({f.kind})")
    return ", plus ".join(parts)


def second_sections(second) -> list:
    """Per gradient dx taken as a rule (:mod:`symgrad.second_order`): the rule as differentiation
    left it, and its own gradients' sections for ℒ₂ = Σ ggx·dx."""
    out = []
    for x, dd in second.of.items():
        gop = dd.op
        name = tex(sp.Symbol(gop.output.name))
        idx = ", ".join(tex(plain(i)) for i in gop.indices)
        out.append({"name": x, "grad": name, "gg": tex(sp.Symbol(gop.upstream)),
                    "rule": terms_aligned(f"{name}_{{{idx}}}", forward_terms(gop)),
                    "gradients": gradient_sections(dd, LOSS2)})
    return out


def document_context(d: Derivation, title: str, notes=(), shapes_example=None, jacobian=None,
                     command: str = None, second=None) -> dict:
    """What the document templates need; ``command`` is the one that makes the document; with
    ``second`` (a :class:`~symgrad.second_order.SecondOrder`) the gradients' own gradients too."""
    op = d.op
    idx = ", ".join(tex(plain(i)) for i in op.indices)
    return {
        "title": title, "op": op.name, "command": command or f"symgrad derive {op.name} --format markdown",
        "loss": LOSS,
        "params": [(r"\text{%s}" % k.replace("_", r"\_"), _tex_value(v)) for k, v in op.params.items()],
        "inputs": [(t.name, _shape_tex(t.shape)) for t in op.inputs],
        "output": (op.output.name, _shape_tex(op.output.shape)),
        "output_sizes": [(tex(k), tex(v)) for k, v in op.output_sizes.items()],
        "forward": terms_aligned(f"{op.output.name}_{{{idx}}}", forward_terms(op)),
        "forward_forms": _forward_forms(d),
        "gradients": gradient_sections(d),
        "notes": list(notes), "relations": relations(d), "shapes_example": shapes_example, "jacobian": jacobian,
        "elementwise": op.elementwise, "loss2": LOSS2, "second": second_sections(second) if second else [],
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


def render(context: dict, fmt: str, program: bool = False) -> str:
    """A document from its context: a rule's (``derivation.*.j2``) or a program's (``program.*.j2``)."""
    stem = "program" if program else "derivation"
    template = {"markdown": f"{stem}.md.j2", "latex": f"{stem}.tex.j2"}[fmt]
    env = environment()
    env.filters["textex"] = tex_text
    env.filters["mdtext"] = md_text
    return env.get_template(template).render(**context)


def write_document(context: dict, fmt: str, output, write, program: bool = False):
    """``derive --format markdown|latex|pdf``: the document rendered and written by ``write(text,
    output)``, or compiled to the PDF ``output`` (which a PDF needs)."""
    if fmt != "pdf":
        write(render(context, fmt, program=program), output)
        return
    if not output:
        raise SymgradError("derive --format pdf needs -o FILE.pdf")
    compile_pdf(render(context, "latex", program=program), Path(output))
    print(f"wrote {output}", file=sys.stderr)


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


def relations(d: Derivation) -> list:
    """Sentences relating each gradient's forms to the forward's, from the kinds that have any."""
    return [sentence for name, g in d.grads.items() for form in g.forms
            for sentence in kind(form.kind).relate(name, form, d.forward)]
