"""Inline runtime modules into an emitted file, so that it stays standalone.

A runtime piece is an ordinary module of :mod:`symgrad.runtime`, named by its path there
(``conv``, ``numba/jit``, ``torch/conv``); inlined, its docstring and its top-level imports go, the
rest is copied verbatim.  Its imports say what it needs:

* ``from .other import names`` (``from ..other``, ``from .folder.other``): the piece ``other``
  comes along (the pieces share one namespace in the emitted file, as they do here through these
  imports);
* ``import numpy as xp``: the array module, which the emitted file imports per backend (a file
  that calls it by another name, the torch target's ``torch``, gets the piece with ``xp`` renamed);
* any other import: copied into the file's import block.

A backend's own pieces live in its folder (``cupy/``, ``torch/``, ``jax/``): a piece asked for by a
plain name (``gemm``) is the backend's ``<backend>/gemm`` where that file exists, else the shared
``gemm`` at the top; the backend's piece must define every name taken from the shared one.  Pieces
come out dependencies first, in a fixed order, so the file is byte-deterministic.
"""
from __future__ import annotations

import ast
import functools
import io
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

RUNTIME = Path(__file__).resolve().parent.parent / "runtime"
ARRAY_MODULE = "xp"


@dataclass(frozen=True)
class Piece:
    """One runtime module as the emitter sees it."""

    name: str
    code: str             # the source without docstring and top-level imports
    imports: tuple        # its other top-level import statements, as written
    needs: tuple          # (module, names) per sibling import
    defines: frozenset    # the names it binds at top level
    array: bool = False   # it calls the array module (``import numpy as xp``)


def _defined(tree) -> set:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Try):  # optional imports: try: import numba / except: numba = None
            names |= _defined(ast.Module(body=node.body + [s for h in node.handlers for s in h.body], type_ignores=[]))
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def resolve(name: str, backend: str) -> str:
    """The piece that ``name`` is for ``backend``: its own ``<backend>/<name>`` where there is one."""
    if "/" not in name and backend and (RUNTIME / backend / f"{name}.py").is_file():
        return f"{backend}/{name}"
    return name


def _sibling(name: str, node) -> str:
    """The piece a relative import in the piece ``name`` names (``from .x``, ``from ..x``, ``from .a.x``)."""
    folder = name.split("/")[:-1]
    folder = folder[:len(folder) - (node.level - 1)] if node.level > 1 else folder
    return "/".join(folder + node.module.split("."))


@functools.lru_cache(maxsize=None)
def piece(name: str) -> Piece:
    """The runtime module ``name`` (its path under symgrad/runtime, without .py), parsed."""
    path = RUNTIME / f"{name}.py"
    if not path.is_file():
        raise ValueError(f"no runtime piece {name!r} ({path})")
    source = path.read_text()
    tree = ast.parse(source)
    drop, imports, needs, array = set(), [], [], False
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        drop |= set(range(body[0].lineno, body[0].end_lineno + 1))
    for node in body:
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            needs.append((_sibling(name, node), tuple(a.name for a in node.names)))
            if any(a.asname for a in node.names):
                raise ValueError(f"runtime piece {name}: a sibling import may not rename ({ast.unparse(node)})")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.Import) and [a.asname for a in node.names] == [ARRAY_MODULE]:
                array = True
            else:
                imports.append(ast.unparse(node))
        else:
            continue
        drop |= set(range(node.lineno, node.end_lineno + 1))
    kept = [line for k, line in enumerate(source.splitlines(), start=1) if k not in drop]
    code = "\n".join(kept).strip("\n")
    while "\n\n\n\n" in code:
        code = code.replace("\n\n\n\n", "\n\n\n")
    return Piece(name, code, tuple(imports), tuple(needs), frozenset(_defined(tree)), array)


def renamed(code: str, old: str, new: str) -> str:
    """``code`` with each NAME token ``old`` written ``new`` (strings and comments kept as they are; an
    attribute ``a.old`` would be renamed too: the pieces use ``xp`` for the array module alone)."""
    lines = code.splitlines(keepends=True)
    spots = [t.start for t in tokenize.generate_tokens(io.StringIO(code).readline)
             if t.type == tokenize.NAME and t.string == old]
    for row, col in reversed(spots):
        lines[row - 1] = lines[row - 1][:col] + new + lines[row - 1][col + len(old):]
    return "".join(lines)


def closure(roots, backend: str = "") -> list:
    """The pieces ``roots`` need for ``backend``, dependencies first, each once (see :func:`resolve`)."""
    order, seen = [], set()

    def visit(name, path):
        name = resolve(name, backend)
        if name in seen:
            return
        if name in path:
            raise ValueError(f"runtime pieces import each other in a circle: {' -> '.join(path + (name,))}")
        p = piece(name)
        for module, names in sorted(p.needs):
            need = piece(resolve(module, backend))
            missing = sorted(set(names) - need.defines)
            if missing:
                raise ValueError(f"runtime piece {need.name} (for {module}) lacks {', '.join(missing)}, "
                                 f"which {name} takes from it")
            visit(module, path + (name,))
        seen.add(name)
        order.append(p)

    for root in sorted(set(roots)):
        visit(root, ())
    return order


def _stdlib(statement: str) -> bool:
    module = statement.split()[1].split(".")[0]
    return module in sys.stdlib_module_names


def import_block(statements, array_import: str) -> list:
    """The file's import lines: the standard library's, a blank line, the array module's, then the
    other third-party ones; each group sorted, each statement once."""
    statements = set(statements) - {array_import}
    std = sorted(s for s in statements if _stdlib(s))
    other = sorted(s for s in statements if not _stdlib(s))
    return std + ([""] if std else []) + [array_import] + other


def module_name(name: str) -> str:
    """The piece ``name`` as a module of symgrad.runtime (``numba/jit``: ``numba.jit``)."""
    return name.replace("/", ".")


def inline(roots, backend: str = "", xp: str = ARRAY_MODULE) -> tuple:
    """``(names, imports, code)``: the pieces ``roots`` need for ``backend``, their import
    statements, and their source, each piece under a comment naming the module it comes from; ``xp``:
    what the file calls its array module."""
    pieces = closure(roots, backend)
    imports = [s for p in pieces for s in p.imports]
    code = "\n\n\n".join(f"# symgrad.runtime.{module_name(p.name)}\n"
                          f"{renamed(p.code, ARRAY_MODULE, xp) if p.array and xp != ARRAY_MODULE else p.code}"
                          for p in pieces)
    return [module_name(p.name) for p in pieces], imports, code
