"""``jax.lax.conv_general_dilated`` (XLA semantics) on torch tensors with torch's own convolution
kernels, for the torch target: every operation differentiable, so a backward built from it has a
double backward.

* batch groups (a grouped layer's weight gradient) become feature groups: the lhs batch splits
  into its groups, which join the channel axis;
* an lhs dilation at unit window strides (a transposed convolution, the input gradient of a
  strided layer) runs as ``conv_transpose``: the kernel reversed, its in and out channels swapped
  within each group, the result cropped or padded to XLA's window;
* a call without feature groups whose kernel is larger than its output (a weight gradient: the
  kernel is the upstream gradient, the output the layer's taps; batch groups are a grouped
  layer's groups) runs as torch's weight-gradient kernel
  (``torch.nn.grad.conv*d_weight``, ``aten.convolution_backward`` with a weight-only mask, itself
  differentiable), the batch and channel axes of lhs and rhs swapped into a layer's input and
  upstream gradient: torch's convolution with a kernel as long as the layer's output is slow;
* otherwise ``conv1d/2d/3d``, symmetric padding inside the call, asymmetric or negative padding
  (a crop) by ``torch.nn.functional.pad`` first.

Torch has convolutions of one to three spatial axes; the emitter refuses more for this target.
"""
import torch

from ..crop_pad import _crop_and_pad
from ..layout import _from_layout, _to_layout

_CONV = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}
_CONV_TRANSPOSE = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
                   3: torch.nn.functional.conv_transpose3d}
_CONV_WEIGHT = {1: torch.nn.grad.conv1d_weight, 2: torch.nn.grad.conv2d_weight, 3: torch.nn.grad.conv3d_weight}


def _pad(a, pads):
    """``a`` padded by (lo, hi) per spatial axis as XLA pads: negative values crop, a crop past the
    far end eats into the other side's padding (slicing, then torch's constant pad)."""
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return a
    crops, adds = zip(*(_crop_and_pad(n, lo, hi) for (lo, hi), n in zip(pads, a.shape[2:])))
    a = a[(slice(None), slice(None)) + crops]
    flat = []
    for lo, hi in reversed(adds):  # torch.nn.functional.pad takes the last axis first
        flat += [lo, hi]
    return torch.nn.functional.pad(a, flat) if any(flat) else a


def _transposed(lhs, rhs, padding, lhs_dilation, rhs_dilation, groups):
    """lhs dilated by ``lhs_dilation``, padded and convolved at unit strides: conv_transpose with
    stride lhs_dilation and the reversed kernel (in/out channels swapped within each group), whose
    output z relates to XLA's y by y[m] = z[m + (K-1)*rd - lo]; the shared crop goes into the call's
    padding, the rest is cropped or padded after."""
    nsp = lhs.ndim - 2
    o, i = rhs.shape[:2]
    kernel = rhs.reshape((groups, o // groups, i) + tuple(rhs.shape[2:])).transpose(1, 2)
    kernel = torch.flip(kernel.reshape((groups * i, o // groups) + tuple(rhs.shape[2:])), dims=tuple(range(2, 2 + nsp)))
    starts, rests, shared = [], [], []
    for q, ld, (lo, hi), k, rd in zip(lhs.shape[2:], lhs_dilation, padding, rhs.shape[2:], rhs_dilation):
        full = (q - 1) * ld + (k - 1) * rd + 1          # z's length without padding
        want = (q - 1) * ld + 1 + lo + hi - (k - 1) * rd  # y's length
        start = (k - 1) * rd - lo
        both = max(0, min(start, full - start - want))  # cropped on both sides: conv_transpose's padding
        shared.append(both)
        starts.append(start - both)
        rests.append(full - 2 * both - (start - both) - want)
    z = _CONV_TRANSPOSE[nsp](lhs, kernel, stride=tuple(lhs_dilation), padding=tuple(shared),
                             dilation=tuple(rhs_dilation), groups=groups)
    return _pad(z, [(-s, -r) for s, r in zip(starts, rests)])


def _product(sizes) -> int:
    total = 1
    for n in sizes:
        total *= n
    return total


def _weight_gradient(lhs, rhs, window_strides, padding, rhs_dilation, out_sp, groups):
    """out[n, o, k] = Σ_{i, t} lhs[γ(o)·N/G + n, i, k·ws + t·rd − lo] · rhs[o, i, t] (canonical axes,
    ``groups`` batch groups) as the weight gradient of a layer with input lhs and upstream gradient
    rhs (batch and channel axes swapped), stride rd, dilation ws and ``groups`` groups: dW[o, n, k],
    swapped back.  The padded input is cut to the span the taps read."""
    lhs = _pad(lhs, padding)
    span = [(t - 1) * rd + (k - 1) * ws + 1 for t, rd, k, ws in zip(rhs.shape[2:], rhs_dilation, out_sp, window_strides)]
    lhs = lhs[(slice(None), slice(None)) + tuple(slice(0, n) for n in span)]
    weight = _CONV_WEIGHT[len(out_sp)](lhs.transpose(0, 1), (rhs.shape[0], lhs.shape[0] // groups) + tuple(out_sp),
                                       rhs.transpose(0, 1), stride=tuple(rhs_dilation), dilation=tuple(window_strides),
                                       groups=groups)
    return weight.transpose(0, 1)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                         dimension_numbers, feature_group_count=1, batch_group_count=1):
    """jax.lax.conv_general_dilated (XLA semantics) on torch tensors (see the module's docstring).

    >>> lhs, rhs = torch.arange(5.0).reshape(1, 1, 5), torch.ones((1, 1, 2))
    >>> conv_general_dilated(lhs, rhs, (1,), [(0, 0)], (1,), (1,), ("NCW", "OIW", "NCW")).tolist()
    [[[1.0, 3.0, 5.0, 7.0]]]
    """
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    spatial = "".join(c for c in rhs_spec if c not in "OI")
    lhs = _to_layout(lhs, lhs_spec, "NC" + spatial)
    rhs = _to_layout(rhs, rhs_spec, "OI" + spatial)
    nsp = len(spatial)
    span = [(k - 1) * d + 1 for k, d in zip(rhs.shape[2:], rhs_dilation)]
    sizes = [((q - 1) * ld + 1 if q else 0) + lo + hi for q, ld, (lo, hi) in zip(lhs.shape[2:], lhs_dilation, padding)]
    out_sp = [max(0, (n - s) // w + 1) if n >= s else 0 for n, s, w in zip(sizes, span, window_strides)]
    if 0 in out_sp or 0 in lhs.shape[:2] or rhs.shape[0] == 0:  # nothing to compute: zeros, as XLA gives
        out = lhs.new_zeros((lhs.shape[0] // batch_group_count, rhs.shape[0]) + tuple(out_sp))
        return _from_layout(out, "NC" + spatial, out_spec)
    if (feature_group_count == 1 and all(d == 1 for d in lhs_dilation)
            and _product(rhs.shape[2:]) > _product(out_sp)):  # a weight gradient (batch groups: a grouped layer's)
        out = _weight_gradient(lhs, rhs, window_strides, padding, rhs_dilation, out_sp, batch_group_count)
        return _from_layout(out, "NC" + spatial, out_spec)
    groups = feature_group_count
    if batch_group_count != 1:  # the lhs batch's groups join the channels: a feature-grouped call
        n, c = lhs.shape[:2]
        lhs = lhs.reshape((batch_group_count, n // batch_group_count, c) + tuple(lhs.shape[2:])).transpose(0, 1)
        lhs = lhs.reshape((n // batch_group_count, batch_group_count * c) + tuple(lhs.shape[3:]))
        groups = batch_group_count
    if any(d != 1 for d in lhs_dilation) and all(s == 1 for s in window_strides):
        out = _transposed(lhs, rhs, padding, lhs_dilation, rhs_dilation, groups)
    else:
        if any(d != 1 for d in lhs_dilation):  # strided windows over a dilated input: zeros inserted
            dilated = lhs.new_zeros(tuple(lhs.shape[:2]) + tuple((q - 1) * d + 1 for q, d in zip(lhs.shape[2:], lhs_dilation)))
            dilated[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in lhs_dilation)] = lhs
            lhs = dilated
        symmetric = all(lo == hi and lo >= 0 for lo, hi in padding)
        if not symmetric:
            lhs = _pad(lhs, padding)
        out = _CONV[nsp](lhs, rhs, stride=tuple(window_strides), padding=tuple(lo for lo, _ in padding) if symmetric else 0,
                         dilation=tuple(rhs_dilation), groups=groups)
    return _from_layout(out, "NC" + spatial, out_spec)
