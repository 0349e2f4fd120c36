"""``jax.lax.conv_general_dilated`` without lhs dilation or batch groups, for NumPy arrays: a layer's
forward, its input gradient at unit stride, its weight gradient without groups.  A NumPy module whose
convolutions are all plain calls :func:`plain_conv` and carries neither the transposed path nor
im2col (:mod:`conv` is the general entry); the path is :mod:`conv_paths`' choice.
"""
from .conv_paths import _canonical, _conv
from .layout import _from_layout


def plain_conv(lhs, rhs, window_strides, padding, rhs_dilation, dimension_numbers, feature_group_count=1):
    """conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=1, rhs_dilation,
    dimension_numbers, feature_group_count, batch_group_count=1).

    >>> import numpy
    >>> lhs, rhs = numpy.arange(5.0).reshape(1, 1, 5), numpy.ones((1, 1, 2))
    >>> plain_conv(lhs, rhs, (1,), [(0, 0)], (1,), ("NCW", "OIW", "NCW"))
    array([[[1., 3., 5., 7.]]])
    """
    lhs, rhs, spatial = _canonical(lhs, rhs, dimension_numbers)
    return _from_layout(_conv(lhs, rhs, window_strides, padding, rhs_dilation, feature_group_count),
                        "NC" + spatial, dimension_numbers[2])
