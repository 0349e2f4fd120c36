"""exp of one float32 element, for the compiled loops (:mod:`jit`): libm's expf, which math.exp
calls, runs one element at a time; this one LLVM vectorises."""
import numpy as xp

from .jit import _inline, numba

try:
    from llvmlite import ir as _llvm
    from numba.extending import intrinsic as _intrinsic
except ImportError:
    _intrinsic = lambda function: function  # noqa: E731  (without numba nothing calls it)


@_intrinsic
def _float32_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 ``bits`` (one LLVM bitcast; numba)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _llvm.FloatType())
    return numba.float32(numba.int32), codegen


@_inline
def _exp32(x):
    """exp of one float32 element (numba), Cephes' expf: x = n ln2 + r with |r| <= ln2/2 (ln2 in
    two parts), exp(r) by a degree-7 polynomial, 2^n as two exponent-bit factors so that results
    from the subnormal range up to FLT_MAX come out.  Max relative error 6e-8 against float64
    on normal results."""
    if x != x:
        return x
    x = min(max(x, numba.float32(-104.0)), numba.float32(89.0))  # beyond: 0 and inf
    n = xp.floor(x * numba.float32(1.44269504088896341) + numba.float32(0.5))  # float32, as numba types it
    r = x - n * numba.float32(0.693359375) + n * numba.float32(2.12194440e-4)
    p = numba.float32(1.9875691500e-4)
    for c in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
        p = p * r + numba.float32(c)
    y = p * (r * r) + r + numba.float32(1.0)
    k = numba.int32(n)
    half = k >> 1
    return y * _float32_bits((half + 127) << 23) * _float32_bits((k - half + 127) << 23)
