"""What a torch target's autograd functions keep between their forward and their backward or jvp,
and how they use it (each method of the emitted autograd.Function delegates here)."""
import torch



def _keep(ctx, inputs, output, outputs):
    """setup_context of the op's autograd function: the inputs and the residuals (``output`` past its
    first ``outputs``, marked non-differentiable) saved for backward, the inputs for jvp."""
    residuals = output[outputs:] if isinstance(output, tuple) else ()
    ctx.mark_non_differentiable(*residuals)
    ctx.save_for_backward(*inputs, *residuals)
    ctx.save_for_forward(*inputs)


def _saved(ctx, count, forward):
    """The inputs, then the residuals, as ``_keep`` kept them; under create_graph=True (autograd
    recording in the backward) the residuals are recomputed by ``forward(*inputs)``, so that double
    backward differentiates through them as well."""
    saved = ctx.saved_tensors
    inputs = saved[:count]
    return (*inputs, *(forward(*inputs)[1] if torch.is_grad_enabled() else saved[count:]))


def _moved(ctx, tangents, jvp_forward, flat=False, residuals=0):
    """jvp of the op's autograd function: the derived JVP (``jvp_forward(*inputs, *tangents)[0]``: the
    outputs' tangents) at the inputs ``_keep`` saved, a zero tangent for an input without one;
    ``flat``: an elementwise op of any shape, run flat; ``residuals``: outputs without a tangent."""
    inputs = ctx.saved_tensors
    tangents = _tangents(inputs, tangents)
    if flat:
        return jvp_forward(*(a.reshape(-1) for a in inputs + tangents))[0][0].reshape(inputs[0].shape)
    moved = jvp_forward(*inputs, *tangents)[0]
    if residuals:
        return (*moved, *(None,) * residuals)
    return moved[0] if len(moved) == 1 else moved


def _distinct(results, inputs):
    """``results`` with any that is one of ``inputs`` (returned as it came) as a view of it: an autograd
    function with setup_context may not save an input it returns as-is."""
    return tuple(r.view_as(r) if any(r is a for a in inputs) else r for r in results)


def _keep_backward(ctx, inputs, count, kept):
    """setup_context of the backward's autograd function (inputs: the op's ``count`` inputs, ``kept``
    residuals, the upstream gradients): the op's inputs and the upstream gradients saved for its
    backward (the derived double backward) and its jvp; not the residuals, recomputed where needed."""
    saved = inputs[:count] + inputs[count + kept:]
    ctx.save_for_backward(*saved)
    ctx.save_for_forward(*saved)


def _backward_moved(ctx, tangents, count, kept, pullback, forward):
    """jvp of the backward's autograd function (forward over reverse: jacfwd of a gradient, hessian):
    torch's forward AD of the backward's code, ``pullback(*inputs, *residuals, *upstreams)``, with the
    residuals recomputed by ``forward`` so that their tangents count."""
    primals = ctx.saved_tensors
    moved = _tangents(primals, tangents[:count] + tangents[count + kept:])
    backward = lambda *a: pullback(*a[:count], *forward(*a[:count])[1], *a[count:])  # noqa: E731
    return torch.func.jvp(backward, primals, moved)[1]


def _tangents(inputs, tangents):
    """The tangents of a JVP with a zero tangent for each input that has none (None)."""
    return tuple(torch.zeros_like(a) if t is None else t for a, t in zip(inputs, tangents))
