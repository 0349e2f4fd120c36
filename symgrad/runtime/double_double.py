"""Double-double arithmetic for float64 elementwise work: a number is an unevaluated sum hi + lo of
two doubles (about 106 bits), so that a float64 result is computed wider and rounded once, as
float32 results are computed in float64 (:mod:`blockwise`).  +, −, ×, ÷, √, exp, erfc, erf and tanh
keep the extra bits (an expression with any other function gets no double-double code:
printing/double.py).

Every function is branch-free arithmetic on NumPy ufuncs, so one source serves both paths: arrays
(the NumPy blocks, ``_DD``) and single elements compiled by numba (``_dd_compiled()``); the few
primitives that differ between the two come in as ``_Flavour``.  Infinities and NaN keep their IEEE
meaning: a non-finite head carries a zero tail.  Relative error: below 1e-30 for +, ×, ÷, √; about
1e-21 for exp, erfc, erf and tanh (a float64 result is then rounded correctly but in rare ties).

erfc near its turn (|z| <= 5) is a Taylor expansion about the nearest multiple of 1/32 whose
coefficients are computed at import, in double-double (``_erfc_table``); beyond, where erfc is
below 1e-12, it is e^(-z²) in double-double times Laplace's continued fraction in double (a few ulps).
The numba functions are compiled with ``forceinline`` (LLVM inlines them into the loop, which it then
vectorises; numba's own ``inline="always"`` took minutes to compile a GELU gradient).
"""
import math

import numpy as xp

from .numba.jit import numba
from .numba.exp import _float64_bits

_SPLITTER = 134217729.0                  # 2^27 + 1: Veltkamp's split of a double into two halves
_SPLIT_MAX = 6.696928794914171e+299      # 2^996: larger numbers are scaled down before the split
_LN2_64 = (0.010830424696249145, 3.623510646634843e-19)    # ln2/64
_TWO_OVER_SQRT_PI = (1.1283791670955126, 1.533545961316588e-17)
_ONE_OVER_SQRT_PI = 0.5641895835477563
_STEP = 32.0                             # erfc's Taylor nodes: multiples of 1/32 ...
_NODES = 161                             # ... from 0 to 5
_TAYLOR = 17                             # coefficients per node: c0 .. c16 (|h| <= 1/64: 1e-30)
_WIDE = 4                                # c0 .. c3 in double-double, the rest in double


_EXP_TAIL = xp.array([1.0 / math.factorial(n) for n in range(9, 1, -1)])  # 1/9!, ..., 1/2!: (exp(r) - 1 - r)/r²


class _Flavour:
    """What differs between arrays and compiled single elements: ``compile`` makes each function
    (the identity, or a numba decorator); ``select(c, a, b)`` is a where c, else b; ``index``
    turns float node numbers into integers; ``ldexp(x, q)`` is x·2^q for a float q."""

    def __init__(self, compile, select, index, ldexp):
        self.compile, self.select, self.index, self.ldexp = compile, select, index, ldexp


def _double_double(flavour, tables=None):
    """The double-double functions of ``flavour``; ``tables``: 2^(j/64), j = 0 .. 63, and erfc's
    Taylor coefficients, which the functions exp, erfc, erf and tanh read (the tables are computed
    with the arithmetic made without them)."""
    compile, select, index, ldexp = flavour.compile, flavour.select, flavour.index, flavour.ldexp

    @compile
    def norm(s, e):
        """hi + lo of s + e (|e| small against s); a non-finite sum keeps s with a zero tail."""
        h = s + e
        ok = xp.isfinite(h)
        return select(ok, h, s), select(ok, e - (h - s), 0.0)

    @compile
    def two_sum(a, b):
        s = a + b
        v = s - a
        return s, (a - (s - v)) + (b - v)

    @compile
    def split(a):
        big = xp.abs(a) > _SPLIT_MAX
        a = select(big, a * 3.725290298461914e-09, a)
        t = _SPLITTER * a
        hi = t - (t - a)
        scale = select(big, 268435456.0, 1.0)
        return hi * scale, (a - hi) * scale

    @compile
    def two_prod(a, b):
        """a·b exactly, as p + e (Dekker)."""
        p = a * b
        ah, al = split(a)
        bh, bl = split(b)
        return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl

    @compile
    def add(ah, al, bh, bl):
        s, e = two_sum(ah, bh)
        t, f = two_sum(al, bl)
        s, e = norm(s, e + t)
        return norm(s, e + f)

    @compile
    def mul(ah, al, bh, bl):
        p, e = two_prod(ah, bh)
        return norm(p, e + (ah * bl + al * bh))

    @compile
    def div(ah, al, bh, bl):
        q = ah / bh
        ph, pl = mul(q, 0.0, bh, bl)
        rh, rl = add(ah, al, -ph, -pl)
        return norm(q, rh / bh)

    @compile
    def sqrt(ah, al):
        s = xp.sqrt(ah)
        p, e = two_prod(s, s)
        return norm(s, ((ah - p) - e + al) / (2.0 * s))

    @compile
    def where(c, ah, al, bh, bl):
        return select(c, ah, bh), select(c, al, bl)

    @compile
    def value(ah, al):
        """The double nearest to hi + lo."""
        return select(xp.isfinite(ah), ah + al, ah)

    if tables is None:
        return {"add": add, "mul": mul, "div": div, "sqrt": sqrt}
    (powers_hi, powers_lo), (wide_hi, wide_lo, narrow) = tables

    @compile
    def exp(ah, al):
        """exp(a) = 2^q 2^(j/64) exp(r), a = (64q + j) ln2/64 + r, |r| <= ln2/128: exp(r) = 1 + s,
        s = r + (r²/2 + r³/6 + ...) with the parenthesis (below 2e-5) in double: within 2e-21."""
        n = xp.fmin(xp.fmax(xp.floor(ah * 92.33248261689366 + 0.5), -69120.0), 65920.0)  # 64/ln2
        ph, pl = two_prod(n, _LN2_64[0])
        rh, rl = two_sum(ah, -ph)
        rh, rl = norm(rh, rl + (al - pl - n * _LN2_64[1]))
        p = _EXP_TAIL[0]
        for m in range(1, _EXP_TAIL.size):
            p = p * rh + _EXP_TAIL[m]
        sh, sl = two_sum(rh, rh * rh * p)
        sl = sl + rl * (1.0 + rh)
        q = xp.floor(n * 0.015625)
        j = index(n - 64.0 * q)
        th, tl = powers_hi[j], powers_lo[j]
        ph, pl = two_prod(th, sh)  # 2^(j/64) (1 + s) = t + t·s
        eh, el = two_sum(th, ph)
        eh, el = norm(eh, el + (pl + tl + tl * sh + th * sl))
        eh, el = ldexp(eh, q), ldexp(el, q)
        out = select(ah > 709.8, xp.inf, select(ah < -746.0, 0.0, eh))
        out = select(ah != ah, ah, out)
        return out, select(xp.isfinite(out) & (out != 0.0), el, 0.0)

    @compile
    def erfc(ah, al):
        """erfc(a): Taylor about the nearest node below 5 + 1/64; beyond, e^(-a²) (in double-double)
        times Laplace's continued fraction in double."""
        b = xp.abs(ah)
        bl = select(ah < 0.0, -al, al)
        node = xp.fmin(xp.floor(b * _STEP + 0.5), _NODES - 1.0)
        j = index(node)
        h = b - node / _STEP  # exact
        v = narrow[_TAYLOR - 1 - _WIDE, j]
        for n in range(_TAYLOR - 2 - _WIDE, -1, -1):
            v = v * h + narrow[n, j]
        vh, vl = v, 0.0 * v
        for n in range(_WIDE - 1, -1, -1):
            vh, vl = mul(vh, vl, h, bl)
            vh, vl = add(vh, vl, wide_hi[n, j], wide_lo[n, j])
        near = b <= (_NODES - 0.5) / _STEP
        z = xp.fmin(xp.fmax(b, 5.0), 27.5)  # erfc(27.3) is below the smallest double
        p0, p1, q0, q1 = 1.0, z, 0.0, 1.0
        for k in range(1, 21):  # Laplace's continued fraction z + (1/2)/(z + 1/(z + ...)) as p/q: below 2e-19
            p0, p1 = p1, z * p1 + 0.5 * k * p0
            q0, q1 = q1, z * q1 + 0.5 * k * q0
        zl = select(near | (b > 27.5), 0.0, bl)
        sh, sl = mul(z, zl, z, zl)
        eh, el = exp(-sh, -sl)
        far = eh * _ONE_OVER_SQRT_PI * q1 / p1
        fh, fl = select(near, vh, far), select(near, vl, 0.0)
        nh, nl = add(2.0, 0.0, -fh, -fl)
        negative = ah < 0.0
        return select(ah != ah, ah, select(negative, nh, fh)), select(negative, nl, fl)

    @compile
    def erf(ah, al):
        """erf(a) = 1 - erfc(a); below |a| = 1e-10, 2/√π (a - a³/3)."""
        ch, cl = erfc(ah, al)
        bh, bl = add(1.0, 0.0, -ch, -cl)
        sh, sl = mul(_TWO_OVER_SQRT_PI[0], _TWO_OVER_SQRT_PI[1], ah, al)
        sh, sl = add(sh, sl, -_TWO_OVER_SQRT_PI[0] * ah * ah * ah / 3.0, 0.0)
        return where(xp.abs(ah) < 1e-10, sh, sl, bh, bl)

    @compile
    def tanh(ah, al):
        """tanh(a) = sign(a) (1 - e) / (1 + e), e = exp(-2|a|); below |a| = 1e-8, a - a³/3."""
        negative = ah < 0.0
        bh, bl = xp.abs(ah), select(negative, -al, al)
        eh, el = exp(-2.0 * bh, -2.0 * bl)
        nh, nl = add(1.0, 0.0, -eh, -el)
        dh, dl = add(1.0, 0.0, eh, el)
        th, tl = div(nh, nl, dh, dl)
        th, tl = where(negative, -th, -tl, th, tl)
        sh, sl = add(ah, al, -ah * ah * ah / 3.0, 0.0)
        th, tl = where(xp.abs(ah) < 1e-8, sh, sl, th, tl)
        return select(ah != ah, ah, th), tl

    return {"add": add, "mul": mul, "div": div, "sqrt": sqrt, "where": where, "value": value, "exp": exp,
            "erfc": erfc, "erf": erf, "tanh": tanh}


def _powers():
    """2^(j/64), j = 0 .. 63, in double-double: 2^(1/64) by six square roots of 2, then its powers."""
    f = _ARITHMETIC
    root = (2.0, 0.0)
    for _ in range(6):
        root = f["sqrt"](*root)
    hi, lo = [1.0], [0.0]
    for _ in range(63):
        h, low = f["mul"](hi[-1], lo[-1], *root)
        hi.append(float(h))
        lo.append(float(low))
    return xp.array(hi), xp.array(lo)


def _exp_of_squares(f, j):
    """e^(-j²/1024) in double-double (to 1e-30: the erfc table's c0 is 1 minus a multiple of it):
    e^(-1/1024) by its Taylor series, raised to j² by squaring."""
    base = (1.0, 0.0)
    for n in range(12, 0, -1):  # 1 - u(1 - u/2(1 - u/3 ...)), u = 1/1024
        base = f["div"](*f["mul"](*base, -1.0 / 1024, 0.0), float(n), 0.0)
        base = f["add"](1.0, 0.0, *base)
    power = j * j
    hi, lo = xp.ones(j.shape), xp.zeros(j.shape)
    while power.any():
        odd = power % 2 == 1
        th, tl = f["mul"](hi, lo, *base)
        hi, lo = xp.where(odd, th, hi), xp.where(odd, tl, lo)
        base = f["mul"](*base, *base)
        power = power // 2
    return hi, lo


def _select(c, a, b):
    """a where c, else b, for one element (numba)."""
    return a if c else b


def _ldexp_bits(x, q):
    """x·2^q for an integral float q in [-1080, 1030], as two exact powers of two made from their
    bits (numba; LLVM vectorises it, not libm's ldexp)."""
    k = numba.int64(q)
    half = k >> 1
    return x * _float64_bits((half + 1023) << 52) * _float64_bits((k - half + 1023) << 52)


_ARRAYS = _Flavour(lambda function: function, xp.where, xp.int64, lambda x, q: xp.ldexp(x, xp.int64(q)))
_ARITHMETIC = _double_double(_ARRAYS)
_POWERS = _powers()


def _erfc_table():
    """erfc's Taylor coefficients about z0 = j/32, j = 0 .. 160, in double-double: c_n =
    erfc^(n)(z0)/n!.  c0 up to z0 = 2 is 1 - 2/√π e^(-z0²) Σ (2z0²)^n z0/(2n+1)!! (all terms
    positive; the difference loses at most 8 bits), beyond by Laplace's continued fraction
    e^(-z0²)/√π / (z0 + (1/2)/(z0 + 1/(z0 + (3/2)/(z0 + ...)))); c_n = -2/√π e^(-z0²) (-1)^(n-1)
    H_(n-1)(z0)/n! (physicists' Hermite polynomials)."""
    f = _ARITHMETIC
    z = xp.arange(_NODES) / _STEP
    zz2 = 2.0 * z * z  # exact
    eh, el = _exp_of_squares(f, xp.arange(_NODES))
    kh, kl = f["mul"](_TWO_OVER_SQRT_PI[0], _TWO_OVER_SQRT_PI[1], eh, el)   # 2/√π e^(-z0²)
    th, tl = z, 0.0 * z
    sh, sl = th, tl
    for n in range(80):  # the terms fall below 1e-40 of the sum by n = 60 at z0 = 2
        th, tl = f["mul"](th, tl, zz2, 0.0)
        th, tl = f["div"](th, tl, 2.0 * n + 3.0, 0.0)
        sh, sl = f["add"](sh, sl, th, tl)
    ph, pl = f["mul"](kh, kl, sh, sl)
    series = f["add"](1.0, 0.0, -ph, -pl)
    far = xp.maximum(z, 2.0)
    dh, dl = far, 0.0 * z
    for k in range(200, 0, -1):  # converged below 1e-27 at z0 = 2 (its error falls as e^(-2z0√(2k)))
        qh, ql = f["div"](0.5 * k, 0.0, dh, dl)
        dh, dl = f["add"](far, 0.0, qh, ql)
    fraction = f["div"](0.5 * kh, 0.5 * kl, dh, dl)  # e^(-z0²)/√π / (z0 + ...)
    hi, lo = [None] * _TAYLOR, [None] * _TAYLOR
    hi[0], lo[0] = xp.where(z <= 2.0, series[0], fraction[0]), xp.where(z <= 2.0, series[1], fraction[1])
    hermite = [(xp.ones_like(z), 0.0 * z), (2.0 * z, 0.0 * z)]
    for m in range(1, _TAYLOR - 2):
        ah, al = f["mul"](*hermite[m], 2.0 * z, 0.0)
        bh, bl = f["mul"](*hermite[m - 1], 2.0 * m, 0.0)
        hermite.append(f["add"](ah, al, -bh, -bl))
    for n in range(1, _TAYLOR):
        ch, cl = f["mul"](kh, kl, *hermite[n - 1])
        sign = -1.0 if (n - 1) % 2 == 0 else 1.0
        hi[n], lo[n] = f["div"](sign * ch, sign * cl, float(math.factorial(n)), 0.0)  # n! <= 16! is exact
    return xp.array(hi[:_WIDE]), xp.array(lo[:_WIDE]), xp.array(hi[_WIDE:])


_DD_TABLE = _erfc_table()
_DD = _double_double(_ARRAYS, (_POWERS, _DD_TABLE))
_dd_add, _dd_mul, _dd_div, _dd_sqrt, _dd_where, _dd_value, _dd_exp, _dd_erfc, _dd_erf, _dd_tanh = (
    _DD[name] for name in ("add", "mul", "div", "sqrt", "where", "value", "exp", "erfc", "erf", "tanh"))
_DD_COMPILED = []


def _dd_compiled() -> dict:
    """The double-double functions compiled by numba for one element (once)."""
    if not _DD_COMPILED:
        one = numba.njit(forceinline=True)
        flavour = _Flavour(one, one(_select), xp.int64, one(_ldexp_bits))
        _DD_COMPILED.append(_double_double(flavour, (_POWERS, _DD_TABLE)))
    return _DD_COMPILED[0]
