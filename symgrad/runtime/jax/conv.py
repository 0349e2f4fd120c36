"""``jax.lax.conv_general_dilated`` itself, for the jax target: the forms' fields are its own
arguments.  Only the specs that lack a batch or channel axis (numpy.convolve's plain vectors) get
unit axes, which lax requires."""
from jax import lax


def _unit_axes(a, spec, letters):
    """``a`` with a leading unit axis for each of ``letters`` its ``spec`` lacks, and the new spec
    (``a`` None: the spec alone)."""
    for letter in letters:
        if letter not in spec:
            a, spec = (None if a is None else a[None]), letter + spec
    return a, spec


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                         dimension_numbers, feature_group_count=1, batch_group_count=1):
    """lax.conv_general_dilated at full precision, any spec."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    lhs, lhs_spec = _unit_axes(lhs, lhs_spec, "NC")
    rhs, rhs_spec = _unit_axes(rhs, rhs_spec, "OI")
    _, full_out = _unit_axes(None, out_spec, "NC")
    out = lax.conv_general_dilated(lhs, rhs, tuple(window_strides), [tuple(p) for p in padding], tuple(lhs_dilation),
                                   tuple(rhs_dilation), (lhs_spec, rhs_spec, full_out),
                                   feature_group_count=feature_group_count, batch_group_count=batch_group_count,
                                   precision=lax.Precision.HIGHEST)
    return out.reshape(out.shape[len(full_out) - len(out_spec):])
