"""``symgrad audit``: the frameworks' own gradient rules held to the derived truth.

cases.py (what is tried) → paths.py (the frameworks' gradient paths, as standalone code) →
truth.py (symgrad's derivation, evaluated in float64) → run.py (compare, shrink) → report.py
(Markdown, JSON, reproducer scripts).
"""
from .paths import ADAPTERS, Adapter, Path
from .run import audit

__all__ = ["ADAPTERS", "Adapter", "Path", "audit"]
