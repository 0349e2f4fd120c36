"""``symgrad audit``: the frameworks' own gradient rules held to the derived truth.

cases.py, spatial_cases.py, program_cases.py (what is tried) → paths.py, program_paths.py (the frameworks'
gradient paths, as standalone code) → truth.py, program_truth.py (symgrad's derivation, evaluated in
float64) → outcome.py (one path on one configuration, compared) → run.py (every configuration, shrink;
workers.py: the worker processes, historical.py: the named bug classes) → report.py (Markdown, JSON, reproducer scripts); names.py: the families and dtypes by name.
"""
__all__ = ["ADAPTERS", "Adapter", "Path", "audit"]


def __getattr__(name):
    """The audit's entry points, loaded when first asked for (``names`` stays light for the CLI's parser)."""
    if name in ("ADAPTERS", "Adapter", "Path"):
        from . import paths
        return getattr(paths, name)
    if name == "audit":
        from .run import audit
        return audit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
