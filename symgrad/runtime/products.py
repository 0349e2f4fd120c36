"""Sums of products into one result: ``total = Σ product(a, b)``, each product added by way of a
scratch array.  The GEMM modules build on these (the CuPy one first tries cuBLAS, which adds in
place)."""
import numpy as xp


def _add_product(product, a, b, total, scratch, first):
    """total = product(a, b) for the first term, else total += product(a, b) by way of ``scratch``
    (made when not given)."""
    if first:
        product(a, b, out=total)
    else:
        scratch = xp.empty_like(total) if scratch is None else scratch
        product(a, b, out=scratch)
        total += scratch


def _add_products(products, total, scratch):
    """total = sum of a * b (broadcast) over the pairs in ``products``, one multiply-add each."""
    for k, (a, b) in enumerate(products):
        _add_product(xp.multiply, a, b, total, scratch, k == 0)
