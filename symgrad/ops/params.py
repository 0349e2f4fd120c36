"""Parsing and validating user-facing parameters; every error names the op and the parameter."""
from __future__ import annotations

import sympy as sp

from ..ir import SymgradError, integer, size


def per_axis(op: str, name: str, value, ndim: int, *, minimum: int, symbol: str) -> tuple:
    """An int, a sequence of ``ndim`` ints, or None (one symbol per axis) -> ``ndim`` values.

    >>> per_axis("conv2d", "stride", 2, 2, minimum=1, symbol="s")
    (2, 2)
    """
    if value is None:
        names = [symbol] if ndim == 1 else [f"{symbol}_{k + 1}" for k in range(ndim)]
        return tuple(size(n) if minimum >= 1 else integer(n) for n in names)
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim:
        raise SymgradError(f"{op}: {name} needs one value or {ndim} (one per spatial axis), got {len(values)}")
    out = []
    for v in values:
        out.append(_as_int(op, name, v, minimum))
    return tuple(out)


def _as_int(op: str, name: str, v, minimum: int):
    if isinstance(v, sp.Basic) and not v.is_number:
        return v
    if isinstance(v, str) and v.strip().isidentifier():  # a name keeps the parameter symbolic
        return size(v.strip()) if minimum >= 1 else integer(v.strip())
    try:
        iv = int(str(v).strip())
    except ValueError:
        raise SymgradError(f"{op}: {name} must be an integer >= {minimum}, got {v!r}") from None
    if iv < minimum:
        raise SymgradError(f"{op}: {name} must be an integer >= {minimum}, got {iv}")
    return iv


PADDING_MODES = ("same", "valid", "full", "causal")


def padding(op: str, value, ndim: int, stride: tuple, dilation: tuple, kernel: tuple) -> tuple:
    """Parse a padding spec into ``((lo, hi), ...)`` per axis.

    Accepts None (symbolic lo/hi), an int, one entry per axis, ``lo:hi`` pairs (negative = crop),
    and the modes 'same', 'valid', 'full', 'causal' (resolved from kernel size and dilation), for
    all axes or per axis: ``"causal,1"``.
    """
    if value is None:
        if ndim == 1:
            return ((integer("lo"), integer("hi")),)
        return tuple((integer(f"lo_{k + 1}"), integer(f"hi_{k + 1}")) for k in range(ndim))
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    if len(parts) == 1:
        parts = parts * ndim
    if len(parts) != ndim:
        raise SymgradError(
            f"{op}: padding needs one value, {ndim} values (one per axis), 'lo:hi' pairs, "
            f"or one of {', '.join(PADDING_MODES)}; got {value!r}")
    out = []
    for p, s, d, k in zip(parts, stride, dilation, kernel):
        if isinstance(p, str) and p.lower() in PADDING_MODES:
            out.append(_mode(op, p.lower(), s, d, k))
            continue
        if isinstance(p, (list, tuple)) and len(p) == 2:
            lo, hi = p
        elif isinstance(p, str) and ":" in p:
            lo, hi = p.split(":", 1)
        else:
            lo = hi = p
            if isinstance(p, str) and p.strip().isidentifier():
                raise SymgradError(f"{op}: padding must be integers, 'lo:hi' pairs (names allowed: 'p:p') or one of "
                                   f"{', '.join(PADDING_MODES)}; got {p!r}")
            v = _as_signed(op, lo)
            if isinstance(v, int) and v < 0:
                raise SymgradError(f"{op}: symmetric padding must be >= 0 (use 'lo:hi' pairs to crop), got {p}")
        out.append((_as_signed(op, lo), _as_signed(op, hi)))
    return tuple(out)


def _mode(op: str, mode: str, s, d, k) -> tuple:
    total = d * (k - 1)
    if mode == "same":
        if s != 1:
            raise SymgradError(f"{op}: padding='same' needs stride 1 (as torch), got stride {s}")
        lo = sp.floor(sp.sympify(total) / 2)
        return (lo, total - lo)
    if mode == "valid":
        return (0, 0)
    if mode == "full":
        return (total, total)
    return (total, 0)  # causal: all padding on the left, so output i sees inputs up to i


def _as_signed(op: str, v) -> int:
    if isinstance(v, sp.Basic) and not v.is_number:
        return v
    if isinstance(v, str) and v.strip().isidentifier():
        return integer(v.strip())
    try:
        return int(str(v).strip())
    except ValueError:
        raise SymgradError(
            f"{op}: padding must be integers, 'lo:hi' pairs or one of {', '.join(PADDING_MODES)}; got {v!r}") from None


def shape_pattern(op: str, name: str, value, default: str) -> tuple:
    """A shape written as comma-separated sizes: symbols (``B,M,K``) or integers (``1,M,K``)."""
    text = default if value is None else (",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value))
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise SymgradError(f"{op}: {name} must list at least one size, got {value!r}")
    out = []
    for p in parts:
        if p.lstrip("-").isdigit():
            v = int(p)
            if v < 1:
                raise SymgradError(f"{op}: {name} sizes must be >= 1, got {v}")
            out.append(sp.Integer(v))
        elif p.isidentifier():
            out.append(size(p))
        else:
            raise SymgradError(f"{op}: {name} sizes must be names or positive integers, got {p!r}")
    return tuple(out)
