"""Acceptance 2: emitted NumPy modules agree with PyTorch autograd in float64 to 1e-10 (relative,
max-norm) over a sweep of ≥ 500 configurations; float32 GELU to 1e-5."""
import functools

import numpy as np
import pytest

import symgrad
from symgrad.emit import emit, load
from symgrad.verify.reference import torch_reference
from conftest import needs_torch, sliced
from sweep_configs import all_configs

CONFIGS = all_configs()


def test_sweep_is_large_enough():
    assert len(CONFIGS) >= 500
    kinds = {c[0] for c in CONFIGS}
    assert kinds == {"conv1d", "conv2d", "conv3d", "convolve", "matmul", "gelu", "avg_pool1d", "avg_pool2d",
                     "avg_pool3d"}


@functools.lru_cache(maxsize=None)
def module_for(name, frozen):
    return load(emit(symgrad.derive(symgrad.ops.build(name, **dict(frozen))), order=1))  # (second order: its own test)


def rel(a, b):
    scale = max(np.abs(b).max(initial=0.0), 1e-300)
    return np.abs(np.asarray(a, np.float64) - b).max(initial=0.0) / scale


def run_config(name, params, shapes, dtype=np.float64, seed=0):
    op = symgrad.ops.build(name, **params)
    module = module_for(name, tuple(sorted(params.items())))
    rng = np.random.default_rng(seed)
    arrays = {t.name: rng.standard_normal(shapes[t.name]) for t in op.inputs}
    args = [arrays[t.name].astype(dtype) for t in op.inputs]
    y = module.forward(*args)
    g = rng.standard_normal(y.shape)
    grads = module.backward(g.astype(dtype), *args)
    ref_y, ref_grads = torch_reference(op, arrays, g)
    assert y.shape == ref_y.shape and y.dtype == dtype
    errors = {"forward": rel(y, ref_y)}
    for t, got, want in zip(op.inputs, grads, ref_grads):
        assert got.shape == want.shape, (t.name, got.shape, want.shape)
        assert got.dtype == dtype
        errors[t.name] = rel(got, want)
    return errors


@needs_torch
@pytest.mark.parametrize("name,params,shapes", sliced(CONFIGS, 6, ids=[f"{c[0]}-{k}" for k, c in enumerate(CONFIGS)]))
def test_matches_torch_float64(name, params, shapes):
    errors = run_config(name, params, shapes)
    assert max(errors.values()) <= 1e-10, errors


@needs_torch
@pytest.mark.parametrize("name,params,shapes", [c for c in CONFIGS if c[0] == "gelu"])
def test_gelu_float32(name, params, shapes):
    errors = run_config(name, params, shapes, dtype=np.float32)
    assert max(errors.values()) <= 1e-5, errors
