"""A torch-target module's operation as a native torch op (``torch.library.custom_op``): its kernel,
a fake kernel (empty results of the shapes the module computes from its inputs' shapes, for
torch.compile and torch.export), the derived backward as its autograd rule, and a batching rule for
``torch.func.vmap``; and what the module's public function does before it: torch.autocast's casts."""
import contextlib

import torch

from .saved import _keep


def _native(qualname, schema, kernel, shapes, backward, outputs, folds):
    """The op ``qualname`` (``namespace::name``; a module loaded again in the same process finds the
    op it registered, the name carrying a hash of the derivation) with ``schema``, whose kernel is
    ``kernel(*inputs)`` (a tuple: ``outputs`` results, then residuals the backward reads, marked
    non-differentiable; ``shapes(*inputs)``: their shapes, from the inputs' shapes alone, for the
    fake kernel: symbolic sizes pass through it), autograd rule ``backward(ctx, *grad_outputs)``
    (ctx.saved_tensors: the inputs, then the residuals) and batching rule from ``folds``
    (:func:`_vmap_rule`)."""
    namespace, name = qualname.split("::")
    try:
        return getattr(getattr(torch.ops, namespace), name).default
    except (AttributeError, RuntimeError):
        pass

    def run(*inputs):
        results = []
        for result in kernel(*inputs):
            result = result.contiguous()
            if any(result.untyped_storage().data_ptr() == a.untyped_storage().data_ptr()
                   for a in (*inputs, *results)):
                result = result.clone()  # an op's results alias neither its inputs nor each other
            results.append(result)
        return results[0] if len(results) == 1 else tuple(results)

    def fake(*inputs):
        first = inputs[0]
        results = [torch.empty(shape, dtype=first.dtype, device=first.device) for shape in shapes(*inputs)]
        return results[0] if len(results) == 1 else tuple(results)

    def autograd(ctx, *grads):
        return backward(ctx, *grads[:outputs])

    op = torch.library.custom_op(qualname, run, mutates_args=(), schema=schema)
    op.register_fake(fake)
    op.register_autograd(autograd, setup_context=lambda ctx, inputs, output: _keep(ctx, inputs, output, outputs))
    op.register_vmap(_vmap_rule(op, schema, folds))
    return getattr(getattr(torch.ops, namespace), name).default


def _vmap_rule(op, schema, folds):
    """A batching rule: where ``folds`` (:func:`symgrad.batching.folds`: batched input names ->
    (inputs folded, whether each result carries the batch)) has the call's batched inputs, the batch axis
    is folded into those inputs' first axis (inputs in the fold that are not batched are broadcast
    over the batch) and the op runs once; otherwise it runs once per batch element."""
    names = [part.split()[-1] for part in schema[1:schema.index(")")].split(",")]

    def rule(info, in_dims, *inputs):
        size = info.batch_size
        batched = tuple(n for n, d in zip(names, in_dims) if d is not None)
        moved = [a if d is None else a.movedim(d, 0) for a, d in zip(inputs, in_dims)]
        folded, carrying = folds.get(batched, ((), ()))
        if folded and all(moved[names.index(n)].ndim >= 1 + (n in batched) for n in folded) and \
                all(moved[names.index(n)].ndim >= 2 for n in batched):
            args = []
            for n, a in zip(names, moved):
                if n in folded:
                    a = a if n in batched else a.expand((size,) + tuple(a.shape))
                    a = a.reshape((size * a.shape[1],) + tuple(a.shape[2:]))
                args.append(a)
            results = op(*args)
            single = not isinstance(results, tuple)
            results = (results,) if single else results
            dims = [0 if k < len(carrying) and carrying[k] else None for k in range(len(results))]
            results = tuple(r.reshape((size, r.shape[0] // size) + tuple(r.shape[1:])) if d == 0 else r
                            for r, d in zip(results, dims))
            return (results[0], dims[0]) if single else (results, tuple(dims))
        args = [a if n in batched else a.expand((size,) + tuple(a.shape)) for n, a in zip(names, moved)]
        runs = [op(*(a[k] for a in args)) for k in range(size)]
        if not isinstance(runs[0], tuple):
            return torch.stack(runs), 0
        return tuple(torch.stack(r) for r in zip(*runs)), (0,) * len(runs[0])

    return rule


def _applied(function, op, *inputs):
    """``function.apply(*inputs)`` (the autograd function: derived backward and JVP), or under
    torch.compile the native op itself, whose autograd rule is the same derived backward (Dynamo does
    not trace an autograd function that defines jvp)."""
    return op(*inputs) if torch.compiler.is_compiling() else function.apply(*inputs)


def _autocast(values, lower):
    """``values`` as torch.autocast casts the inputs of torch's own op of this kind (a convolution or
    contraction, ``lower``, runs in the autocast dtype; anything else in its first input's dtype, as
    F.layer_norm takes a bfloat16 input with float32 parameters), and the context to run the op in:
    autocast off (the op computes in the dtype it was given), or a null context outside autocast,
    where ``values`` are unchanged.  The casts are differentiable: float32 parameters get float32
    gradients."""
    first = values[0]
    if not isinstance(first, torch.Tensor) or not torch.is_autocast_enabled(first.device.type):
        return values, contextlib.nullcontext()
    kind = first.device.type
    dtype = torch.get_autocast_dtype(kind) if lower else first.dtype
    values = tuple(v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v for v in values)
    return values, torch.autocast(kind, enabled=False)
