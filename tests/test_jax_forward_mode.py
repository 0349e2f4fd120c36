"""The JAX target's forward mode (templates/jax_module.py.j2, program_jax.py.j2): the public function is a
jax.custom_jvp whose rule is the derived JVP (JAX transposes it for reverse mode), so jax.jacfwd, jacrev,
hessian, jit, vmap and check_grads(order=2, modes=("fwd", "rev")) run it; they equal
lax.conv_general_dilated's, jnp.matmul's and jax.nn's own in float64.  ``<name>_vjp`` keeps the
custom_vjp of the derived backward (and, for programs, its derived double backward).
"""
import functools

import numpy as np
import pytest

from conftest import needs_jax
from symgrad import api, ops


@functools.lru_cache(maxsize=None)
def _module(name, frozen=()):
    return api.module(ops.build(name, **dict(frozen)), target="jax")


def _cases():
    import jax
    import jax.numpy as jnp

    def layer_norm(x, w, b):
        mu = x.mean(-1, keepdims=True)
        return (x - mu) / jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * w + b

    conv = lambda x, w, b: jax.lax.conv_general_dilated(x, w, (2, 1), ((1, 1), (0, 2)), rhs_dilation=(1, 2),
                                                        dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                                        feature_group_count=2) + b[None, :, None, None]
    return {
        "conv2d": ({"stride": "2,1", "padding": "1,0:2", "dilation": "1,2", "groups": 2}, conv,
                   ((2, 4, 6, 5), (6, 2, 3, 2), (6,))),
        "gelu": ({"approximate": "tanh"}, lambda x: jax.nn.gelu(x, approximate=True), ((3, 4),)),
        "matmul": ({}, jnp.matmul, ((2, 3, 4), (2, 4, 5))),
        "softmax": ({}, lambda x: jax.nn.softmax(x, -1), ((3, 7),)),
        "layer_norm": ({}, layer_norm, ((3, 4, 6), (6,), (6,))),
    }


def _setup(name):
    import jax
    jax.config.update("jax_enable_x64", True)
    params, own, shapes = _cases()[name]
    rng = np.random.default_rng(7)
    args = tuple(jax.numpy.asarray(rng.standard_normal(s)) for s in shapes)
    return getattr(_module(name, tuple(sorted(params.items()))), name), own, args


@needs_jax
@pytest.mark.parametrize("name", ["conv2d", "gelu", "matmul", "softmax", "layer_norm"])
def test_jacfwd_and_jacrev_equal_jaxs_own(name):
    import jax
    ours, own, args = _setup(name)
    for k in range(len(args)):
        f = lambda a, k=k: ours(*args[:k], a, *args[k + 1:])
        g = lambda a, k=k: own(*args[:k], a, *args[k + 1:])
        want = jax.jacrev(g)(args[k])
        scale = max(float(abs(want).max()), 1.0)
        assert float(abs(jax.jacfwd(f)(args[k]) - want).max()) <= 1e-12 * scale
        assert float(abs(jax.jacrev(f)(args[k]) - want).max()) <= 1e-12 * scale


@needs_jax
@pytest.mark.parametrize("name", ["conv2d", "gelu", "layer_norm"])
def test_hessian_jit_vmap_and_check_grads_in_both_modes(name):
    import jax
    from jax.test_util import check_grads
    ours, own, args = _setup(name)
    x, rest = args[0][:1], args[1:]
    h = jax.hessian(lambda a: (ours(a, *rest) ** 3).sum())(x)
    want = jax.hessian(lambda a: (own(a, *rest) ** 3).sum())(x)
    assert float(abs(h - want).max()) <= 1e-11 * float(abs(want).max())
    check_grads(ours, (x, *rest), order=2, modes=("fwd", "rev"))
    mapped = jax.jit(jax.vmap(ours, in_axes=(0,) + (None,) * len(rest)))(args[0][:, None], *rest)
    assert float(abs(mapped[:, 0] - own(*args)).max()) <= 1e-12


@needs_jax
def test_the_custom_vjp_stays_beside_it():
    import jax
    m = _module("layer_norm")
    _, own, args = _setup("layer_norm")
    g = jax.grad(lambda x: (m.layer_norm_vjp(x, *args[1:]) ** 2).sum())(args[0])
    want = jax.grad(lambda x: (own(x, *args[1:]) ** 2).sum())(args[0])
    assert float(abs(g - want).max()) <= 1e-12 * float(abs(want).max())
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jacfwd(lambda x: m.layer_norm_vjp(x, *args[1:]))(args[0])
