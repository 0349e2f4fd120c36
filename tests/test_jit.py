"""Elementwise ops as numba loops (symgrad/runtime/numba/jit.py and elementwise.py, templates/loop.py.j2): the compiled
loop against the NumPy block path of the same module and against PyTorch, per dtype; which arrays
take which path; the module without numba; the scalar printer.  (The loops' scalar float32
erf/tanh/exp: tests/test_runtime.py.)"""
import warnings

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.emit.loops import loop as element_loop
from symgrad.emit import emit, load
from symgrad.ir import Op, Tensor, index, size
from symgrad.printing.scalar import element_statements
from conftest import needs_torch

numba = pytest.importorskip("numba")

SIZE = (1 << 16) + 3  # over _JIT_MIN, and not a multiple of any vector width


def softplus_mix():
    """y[e] = log(1 + exp(a[e])) · b[e] + sqrt(b[e]² + 1) / (1 + a[e]²)³ — two inputs, several functions."""
    E = size("E")
    e = index("e", E)
    a, b = Tensor("a", (E,)), Tensor("b", (E,))
    rhs = sp.log(1 + sp.exp(a[e])) * b[e] + sp.sqrt(b[e] ** 2 + 1) / (1 + a[e] ** 2) ** 3
    return Op("softplus_mix", {}, (a, b), Tensor("y", (E,)), (e,), rhs, elementwise=True)


OPS = {"gelu_erf": lambda: symgrad.ops.gelu("none"), "gelu_tanh": lambda: symgrad.ops.gelu("tanh"),
       "softplus_mix": softplus_mix}


@pytest.fixture(scope="module", params=sorted(OPS))
def module(request):
    op = OPS[request.param]()
    return op, load(emit(symgrad.derive(op), jvp=False), request.param)


def _inputs(op, dtype, n=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(dtype) * 3 for _ in op.inputs]


def _block_path(m, function, arrays, dtype):
    """The same function computed by the module's NumPy block path."""
    return m._blockwise(getattr(m, f"_{function}_block"), arrays, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loop_matches_the_numpy_path(module, dtype):
    op, m = module
    arrays = _inputs(op, dtype)
    g = np.random.default_rng(9).standard_normal(SIZE).astype(dtype)
    m._COMPILED.clear()
    pairs = [(m.forward(*arrays), _block_path(m, "forward", tuple(arrays), dtype))]
    for t in op.inputs:
        got = getattr(m, f"grad_{t.name}")(g, *arrays)
        pairs.append((got, _block_path(m, f"grad_{t.name}", (g, *arrays), dtype)))
    assert len(m._COMPILED) == 1 + len(op.inputs)  # every function ran as a loop
    assert all(key[1] == np.dtype(dtype) for key in m._COMPILED)
    for got, want in pairs:
        assert got.dtype == dtype and got.shape == want.shape
        scale = np.abs(want).max()
        # float32: the two paths round differently (one fused expression against ufunc passes)
        assert np.abs(got - want).max() <= (2e-6 if dtype == np.float32 else 1e-13) * scale


@needs_torch
def test_loop_matches_torch(module):
    """float64 loops against PyTorch's autograd at 1e-10; float32 loops within 1e-5 of them."""
    import torch
    from symgrad.verify.reference import REFERENCES
    op, m = module
    arrays = _inputs(op, np.float64)
    g = np.random.default_rng(9).standard_normal(SIZE)
    if op.name in REFERENCES:
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        y = REFERENCES[op.name](op, *ts)
    else:
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        a, b = ts
        y = torch.log1p(torch.exp(a)) * b + torch.sqrt(b ** 2 + 1) / (1 + a ** 2) ** 3
    want = [y.detach().numpy()] + [t.numpy() for t in torch.autograd.grad(y, ts, torch.tensor(g))]
    got64 = [m.forward(*arrays)] + list(m.backward(g, *arrays))
    got32 = [m.forward(*[a.astype(np.float32) for a in arrays])] + list(
        m.backward(g.astype(np.float32), *[a.astype(np.float32) for a in arrays]))
    for w, a64, a32 in zip(want, got64, got32):
        scale = max(1.0, np.abs(w).max())
        assert np.abs(a64 - w).max() <= 1e-10 * scale
        assert a32.dtype == np.float32 and np.abs(a32 - w).max() <= 1e-5 * scale


def test_which_arrays_take_the_loop():
    m = load(emit(symgrad.derive(symgrad.ops.gelu("none")), jvp=False), "gelu_paths")
    x = np.linspace(-4, 4, SIZE, dtype=np.float32)
    m._COMPILED.clear()
    small = m.forward(x[:1000])  # under _JIT_MIN: NumPy, nothing compiled
    half = m.forward(x.astype(np.float16))  # float16: NumPy (computed in float32)
    mixed = m.grad_x(np.ones(SIZE), x)  # float64 upstream, float32 x: NumPy, dtype of x
    assert not m._COMPILED
    assert small.dtype == np.float32 and half.dtype == np.float16 and mixed.dtype == np.float32
    strided = np.linspace(-4, 4, 2 * SIZE, dtype=np.float32).reshape(2, SIZE)[:, ::2]  # not contiguous
    assert np.array_equal(m.forward(strided), m.forward(np.ascontiguousarray(strided)))
    assert list(m._COMPILED) == [(m._forward_loop, np.dtype(np.float32))]
    cube = m.forward(x[:65536].reshape(16, 64, 64))
    assert cube.shape == (16, 64, 64) and np.array_equal(cube.reshape(-1), m.forward(x[:65536]))
    with pytest.raises(ValueError, match="gelu: grad_output must have the shape of x"):
        m.grad_x(np.ones(SIZE + 1, np.float32), x)


def test_without_numba_the_block_path_runs():
    source = emit(symgrad.derive(symgrad.ops.gelu("tanh")), jvp=False)
    assert "\nimport numba" not in source  # only inside the helper's try/except
    m = load(source, "gelu_no_numba")
    x = np.linspace(-6, 6, SIZE, dtype=np.float32)
    with_loop = m.forward(x)
    m.numba = None
    m._COMPILED.clear()
    without = m.forward(x)
    assert not m._COMPILED
    assert np.abs(with_loop - without).max() <= 2e-6 * np.abs(without).max()


def test_numba_disabled_or_failing_takes_the_numpy_path(monkeypatch):
    m = load(emit(symgrad.derive(symgrad.ops.gelu("none")), jvp=False), "gelu_fallbacks")
    x = np.linspace(-4, 4, SIZE, dtype=np.float32)
    want = _block_path(m, "forward", (x,), np.float32)
    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)  # loops would run in Python
    assert np.array_equal(m.forward(x), want) and not m._COMPILED
    monkeypatch.setattr(numba.config, "DISABLE_JIT", False)

    def plain_python(value):  # not compiled: numba cannot call it
        return value

    def unsupported_loop(single):
        def loop(out, x):
            for k in numba.prange(out.size):
                out[k] = plain_python(x[k])
        return loop
    monkeypatch.setattr(m, "_forward_loop", unsupported_loop)
    with pytest.warns(RuntimeWarning, match="gelu: numba could not compile unsupported_loop for float32 .*NumPy"):
        assert np.array_equal(m.forward(x), want)
    assert m._COMPILED == {(unsupported_loop, np.dtype(np.float32)): None}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once; afterwards the NumPy path without a word
        assert np.array_equal(m.forward(x), want)


def test_element_printer():
    x, y = sp.symbols("x y")
    assert element_statements(2 * x + 1, "out") == ["out = _F(2)*x + _F(1)"]
    assert element_statements(x ** -3 + sp.sqrt(y) * x ** sp.Rational(3, 2), "out") == [
        "out = (x*math.sqrt(x))*(math.sqrt(y)) + (_F(1)/(x*x*x))"]
    # erf and erfc take exp(-u²) from the element, which computes it once where the element holds it too
    assert element_statements(sp.exp(-x ** 2 / 2) * sp.erf(x) + sp.tanh(y), "r") == [
        "r_s0 = (x*x)", "r = _tanh(y) + _exp(-_F(0.5)*r_s0)*_erf(x, _exp(-r_s0))"]
    assert element_statements(sp.exp(-x ** 2) * sp.erfc(2 * x), "r") == [
        "r_s0 = (x*x)", "r = _exp(-r_s0)*_erfc(_F(2)*x, _exp(-_F(4)*r_s0))"]
    assert element_statements(sp.exp(-x ** 2) * sp.erfc(x), "r") == ["r_s0 = _exp(-(x*x))", "r = r_s0*_erfc(x, r_s0)"]
    assert element_statements(sp.tanh(x) ** 2 + sp.tanh(x), "r") == ["r_s0 = _tanh(x)", "r = r_s0*(r_s0 + _F(1))"]
    with pytest.raises(ValueError, match="no scalar code"):
        element_statements(sp.DiracDelta(x), "r")


def test_no_loop_where_a_name_would_clash():
    """An input called ``out`` (the loop's own argument) keeps the module on the NumPy path."""
    E = size("E")
    e = index("e", E)
    out = Tensor("out", (E,))
    op = Op("square", {}, (out,), Tensor("y", (E,)), (e,), out[e] ** 2, elementwise=True)
    d = symgrad.derive(op)
    assert element_loop(d.forward, "y", ["out"]) is None
    source = emit(d, jvp=False)
    assert "_loop" not in source and "return _blockwise(_forward_block" in source
    m = load(source, "square")
    v = np.arange(SIZE, dtype=np.float64)
    assert np.array_equal(m.forward(v), v * v) and np.array_equal(m.grad_out(np.ones(SIZE), v), 2 * v)


SECOND_PROCESS = """
import numpy as np, symgrad
m = symgrad.module(symgrad.ops.build("softmax"))
x = np.random.default_rng(0).standard_normal((512, 256)).astype(np.float32)
print("file", m.__file__)
print("values", float(np.abs(m.backward(np.ones_like(x), x)[0]).sum()), float(m.forward(x).sum()))
"""


def test_compiled_loops_are_cached_on_disk_for_the_next_process(tmp_path):
    """A module's compiled loops are saved beside its file in the cache directory, and a second
    process loads them instead of compiling (numba's cache log says which), with the same results."""
    import os
    import subprocess
    import sys
    pytest.importorskip("numba")
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(tmp_path), NUMBA_DEBUG_CACHE="1")
    runs = [subprocess.run([sys.executable, "-c", SECOND_PROCESS], capture_output=True, text=True, env=env, timeout=300)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-2000:]
    (first_file, first_values), (second_file, second_values) = [
        [line for line in r.stdout.splitlines() if line.startswith(("file ", "values "))] for r in runs]
    assert first_file == second_file and first_file.startswith(f"file {tmp_path}") and first_values == second_values
    assert "data saved to" in runs[0].stdout and "data loaded from" in runs[1].stdout
    assert "data saved to" not in runs[1].stdout  # (every loop the second process ran came from the cache)


UNREGISTERED = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("softmax_grad", sys.argv[1])
m = importlib.util.module_from_spec(spec)  # (not put in sys.modules, as many scripts do)
spec.loader.exec_module(m)
x = np.random.default_rng(0).standard_normal((512, 256)).astype(np.float32)
print("values", float(np.abs(m.backward(np.ones_like(x), x)[0]).sum()))
"""


def test_a_module_file_loaded_without_registering_runs_in_every_process(tmp_path):
    """An emitted file a script loads with importlib without putting it in sys.modules compiles its
    loops in each process instead of caching them under a module no process can import (the second
    process failed with ModuleNotFoundError: No module named '<dynamic>')."""
    import os
    import subprocess
    import sys
    pytest.importorskip("numba")
    path = tmp_path / "softmax_grad.py"
    from symgrad.emit.program import emit_program
    path.write_text(emit_program(symgrad.derive_program(symgrad.ops.build("softmax")), jvp=False))
    runs = [subprocess.run([sys.executable, "-c", UNREGISTERED, str(path)], capture_output=True, text=True,
                           env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba")), timeout=300)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.startswith("values ")


REGISTERED_AS = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location(sys.argv[2], sys.argv[1])
m = importlib.util.module_from_spec(spec)
sys.modules[sys.argv[2]] = m
spec.loader.exec_module(m)
x = np.random.default_rng(0).standard_normal((512, 256)).astype(np.float32)
print("values", float(np.abs(m.backward(np.ones_like(x), x)[0]).sum()))
"""


def test_one_module_file_imported_under_two_names_runs_under_each(tmp_path):
    """One emitted file imported as ``first`` in one process and as ``second`` in the next: the second
    process does not load the first's compiled loops, which would import ``first`` (it failed with
    ModuleNotFoundError: No module named 'first'), and both give the same values."""
    import os
    import subprocess
    import sys
    pytest.importorskip("numba")
    path = tmp_path / "softmax_grad.py"
    from symgrad.emit.program import emit_program
    path.write_text(emit_program(symgrad.derive_program(symgrad.ops.build("softmax")), jvp=False))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    runs = [subprocess.run([sys.executable, "-c", REGISTERED_AS, str(path), name], capture_output=True, text=True,
                           env=env, timeout=300) for name in ("first", "second", "first")]
    assert all(r.returncode == 0 for r in runs), [r.stderr[-2000:] for r in runs]
    assert runs[0].stdout == runs[1].stdout == runs[2].stdout and runs[0].stdout.startswith("values ")


def test_a_cached_module_file_runs_only_if_it_is_what_was_emitted(tmp_path, monkeypatch):
    """The cache's module file is checked against the emitted source before it runs: an edited or
    truncated file is written again; without numba loops a module runs from its string."""
    from pathlib import Path
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    source = emit(symgrad.derive(symgrad.ops.gelu()), jvp=False)
    path = Path(load(source, "symgrad_gelu_cache_test").__file__)
    assert path.parent == tmp_path / "modules" and path.read_text(encoding="utf-8") == source
    path.write_text("raise SystemExit('not what was emitted')\n")
    assert Path(load(source, "symgrad_gelu_cache_test").__file__) == path
    assert path.read_text(encoding="utf-8") == source
    plain = emit(symgrad.derive(symgrad.ops.matmul()), jvp=False)
    assert "_on_disk(" not in plain and getattr(load(plain, "symgrad_matmul_cache_test"), "__file__", None) is None
