"""The command line: every command, and bad input answered with exit 2 and one clear line."""
import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from symgrad.cli import main
from symgrad.emit import load
from conftest import needs_torch
from support import imports_of, run


def test_ops_lists_every_op(capsys):
    code, out, _ = run(capsys, "ops")
    assert code == 0
    for name in ("conv1d", "conv2d", "conv3d", "conv", "convolve", "matmul", "gelu", "--padding", "--mode"):
        assert name in out


def test_derive_symbolic_conv1d_text(capsys):
    code, out, _ = run(capsys, "derive", "conv1d")
    assert code == 0
    assert "dℒ/dw[f, c, r]" in out and "window stride d, kernel dilation s" in out
    assert "s - 1 zeros inserted between elements of g" in out and "kernel reversed" in out
    assert "mod s == 0" in out


def test_derive_json_schema(capsys):
    code, out, _ = run(capsys, "derive", "matmul", "--a-shape", "B,M,K", "--b-shape", "K,N", "--format", "json")
    d = json.loads(out)
    assert code == 0 and d["op"] == "matmul" and d["inputs"] == ["a", "b"]
    assert set(d["grads"]) == {"a", "b"}
    for g in d["grads"].values():
        assert set(g) >= {"expr", "form"} and g["form"]["kind"] == "matmul"


def test_derive_json_conv_form_fields_exactly_design(capsys):
    _, out, _ = run(capsys, "derive", "conv3d", "--stride", "2", "--groups", "2", "--format", "json")
    form = json.loads(out)["grads"]["w"]["form"]
    assert set(form) == {"kind", "lhs", "rhs", "rhs_reverse", "window_strides", "padding", "lhs_dilation",
                         "rhs_dilation", "dimension_numbers", "feature_group_count", "batch_group_count"}
    assert form["batch_group_count"] == 2 and form["rhs_dilation"] == [2, 2, 2]
    dx = json.loads(out)["grads"]["x"]["form"]
    assert dx["feature_group_count"] == 2 and dx["rhs_regroup"] == {"groups": 2, "from_axis": 0, "to_axis": 1}


def test_input_shapes_make_sizes_concrete(capsys):
    code, out, _ = run(capsys, "derive", "conv2d", "--stride", "1", "--dilation", "1", "--padding", "1,2",
                       "--input-shape", "x=1,20,64,128", "--input-shape", "w=16,20,3,5", "--input-shape", "b=16",
                       "--format", "json")
    d = json.loads(out)
    assert code == 0
    assert d["output_sizes"] == {"O_1": 64, "O_2": 128}  # Conv2d(20, 16, (3, 5), padding=(1, 2)) keeps 64×128
    assert d["grads"]["x"]["form"]["padding"] == [[1, 1], [2, 2]]


def test_emit_writes_file_and_module_runs(tmp_path, capsys):
    path = tmp_path / "conv_bwd.py"
    code, _, _ = run(capsys, "emit", "conv2d", "--stride", "2", "--padding", "1", "-o", str(path))
    assert code == 0
    mod = load(path.read_text())
    x, w, b = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3)), np.zeros(3)
    y = mod.forward(x, w, b)
    assert y.shape == (1, 3, 3, 3)
    dx, dw, db = mod.backward(np.ones_like(y), x, w, b)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape


@needs_torch
def test_check_passes_and_prints_table(capsys):
    code, out, _ = run(capsys, "check", "conv1d", "--stride", "2", "--dilation", "2", "--padding", "1:-1",
                       "--trials", "3", "--seed", "5")
    assert code == 0
    assert "torch:x" in out and "fd:w" in out and "OK" in out


@pytest.mark.parametrize("argv,needle", [
    (["derive", "conv2d", "--stride", "0"], "stride must be an integer >= 1, got 0"),
    (["derive", "conv1d", "--dilation", "-1"], "dilation must be an integer >= 1, got -1"),
    (["derive", "conv2d", "--stride", "1,2,3"], "stride takes one value or 2 (one per spatial axis), got 3"),
    (["derive", "conv1d", "--padding", "-2"], "symmetric padding must be >= 0"),
    (["derive", "conv1d", "--padding", "sideways"], "padding must be integers"),
    (["derive", "conv1d", "--groups", "0"], "groups must be an integer >= 1"),
    (["emit", "conv1d", "--groups", "2", "--input-shape", "x=1,3,8", "--input-shape", "w=4,1,3",
      "--input-shape", "b=4"], "axis 1 of input x (3) is not a multiple of 2: x must have shape (N, 2*C_in, L), 2 groups of C_in"),
    (["check", "conv1d", "--input-shape", "x=1,1,2", "--input-shape", "w=1,1,5", "--input-shape", "b=1"],
     "kernel (dilated extent 5) larger than the padded input (2)"),
    (["derive", "pool"], "unknown op 'pool'"),
    (["derive", "convolve", "--mode", "middle"], "mode must be one of full, same, valid"),
    (["derive", "gelu", "--approximate", "sigmoid"], "approximate must be one of none, tanh"),
    (["derive", "matmul", "--a-shape", "M,K", "--b-shape", "J,N"], "contracted sizes differ"),
    (["derive", "matmul", "--a-shape", "2,M,K", "--b-shape", "3,K,N"], "batch axis 0 does not broadcast"),
    (["derive", "conv"], "--ndim is required"),
    (["derive", "gelu", "--mode", "full"], "--mode does not apply to gelu"),
    (["bench", "gelu", "--input-shape", "x=8", "--gemm", "matmul"], "--gemm and --conv-path compare routes on the GPU"),
    (["bench", "gelu"], "bench gelu: give the shape to time with --input-shape NAME=D0,D1,... for every input (x)"),
    (["emit", "gelu", "--target", "torch", "--backend", "cupy"], "--backend chooses the array library of a standalone module"),
    (["emit", "conv", "--ndim", "4", "--target", "torch"], "torch's kernels, which have 1 to 3 spatial axes"),
    (["bench", "gelu", "--input-shape", "x=8", "--target", "torch", "--backend", "cupy"],
     "--target torch times the torch Function on the CPU"),
    (["bench", "matmul", "--input-shape", "a=4,5"], "give --input-shape for every input (missing b)"),
])
def test_bad_parameters_exit_2_with_one_clear_line(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert needle in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv,needle", [
    (["check", "gelu", "--trials", "0"], "argument --trials: expected an integer >= 1, got '0'"),
    (["check", "gelu", "--trials", "three"], "argument --trials: expected an integer >= 1, got 'three'"),
    (["check", "gelu", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
    (["bench", "gelu", "--threads", "0"], "argument --threads: expected an integer >= 1, got '0'"),
    (["bench", "gelu", "--repeats", "-3"], "argument --repeats: expected an integer >= 1, got '-3'"),
    (["bench", "--suite", "--backend", "cupy", "--dtype", "bfloat16"], "argument --dtype: invalid choice: 'bfloat16'"),
])
def test_bad_counts_are_refused_before_any_work(capsys, argv, needle):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert needle in err.splitlines()[-1], err
    assert "Traceback" not in err


@pytest.mark.parametrize("kwargs,needle", [
    ({"trials": 0}, "check gelu: trials must be an integer >= 1, got 0"),
    ({"trials": 2.0}, "check gelu: trials must be an integer >= 1, got 2.0"),
    ({"seed": -4}, "check gelu: seed must be an integer >= 0, got -4"),
])
def test_check_refuses_a_check_that_checks_nothing(kwargs, needle):
    from symgrad import ops
    from symgrad.verify.check import check
    from symgrad.ir import SymgradError
    with pytest.raises(SymgradError, match=needle):
        check(ops.build("gelu", approximate="none"), **kwargs)


def test_check_accepts_numpy_integers(capsys):
    from symgrad import ops
    from symgrad.verify.check import check
    results, ok = check(ops.build("gelu", approximate="tanh"), trials=np.int64(1), seed=np.uint8(2))
    assert ok and len(results) == 1


def test_emitted_module_rejects_mismatched_shapes(capsys):
    _, src, _ = run(capsys, "emit", "conv2d", "--groups", "2")
    mod = load(src)
    x, w, b = np.ones((1, 4, 6, 6)), np.ones((4, 2, 3, 3)), np.ones(4)
    with pytest.raises(ValueError, match=r"conv2d: input w must have shape \(2\*C_out, C_in, K_1, K_2\)"):
        mod.forward(x, np.ones((4, 3, 3, 3)), b)
    with pytest.raises(ValueError, match="input b must have shape"):
        mod.forward(x, w, np.ones(5))
    with pytest.raises(ValueError, match="grad_output must have shape"):
        mod.backward(np.ones((1, 4, 5, 5)), x, w, b)
    with pytest.raises(ValueError, match="input x must have shape"):
        mod.forward(np.ones((6, 6)), w, b)  # (C, H, W) would be an unbatched input
    _, src, _ = run(capsys, "emit", "gelu")
    with pytest.raises(ValueError, match="gelu: grad_output must have the shape of x"):
        load(src).backward(np.ones(3), np.ones(4))


@pytest.mark.parametrize("argv", [["conv3d", "--groups", "2"], ["convolve", "--mode", "same"], ["matmul"],
                                  ["gelu"], ["gelu", "--approximate", "tanh"]])
def test_emitted_code_is_standalone_and_deterministic(capsys, argv):
    _, first, _ = run(capsys, "emit", *argv)
    _, second, _ = run(capsys, "emit", *argv)
    assert first == second
    optional = {"numba", "numba.extending", "numba.core.caching", "llvmlite", "threadpoolctl"}  # (numba's own dependency)
    assert imports_of(first) <= {"numpy", "scipy.special", "math", "os", "concurrent.futures", "warnings", "hashlib", "sys",
                                 "types"} | optional
    # numba is optional: imported only under `try: ... except ImportError`
    guarded = set().union(*[imports_of(ast.unparse(stmt)) for node in ast.walk(ast.parse(first))
                            if isinstance(node, ast.Try)
                            and any(getattr(h.type, "id", None) == "ImportError" for h in node.handlers)
                            for stmt in node.body])
    assert imports_of(first) & optional == guarded and ("numba" in guarded) == (argv[0] == "gelu")
    assert ("threadpoolctl" in guarded) == argv[0].startswith(("conv", "matmul"))  # convolutions' and GEMMs' worker threads
    assert "symgrad" not in imports_of(first)
    assert first.startswith('"""') and "recognised form:" in first


def test_emit_is_byte_identical_across_processes(tmp_path):
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.append(subprocess.run([sys.executable, "-m", "symgrad.cli", "emit", "conv2d", "--groups", "2",
                                    "--stride", "2,1"], env=env, capture_output=True, check=True).stdout)
    assert outs[0] == outs[1]


@pytest.mark.parametrize("argv", [["conv2d", "--groups", "2", "--stride", "2"], ["conv1d", "--padding", "causal"],
                                  ["convolve", "--mode", "valid"], ["matmul", "--a-shape", "1,M,K"], ["gelu"],
                                  ["gelu", "--approximate", "tanh"]])
def test_cupy_source_is_valid_and_imports_only_gpu_modules(capsys, argv):
    code, src, _ = run(capsys, "emit", *argv, "--backend", "cupy")
    assert code == 0
    compile(src, "<cupy module>", "exec")
    assert imports_of(src) <= {"cupy", "cupyx.scipy.special", "numpy", "math"}
    assert "import numpy as xp" not in src and "import cupy as xp" in src
    gemms = argv[0] in ("conv2d", "conv1d", "convolve", "matmul")  # their GEMMs are cuBLAS calls on views
    assert ("xp.cuda.cublas.gemmStridedBatchedEx(" in src) == gemms and ("cuBLAS" in src.split('"""')[1]) == gemms


@needs_torch
def test_bench_reports_every_method_with_pair_ratios(capsys):
    """The benchmark is a command and a table: it runs (children, same thread count) and reports each
    method's times, the median pair ratio with its quartiles, peak memory, and the gauge SGEMM's rate
    in each library before and after.  No timing is asserted."""
    code, out, _ = run(capsys, "bench", "gelu", "--input-shape", "x=4096", "--repeats", "3", "--threads", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "gelu (1 thread); torch's side: F.gelu"
    for method in ("forward", "dx", "forward+backward"):
        line = next(line for line in lines if line.split()[0] == method)
        assert "emitted" in line and "torch" in line and "ratio" in line and "(quartiles " in line
    assert any(line.split()[:2] == ["peak", "memory"] for line in lines)
    assert any(line.split()[:1] == ["heap"] and "heap" in line.split(None, 1)[1] for line in lines)
    gauge = next(line for line in lines if line.split()[:2] == ["gauge", "SGEMM"])
    rates = gauge.split("before/after: ")[1]  # "numpy A/B, torch C/D"
    for part, lib in zip(rates.split(", "), ("numpy", "torch")):
        name, values = part.split()
        assert name == lib and all(float(v) > 0 for v in values.split("/"))


@needs_torch
@pytest.mark.parametrize("argv,first", [
    (["--rule", "y[n, f, i] = b[f] + sum(c, r) w[f, c, r] * x[n, c, 2*i + r - 1]", "--input-shape", "x=2,3,40",
      "--input-shape", "w=4,3,3", "--input-shape", "b=4"], "rule (1 thread); torch's side: torch operations of the same statements"),
    pytest.param(["--rule", "input x[N, D]\ny[n, d] = exp(x[n, d]) / (1 + exp(x[n, d]))", "--input-shape", "x=50,60",
                  "--target", "torch"], "rule (1 thread); torch's side: torch operations of the same statements",
                 marks=pytest.mark.full),
    pytest.param(["conv1d", "--padding-mode", "circular", "--padding", "1", "--input-shape", "x=2,3,40",
                  "--input-shape", "w=4,3,3", "--input-shape", "b=4"],
                 "conv1d_circular (1 thread); torch's side: torch operations of the same statements",
                 marks=pytest.mark.full),
])
def test_bench_times_programs_of_ones_own(capsys, argv, first):
    """A rule, a file or a padding mode has no torch function: torch's side is its own autograd
    through the same statements as torch operations (the torch target's forward, called directly)."""
    code, out, _ = run(capsys, "bench", *argv, "--repeats", "1", "--threads", "1")
    assert code == 0 and out.splitlines()[0] == first
    assert any(line.split()[0] == "forward+backward" and "ratio" in line for line in out.splitlines())


@needs_torch
def test_bench_times_float64_and_batch_axes_the_module_takes(capsys):
    """4-d attention (batch and heads, k and v broadcast over the heads) as the module and
    F.scaled_dot_product_attention take it, in float64, with its double backward (--order 2) against
    torch's autograd double backward."""
    code, out, err = run(capsys, "bench", "attention", "--input-shape", "q=2,3,8,4", "--input-shape", "k=2,1,8,4",
                         "--input-shape", "v=2,1,8,5", "--dtype", "float64", "--repeats", "1", "--order", "2")
    assert code == 0, err
    assert out.splitlines()[0] == "attention (1 thread, float64); torch's side: F.scaled_dot_product_attention"
    assert any(line.split()[0] == "double_backward" and "ratio" in line for line in out.splitlines()), out
    code, _, err = run(capsys, "bench", "gelu", "--input-shape", "x=64", "--order", "2", "--target", "torch")
    assert code == 2 and "--order 2 times the module's double_backward" in err
    code, _, err = run(capsys, "bench", "attention", "--input-shape", "q=2,3,8,4", "--input-shape", "k=3,8,4",
                       "--input-shape", "v=4,8,5", "--repeats", "1")
    assert code == 2 and "attention: the leading axes of the inputs do not broadcast together: q (2, 3), k (3,), v (4,)" \
        in err, err
    code, _, err = run(capsys, "bench", "gelu", "--input-shape", "x=64", "--dtype", "float16")
    assert code == 2 and "float16 is timed on the GPU" in err


def test_row_shapes_broadcast_and_flatten_the_leading_axes():
    from symgrad import ops
    from symgrad.sizes import row_shapes
    assert row_shapes(ops.build("attention"), {"q": (2, 4, 64, 16), "k": (4, 64, 16), "v": (1, 4, 64, 8)}) == \
        {"q": (8, 64, 16), "k": (8, 64, 16), "v": (8, 64, 8)}
    assert row_shapes(ops.build("softmax"), {"x": (3, 5, 7)}) == {"x": (15, 7)}
    assert row_shapes(ops.build("layer_norm"), {"x": (2, 3, 5), "weight": (5,), "bias": (5,)}) == \
        {"x": (6, 5), "weight": (5,), "bias": (5,)}


def test_bench_child_environment_binds_only_when_asked(monkeypatch):
    from symgrad.bench.cpu import _env
    monkeypatch.setenv("OMP_PROC_BIND", "spread")  # the parent's setting does not leak into unbound runs
    unbound, bound = _env(2), _env(2, bind=True)
    assert "OMP_PROC_BIND" not in unbound and bound["OMP_PROC_BIND"] == "true"
    assert all(env[key] == "2" for env in (unbound, bound) for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"))


@needs_torch
@pytest.mark.full  # (the binding itself: test_bench_child_environment_binds_only_when_asked)
def test_bench_bound_threads(capsys):
    code, out, _ = run(capsys, "bench", "gelu", "--input-shape", "x=4096", "--repeats", "1", "--threads", "2", "--bind")
    assert code == 0 and out.splitlines()[0] == "gelu (2 threads, bound); torch's side: F.gelu"


def test_gpu_roofline_uses_the_peak_of_the_dtype():
    """The GPU benchmark's floor (a CPU-side computation): the ideal work of a 4096^3 matmul, and a
    float16 floor from the tensor-core peak, not float32's."""
    from symgrad import ops
    from symgrad.bench import gpu as bench_gpu
    op = ops.build("matmul", a_shape="M,K", b_shape="K,N")
    work = bench_gpu.work(op, {"a": (4096, 4096), "b": (4096, 4096)}, 2)
    flops, io = work["forward"]
    assert flops == 2 * 4096 ** 3 and io == 2 * 3 * 4096 ** 2 and work["backward"] == (2 * flops, 2 * io)
    half, single = (bench_gpu.roofline(work, dtype, 3e12)["forward"] for dtype in ("float16", "float32"))
    assert single == flops / 67e12 and half == max(flops / 989e12, io / 3e12) and half < single / 10


# what a newcomer hit (issue 33's "also seen") ------------------------------------------------------------

def test_version_and_help_on_every_flag(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    tomllib = pytest.importorskip("tomllib")  # (Python 3.11+)
    from pathlib import Path
    from symgrad.version import __version__
    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["version"]
    assert done.value.code == 0 and capsys.readouterr().out == f"symgrad {declared}\n" and __version__ == declared
    from symgrad.cli import parser
    for name, sub in parser()._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (name, action.option_strings)


def test_ops_lines_are_whole_sentences_in_the_command_lines_terms(capsys):
    code, out, _ = run(capsys, "ops")
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and not line.startswith("    ")}
    assert lines["batch_norm"].rstrip().endswith(".") and "matmul(" not in lines["matmul"]


def test_an_unknown_op_gets_the_closest_names(capsys):
    code, _, err = run(capsys, "emit", "conv2dd")
    assert code == 2 and "did you mean conv2d" in err and err.count("\n") == 1
    assert "did you mean softmax" in run(capsys, "derive", "sofmax")[2]


def test_check_runs_at_the_given_shapes(capsys):
    code, out, _ = run(capsys, "check", "--rule", "input x[N, D]; y[n] = sum(d) x[n, d]^2", "--input-shape", "x=3,4",
                       "--trials", "2")
    assert code == 0 and out.count("x[3, 4]") == 2
    code, out, _ = run(capsys, "check", "conv1d", "--input-shape", "x=2,3,9", "--input-shape", "w=4,3,3",
                       "--input-shape", "b=4", "--trials", "2")
    assert code == 0 and out.count("x[2, 3, 9]") == 2


def test_positive_inputs_in_the_text_syntax_and_a_forward_that_is_not_finite(capsys):
    code, out, _ = run(capsys, "check", "--rule", "input x[N] > 0; y[n] = log(x[n])", "--trials", "2")
    assert code == 0 and "OK" in out
    code, _, err = run(capsys, "check", "--rule", "input x[N]; y[n] = log(x[n])", "--trials", "2")
    assert code == 2 and "not finite at the sampled inputs" in err and "input x[N] > 0" in err and "MISMATCH" not in err


def test_batch_norm_without_spatial_axes(capsys, tmp_path):
    assert run(capsys, "emit", "batch_norm", "--ndim", "0", "-o", str(tmp_path / "bn.py"))[0] == 0


def test_a_channels_last_input_is_named_as_the_cause(capsys):
    code, _, err = run(capsys, "check", "conv2d", "--input-shape", "x=1,8,8,3", "--input-shape", "w=4,3,3,3",
                       "--input-shape", "b=4")
    assert code == 2 and "read from axis 1 of x, whose shape (1, 8, 8, 3) is taken as (N, C_in, L_1, L_2)" in err


def test_an_op_and_a_program_module_have_one_api(capsys, tmp_path):
    """conv2d and conv2d with a padding mode (a program of two statements): the same functions."""
    api = {}
    for label, extra in (("zeros", []), ("circular", ["--padding-mode", "circular"])):
        path = tmp_path / f"{label}.py"
        assert run(capsys, "emit", "conv2d", "--padding", "1", *extra, "-o", str(path))[0] == 0
        module = load(path.read_text())
        api[label] = {n for n in ("forward", "backward", "vjp", "double_backward", "grad_x", "grad_w", "grad_b")
                      if callable(getattr(module, n, None))}
        x, w, b = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3)), np.ones(3)
        y, pullback = module.vjp(x, w, b)
        assert [g.shape for g in pullback(np.ones_like(y))] == [x.shape, w.shape, b.shape]
        assert module.grad_w(np.ones_like(y), x, w, b).shape == w.shape
    assert api["zeros"] == api["circular"] == {"forward", "backward", "vjp", "double_backward", "grad_x", "grad_w", "grad_b"}
