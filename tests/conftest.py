import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None

needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch not installed")
needs_jax = pytest.mark.skipif(not HAS_JAX, reason="JAX not installed")
