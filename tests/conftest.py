import importlib.util
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None

needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch not installed")
needs_jax = pytest.mark.skipif(not HAS_JAX, reason="JAX not installed")


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true", default=False,
                     help="run every configuration of the exhaustive sweeps (CI does); without it each sweep runs "
                          "a slice that still touches every kind of case")


def pytest_configure(config):
    config.addinivalue_line("markers", "full: a case of an exhaustive sweep beyond its default slice (--full runs it)")
    if not os.environ.get("SYMGRAD_CACHE_DIR"):  # one cache of emitted modules and compiled loops for the run,
        os.environ["SYMGRAD_CACHE_DIR"] = tempfile.mkdtemp(prefix="symgrad-tests-")  # its workers sharing it
        config.symgrad_cache = os.environ["SYMGRAD_CACHE_DIR"]


def pytest_unconfigure(config):
    if getattr(config, "symgrad_cache", None):
        shutil.rmtree(config.symgrad_cache, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--full"):
        return
    kept = [item for item in items if "full" not in item.keywords]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if "full" in item.keywords])
        items[:] = kept


def sliced(cases, every: int, ids=None, kind=lambda case: case[0]) -> list:
    """``cases`` as pytest params, all but every ``every``-th case of each kind marked ``full`` (run
    by ``pytest --full``): the default run keeps the first case of every kind and a spread of the
    rest."""
    seen, out = Counter(), []
    for k, case in enumerate(cases):
        n = seen[kind(case)]
        seen[kind(case)] += 1
        marks = () if n % every == 0 else (pytest.mark.full,)
        out.append(pytest.param(*case, marks=marks, id=ids[k] if ids else None))
    return out
