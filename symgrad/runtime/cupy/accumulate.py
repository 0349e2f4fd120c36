"""How the CuPy modules' convolution paths sum products into one result: a GEMM adds into it in
place by cuBLAS's beta = 1 (:mod:`cupy.gemm`), a depthwise layer's taps by fused elementwise
kernels; defines the names :mod:`accumulate` defines for the NumPy modules."""
import cupy as xp

from ..products import _add_product, _add_products
from .gemm import _gemm

_SCRATCH = False  # _accumulate adds in place: no scratch buffers
_TAPS_PER_KERNEL = 16  # products per fused kernel: its arguments stay well inside CUDA's parameter space
_PRODUCT_KERNELS = {}  # (products, first, compute type): the fused kernel, made on first use


def _accumulate(product, a, b, total, scratch, first):
    """total = product(a, b) for the first term, else total += product(a, b).  A GEMM goes to
    cuBLAS in place; anything else by way of a scratch result (made when not given)."""
    if product is xp.matmul and _gemm(a, b, total, 0 if first else 1):
        return
    _add_product(product, a, b, total, scratch, first)


def _sum_of_products(products, total, scratch):
    """total = sum of a * b (broadcast) over the pairs in ``products`` (a depthwise layer's taps):
    one elementwise kernel per _TAPS_PER_KERNEL pairs, reading every window and writing the total
    once (the windows overlap, so their reads mostly hit the cache), in float for float16/32 and
    double for float64; pairs of mixed dtypes one product at a time."""
    if not all(x.dtype == total.dtype for pair in products for x in pair):
        _add_products(products, total, scratch)
        return
    compute = "double" if total.dtype == xp.float64 else "float"
    for begin in range(0, len(products), _TAPS_PER_KERNEL):
        chunk = products[begin:begin + _TAPS_PER_KERNEL]
        key = (len(chunk), begin == 0, compute)
        if key not in _PRODUCT_KERNELS:
            terms = [f"({compute})a{k} * ({compute})b{k}" for k in range(len(chunk))]
            body = "total = " + " + ".join(([] if begin == 0 else [f"({compute})total"]) + terms) + ";"
            params = ", ".join(f"T a{k}, T b{k}" for k in range(len(chunk)))
            _PRODUCT_KERNELS[key] = xp.ElementwiseKernel(params, "T total", body, "symgrad_sum_of_products")
        _PRODUCT_KERNELS[key](*[x for pair in chunk for x in pair], total)
