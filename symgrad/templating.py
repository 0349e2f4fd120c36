"""The jinja2 environment over ``templates/``: the per-op skeleton of an emitted module and the
derivation documents (StrictUndefined: a missing value is an error, not an empty string)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import jinja2


def template_dir() -> Path:
    """templates/ of a source checkout, or the copy packaged inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    return Path(str(resources.files("symgrad") / "templates"))


def item_separator(loop) -> str:
    """What follows an item of a tuple a template writes in a ``for`` loop: ``(a, b)``, ``(a,)``."""
    return ", " if not loop.last else ("," if loop.length == 1 else "")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir())),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.globals["sep"] = item_separator
    return env
