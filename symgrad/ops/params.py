"""Parsing and validating user-facing parameters; every error names the op and the parameter."""
from __future__ import annotations

import sympy as sp

from ..ir import SymgradError, integer, size


#: the longest array axis a kernel or padding may span (a 32-bit signed index)
AXIS_MAX = 2 ** 31 - 1


def per_axis(op: str, name: str, value, ndim: int, *, minimum: int, symbol: str) -> tuple:
    """An int, a sequence of ``ndim`` ints, or None (one symbol per axis) -> ``ndim`` values.

    >>> per_axis("conv2d", "stride", 2, 2, minimum=1, symbol="s")
    (2, 2)
    """
    if value is None:
        names = [symbol] if ndim == 1 else [f"{symbol}_{k + 1}" for k in range(ndim)]
        return tuple(size(n) if minimum >= 1 else integer(n) for n in names)
    given = value
    if isinstance(value, str):
        value = _items(op, name, value)
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim:
        wanted = "one value (one spatial axis)" if ndim == 1 else f"one value or {ndim} (one per spatial axis)"
        raise SymgradError(f"{op}: {name} takes {wanted}, got {len(values)}: {given!r}")
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
    if iv > AXIS_MAX and name in ("kernel_size", "padding"):
        raise SymgradError(f"{op}: {name} {iv} is longer than any array axis (at most {AXIS_MAX})")
    return iv


def _items(op: str, name: str, text: str) -> list:
    """``"2,1"``, ``"(2, 1)"`` or ``"[2, 1]"`` -> ``["2", "1"]``; an empty item is refused."""
    inner = text.strip()
    if inner[:1] in "([" and inner[-1:] in ")]":
        inner = inner[1:-1]
    items = [v.strip() for v in inner.split(",")]
    if inner.rstrip().endswith(",") and len(items) > 1:  # "(2,)": a one-element tuple
        items = items[:-1]
    if not inner.strip() or any(not v for v in items):
        raise SymgradError(f"{op}: {name} has an empty value in {text!r}; give values separated by single commas")
    return items


def flag(op: str, name: str, value) -> bool:
    """A yes/no parameter: True/False, 1/0 or the strings true/false."""
    if isinstance(value, float) or value not in (True, False, "true", "false"):
        raise SymgradError(f"{op}: {name} must be true or false, got {value!r}")
    return value in (True, "true")


PADDING_MODES = ("same", "valid", "full", "causal")


def padding(op: str, value, ndim: int, stride: tuple, dilation: tuple, kernel: tuple, lengths: tuple) -> tuple:
    """Parse a padding spec into ``((lo, hi), ...)`` per axis.

    Accepts None (symbolic lo/hi), an int, one entry per axis, ``lo:hi`` pairs (negative = crop),
    and the modes 'same', 'valid', 'full', 'causal' (resolved from kernel size, dilation and, for a
    strided 'same', the input length ``lengths``), for all axes or per axis: ``"causal,1"``.
    """
    if value is None:
        if ndim == 1:
            return ((integer("lo"), integer("hi")),)
        return tuple((integer(f"lo_{k + 1}"), integer(f"hi_{k + 1}")) for k in range(ndim))
    if isinstance(value, str):
        parts = _items(op, "padding", value)
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
    for p, s, d, k, n in zip(parts, stride, dilation, kernel, lengths):
        if isinstance(p, str) and p.strip().lower() in PADDING_MODES:
            out.append(_mode(p.strip().lower(), s, d, k, n))
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


def _mode(mode: str, s, d, k, n) -> tuple:
    """(lo, hi) of a padding mode on an axis of length ``n``: kernel ``k``, dilation ``d``, stride ``s``."""
    total = d * (k - 1)
    if mode == "same":
        if s != 1:  # TensorFlow's and JAX's 'SAME': ⌈n/s⌉ outputs, the odd padding element on the high side
            total = sp.Max((sp.ceiling(sp.sympify(n) / s) - 1) * s + total + 1 - n, 0)
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
        value = int(str(v).strip())
    except ValueError:
        raise SymgradError(
            f"{op}: padding must be integers, 'lo:hi' pairs or one of {', '.join(PADDING_MODES)}; got {v!r}") from None
    if abs(value) > AXIS_MAX:
        raise SymgradError(f"{op}: padding {value} is longer than any array axis (at most {AXIS_MAX})")
    return value


def shape_pattern(op: str, name: str, value, default: str) -> tuple:
    """A shape written as comma-separated sizes: symbols (``B,M,K``) or integers (``1,M,K``)."""
    text = default if value is None else (",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value))
    if not text.strip():
        raise SymgradError(f"{op}: {name} must list at least one size, got {value!r}")
    parts = _items(op, name, text)
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
