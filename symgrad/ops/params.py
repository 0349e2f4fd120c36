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

    Accepts None (symbolic lo/hi), an int, one int per axis, ``lo:hi`` pairs (negative = crop),
    or one of 'same', 'valid', 'full', 'causal' (resolved from kernel size and dilation).
    """
    if value is None:
        if ndim == 1:
            return ((integer("lo"), integer("hi")),)
        return tuple((integer(f"lo_{k + 1}"), integer(f"hi_{k + 1}")) for k in range(ndim))
    if isinstance(value, str) and value.strip().lower() in PADDING_MODES:
        mode = value.strip().lower()
        out = []
        for s, d, k in zip(stride, dilation, kernel):
            total = d * (k - 1)
            if mode == "same":
                if s != 1:
                    raise SymgradError(f"{op}: padding='same' needs stride 1 on every axis (as torch), got stride {s}")
                lo = sp.floor(total / 2)
                out.append((lo, total - lo))
            elif mode == "valid":
                out.append((0, 0))
            elif mode == "full":
                out.append((total, total))
            else:  # causal: all padding on the left, output[i] sees inputs up to i
                out.append((total, 0))
        return tuple(out)
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
    for p in parts:
        if isinstance(p, (list, tuple)) and len(p) == 2:
            lo, hi = p
        elif isinstance(p, str) and ":" in p:
            lo, hi = p.split(":", 1)
        else:
            lo = hi = p
            if _as_signed(op, lo) < 0:
                raise SymgradError(f"{op}: symmetric padding must be >= 0 (use 'lo:hi' pairs to crop), got {p}")
        out.append((_as_signed(op, lo), _as_signed(op, hi)))
    return tuple(out)


def _as_signed(op: str, v) -> int:
    if isinstance(v, sp.Basic) and not v.is_number:
        return v
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
