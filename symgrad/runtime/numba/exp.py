"""exp of one element in double precision, for the compiled loops (:mod:`jit`): libm's exp, which
math.exp calls, runs one element at a time; this one (Cephes' exp) LLVM vectorises.  Within an ulp
of the exact value; results from the subnormal range up to DBL_MAX, 0 and inf beyond."""
import math

from .jit import _inline, numba

try:
    from llvmlite import ir as _llvm
    from numba.extending import intrinsic as _intrinsic
except ImportError:
    _intrinsic = lambda function: function  # noqa: E731  (without numba nothing calls it)

_exp_libm = math.exp  # what float64 loops call (C's libm)
_EXP_P = (1.26177193074810590878E-4, 3.02994407707441961300E-2, 9.99999999999999999910E-1)
_EXP_Q = (3.00198505138664455042E-6, 2.52448340349684104192E-3, 2.27265548208155028766E-1, 2.00000000000000000009E0)


@_intrinsic
def _float64_bits(typingctx, bits):
    """The float64 whose bit pattern is the int64 ``bits`` (one LLVM bitcast; numba)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _llvm.DoubleType())
    return numba.float64(numba.int64), codegen


@_inline
def _polynomial(coefficients, x):
    """coefficients[0]*x**(n-1) + ... + coefficients[-1] (Horner; numba)."""
    p = 0.0
    for c in coefficients:
        p = p * x + c
    return p


@_inline
def _exp64(x):
    """exp(x): x = n ln2 + r with |r| <= ln2/2 (ln2 in two parts), exp(r) by a Padé form, 2^n as two
    exponent-bit factors (numba).  NaN stays NaN."""
    if x != x:
        return x
    x = min(max(x, -746.0), 710.0)  # beyond: 0 and inf
    n = math.floor(x * 1.4426950408889634 + 0.5)
    r = x - n * 6.93145751953125E-1 - n * 1.42860682030941723212E-6
    rr = r * r
    p = r * _polynomial(_EXP_P, rr)
    y = 1.0 + 2.0 * p / (_polynomial(_EXP_Q, rr) - p)
    k = numba.int64(n)
    half = k >> 1
    return y * _float64_bits((half + 1023) << 52) * _float64_bits((k - half + 1023) << 52)
