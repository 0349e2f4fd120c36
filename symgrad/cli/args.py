"""What every command's arguments share: the op and program options (made from the registry), the
argparse types, the op the arguments name, and writing the result."""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from .. import ops as ops_mod
from ..ir import SymgradError
from ..ops import CONV_OPS, TORCH_DEFAULTS


#: the op flags, by parameter name: every parameter some registry entry lists (each op takes its own)
OP_FLAGS = tuple(dict.fromkeys(name for _, takes in [*ops_mod.REGISTRY.values(), *ops_mod.PROGRAMS.values()]
                               for name in takes))


def boolean(text):
    """An argparse type: yes/no in the spellings people type (true, False, 1, off, ...)."""
    value = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}.get(str(text).strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value


def _flag_help(name: str) -> str:
    """A parameter's help, from the registry: each distinct text after the ops that take it."""
    texts = {}
    for op, (_, takes) in [*ops_mod.REGISTRY.items(), *ops_mod.PROGRAMS.items()]:
        if name in takes:
            texts.setdefault(takes[name], []).append(op)
    return "; ".join(f"{_op_names(names)}: {text}" for text, names in texts.items()).replace("%", "%%")


def _op_names(names: list) -> str:
    """``avg_pool1d, avg_pool2d, avg_pool3d`` as ``avg_pool1d/2d/3d``."""
    groups = {}
    for name in names:
        stem = name[:-2] if name[-2:] in ("1d", "2d", "3d") else name
        groups.setdefault(stem, []).append(name[len(stem):])
    out = []
    for stem, ends in groups.items():
        out += [stem] * ("" in ends) + ([stem + "/".join(e for e in ends if e)] if any(ends) else [])
    return ", ".join(out)


def add_op_args(p: argparse.ArgumentParser, optional: bool = False):
    p.add_argument("op", nargs="?", help="operator or program name (see `symgrad ops`)")
    r = p.add_argument_group("programs")
    r.add_argument("--rule", help="a rule or program in the text syntax, e.g. 'y[n, d] = x[n, d] * w[d]' "
                                  "(statements separated by ';')")
    r.add_argument("-f", "--file", help="a file of statements in the text syntax (.sg)")
    g = p.add_argument_group("op parameters", "each op takes those `symgrad ops` lists for it; a yes/no one is "
                                              "--flag, --flag false or --no-flag")
    for name in OP_FLAGS:
        flag = "--" + name.replace("_", "-")
        if name in ops_mod.BOOLEAN:  # --bias, --bias false, --no-bias
            g.add_argument(flag, dest=name, nargs="?", const=True, type=boolean, metavar="BOOL", help=_flag_help(name))
            g.add_argument("--no-" + flag[2:], dest=name, action="store_false", help=argparse.SUPPRESS)
        else:
            kind = {**dict.fromkeys(ops_mod.INTEGER, int), **dict.fromkeys(ops_mod.NUMBER, float)}.get(name)
            g.add_argument(flag, type=kind, metavar={int: "INT", float: "NUMBER"}.get(kind), help=_flag_help(name))
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                   help="concrete shape of an input (repeat per input), checked against the op: derive's sizes become "
                        "numbers, check runs at these shapes, bench times them, emit checks them (the module takes "
                        "any shapes that fit)")


FORWARD_HELP = ("forward mode: the Jacobian-vector product, derived as a program of its own (inputs and one "
                 "tangent xdot per input x; outputs and their tangents ydot), whose module's forward computes both")


def integer_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``, refused with one line naming the bound otherwise."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def build_op(args, concrete: bool):
    """(the op the arguments describe, its parameters as given to the builder); ``concrete`` fills
    unset conv parameters with torch's defaults.  A flag the op does not take is refused, naming the
    flags it does take."""
    name = args.op
    if not name:
        raise SymgradError("give an op name (see `symgrad ops`)")
    if name not in ops_mod.REGISTRY:
        raise SymgradError(unknown_op(name))
    params = flags(args, name, ops_mod.REGISTRY[name][1])
    params.pop("padding_mode", None)  # zeros: the plain convolution (other modes are programs, program_of)
    if name in CONV_OPS:
        if name == "conv" and "ndim" not in params:
            raise SymgradError("conv: --ndim is required (number of spatial axes, >= 1)")
        defaults = TORCH_DEFAULTS if concrete else {"groups": 1}
        params = {**defaults, **params}
    return ops_mod.build(name, **params), params


def unknown_op(name: str) -> str:
    """The error for an op name nobody defined: the closest names, then every name."""
    known = [*ops_mod.REGISTRY, *ops_mod.PROGRAMS]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return (f"unknown op {name!r}{hint} (ops: {', '.join(ops_mod.REGISTRY)}; programs: {', '.join(ops_mod.PROGRAMS)}; "
            "your own: --rule or -f)")


def flags(args, name: str, takes: dict) -> dict:
    """The op flags given, refused by name where ``name`` does not take them."""
    given = {key: getattr(args, key) for key in OP_FLAGS if getattr(args, key, None) is not None}
    stray = [key for key in given if key not in takes]
    if stray:
        flags = lambda keys: ", ".join("--" + k.replace("_", "-") for k in keys)
        raise SymgradError(f"{name}: {flags(stray)} {'does' if len(stray) == 1 else 'do'} not apply to {name} "
                           f"(its parameters: {flags(takes) or 'none'})")
    if name == "conv_bias_gelu":
        given = {**TORCH_DEFAULTS, **given}
    return given


def join_negative_values(parser: argparse.ArgumentParser, argv: list) -> list:
    """``--padding -1:1`` as ``--padding=-1:1``: argparse takes a value that starts with a dash for
    an option unless it is a plain negative number."""
    takes_value = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                takes_value |= {o for a in sub._actions if a.nargs is None and a.option_strings
                                and not isinstance(a, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                                       argparse._StoreConstAction))
                                for o in a.option_strings}
    out, k = [], 0
    while k < len(argv):
        if argv[k] in takes_value and k + 1 < len(argv) and argv[k + 1][:1] == "-" and argv[k + 1][1:2] not in "-" \
                and argv[k + 1] != "-":
            out.append(f"{argv[k]}={argv[k + 1]}")
            k += 2
        else:
            out.append(argv[k])
            k += 1
    return out


def write(text: str, out):
    if out:
        write_file(Path(out), text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def write_file(path: Path, text: str):
    """Write ``text`` to ``path``; a folder, a missing one, an unwritable file or a full disk is one
    error line naming the path."""
    try:
        path.write_text(text)
    except OSError as exc:
        raise SymgradError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}", file=sys.stderr)
