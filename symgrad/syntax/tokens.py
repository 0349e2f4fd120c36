"""The text syntax's tokens: names, numbers, operators and line ends, each with its line and
column, and the source text that errors point into."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..ir import SymgradError

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r]+) | (?P<comment>\#[^\n]*) | (?P<newline>\n|;) |
    (?P<number>(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?) |
    (?P<name>[A-Za-z_][A-Za-z_0-9]*) |
    (?P<op>\*\*|<=|>=|==|!=|//|[-+*/^()\[\],<>=:])
""", re.VERBOSE)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    line: int
    col: int


class Source:
    """The text and how to point into it."""

    def __init__(self, text: str, origin: str):
        self.text, self.origin, self.lines = text, origin, text.splitlines() or [""]

    def error(self, token_or_pos, message: str) -> SymgradError:
        line, col = (token_or_pos.line, token_or_pos.col) if isinstance(token_or_pos, Token) else token_or_pos
        shown = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return SymgradError(f"{self.origin}:{line}:{col}: {message}\n    {shown}\n    {' ' * (col - 1)}^")


def tokens(src: Source) -> list:
    out, line, start, pos, depth = [], 1, 0, 0, 0
    text = src.text
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise src.error((line, pos - start + 1), f"unexpected character {text[pos]!r}")
        kind = m.lastgroup
        if kind == "newline":
            if depth == 0 or m.group() == ";":
                out.append(Token("newline", m.group(), line, pos - start + 1))
            if m.group() == "\n":
                line, start = line + 1, m.end()
        elif kind not in ("space", "comment"):
            if m.group() in "([":
                depth += 1
            elif m.group() in ")]":
                depth = max(depth - 1, 0)
            out.append(Token(kind, m.group(), line, pos - start + 1))
        pos = m.end()
    out.append(Token("newline", "", line, pos - start + 1))
    out.append(Token("end", "", line, pos - start + 1))
    return out
