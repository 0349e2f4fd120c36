"""Every command line and Python block of README.md and of the reference pages in docs/, run as written
in a temporary directory, so a newcomer who copies them gets what the pages promise.

Commands that cannot run inside the suite are named here with the reason, never skipped silently:
``pip install`` (CI's .ci/run makes that very install before it runs this suite) and ``pytest``
(this suite).  The benchmarks run through the real command line with the timing child replaced by
a stand-in result (a real ``bench --suite`` takes 25 minutes; tests/test_cli.py runs a real
benchmark); a GPU command must work or, without a GPU, end in the one-line error the README
promises."""
import importlib.util
import re
import shlex
import shutil
from pathlib import Path

import pytest

from symgrad.cli import main
from support import stand_in_bench

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README] + sorted((ROOT / "docs").glob("*.md"))
NOT_HERE = {"pip": "the install CI's .ci/run performs before running this suite",
            "pytest": "this test suite itself"}


def blocks(language: str, pages=PAGES) -> list:
    """The fenced code blocks of the pages in ``language``."""
    return [b for page in pages for b in re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), flags=re.S | re.M)]


def command_lines(pages=PAGES) -> list:
    """Each command of the bash blocks: continuation lines joined, comments dropped, ``&&`` split."""
    out = []
    for block in blocks("bash", pages):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            out += [part.strip() for part in line.split("&&") if part.strip()]
    return out


COMMANDS = command_lines()
PYTHON = blocks("python")


def files() -> dict:
    """The README's ``sg`` blocks, each headed ``# file: NAME``: written into the folder every command
    runs in, as a reader who saves them would."""
    out = {}
    for block in blocks("sg"):
        first, _, rest = block.partition("\n")
        assert first.startswith("# file: "), f"an sg block must start with '# file: NAME': {first!r}"
        out[first[len("# file: "):].strip()] = block
    return out


def test_the_readme_has_commands_and_python():
    assert len(COMMANDS) >= 15 and len(PYTHON) >= 2
    quick = command_lines([README])
    assert quick[0].startswith("pip install") and quick[2] == "pytest -q"  # the quick start


def test_the_readme_is_short_and_links_every_page():
    text = README.read_text()
    assert len(text) <= 15000, len(text)
    for page in PAGES[1:]:
        assert f"(docs/{page.name})" in text, page.name


@pytest.mark.parametrize("command", COMMANDS)
def test_command_runs_as_written(command, tmp_path, monkeypatch, capsys):
    argv = shlex.split(command)
    if argv[0] in NOT_HERE:
        pytest.skip(f"{argv[0]}: {NOT_HERE[argv[0]]}")
    assert argv[0] == "symgrad", command
    if "pdf" in argv and shutil.which("pdflatex") is None and shutil.which("lualatex") is None:
        pytest.skip("no TeX engine (CI installs one)")
    for framework in ("jax", "torch"):  # a command that runs an optional framework (emitting code for it needs none)
        if framework in argv and argv[1] not in ("derive", "emit") and importlib.util.find_spec(framework) is None:
            pytest.skip(f"{framework} not installed (optional; CI installs it)")
    monkeypatch.chdir(tmp_path)
    if "--compare" in argv:  # the commits to compare come from the checkout it runs in
        if not (ROOT / ".git").exists():
            pytest.skip("bench --compare: not a git checkout")
        monkeypatch.chdir(ROOT)
    for name, text in files().items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr("symgrad.bench.cpu.bench", stand_in_bench)
    code = main(argv[1:])
    err = capsys.readouterr().err
    if "cupy" in argv and "bench" in argv and code == 2:
        assert err.count("\n") == 1 and "needs CuPy and a CUDA GPU" in err, err
        return
    assert code == 0, err
    for flag in ("-o", "--output"):
        if flag in argv:
            assert (tmp_path / argv[argv.index(flag) + 1]).stat().st_size > 0


@pytest.mark.parametrize("source", PYTHON, ids=[f"block{k}" for k in range(len(PYTHON))])
def test_python_block_runs_as_written(source, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(source, "README.md", "exec"), {"__name__": "readme"})
