"""Framework targets: the derivation as a native torch op with an autograd function over it, or a
``jax.custom_jvp`` (and a ``jax.custom_vjp``); both run the derived JVP too (:mod:`symgrad.forward_mode`).

The forms' code is the one the NumPy modules run (:func:`symgrad.emit.module.code_context`), printed
for the framework's array module (:mod:`symgrad.backends`) and calling its own convolution and
contraction (``runtime/torch/conv.py``, ``runtime/jax/conv.py``, …).  Every operation in a backward
is the framework's own and differentiable, so the framework differentiates the backward again:
double backward (torch), ``jax.grad`` of ``jax.grad``.  The module imports the framework and the
standard library only.
"""
from __future__ import annotations

from .. import naming
from ..backends import TARGETS
from ..derive import Derivation
from ..ir import SymgradError
from ..templating import environment
from .module import _unbatched, code_context, header_context
from .layers import conv_layer
from .program import forward_mode_parts

#: the most spatial axes a torch convolution has (conv1d, conv2d, conv3d)
TORCH_SPATIAL = 3

_USAGE = {
    "torch": ("Use: {function}({args}) (an autograd function over the native op _OP, applied to tensors of one "
              "dtype and device; torch.autograd.grad and .backward() run the derived backward, and differentiate it "
              "again for double backward; torch.func.jvp, jacfwd and hessian run the derived JVP, vmap the op's "
              "batching rule){module}."),
    "jax": ("Use: {function}({args}) (a jax.custom_jvp: jax.jvp, jacfwd and hessian run the derived JVP, jax.grad "
            "and jax.vjp JAX's transpose of it); {function}_vjp({args}) (a jax.custom_vjp: jax.grad runs the derived "
            "backward)."),
}


def _conv_axes(d: Derivation) -> int:
    """The most spatial axes any convolution form of the derivation has."""
    forms = d.forward + [f for g in d.grads.values() for f in g.forms]
    return max((len([c for c in f.fields["dimension_numbers"][1] if c not in "OI"])
                for f in forms if f.kind == "conv_general_dilated"), default=0)


def target_context(d: Derivation, target: str) -> dict:
    """What ``templates/<target>_module.py.j2`` needs, from the derivation alone."""
    op = d.op
    if target not in TARGETS:
        raise SymgradError(f"emit: target must be one of {', '.join(TARGETS)}, got {target!r}")
    spec = TARGETS[target]
    axes = _conv_axes(d)
    if target == "torch" and axes > TORCH_SPATIAL:
        raise SymgradError(f"{op.name}: the torch target runs convolutions with torch's kernels, which have 1 to "
                           f"{TORCH_SPATIAL} spatial axes; this op's convolutions have {axes} (the NumPy and CuPy "
                           "modules and the jax target take any number)")
    code = code_context(d, spec)
    args = code["args"]
    layer = conv_layer(op) if target == "torch" else None
    usage = _USAGE[target].format(function=op.name, args=args, module=(
        f"; {layer['class']}(in_channels, out_channels, kernel_size, ...) is the layer, with torch.nn.{layer['class']}'s "
        "constructor, attributes and state_dict" if layer else ""))
    pieces = code["pieces"] | {"inputs"} | ({"layer"} if layer else set())
    native = forward_mode_parts(op, target, {"piece_set": pieces, "code_imports": code["imports"]}, [op.output.name],
                                {f.kind for f in d.forward}, op.elementwise)  # the derived JVP; torch: a native op
    names, imports, runtime = native["pieces"], native["imports"], native["runtime"]
    backward = [{"name": t.name, "function": naming.grad_function(t.name), "result": naming.grad(t.name),
                 "body": code["grads"][t.name]} for t in op.inputs]
    return {
        **header_context(d, spec, usage=usage), **code,
        "pieces": names, "runtime": runtime,
        "imports": imports, "native": native["native"], "jvp": native["jvp"], "jvp_refused": native["jvp_refused"],
        "backward": backward, "function": op.name, "class_name": f"{naming.camel(op.name)}Function",
        "names": repr(tuple(t.name for t in op.inputs)), "one_input": len(op.inputs) == 1,
        "grad_names": repr((naming.GRAD_OUTPUT,) + tuple(t.name for t in op.inputs)),
        "upstream": naming.UPSTREAM, "unbatched": _unbatched(op), "elementwise": op.elementwise,
        "layer": layer, "residuals": args + ("," if len(op.inputs) == 1 else ""),
    }


def emit_target(d: Derivation, target: str) -> str:
    """The ``torch`` or ``jax`` module's source text; deterministic (same derivation, same bytes).

    >>> from symgrad import ops, derive
    >>> "class GeluFunction(torch.autograd.Function)" in emit_target(derive(ops.gelu()), "torch")
    True
    """
    context = target_context(d, target)
    return environment().get_template(f"{target}_module.py.j2").render(**context)
