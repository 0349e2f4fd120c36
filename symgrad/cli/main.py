"""The ``symgrad`` parser: each command's options, and ``main``."""
from __future__ import annotations

import argparse
import os
import sys

from ..audit import names as audit_names
from ..ir import SymgradError
from .args import FORWARD_HELP, add_op_args, integer_at_least, join_negative_values
from .audit import cmd_audit, cmd_fuzz
from .bench import cmd_bench
from .commands import cmd_check, cmd_derive, cmd_docs, cmd_emit, cmd_ops


def parser() -> argparse.ArgumentParser:
    from ..version import __version__
    p = argparse.ArgumentParser(prog="symgrad", description="Symbolic backward passes from index notation.",
                                allow_abbrev=False)  # --strid is not --stride
    p.add_argument("--version", action="version", version=f"symgrad {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("ops", allow_abbrev=False, help="list operators and their parameters").set_defaults(fn=cmd_ops)
    d = sub.add_parser("derive", allow_abbrev=False, help="derive the gradients and their closed forms")
    add_op_args(d)
    d.add_argument("--format", choices=("text", "json", "markdown", "latex", "pdf"), default="text",
                   help="text (default), json (the forms' fields), markdown/latex (the derivation step by step), "
                        "pdf (needs a TeX engine)")
    d.add_argument("--order", type=int, choices=(1, 2, 3), default=1,
                   help="2: also derive each gradient's own gradients (second order, by closure); 3: the "
                        "double backward's backward, as a program (an op: as the program of one statement)")
    d.add_argument("--timing", action="store_true", help="say on stderr how long the derivation took")
    d.add_argument("--forward-mode", action="store_true", help=FORWARD_HELP)
    d.add_argument("-o", "--output", help="write to this file (default: print; pdf needs it)")
    d.set_defaults(fn=cmd_derive)
    e = sub.add_parser("emit", allow_abbrev=False, help="write a standalone backward module")
    add_op_args(e)
    e.add_argument("--target", choices=("module", "torch", "jax"), default="module",
                   help="module: a standalone NumPy/CuPy module (forward, backward); torch: a torch.autograd.Function "
                        "(double backward included); jax: a jax.custom_vjp")
    e.add_argument("--backend", choices=("numpy", "cupy"), help="the standalone module's array library (default numpy)")
    e.add_argument("--order", type=int, choices=(1, 2),
                   help="module: 2 (default) adds double_backward, derived by closure; 1 leaves it out")
    e.add_argument("--forward-mode", action="store_true", help=FORWARD_HELP)
    e.add_argument("-o", "--output", help="write the module to this file (default: print it)")
    e.set_defaults(fn=cmd_emit)
    c = sub.add_parser("check", allow_abbrev=False, help="verify the emitted module numerically")
    add_op_args(c)
    c.add_argument("--trials", type=integer_at_least(1), default=5,
                   help="trials, each at random shapes (or those of --input-shape) and inputs (default 5)")
    c.add_argument("--seed", type=integer_at_least(0), default=0, help="seed of the shapes and inputs (default 0)")
    c.add_argument("--ulp", action="store_true",
                   help="elementwise ops: error in ulps against the definition over each dtype's whole range, "
                        "beside PyTorch's")
    c.add_argument("--ulp-points", type=integer_at_least(4), default=200,
                   help="with --ulp: magnitudes per dtype and sign (default 200)")
    c.set_defaults(fn=cmd_check)
    dc = sub.add_parser("docs", allow_abbrev=False, help="regenerate the derivation documents (derivations/)")
    dc.add_argument("-o", "--output", default="derivations", help="the folder to write them to (default derivations)")
    dc.set_defaults(fn=cmd_docs)
    au = sub.add_parser("audit", allow_abbrev=False,
                        help="hold a framework's gradient rules to the derived truth (torch or jax)")
    au.add_argument("framework", help="torch | jax")
    au.add_argument("--ops", help=f"comma-separated: {', '.join(audit_names.OPS)} (default all the framework has)")
    au.add_argument("--budget", type=integer_at_least(1), default=2000, help="configurations to try (default 2000)")
    au.add_argument("--time", type=float, help="stop starting new configurations after this many seconds")
    au.add_argument("--dtype", default="float64,float32",
                    help=f"comma-separated, of {', '.join(audit_names.DTYPES)} (default float64,float32)")
    au.add_argument("--seed", type=integer_at_least(0), default=0, help="seed of the random configurations (default 0)")
    au.add_argument("-j", "--jobs", type=integer_at_least(1), help="worker processes (default: every core); a path "
                                                                      "that kills its worker is reported as crashed")
    au.add_argument("-o", "--output", help="write the Markdown report here and JSON beside it (default: print)")
    au.set_defaults(fn=cmd_audit)
    fz = sub.add_parser("fuzz", allow_abbrev=False,
                        help="random programs of the text syntax, each checked against PyTorch autograd (a 50-digit "
                             "arbiter decides disagreements), failures shrunk")
    fz.add_argument("--seed", type=integer_at_least(0), default=0, help="the campaign's seed (default 0)")
    fz.add_argument("--budget", type=integer_at_least(1), default=200, help="programs to check (default 200)")
    fz.add_argument("--large-every", type=integer_at_least(0), default=10,
                    help="one program in this many gets a tensor of at least 2^16 elements (default 10; 0: none)")
    fz.add_argument("--targets", default="numpy,torch,jax",
                    help="what to check: numpy (the module, float64 and float32, second order), torch, jax "
                         "(the framework targets); comma-separated, default all")
    fz.add_argument("--timeout", type=float, default=60.0,
                    help="seconds a program may take to derive and emit, and again to check, before it counts as a "
                         "hang (default 60)")
    fz.add_argument("--shrink", type=integer_at_least(0), default=120,
                    help="checks to spend shrinking each failure to a minimal program (default 120; 0: none)")
    fz.add_argument("--jax-every", type=integer_at_least(1), default=4,
                    help="check the jax target on one program in this many (default 4: its tracing costs four "
                         "times the rest; 1: every program)")
    fz.add_argument("--only", type=integer_at_least(0), help="check program K of the campaign alone (every target)")
    fz.add_argument("-j", "--jobs", type=integer_at_least(1), help="worker processes (default 2)")
    fz.add_argument("-o", "--output", help="also write the Markdown report to this file")
    fz.set_defaults(fn=cmd_fuzz)
    bn = sub.add_parser("bench", allow_abbrev=False, help="time the emitted module against PyTorch (CPU)")
    add_op_args(bn, optional=True)
    bn.add_argument("--suite", action="store_true", help="run the standard shapes and write BENCHMARKS.md")
    bn.add_argument("--programs", action="store_true", help="with --suite: the programs' shapes (layer_norm, softmax, "
                                                             "conv->bias->GELU, attention; beside torch eager also "
                                                             "torch.compile), then the size sweep of the row programs")
    bn.add_argument("--threads", type=integer_at_least(1), action="append", help="thread count (repeat for several)")
    bn.add_argument("--repeats", type=integer_at_least(1), default=9,
                    help="timed runs per side, interleaved; the ratio is their median (default 9)")
    bn.add_argument("--bind", action="store_true",
                    help="OMP_PROC_BIND=true for both sides: threads bound one to a CPU")
    bn.add_argument("--heap", choices=("glibc", "kept"),
                    help="the benchmark processes' heap: glibc, glibc's default (freed memory goes back to the system "
                         "and each call faults in fresh pages for its large arrays); kept, glibc set to keep it "
                         "(MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_), as a caching allocator does; default: "
                         "as the environment sets it")
    bn.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                    help="numpy: CPU against torch CPU; cupy: GPU against torch with cuDNN")
    bn.add_argument("--target", choices=("module", "torch"), default="module",
                    help="module: the emitted NumPy module; torch: the emitted torch.autograd.Function under autograd "
                         "(CPU), both against torch's own op")
    bn.add_argument("--order", type=int, choices=(1, 2), default=1,
                    help="2: also time the module's double_backward against torch's double backward (the forward, "
                         "autograd.grad with create_graph=True, and autograd.grad of the sum of gg times the "
                         "gradients), as a gradient penalty computes it")
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
    args = p.parse_args(join_negative_values(p, list(sys.argv[1:] if argv is None else argv)))
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: documents name the command that made them
    try:
        return args.fn(args)
    except SymgradError as exc:
        print(f"symgrad: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `symgrad ops | head`: the reader stopped; end quietly, as a Unix tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (the interpreter's last flush goes nowhere)
        return 141
    except OSError as exc:  # what write_file does not see: docs' folder, pdf output
        where = f" {exc.filename}" if exc.filename else ""
        print(f"symgrad: error: cannot write{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
