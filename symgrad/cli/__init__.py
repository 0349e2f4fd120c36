"""The ``symgrad`` command line: ops, derive, emit, check, audit, fuzz, bench, docs.

:mod:`args` (the options every command shares, made from the op registry) · :mod:`programs` (rules,
files and built-in programs) · :mod:`commands` (ops, derive, emit, check, docs) · :mod:`bench` ·
:mod:`audit` (audit, fuzz) · :mod:`main` (the parser).
"""
from .main import main, parser

__all__ = ["main", "parser"]
