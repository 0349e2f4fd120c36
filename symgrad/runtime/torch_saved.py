"""What a torch-target program's autograd.Function keeps between its forward and its backward."""
import torch as xp


def _saving(ctx, result, inputs):
    """The output (or outputs) of ``result`` = (outputs, residuals), after saving the inputs and
    the residuals the backward reads on ``ctx``."""
    outputs, kept = result
    ctx.save_for_backward(*inputs, *kept)
    return outputs[0] if len(outputs) == 1 else outputs


def _saved(ctx, count, forward):
    """The inputs, then the residuals, as ``_saving`` kept them; under create_graph=True (autograd
    recording in the backward) the residuals are recomputed by ``forward(*inputs)``, so that double
    backward differentiates through them as well."""
    saved = ctx.saved_tensors
    inputs = saved[:count]
    return (*inputs, *(forward(*inputs)[1] if xp.is_grad_enabled() else saved[count:]))
