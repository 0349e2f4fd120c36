"""The command line's programs: a built-in program by name, a rule given with ``--rule`` or a file
of statements with ``-f``, a convolution with a padding mode; ``derive``, ``emit``, ``check`` and
``bench`` take them as they take ops."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from .. import ops as ops_mod
from ..ir import SymgradError
from ..sizes import concrete_sizes, parse_shapes
from .args import flags, write


def is_program(args) -> bool:
    padded = (getattr(args, "padding_mode", None) or "zeros").strip().lower() != "zeros"
    return bool(getattr(args, "rule", None) or getattr(args, "file", None)) or args.op in ops_mod.PROGRAMS or padded


def build_program(args):
    """The program the arguments name: ``--rule TEXT``, ``-f FILE`` or a built-in one with its flags
    (those the program does not take refused)."""
    from ..syntax import parse_program
    given = sum(bool(x) for x in (args.rule, args.file, args.op))
    if given != 1:
        raise SymgradError("give one of: an op or program name, --rule 'y[i] = …', -f FILE.sg")
    if args.op in ops_mod.REGISTRY:  # a convolution with a padding mode: the padding statement, then the conv
        return conv_program(args)
    if args.op:
        return ops_mod.build(args.op, **flags(args, args.op, ops_mod.PROGRAMS[args.op][1]))
    flags(args, "rule", {})  # a rule takes no op flags
    if args.rule:
        return parse_program(args.rule, name="rule", origin="--rule")
    path = Path(args.file)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SymgradError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SymgradError(f"cannot read {path}: not UTF-8 text") from None
    return parse_program(text, name=path.stem, origin=str(path))


def conv_program(args):
    """conv*d with --padding-mode circular/reflect/replicate, PyTorch's defaults for unset parameters."""
    if args.op not in ops_mod.CONV_OPS:
        raise SymgradError(f"{args.op}: --padding-mode applies to the convolutions ({', '.join(ops_mod.CONV_OPS)})")
    params = {**ops_mod.TORCH_DEFAULTS, **flags(args, args.op, ops_mod.REGISTRY[args.op][1])}
    ndim = params.pop("ndim", None) or (int(args.op[4]) if args.op != "conv" else None)
    if ndim is None:
        raise SymgradError("conv: --ndim is required (number of spatial axes, >= 1)")
    return ops_mod.conv_padded(ndim, **params)


def _shapes(program, items):
    shapes = parse_shapes(program, items)
    concrete_sizes(program, shapes)  # the module's own checks: a shape that does not fit is one clear error
    return shapes


def derive(args, program):
    from ..reverse import derive_program
    from ..second_order import derive_program_second_order
    from ..summary import program_as_json, program_as_text, program_second_as_json, program_second_as_text
    _shapes(program, args.input_shape)
    if args.forward_mode and args.order > 1:
        raise SymgradError(f"derive: --forward-mode derives the Jacobian-vector product, first order; --order "
                           f"{args.order} derives the reverse mode's order {args.order}")
    if args.order == 3:
        return _third(args, program)
    second = derive_program_second_order(program) if args.order == 2 else None
    d = second.first if second else derive_program(program, wrt=() if args.forward_mode else None)
    if args.timing:
        print(f"derived in {(second or d).seconds:.2f} s", file=sys.stderr)
    if args.format == "json":
        write(json.dumps(program_second_as_json(second) if second else program_as_json(d), indent=2), args.output)
    elif args.format in ("markdown", "latex", "pdf"):
        from ..docs.document import write_document
        from ..docs.program_document import program_document_context
        title = (f"Double backward of {program.name}: its backward as a program, differentiated" if second
                 else f"Backward pass of {program.name}")
        context = program_document_context(second.second if second and second.second else d, title,
                                           command="symgrad " + shlex.join(args.argv))
        write_document(context, args.format, args.output, write, program=True)
    else:
        write(program_second_as_text(second) if second else program_as_text(d), args.output)
    return 0


def _third(args, program):
    """Third order by closure: the double backward (the backward's backward) taken as a program and
    differentiated; its adjoints are the third-order gradients, each in its recognised form."""
    from ..second_order import derive_program_order
    from ..summary import program_as_json, program_as_text
    ds = derive_program_order(program, 3)
    if args.timing:
        print(f"derived in {sum(d.seconds for d in ds):.2f} s", file=sys.stderr)
    third = ds[2]
    if args.format == "json":
        write(json.dumps({"order": 3, "program": program.name, "third_order": program_as_json(third)}, indent=2),
              args.output)
    elif args.format in ("markdown", "latex", "pdf"):
        from ..docs.document import write_document
        from ..docs.program_document import program_document_context
        context = program_document_context(third, f"Third order of {program.name}: its double backward as a program, "
                                                   "differentiated", command="symgrad " + shlex.join(args.argv))
        write_document(context, args.format, args.output, write, program=True)
    else:
        inputs = ", ".join(t.name for t in third.program.inputs)
        write(f"third order of {program.name}: the double backward ({third.program.name}: inputs {inputs}) taken as "
              f"a program; its adjoints are the third-order gradients\n\n" + program_as_text(third), args.output)
    return 0


def emit(args, program):
    from ..emit.program import emit_program
    from ..reverse import derive_program
    from ..second_order import derive_program_second_order
    _shapes(program, args.input_shape)
    first, second = derive_program(program), None
    if args.target != "module":  # (--order 1 is refused for targets by cmd_emit)
        try:  # the backward's own backward derived; else the framework differentiates the backward's code
            second = derive_program_second_order(first)
        except SymgradError:
            pass
        write(emit_program(first, args.target, second=second), args.output)
        return 0
    refused = None
    if args.order != 1:  # as for ops: a module has double_backward unless --order 1
        try:
            second = derive_program_second_order(first)
        except SymgradError as exc:
            if args.order == 2:  # asked for: refused with the reason
                raise
            refused = str(exc)
            print(f"symgrad: note: no double_backward: {exc}; the module's double_backward raises "
                  f"NotImplementedError saying so", file=sys.stderr)
    write(emit_program(first, args.backend or "numpy", second=second, second_refused=refused), args.output)
    return 0


def check(args, program):
    from ..verify.check import table
    from ..verify.program_check import check_program
    if args.ulp:
        raise SymgradError(f"{program.name}: --ulp scans elementwise ops; check a program without it")
    sizes = _shapes(program, args.input_shape)
    sizes = concrete_sizes(program, sizes) if sizes else None
    results, ok = check_program(program, trials=args.trials, seed=args.seed, sizes=sizes)
    print(table(program, results))
    print(f"{program.name}: {'OK' if ok else 'MISMATCH'} ({len(results)} trials, seed {args.seed})")
    return 0 if ok else 1


def program_of(args):
    """The program the arguments name, or None when they name an op."""
    return build_program(args) if is_program(args) else None
