"""Acceptance 2: emitted NumPy modules agree with PyTorch autograd in float64 to 1e-10 (relative,
max-norm) over a sweep of ≥ 500 configurations; float32 GELU to 1e-5."""
import numpy as np
import pytest

from conftest import needs_torch, sliced
from support import CONFIGS, run_config


def test_sweep_is_large_enough():
    assert len(CONFIGS) >= 500
    kinds = {c[0] for c in CONFIGS}
    assert kinds == {"conv1d", "conv2d", "conv3d", "convolve", "matmul", "gelu", "avg_pool1d", "avg_pool2d",
                     "avg_pool3d"}


@needs_torch
@pytest.mark.parametrize("name,params,shapes", sliced(CONFIGS, 10, ids=[f"{c[0]}-{k}" for k, c in enumerate(CONFIGS)]))
def test_matches_torch_float64(name, params, shapes):
    errors = run_config(name, params, shapes)
    assert max(errors.values()) <= 1e-10, errors


@needs_torch
@pytest.mark.parametrize("name,params,shapes", [c for c in CONFIGS if c[0] == "gelu"])
def test_gelu_float32(name, params, shapes):
    errors = run_config(name, params, shapes, dtype=np.float32)
    assert max(errors.values()) <= 1e-5, errors
