"""The package's version (pyproject.toml states the same), which emitted modules and reports carry."""
__version__ = "0.1.0"
