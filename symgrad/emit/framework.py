"""Framework targets: the derivation as a ``torch.autograd.Function`` or a ``jax.custom_vjp``.

The forms' code is the one the NumPy modules run (:func:`symgrad.emit.module.code_context`), printed
for the framework's array module (:mod:`symgrad.backends`) and calling its own convolution and
contraction (``runtime/torch_conv.py``, ``runtime/jax_conv.py``, …).  Every operation in a backward
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
from .inline import import_block, inline
from .module import _unbatched, code_context, header_context

#: the most spatial axes a torch convolution has (conv1d, conv2d, conv3d)
TORCH_SPATIAL = 3

_USAGE = {
    "torch": ("Use: {function}({args}) (a torch.autograd.Function applied to tensors of one dtype and device; "
              "torch.autograd.grad and .backward() run the derived backward, and differentiate it again for "
              "double backward){module}."),
    "jax": ("Use: {function}({args}) (a jax.custom_vjp: jax.grad, jax.vjp and jax.jit run the derived backward; "
            "jax.grad of jax.grad differentiates it again)."),
}


def camel(name: str) -> str:
    """``conv2d`` -> ``Conv2d``, ``avg_pool1d`` -> ``AvgPool1d``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _conv_axes(d: Derivation) -> int:
    """The most spatial axes any convolution form of the derivation has."""
    forms = d.forward + [f for g in d.grads.values() for f in g.forms]
    return max((len([c for c in f.fields["dimension_numbers"][1] if c not in "OI"])
                for f in forms if f.kind == "conv_general_dilated"), default=0)


def _layer(op) -> dict | None:
    """An nn.Module for a convolution op (inputs x, w and maybe b): its constructor's parameters
    and the weight's shape, or None for other ops."""
    names = [t.name for t in op.inputs]
    if names[:2] != ["x", "w"] or "groups" not in op.params:
        return None
    w = op.input("w")
    kernel = [str(dim) if dim.is_Integer else None for dim in w.shape[2:]]
    return {"class": camel(op.name), "bias": "b" in names, "groups": int(op.params["groups"]),
            "kernel": kernel, "spatial": len(kernel)}


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
    layer = _layer(op) if target == "torch" else None
    sized = ", kernel_size" if layer and None in layer["kernel"] else ""
    usage = _USAGE[target].format(function=op.name, args=args, module=(
        f"; {layer['class']}(in_channels, out_channels{sized}) is the layer with its parameters" if layer else ""))
    pieces = code["pieces"] | {f"{target}_inputs"} | ({"torch_layer"} if layer else set())
    names, imports, runtime = inline(pieces, spec.substitutes)
    imports = list(imports) + code["imports"] + (["import jax"] if target == "jax" else [])
    backward = [{"name": t.name, "function": naming.grad_function(t.name), "result": naming.grad(t.name),
                 "body": code["grads"][t.name]} for t in op.inputs]
    return {
        **header_context(d, spec, usage=usage), **code,
        "pieces": names, "runtime": runtime,
        "imports": import_block(imports, spec.array_import),
        "backward": backward, "function": op.name, "class_name": f"{camel(op.name)}Function",
        "names": repr(tuple(t.name for t in op.inputs)), "one_input": len(op.inputs) == 1,
        "grad_names": repr((naming.GRAD_OUTPUT,) + tuple(t.name for t in op.inputs)),
        "upstream": naming.UPSTREAM, "unbatched": _unbatched(op), "elementwise": op.elementwise,
        "layer": layer, "residuals": args + ("," if len(op.inputs) == 1 else ""),
    }


def emit_target(d: Derivation, target: str) -> str:
    """The ``torch`` or ``jax`` module's source text; deterministic (same derivation, same bytes).

    >>> from symgrad import ops, derive
    >>> "class GeluFunction(xp.autograd.Function)" in emit_target(derive(ops.gelu()), "torch")
    True
    """
    context = target_context(d, target)
    return environment().get_template(f"{target}_module.py.j2").render(**context)
