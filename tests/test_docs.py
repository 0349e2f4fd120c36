"""Issue 3: the derivation documents are the engine's own steps, regenerate byte-identically,
compile with a real TeX engine, and state the seeds' claims (checked here independently)."""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.cli import main
from symgrad.docs.derivations import generate, program_specs, second_order_specs, specs
from symgrad.docs.document import LOSS2, gradient_sections
from symgrad.second_order import derive_second_order
from symgrad.verify.reference import torch_double_backward
from symgrad.printing.latex import terms_aligned
from symgrad.steps import Rewritten
from symgrad.verify.evaluate import evaluate
from support import fd_gradient, sizes_for

ROOT = Path(__file__).resolve().parent.parent
CHECKED_IN = ROOT / "derivations"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    out = tmp_path_factory.mktemp("derivations")
    generate(out)
    return out


def test_checked_in_documents_are_current(fresh):
    """Fails when derivations/ is stale: regenerate with `symgrad docs`."""
    made = sorted(p.name for p in fresh.iterdir())
    assert made == sorted(p.name for p in CHECKED_IN.iterdir() if p.suffix in (".md", ".tex", ".svg"))
    for name in made:
        assert (fresh / name).read_bytes() == (CHECKED_IN / name).read_bytes(), f"{name} is stale"


def test_regeneration_is_byte_identical(fresh, tmp_path):
    generate(tmp_path)
    for p in fresh.iterdir():
        assert (tmp_path / p.name).read_bytes() == p.read_bytes()


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex (install texlive-latex-base)")
@pytest.mark.parametrize("stem", [s[0] for s in specs()] + [s[0] for s in second_order_specs()]
                         + [s[0] for s in program_specs()])
def test_latex_compiles(fresh, tmp_path, stem):
    for p in fresh.iterdir():
        shutil.copy(p, tmp_path)
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{stem}.tex"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / f"{stem}.pdf").stat().st_size > 1000


VALUES = {"conv1d": {"s": 2, "d": 2, "lo": 1, "hi": 0},
          "conv2d": {"s_1": 2, "s_2": 1, "d_1": 1, "d_2": 2, "lo_1": 1, "hi_1": 0, "lo_2": 0, "hi_2": 1, "G": 2}}
SHAPES = {"conv1d": {"x": (1, 2, 9), "w": (2, 2, 2), "b": (2,)}, "conv1d_causal": {"x": (1, 1, 6), "w": (1, 1, 3), "b": (1,)},
          "conv2d": {"x": (1, 2, 5, 4), "w": (2, 1, 2, 2), "b": (2,)},
          "convolve_full": {"x": (5,), "y": (3,)}, "convolve_same": {"x": (5,), "y": (3,)},
          "convolve_same_even": {"x": (6,), "y": (4,)}, "convolve_valid": {"x": (6,), "y": (3,)},
          "matmul_batched": {"a": (2, 2, 3), "b": (2, 3, 2)}, "gelu_exact": {"x": (4,)}, "gelu_tanh": {"x": (4,)}}


@pytest.mark.parametrize("spec", specs(), ids=[s[0] for s in specs()])
def test_boxed_results_are_the_engines_and_match_finite_differences(fresh, spec):
    stem, _, op, *_ = spec
    d = symgrad.derive(op)
    text = (fresh / f"{stem}.md").read_text()
    rng = np.random.default_rng(2)
    arrays = {n: rng.standard_normal(s) for n, s in SHAPES[stem].items()}
    sizes = sizes_for(op, VALUES.get(stem, {}), arrays)
    if op.elementwise:
        sizes[sp.Symbol("E", integer=True, positive=True)] = arrays["x"].size
        out_shape = arrays["x"].shape
    else:
        out_shape = [int(sp.sympify(s).subs(sizes)) for s in op.output.shape]
    g = rng.standard_normal(out_shape)
    for name, grad in d.grads.items():
        computed = [f.term for f in grad.forms]
        exact = {s.after: s.before for s in grad.steps if isinstance(s, Rewritten)}
        boxed = [exact.get(t, t) for t in computed]  # the maths; its floating-point form is a step above
        lhs = r"\frac{\partial \mathcal{L}}{\partial %s_{%s}}" % (name, ", ".join(sp.latex(i) for i in grad.indices))
        assert "\\boxed{" + terms_aligned(lhs, boxed) in text.replace("\\boxed{ ", "\\boxed{")
        assert (boxed != computed) == (op.name == "gelu")
        eps = 1e-6 if op.name == "gelu" else 0.5
        want = fd_gradient(op, d.tensors, sizes, arrays, name, g, eps)
        for terms in (boxed, computed):
            got = evaluate(terms, op.input(name), d.tensors, grad.indices, sizes, dict(arrays, g=g))
            np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-7)


def test_double_backward_document_boxes_torchs_double_backward(fresh):
    """conv2d_double_backward: every boxed second-order result is the engine's, and evaluated at
    stride (2, 1), dilation (1, 2), asymmetric padding and 2 groups, the boxed terms summed over the
    gradients that read a tensor are torch's double backward."""
    pytest.importorskip("torch")
    (stem, _, op, _), = second_order_specs()
    text = (fresh / f"{stem}.md").read_text()
    s = derive_second_order(op)
    rng = np.random.default_rng(5)
    arrays = {n: rng.standard_normal(shape) for n, shape in SHAPES["conv2d"].items()}
    sizes = sizes_for(op, VALUES["conv2d"], arrays)
    concrete = symgrad.ops.conv(2, stride=(2, 1), dilation=(1, 2), padding="1:0,0:1", groups=2)
    g = rng.standard_normal([int(sp.sympify(d).subs(sizes)) for d in op.output.shape])
    gg = {n: rng.standard_normal(a.shape) for n, a in arrays.items()}
    want = dict(zip(["g", "x", "w", "b"], torch_double_backward(concrete, arrays, g, gg)))
    got = {name: 0 for name in want}
    values = dict(arrays, g=g, **{f"gg{n}": a for n, a in gg.items()})
    for x, dd in s.of.items():
        for section in gradient_sections(dd, LOSS2):
            assert "\\boxed{" + section["result"] in text.replace("\\boxed{ ", "\\boxed{")
        for y, grad in dd.grads.items():
            terms = [f.term for f in grad.forms]
            got[y] = got[y] + evaluate(terms, dd.tensors[y], dd.tensors, grad.indices, sizes,
                                          {n: v for n, v in values.items() if n in dd.tensors}).reshape(want[y].shape)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-10, atol=1e-10, err_msg=name)


# the seeds' Jacobian claims, as independent expectations: entry (i, j) -> (tensor, tap) or None
JACOBIANS = {
    "conv1d": lambda i, j, k: ("w", j - i) if 0 <= j - i < k else None,                 # cross-correlation
    "conv1d_causal": lambda i, j, k: ("w", j - i + k - 1) if 0 <= i - j < k else None,  # seed 003: w_{i-j} reversed
    "convolve_full": lambda i, j, k: ("y", i - j) if 0 <= i - j < k else None,          # seed 003 left-padded
    "convolve_same": lambda i, j, k: ("y", i - j + 1) if 0 <= i - j + 1 < k else None,
    "convolve_same_even": lambda i, j, k: ("y", i - j + 1) if 0 <= i - j + 1 < k else None,
    "convolve_valid": lambda i, j, k: ("y", i + k - 1 - j) if 0 <= i + k - 1 - j < k else None,  # seed 003 standard
}


@pytest.mark.parametrize("stem", sorted(JACOBIANS))
def test_worked_jacobians_match_the_seed_formulas(stem):
    spec = next(s for s in specs() if s[0] == stem)
    jac = spec[5]
    k = 4 if stem == "convolve_same_even" else 3
    rows = [r.split("&") for r in jac["matrix"].split(r"\begin{matrix}")[1].split(r"\end{matrix}")[0].split(r"\\")]
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            want = JACOBIANS[stem](i, j, k)
            cell = cell.strip()
            assert cell == ("0" if want is None else f"{want[0]}_{{{want[1]}}}"), (stem, i, j, cell)


def test_seed_002_claims_are_stated(fresh):
    text = (fresh / "conv1d.md").read_text() + (fresh / "conv2d.md").read_text()
    for claim in ("stride and dilation trade places", "batch and channel axes", "zeros between its elements",
                  "reversed kernel", "transposed convolution", "output padding", "a crop", "$K' - 1 - p^{\\mathrm{lo}}$"):
        assert claim in text, claim


def test_transposed_convolution_output_padding_claim():
    """dX = conv_transpose(g, w, stride s, padding p, output_padding = hi' - lo') for symmetric padding p."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    for s, dil, p, L, K in [(2, 1, 1, 10, 3), (3, 2, 2, 17, 3), (2, 1, 0, 9, 2)]:
        op = symgrad.ops.conv(1, stride=s, dilation=dil, padding=p)
        form = symgrad.derive(op).grads["x"].forms[0].fields
        O = (L + 2 * p - dil * (K - 1) - 1) // s + 1
        subs = {sp.Symbol("L", integer=True, positive=True): L, sp.Symbol("K", integer=True, positive=True): K,
                sp.Symbol("O", integer=True, positive=True): O}
        lo, hi = (int(sp.sympify(v).subs(subs)) for v in form["padding"][0])
        g, w = torch.randn(1, 2, O, dtype=torch.float64), torch.randn(2, 3, K, dtype=torch.float64)
        x = torch.zeros(1, 3, L, dtype=torch.float64, requires_grad=True)
        F.conv1d(x, w, stride=s, padding=p, dilation=dil).backward(g)
        t = F.conv_transpose1d(g, w, stride=s, padding=p, dilation=dil, output_padding=hi - lo)
        assert torch.allclose(t, x.grad)


def test_pdf_without_tex_engine_fails_clearly(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["derive", "gelu", "--format", "pdf", "-o", str(tmp_path / "g.pdf")]) == 2
    assert "no TeX engine found" in capsys.readouterr().err


def test_one_symbol_one_meaning(fresh):
    """For learners: the loss is not L (an input length), the kernel size is K (not k), the upstream
    gradient of numpy.convolve is ∂ℒ/∂out (y is an input there), the provenance names the command that
    made the document, the sentences in words are typeset, and the forward's terms are named."""
    for path in sorted(fresh.glob("*.md")) + sorted(fresh.glob("*.tex")):
        text = path.read_text()
        assert "\\partial L" not in text and "L = \\sum" not in text, path.name
        if path.stem.startswith("conv"):  # (matmul's k is its contraction index, of extent K)
            assert not re.search(r"\bk = \d|< k\$|\$k\$", text), path.name
        head = text.splitlines()[2] if path.suffix == ".md" else "\n".join(text.splitlines()[14:17]).replace(" \\allowbreak{}", " ")
        assert "symgrad docs" in head, path.name
        assert not re.search(r"[A-Za-z]_\d\*[a-z]|\*\(1/2\)|\(s_1, s_2\) − 1", text), path.name  # no ASCII maths
    for stem in ("convolve_full", "convolve_same", "convolve_valid"):
        text = (fresh / f"{stem}.md").read_text()
        assert "$g = \\partial \\mathcal{L}/\\partial \\mathrm{out}$" in text and "g = \\partial \\mathcal{L}/\\partial y" not in text
        assert "\\frac{\\partial out_i}{\\partial x_j}" in text and "\\partial y_i" not in text
    conv1d = (fresh / "conv1d.md").read_text()
    assert "w_{j-i}" in conv1d and "w_{i+K-1-j}" in conv1d  # both conventions, side by side
    assert "computed as: $b_{f}$ (elementwise), plus the sum over $c, r$ (conv_general_dilated)." in conv1d
    svg = (fresh / "conv1d_jacobian.svg").read_text()
    assert "<svg" in svg and "i ↓" in svg and "j →" in svg and svg.count("<tspan") == 12  # 12 entries w_k


def test_derive_documents_name_their_command(capsys, tmp_path):
    path = tmp_path / "c.md"
    assert main(["derive", "conv1d", "--stride", "2", "--format", "markdown", "-o", str(path)]) == 0
    assert "(`symgrad derive conv1d --stride 2 --format markdown -o " in path.read_text().splitlines()[2]


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex (install texlive-latex-base)")
@pytest.mark.parametrize("argv", [
    ["derive", "conv2d", "--stride", "2", "--padding", "1", "--dilation", "1", "--input-shape", "x=1,20,64,128",
     "--input-shape", "w=16,20,3,5", "--input-shape", "b=16", "--format", "latex"],
    ["derive", "layer_norm", "--order", "2", "--format", "latex"],
])
def test_nothing_runs_off_the_page(argv, tmp_path, capsys):
    """The subtitle's command line wraps; no box of a document is wider than the page (pdflatex's
    'Overfull \\hbox' warnings), the long command and the multi-letter names included."""
    assert main(argv + ["-o", str(tmp_path / "d.tex")]) == 0
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "d.tex"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
    log = (tmp_path / "d.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log, log[log.index("Overfull"):][:600]


def test_names_and_numbers_are_typeset_as_written():
    """Multi-letter names upright (not products of italic letters), a bar over a whole name, an index
    a fraction, a decimal constant as written, and one zero (not 'zeros') inserted."""
    from symgrad.printing.latex import tex
    x = sp.IndexedBase("x")
    j, r = sp.symbols("j r", integer=True)
    assert tex(sp.Symbol("var")) == r"\mathrm{var}" and tex(sp.Symbol("biasbar")) == r"\overline{\mathrm{bias}}"
    assert tex(x[(j + 3 - 2 * r) / 2]) == r"x_{\frac{j - 2 r + 3}{2}}"
    assert tex(sp.Rational(1, 100000)) == "10^{-5}" and tex(sp.Rational(1, 4)) == r"\frac{1}{4}"
    text = (Path(__file__).parent.parent / "derivations" / "conv1d.md").read_text()
    assert "1 zeros" not in text
