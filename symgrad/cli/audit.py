"""``symgrad audit`` (a framework's gradient rules against the derived truth) and ``symgrad fuzz``
(random programs against PyTorch autograd)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ..audit import names as audit_names
from ..ir import SymgradError
from .args import write_file


def cmd_audit(args):
    from ..audit import ADAPTERS, audit
    from ..audit.report import as_json, markdown, write_reproducers
    from ..audit.run import progress_bar
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
        write_file(output, text)
        write_file(output.with_suffix(".json"), as_json(result))
        print(f"wrote {output} and {output.with_suffix('.json')}: {len(result['cases'])} configurations, "
              f"{len(result['mismatches'])} discrepancies, {result['seconds']:.0f} s", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def cmd_fuzz(args):
    from ..fuzz.campaign import FAILURES, print_progress, report, run
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
        write_file(Path(args.output), text)
    print(text, end="")
    return 1 if any(r.status in FAILURES for r in campaign["results"]) else 0
