"""The ``symgrad`` command line: ops, derive, emit, check, audit (and bench, docs)."""
from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
import sys
from pathlib import Path

from . import ops as ops_mod
from .audit import names as audit_names
from .ir import SymgradError
from .ops import CONV_OPS, TORCH_DEFAULTS
from .sizes import concrete_sizes, parse_shapes



#: the op flags, by parameter name: every parameter some registry entry lists (each op takes its own)
OP_FLAGS = tuple(dict.fromkeys(name for _, takes in [*ops_mod.REGISTRY.values(), *ops_mod.PROGRAMS.values()]
                               for name in takes))


def _boolean(text):
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


def _add_op_args(p: argparse.ArgumentParser, optional: bool = False):
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
            g.add_argument(flag, dest=name, nargs="?", const=True, type=_boolean, metavar="BOOL", help=_flag_help(name))
            g.add_argument("--no-" + flag[2:], dest=name, action="store_false", help=argparse.SUPPRESS)
        else:
            kind = {**dict.fromkeys(ops_mod.INTEGER, int), **dict.fromkeys(ops_mod.NUMBER, float)}.get(name)
            g.add_argument(flag, type=kind, metavar={int: "INT", float: "NUMBER"}.get(kind), help=_flag_help(name))
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                   help="concrete shape of an input (repeat per input), checked against the op: derive's sizes become "
                        "numbers, check runs at these shapes, bench times them, emit checks them (the module takes "
                        "any shapes that fit)")


_FORWARD_HELP = ("forward mode: the Jacobian-vector product, derived as a program of its own (inputs and one "
                 "tangent xdot per input x; outputs and their tangents ydot), whose module's forward computes both")


def _integer_at_least(minimum: int):
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
    params = _flags(args, name, ops_mod.REGISTRY[name][1])
    params.pop("padding_mode", None)  # zeros: the plain convolution (other modes are programs, _program)
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


def _flags(args, name: str, takes: dict) -> dict:
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


def _program(args):
    """The program the arguments name, or None when they name an op."""
    from . import cli_program
    return cli_program.build_program(args, lambda name, takes: _flags(args, name, takes)) \
        if cli_program.is_program(args) else None


def _join_negative_values(parser: argparse.ArgumentParser, argv: list) -> list:
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


def _write(text: str, out):
    if out:
        _write_file(Path(out), text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _write_file(path: Path, text: str):
    """Write ``text`` to ``path``; a folder, a missing one, an unwritable file or a full disk is one
    error line naming the path."""
    try:
        path.write_text(text)
    except OSError as exc:
        raise SymgradError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}", file=sys.stderr)


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
    from .forward_mode import jvp_program
    return jvp_program(program if program is not None else build_op(args, concrete=False)[0])


def cmd_derive(args):
    from .derive import derive
    from .second_order import derive_second_order
    from .summary import as_json, as_text, second_as_json, second_as_text
    program = _forward_mode(args, _program(args))
    if program is None and args.order == 3:  # order N by closure works on programs: an op is one statement
        from .forward_mode import op_program
        program = op_program(build_op(args, concrete=False)[0])
    if program is not None:
        from . import cli_program
        return cli_program.derive(args, program, _write)
    shapes = parse_shapes(build_op(args, concrete=False)[0], args.input_shape)
    op, _ = build_op(args, concrete=bool(shapes))  # concrete shapes take PyTorch's defaults, as emit does
    sizes = concrete_sizes(op, shapes)
    d = derive(op.specialised(sizes) if sizes else op)
    second = derive_second_order(d) if args.order == 2 else None
    if args.timing:  # kept out of the output, which is the same for the same command
        print(f"derived in {d.seconds + (second.seconds if second else 0):.2f} s", file=sys.stderr)
    if args.format == "json":
        _write(json.dumps(second_as_json(second, sizes) if second else as_json(d, sizes), indent=2), args.output)
    elif args.format in ("markdown", "latex", "pdf"):
        from .docs.document import document_context, write_document
        context = document_context(d, f"Backward pass of {op.name}", command="symgrad " + shlex.join(args.argv),
                                   second=second)
        write_document(context, args.format, args.output, _write)
    else:
        _write(second_as_text(second, sizes) if second else as_text(d, sizes), args.output)
    return 0


def cmd_emit(args):
    from .derive import derive
    from .emit import emit, emit_target
    if args.target != "module" and args.backend:
        raise SymgradError(f"emit: --backend chooses the array library of a standalone module (--target module); "
                           f"the {args.target} target runs on the framework's own device and kernels")
    if args.target != "module" and args.order == 1:
        raise SymgradError(f"emit: --order chooses whether a standalone module has double_backward; the "
                           f"{args.target} target's double backward is the framework's autograd through its backward")
    program = _forward_mode(args, _program(args))
    if program is not None:
        from . import cli_program
        return cli_program.emit(args, program, _write)
    op, _ = build_op(args, concrete=True)
    concrete_sizes(op, parse_shapes(op, args.input_shape))
    d = derive(op)
    _write(emit(d, backend=args.backend or "numpy", order=args.order or 2) if args.target == "module"
           else emit_target(d, args.target), args.output)
    return 0


def cmd_check(args):
    from .verify.check import check, table
    program = _program(args)
    if program is not None:
        from . import cli_program
        return cli_program.check(args, program)
    op, _ = build_op(args, concrete=True)
    if args.ulp:
        from .verify.ulp import report, scan
        result = scan(op, count=args.ulp_points)
        print(report(result))
        return 0
    sizes = concrete_sizes(op, parse_shapes(op, args.input_shape))
    results, ok = check(op, trials=args.trials, seed=args.seed, sizes=sizes or None)
    print(table(op, results))
    print(f"{op.name}: {'OK' if ok else 'MISMATCH'} ({len(results)} trials, seed {args.seed})")
    return 0 if ok else 1


def _suite_output(args):
    """Where ``bench --suite`` writes its table: ``-o FILE``, refused before any work when the file
    exists (unless ``--force``) or its folder does not; None: standard output."""
    if not args.output:
        return None
    path = Path(args.output)
    if path.exists() and not args.force:
        raise SymgradError(f"bench: {path} exists; --force overwrites it")
    if not path.parent.is_dir():
        raise SymgradError(f"bench: no folder {path.parent} to write {path.name} into")
    return path


def _report(path, text: str):
    if path is None:
        sys.stdout.write(text)
    else:
        _write_file(path, text)


def cmd_bench(args):
    from .bench import cpu as bench
    if args.programs and not args.suite:
        raise SymgradError("bench: --programs chooses the programs' suite; it goes with --suite")
    if args.backend == "cupy":
        if args.target != "module":
            raise SymgradError("bench: --target torch times the torch Function on the CPU; --backend cupy times the "
                               "CuPy modules on the GPU")
        return _bench_gpu(args)
    if args.gemm or args.conv_path:
        raise SymgradError("bench: --gemm and --conv-path compare routes on the GPU; they need --backend cupy")
    if "float16" in (args.dtype or ()):
        raise SymgradError("bench: --dtype float16 is timed on the GPU (--backend cupy); on the CPU, float32 or float64")
    if args.suite:
        if args.op:
            raise SymgradError("bench: --suite runs the standard shapes; give either an op or --suite")
        path = _suite_output(args)
        threads = tuple(args.threads or (1, 2))
        _report(path, bench.suite(threads=threads, repeats=args.repeats, progress=_progress, target=args.target,
                                  programs=args.programs))
        return 0
    if not (args.op or args.rule or args.file):
        raise SymgradError("bench: give an op (with --input-shape for every input), --rule, -f FILE, or --suite")
    op, params, shapes = _bench_case(args)
    if args.compare:
        return _bench_compare(args, op, shapes)
    own = isinstance(op, ops_mod.Program) and op.name not in ops_mod.PROGRAMS  # --rule, -f, a padding mode
    if own and len(op.outputs) != 1:
        raise SymgradError(f"bench {op.name}: a program of one output is timed (its gradient is where both sides "
                           f"start the backward); this one has {len(op.outputs)}: {', '.join(op.outputs)}")
    for dtype in args.dtype or ("float32",):
        for t in args.threads or (1,):
            result = bench.bench(op.name, params, shapes, threads=t, repeats=args.repeats, bind=args.bind,
                                 target=args.target, program=op if own else None, dtype=dtype)
            print(bench.format_result(op.name, t, result, bind=args.bind))
    return 0


#: bench's own options (with a value, and without): what is left of its command line is emit's
_BENCH_ONLY = ({"--threads", "--repeats", "--compare", "--target", "--backend", "--dtype", "--gemm", "--conv-path", "-o",
                "--output"}, {"--bind", "--suite", "--programs", "--force"})


def _bench_compare(args, op, shapes):
    import tempfile
    from .bench.compare import compare, format_compare
    valued, flags = _BENCH_ONLY
    argv, k = [], 1  # (argv[0] is "bench")
    while k < len(args.argv):
        token = args.argv[k]
        if token.split("=")[0] in valued:
            k += 1 if "=" in token else 2
            continue
        if token not in flags:
            argv.append(token)
        k += 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "module.py"
        if main(["emit", *argv, "-o", str(path)]) != 0:
            return 2
        source = path.read_text()
    arrays = [tuple(shapes[t.name]) for t in op.inputs]
    for dtype in args.dtype or ("float32",):
        for t in args.threads or (1,):
            result = compare(source, args.compare, argv, arrays, t, args.repeats, dtype)
            print(format_compare(op.name, args.compare, t, result, dtype))
    return 0


def _progress(text: str):
    print(text, file=sys.stderr, flush=True)


def _bench_case(args):
    """The op (or program), its parameters as the benchmark child rebuilds them, and the checked input shapes."""
    program = _program(args)
    if program is not None:  # a program of one's own travels whole to the benchmark child (no parameters)
        op, params = program, (_flags(args, args.op, ops_mod.PROGRAMS[args.op][1]) if args.op in ops_mod.PROGRAMS else {})
    else:
        op, params = build_op(args, concrete=True)
    shapes = parse_shapes(op, args.input_shape)
    if not shapes:
        raise SymgradError(f"bench {op.name}: give the shape to time with --input-shape NAME=D0,D1,... for every "
                           f"input ({', '.join(t.name for t in op.inputs)}); --suite times the standard shapes")
    concrete_sizes(op, shapes)
    return op, params, shapes


def _bench_gpu(args):
    try:
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no CuPy, no driver, no device: CuPy raises several kinds
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SymgradError(f"bench --backend cupy needs CuPy and a CUDA GPU ({reason})") from None
    if count < 1:
        raise SymgradError("bench --backend cupy needs a CUDA GPU; CuPy sees none")
    from .bench import gpu as bench_gpu
    gemms, paths = tuple(args.gemm or ["cublas"]), tuple(args.conv_path or ["taps"])
    if args.suite and args.programs:
        path = _suite_output(args)
        _report(path, bench_gpu.program_suite(dtypes=tuple(args.dtype or ["float32"]), progress=_progress))
        return 0
    if args.suite:
        path = _suite_output(args)
        _report(path, bench_gpu.suite(dtypes=tuple(args.dtype or ["float32"]), gemms=gemms, conv_paths=paths,
                                      progress=_progress))
        return 0
    op, params, shapes = _bench_case(args)
    if isinstance(op, ops_mod.Program):
        for dt in args.dtype or ["float32"]:
            print(bench_gpu.format_program_result(op.name, dt, bench_gpu.bench_gpu_program(op.name, params, shapes, dt)))
        return 0
    for dt in args.dtype or ["float32"]:
        for gemm in gemms:
            for path in paths:
                result = bench_gpu.bench_gpu(op.name, params, shapes, dt, gemm=gemm, conv_path=path)
                print(bench_gpu.format_result(op.name, dt, result))
    return 0


def cmd_audit(args):
    from .audit import ADAPTERS, audit
    from .audit.report import as_json, markdown, write_reproducers
    from .audit.run import progress_bar
    if args.framework not in ADAPTERS:
        raise SymgradError(f"audit: framework must be one of {', '.join(ADAPTERS)}, got {args.framework!r}")
    wanted = None
    if args.ops:
        names = [n.strip() for n in args.ops.split(",") if n.strip()]
        unknown = [n for n in names if n not in audit_names.OPS]
        if unknown:
            raise SymgradError(f"audit: --ops takes {', '.join(audit_names.OPS)} (comma-separated), got {', '.join(unknown)}")
        wanted = {f for n in names for f in audit_names.OPS[n]}
    dtypes = [d.strip() for d in args.dtype.split(",") if d.strip()]
    if not dtypes or any(d not in audit_names.DTYPES for d in dtypes):
        raise SymgradError(f"audit: --dtype takes {', '.join(audit_names.DTYPES)} (comma-separated), got {args.dtype!r}")
    try:
        adapter = ADAPTERS[args.framework]()
    except ImportError as exc:
        raise SymgradError(f"audit {args.framework}: the framework is not installed ({exc})") from None
    output = Path(args.output) if args.output else None
    result = audit(adapter, wanted, budget=args.budget, seconds=args.time, dtypes=dtypes, seed=args.seed,
                   jobs=args.jobs or os.cpu_count() or 1, progress=progress_bar(), workers=True)
    folder = output.with_name(output.stem + "_reproducers") if output else Path("audit_reproducers")
    write_reproducers(result, folder)
    text = markdown(result)
    if output:
        _write_file(output, text)
        _write_file(output.with_suffix(".json"), as_json(result))
        print(f"wrote {output} and {output.with_suffix('.json')}: {len(result['cases'])} configurations, "
              f"{len(result['mismatches'])} discrepancies, {result['seconds']:.0f} s", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def cmd_fuzz(args):
    from .fuzz.campaign import FAILURES, print_progress, report, run
    import importlib.util
    if importlib.util.find_spec("torch") is None:
        raise SymgradError("fuzz: the reference is PyTorch autograd; install it (pip install torch==2.13.0)")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in ("numpy", "torch", "jax")]
    if unknown or not targets:
        raise SymgradError(f"fuzz: --targets takes numpy, torch, jax (comma-separated), got {args.targets!r}")
    if "jax" in targets:
        if importlib.util.find_spec("jax") is None:
            targets.remove("jax")
            print("symgrad: note: JAX is not installed; the jax target is not checked", file=sys.stderr)
    print(f"symgrad fuzz: seed {args.seed}, {args.budget} programs, targets {', '.join(targets)}", file=sys.stderr)
    campaign = run(args.seed, args.budget, args.large_every, targets, args.timeout, args.jobs,
                   args.shrink, print_progress, args.only, args.jax_every)
    text = report(campaign)
    if args.output:
        _write_file(Path(args.output), text)
    print(text, end="")
    return 1 if any(r.status in FAILURES for r in campaign["results"]) else 0


def cmd_docs(args):
    from .docs.derivations import generate
    for path in generate(Path(args.output)):
        print(f"wrote {path}", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    from .version import __version__
    p = argparse.ArgumentParser(prog="symgrad", description="Symbolic backward passes from index notation.",
                                allow_abbrev=False)  # --strid is not --stride
    p.add_argument("--version", action="version", version=f"symgrad {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("ops", allow_abbrev=False, help="list operators and their parameters").set_defaults(fn=cmd_ops)
    d = sub.add_parser("derive", allow_abbrev=False, help="derive the gradients and their closed forms")
    _add_op_args(d)
    d.add_argument("--format", choices=("text", "json", "markdown", "latex", "pdf"), default="text",
                   help="text (default), json (the forms' fields), markdown/latex (the derivation step by step), "
                        "pdf (needs a TeX engine)")
    d.add_argument("--order", type=int, choices=(1, 2, 3), default=1,
                   help="2: also derive each gradient's own gradients (second order, by closure); 3: the "
                        "double backward's backward, as a program (an op: as the program of one statement)")
    d.add_argument("--timing", action="store_true", help="say on stderr how long the derivation took")
    d.add_argument("--forward-mode", action="store_true", help=_FORWARD_HELP)
    d.add_argument("-o", "--output", help="write to this file (default: print; pdf needs it)")
    d.set_defaults(fn=cmd_derive)
    e = sub.add_parser("emit", allow_abbrev=False, help="write a standalone backward module")
    _add_op_args(e)
    e.add_argument("--target", choices=("module", "torch", "jax"), default="module",
                   help="module: a standalone NumPy/CuPy module (forward, backward); torch: a torch.autograd.Function "
                        "(double backward included); jax: a jax.custom_vjp")
    e.add_argument("--backend", choices=("numpy", "cupy"), help="the standalone module's array library (default numpy)")
    e.add_argument("--order", type=int, choices=(1, 2),
                   help="module: 2 (default) adds double_backward, derived by closure; 1 leaves it out")
    e.add_argument("--forward-mode", action="store_true", help=_FORWARD_HELP)
    e.add_argument("-o", "--output", help="write the module to this file (default: print it)")
    e.set_defaults(fn=cmd_emit)
    c = sub.add_parser("check", allow_abbrev=False, help="verify the emitted module numerically")
    _add_op_args(c)
    c.add_argument("--trials", type=_integer_at_least(1), default=5,
                   help="trials, each at random shapes (or those of --input-shape) and inputs (default 5)")
    c.add_argument("--seed", type=_integer_at_least(0), default=0, help="seed of the shapes and inputs (default 0)")
    c.add_argument("--ulp", action="store_true",
                   help="elementwise ops: error in ulps against the definition over each dtype's whole range, "
                        "beside PyTorch's")
    c.add_argument("--ulp-points", type=_integer_at_least(4), default=200,
                   help="with --ulp: magnitudes per dtype and sign (default 200)")
    c.set_defaults(fn=cmd_check)
    dc = sub.add_parser("docs", allow_abbrev=False, help="regenerate the derivation documents (derivations/)")
    dc.add_argument("-o", "--output", default="derivations", help="the folder to write them to (default derivations)")
    dc.set_defaults(fn=cmd_docs)
    au = sub.add_parser("audit", allow_abbrev=False,
                        help="hold a framework's gradient rules to the derived truth (torch or jax)")
    au.add_argument("framework", help="torch | jax")
    au.add_argument("--ops", help=f"comma-separated: {', '.join(audit_names.OPS)} (default all the framework has)")
    au.add_argument("--budget", type=_integer_at_least(1), default=2000, help="configurations to try (default 2000)")
    au.add_argument("--time", type=float, help="stop starting new configurations after this many seconds")
    au.add_argument("--dtype", default="float64,float32",
                    help=f"comma-separated, of {', '.join(audit_names.DTYPES)} (default float64,float32)")
    au.add_argument("--seed", type=_integer_at_least(0), default=0, help="seed of the random configurations (default 0)")
    au.add_argument("-j", "--jobs", type=_integer_at_least(1), help="worker processes (default: every core); a path "
                                                                      "that kills its worker is reported as crashed")
    au.add_argument("-o", "--output", help="write the Markdown report here and JSON beside it (default: print)")
    au.set_defaults(fn=cmd_audit)
    fz = sub.add_parser("fuzz", allow_abbrev=False,
                        help="random programs of the text syntax, each checked against PyTorch autograd (a 50-digit "
                             "arbiter decides disagreements), failures shrunk")
    fz.add_argument("--seed", type=_integer_at_least(0), default=0, help="the campaign's seed (default 0)")
    fz.add_argument("--budget", type=_integer_at_least(1), default=200, help="programs to check (default 200)")
    fz.add_argument("--large-every", type=_integer_at_least(0), default=10,
                    help="one program in this many gets a tensor of at least 2^16 elements (default 10; 0: none)")
    fz.add_argument("--targets", default="numpy,torch,jax",
                    help="what to check: numpy (the module, float64 and float32, second order), torch, jax "
                         "(the framework targets); comma-separated, default all")
    fz.add_argument("--timeout", type=float, default=60.0,
                    help="seconds a program may take to derive and emit, and again to check, before it counts as a "
                         "hang (default 60)")
    fz.add_argument("--shrink", type=_integer_at_least(0), default=120,
                    help="checks to spend shrinking each failure to a minimal program (default 120; 0: none)")
    fz.add_argument("--jax-every", type=_integer_at_least(1), default=4,
                    help="check the jax target on one program in this many (default 4: its tracing costs four "
                         "times the rest; 1: every program)")
    fz.add_argument("--only", type=_integer_at_least(0), help="check program K of the campaign alone (every target)")
    fz.add_argument("-j", "--jobs", type=_integer_at_least(1), help="worker processes (default 2)")
    fz.add_argument("-o", "--output", help="also write the Markdown report to this file")
    fz.set_defaults(fn=cmd_fuzz)
    bn = sub.add_parser("bench", allow_abbrev=False, help="time the emitted module against PyTorch (CPU)")
    _add_op_args(bn, optional=True)
    bn.add_argument("--suite", action="store_true", help="run the standard shapes and write BENCHMARKS.md")
    bn.add_argument("--programs", action="store_true", help="with --suite: the programs' shapes (layer_norm, softmax, "
                                                             "conv->bias->GELU, attention)")
    bn.add_argument("--threads", type=_integer_at_least(1), action="append", help="thread count (repeat for several)")
    bn.add_argument("--repeats", type=_integer_at_least(1), default=9,
                    help="timed runs per side, interleaved; the ratio is their median (default 9)")
    bn.add_argument("--bind", action="store_true",
                    help="OMP_PROC_BIND=true for both sides: threads bound one to a CPU")
    bn.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                    help="numpy: CPU against torch CPU; cupy: GPU against torch with cuDNN")
    bn.add_argument("--target", choices=("module", "torch"), default="module",
                    help="module: the emitted NumPy module; torch: the emitted torch.autograd.Function under autograd "
                         "(CPU), both against torch's own op")
    bn.add_argument("--dtype", action="append", choices=("float32", "float16", "float64"),
                    help="the inputs' dtype (repeat for several): float32 (default), float64; float16 with --backend "
                         "cupy (CuPy has no bfloat16)")
    bn.add_argument("--gemm", action="append", choices=("cublas", "matmul"),
                    help="cupy (repeat to compare): cublas, the module as emitted (default); matmul, its GEMMs "
                         "left to cupy.matmul")
    bn.add_argument("--conv-path", action="append", choices=("taps", "im2col"),
                    help="cupy (repeat to compare): a convolution's few-taps case by per-tap GEMMs (default) or "
                         "im2col windows and one GEMM")
    bn.add_argument("-o", "--output", help="with --suite: write the Markdown table to this file (default: print it)")
    bn.add_argument("--force", action="store_true", help="with --suite -o: overwrite an existing file")
    bn.add_argument("--compare", metavar="REF", help="time this checkout's emitted module against the one the commit "
                                                     "REF emits for the same command, side by side in one process")
    bn.set_defaults(fn=cmd_bench)
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(_join_negative_values(p, list(sys.argv[1:] if argv is None else argv)))
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: documents name the command that made them
    try:
        return args.fn(args)
    except SymgradError as exc:
        print(f"symgrad: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # what _write_file does not see: docs' folder, pdf output
        where = f" {exc.filename}" if exc.filename else ""
        print(f"symgrad: error: cannot write{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
