"""Whether a framework kernel may compute an elementwise form (:mod:`symgrad.forms.kernels`)."""
import torch


def _within(a, narrow, double):
    """Every element of ``a`` finite and at most ``double`` in magnitude for float64 (``narrow`` for
    the narrower floats, which torch's kernels compute in float32); one pass (min and max), one
    host sync.  NaN is outside: the derived expression then computes every element.  Where the
    values cannot be read (traced by torch.compile or torch.export, fake tensors, a vmap's batch),
    False: the derived expression is right for every element."""
    if torch.compiler.is_compiling():
        return False
    if a.numel() == 0:
        return True
    bound = min(double if a.dtype == torch.float64 else narrow, torch.finfo(a.dtype).max)  # ±inf stays out
    lo, hi = torch.aminmax(a)
    try:
        return bool((lo >= -bound) & (hi <= bound))
    except RuntimeError:  # (data-dependent: a fake or batched tensor)
        return False
