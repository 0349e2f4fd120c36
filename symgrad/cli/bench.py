"""``symgrad bench``: one op or program, the suites, a comparison with another commit, the GPU."""
from __future__ import annotations

import sys
from pathlib import Path

from .. import ops as ops_mod
from ..ir import SymgradError
from ..sizes import concrete_sizes, parse_shapes
from .args import build_op, flags, write_file
from .programs import program_of


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
        write_file(path, text)


def cmd_bench(args):
    from ..bench import cpu as bench
    from ..bench.suite import format_result
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
    _set_heap(args.heap)
    if args.suite:
        if args.op:
            raise SymgradError("bench: --suite runs the standard shapes; give either an op or --suite")
        path = _suite_output(args)
        threads = tuple(args.threads or (1, 2))
        if args.programs:
            from ..bench.sweep import programs_suite
            _report(path, programs_suite(threads=threads, repeats=args.repeats, progress=_progress, target=args.target))
        else:
            from ..bench.suite import suite
            _report(path, suite(threads=threads, repeats=args.repeats, progress=_progress, target=args.target))
        return 0
    if not (args.op or args.rule or args.file):
        raise SymgradError("bench: give an op (with --input-shape for every input), --rule, -f FILE, or --suite")
    op, params, shapes = _bench_case(args)
    if args.order == 2 and (args.target != "module" or args.compare):
        raise SymgradError("bench: --order 2 times the module's double_backward; it goes with --target module, "
                           "without --compare")
    if args.compare:
        return _bench_compare(args, op, shapes)
    own = isinstance(op, ops_mod.Program) and op.name not in ops_mod.PROGRAMS  # --rule, -f, a padding mode
    if own and len(op.outputs) != 1:
        raise SymgradError(f"bench {op.name}: a program of one output is timed (its gradient is where both sides "
                           f"start the backward); this one has {len(op.outputs)}: {', '.join(op.outputs)}")
    for dtype in args.dtype or ("float32",):
        for t in args.threads or (1,):
            result = bench.bench(op.name, params, shapes, threads=t, repeats=args.repeats, bind=args.bind,
                                 target=args.target, program=op if own else None, dtype=dtype, order=args.order)
            print(format_result(op.name, t, result, bind=args.bind))
    return 0


def _set_heap(heap):
    """``--heap``: the glibc variables the benchmark children inherit (the parent's own heap, set when it
    started, stays as it is)."""
    import os
    from ..bench.cpu import KEPT_HEAP, heap_variable
    if heap is not None:
        for key in [k for k in os.environ if heap_variable(k)]:
            del os.environ[key]
    if heap == "kept":
        os.environ.update(KEPT_HEAP)


#: bench's own options (with a value, and without): what is left of its command line is emit's
_BENCH_ONLY = ({"--threads", "--repeats", "--compare", "--target", "--backend", "--dtype", "--gemm", "--conv-path", "-o",
                "--output", "--heap", "--order"}, {"--bind", "--suite", "--programs", "--force"})


def _bench_compare(args, op, shapes):
    from ..bench.compare import compare, emitted_here, format_compare
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
    source = emitted_here(argv)
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
    program = program_of(args)
    if program is not None:  # a program of one's own travels whole to the benchmark child (no parameters)
        op, params = program, (flags(args, args.op, ops_mod.PROGRAMS[args.op][1]) if args.op in ops_mod.PROGRAMS else {})
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
    from ..bench import gpu as bench_gpu
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
