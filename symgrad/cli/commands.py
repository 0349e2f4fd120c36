"""The commands on one op or program: ops, derive, emit, check; and docs."""
from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

from .. import ops as ops_mod
from ..ir import SymgradError
from ..sizes import concrete_sizes, parse_shapes
from . import programs
from .args import build_op, write
from .programs import program_of


def _summary(doc: str) -> str:
    """A docstring's first sentence, whatever its line breaks, without its Python example."""
    text = " ".join(line.strip() for line in (doc or "").strip().split("\n\n")[0].splitlines())
    sentence = re.split(r"(?<=\.)\s", text, maxsplit=1)[0]
    return re.sub(r"\s*\(``[^`]*``\)", "", sentence).replace("``", "")


def cmd_ops(args):
    for title, registry in (("ops", ops_mod.REGISTRY), ("programs (several statements)", ops_mod.PROGRAMS)):
        print(f"{title}:")
        for name, (builder, params) in registry.items():
            print(f"  {name:20s} {_summary(builder.__doc__)}")
            for key, help_ in params.items():
                print(f"      --{key.replace('_', '-'):14s} {help_}")
    print("rules and programs of your own: --rule 'y[n] = sum(d) x[n, d]^2' or -f FILE.sg (see the README)")
    return 0


def _forward_mode(args, program):
    """With --forward-mode, the JVP of the op or program the arguments name, as the program it is
    (symgrad/forward_mode.py); else ``program`` (None for an op)."""
    if not args.forward_mode:
        return program
    from ..forward_mode import jvp_program
    return jvp_program(program if program is not None else build_op(args, concrete=False)[0])


def cmd_derive(args):
    from ..derive import derive
    from ..second_order import derive_second_order
    from ..summary import as_json, as_text, second_as_json, second_as_text
    program = _forward_mode(args, program_of(args))
    if program is None and args.order == 3:  # order N by closure works on programs: an op is one statement
        from ..forward_mode import op_program
        program = op_program(build_op(args, concrete=False)[0])
    if program is not None:
        return programs.derive(args, program)
    shapes = parse_shapes(build_op(args, concrete=False)[0], args.input_shape)
    op, _ = build_op(args, concrete=bool(shapes))  # concrete shapes take PyTorch's defaults, as emit does
    sizes = concrete_sizes(op, shapes)
    d = derive(op.specialised(sizes) if sizes else op)
    second = derive_second_order(d) if args.order == 2 else None
    if args.timing:  # kept out of the output, which is the same for the same command
        print(f"derived in {d.seconds + (second.seconds if second else 0):.2f} s", file=sys.stderr)
    if args.format == "json":
        write(json.dumps(second_as_json(second, sizes) if second else as_json(d, sizes), indent=2), args.output)
    elif args.format in ("markdown", "latex", "pdf"):
        from ..docs.document import document_context, write_document
        context = document_context(d, f"Backward pass of {op.name}", command="symgrad " + shlex.join(args.argv),
                                   second=second)
        write_document(context, args.format, args.output, write)
    else:
        write(second_as_text(second, sizes) if second else as_text(d, sizes), args.output)
    return 0


def cmd_emit(args):
    from ..derive import derive
    from ..emit import emit, emit_target
    if args.target != "module" and args.backend:
        raise SymgradError(f"emit: --backend chooses the array library of a standalone module (--target module); "
                           f"the {args.target} target runs on the framework's own device and kernels")
    if args.target != "module" and args.order == 1:
        raise SymgradError(f"emit: --order chooses whether a standalone module has double_backward; the "
                           f"{args.target} target's double backward is the framework's autograd through its backward")
    program = _forward_mode(args, program_of(args))
    if program is not None:
        return programs.emit(args, program)
    op, _ = build_op(args, concrete=True)
    concrete_sizes(op, parse_shapes(op, args.input_shape))
    d = derive(op)
    write(emit(d, backend=args.backend or "numpy", order=args.order or 2) if args.target == "module"
           else emit_target(d, args.target), args.output)
    return 0


def cmd_check(args):
    from ..verify.check import check, table
    program = program_of(args)
    if program is not None:
        return programs.check(args, program)
    op, _ = build_op(args, concrete=True)
    if args.ulp:
        from ..verify.ulp import report, scan
        result = scan(op, count=args.ulp_points)
        print(report(result))
        return 0
    sizes = concrete_sizes(op, parse_shapes(op, args.input_shape))
    results, ok = check(op, trials=args.trials, seed=args.seed, sizes=sizes or None)
    print(table(op, results))
    print(f"{op.name}: {'OK' if ok else 'MISMATCH'} ({len(results)} trials, seed {args.seed})")
    return 0 if ok else 1


def cmd_docs(args):
    from ..docs.derivations import generate
    for path in generate(Path(args.output)):
        print(f"wrote {path}", file=sys.stderr)
    return 0
