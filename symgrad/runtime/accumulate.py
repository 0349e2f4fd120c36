"""How the NumPy modules' convolution paths sum products into one result: each product by way of
a scratch array (:mod:`products`).  The CuPy modules carry :mod:`cupy.accumulate` instead, which
defines the same names."""
from .products import _add_product, _add_products

_SCRATCH = True  # the convolution paths keep a scratch buffer for _accumulate
_accumulate = _add_product  # total (+)= product(a, b), by way of a scratch result
_sum_of_products = _add_products  # a depthwise layer's taps: one multiply-add per tap
