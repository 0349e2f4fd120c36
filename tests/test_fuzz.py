"""symgrad's random-program differential test (symgrad/fuzz): a fixed-seed slice of random programs,
each checked end to end (the NumPy module's forward, backward, vjp, double_backward and float32; the
torch and JAX targets' first and second order) against PyTorch autograd with a 50-digit arbiter; and
the harness itself: the generator's determinism and reach, the arbiter's verdicts on planted errors on
either side, the shrinker, the time limit.  CI also runs a larger campaign with a daily seed
(``symgrad fuzz``, .ci/run)."""
import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import HAS_JAX, needs_torch
from symgrad.fuzz import campaign, generate, sizing
from symgrad.fuzz.oracle import judge
from symgrad.fuzz.checker import Checker, Failure
from symgrad.fuzz.run import Hang, Result, check, time_limit
from symgrad.fuzz.shrink import shrink
from symgrad.fuzz.tree import Affine, Bin, Fn, Program, Read, Statement, Tensor, size_value, walk

SEED = 20261206
TARGETS = ("numpy", "torch") + (("jax",) if HAS_JAX else ())
#: the slice: small programs, and every sixth one with a tensor of 2^16 elements or more
SLICE = 16


@needs_torch
@pytest.mark.parametrize("k", range(SLICE))
def test_random_program(k):
    r = campaign.one((SEED, k, 6, TARGETS, 120.0, 3))  # (the JAX target on every third)
    assert r.status in ("ok", "reference"), f"{r.status} in {r.check}: {r.detail}\n{r.text}sizes {r.sizes}"


def test_generator_is_deterministic_and_reaches_every_construct():
    assert generate.program(7).text() == generate.program(7).text()
    assert sizing.sizes(generate.program(7), 7) == sizing.sizes(generate.program(7), 7)
    seen = set()
    for seed in range(600):
        seen |= generate.program(seed).tags
    assert seen == set(generate.CONSTRUCTS), set(generate.CONSTRUCTS) - seen


def test_large_programs_hold_a_tensor_of_two_to_the_sixteen_elements():
    for seed in range(5):
        p = generate.program(seed, large=True)
        sizes = p.concrete(sizing.sizes(p, seed, large=True))
        biggest = max(int(np.prod([sizes[d] if isinstance(d, str) else d for d in s.dims]))
                      for s in p.statements if s.dims)
        counts = [int(np.prod([sizes[d] if isinstance(d, str) else d for d in t.dims])) for t in p.inputs]
        assert max([biggest] + counts) >= 2 ** 16


def _square() -> Program:
    """y[n] = cos(x[n])² over x[N]."""
    x = Read("x", (Affine.of("n"),))
    return Program((Tensor("x", ("N",)),), (Statement("y", (("n", "N", False),), Bin("*", Fn("cos", (x,)),
                                                                                     Fn("cos", (x,)))),))


@needs_torch
def test_the_arbiter_refutes_a_wrong_gradient_and_clears_a_wrong_reference():
    result = Result(0, False, "", {})
    c = Checker(_square(), {"N": 5}, 0, result)
    right = [g.copy() for g in c.grads]
    c.grads_agree("backward", right)                     # the reference's own numbers: no arbiter needed
    wrong = [right[0] * (1 + 1e-6)]
    with pytest.raises(Failure, match="projection"):     # symgrad off by a millionth: refuted
        c.grads_agree("backward", wrong)
    c.grads = [right[0] * 1.01]                           # the reference off: symgrad's right numbers pass
    c.grads_agree("backward", right)
    assert any("reference is off" in n for n in result.notes)
    nan = [right[0].copy()]
    nan[0][2] = np.nan
    c.grads = right
    with pytest.raises(Failure):                          # NaN where the truth is finite
        c.grads_agree("backward", nan)


def test_a_value_float64_cannot_resolve_is_no_ones_error():
    """A gradient that is 0 by cancellation, divided by sqrt(var + eps) of a constant row (campaign seed
    39, program 469): symgrad's and torch's float64 projections are rounding of either sign, neither
    ten times closer to the 50-digit truth (a hundred where the truth is 0 to float64's resolution);
    symgrad is refuted where the reference is right or further that much closer, and a projection that
    is not a number is no one's rounding."""
    assert judge(2.206617755e-23, -2.243192346e-23, -8.708417063e-30, 1e-25) == "alike"
    assert judge(2.351267843e-23, -6.000110129e-24, -3.35489013e-41, 1e-25) == "alike"  # its double backward
    assert judge(4.175225571e-23, -4.093465573e-24, -9.525234195e-42, 1e-25) == "alike"  # torch target's, 10x
    assert judge(101 * 2.2e-23, -2.2e-23, 0.0, 1e-25) == "theirs"
    assert judge(1.02, 1.001, 1.0) == "theirs"  # a truth float64 resolves: ten times
    assert judge(float("nan"), 1.0, 0.5) == "neither"
    assert judge(1.5, 1.001, 1.0) == "theirs" and judge(1.0, 1.5, 1.0) == "ours"


@needs_torch
def test_the_arbiter_judges_values_and_second_order():
    result = Result(0, False, "", {})
    c = Checker(_square(), {"N": 4}, 1, result)
    with pytest.raises(Failure, match="output y"):
        c.values_agree("forward", [c.values[0] + 1e-7])
    c.values_agree("forward", [c.values[0].copy()])
    seconds = [s.copy() for s in c.seconds]
    c.seconds_agree("double_backward", seconds)
    seconds[1] = seconds[1] * 1.001                       # ∂ℒ₂/∂x off by a thousandth
    with pytest.raises(Failure):
        c.seconds_agree("double_backward", seconds)


@needs_torch
def test_float32_is_judged_against_torchs_float32_and_the_size_of_what_it_is_computed_from():
    c = Checker(_square(), {"N": 4}, 2, Result(0, False, "", {}))
    zero, g = np.zeros(4), [np.full(4, 3.0)]
    c.float32_agree("float32 backward", [zero + 1e-6], [[zero]], [zero], scale=g)  # cancellation's rounding
    with pytest.raises(Failure, match="torch float32's 0.00e"):
        c.float32_agree("float32 backward", [zero + 1e-3], [[zero]], [zero], scale=g)
    # a forward that is 0 by cancellation (x − mean over a constant axis; campaign seed 34, program 2626)
    c.float32_agree("float32 forward", [zero - 5.96e-8], [[zero]], [zero], scale=[np.full(4, 1.5)])
    with pytest.raises(Failure):
        c.float32_agree("float32 forward", [zero - 5.96e-8], [[zero]], [zero])
    truth = np.linspace(1, 2, 4)
    c.float32_agree("float32 forward", [truth * (1 + 1e-6)], [[truth]], [truth])
    with pytest.raises(Failure):                           # a hundredth of a percent off: precision lost
        c.float32_agree("float32 forward", [truth * (1 + 1e-4)], [[truth * (1 + 1e-6)]], [truth])
    # judged by torch's least accurate evaluation
    c.float32_agree("float32 forward", [truth * (1 + 1e-4)], [[truth], [truth * (1 + 1e-5)]], [truth])


@needs_torch
def test_the_float32_yardstick_includes_torch_einsum_for_a_contraction():
    """A sum of products summed after broadcasting is more accurate in float32 than the GEMM that
    torch.einsum (or symgrad's matmul) runs; erfc's gradient amplifies the difference 2t² times.  Campaign
    seed 52, program 29 was judged wrong against the broadcast sum alone."""
    import torch
    from symgrad.fuzz.evaluate import torch_values
    seed = campaign.program_seed(52, 29)
    tree = generate.program(seed, large=True)
    sizes = sizing.sizes(tree, seed, large=True)
    rng = np.random.default_rng(0)
    conc = tree.concrete(sizes)
    arrays = {t.name: rng.standard_normal(tuple(size_value(d, conc) for d in t.dims)) for t in tree.inputs}
    plain, gemm = (torch_values(tree, sizes, arrays, einsum=e)[1] for e in (False, True))
    for name in tree.outputs:
        np.testing.assert_allclose(gemm[name].detach().numpy(), plain[name].detach().numpy(), rtol=1e-12, atol=1e-12)
    arrays32 = {n: a.astype(np.float32) for n, a in arrays.items()}
    plain32, gemm32 = (torch_values(tree, sizes, arrays32, torch.float32, einsum=e)[1] for e in (False, True))
    err = [np.abs(v[o].detach().double().numpy() - plain[o].detach().numpy()).max() for v in (plain32, gemm32)
           for o in tree.outputs]
    assert err[1] > err[0]
    assert check(tree, sizes, seed, large=True, targets=("numpy",)).status == "ok"



def test_the_shrinker_finds_a_minimal_failing_program():
    tree = None
    for seed in range(200):
        p = generate.program(seed)
        if len(p.statements) >= 4 and any(isinstance(n, Fn) and n.name == "cos" for s in p.statements
                                          for n in walk(s.rhs)):
            tree, sizes = p, sizing.sizes(p, seed)
            break

    def fails(q, z):  # "fails" wherever a cos remains
        return any(isinstance(n, Fn) and n.name == "cos" for s in q.statements for n in walk(s.rhs))
    small, sizes = shrink(tree, sizes, fails, budget=400)
    assert len(small.statements) == 1 and fails(small, sizes)
    assert len(small.text()) < len(tree.text())
    assert all(v <= 2 for v in sizes.values())


def test_the_time_limit_is_not_swallowed_by_code_that_catches_every_error():
    def stubborn():
        while True:
            try:
                sum(range(10 ** 5))
            except Exception:  # noqa: BLE001  (as SymPy's series code does)
                pass
    with pytest.raises(Hang):
        with time_limit(0.2):
            stubborn()


def test_emitted_programs_are_byte_identical_across_processes():
    """Emission does not depend on Python's string hashing (a condition's conjuncts are a set to
    SymPy): the modules of a few random programs, emitted with second order in two processes of
    different hash seeds, are the same bytes (a max's brackets once came out in either order)."""
    script = ("import hashlib\n"
              "from symgrad.fuzz import campaign, generate\n"
              "from symgrad.emit.program import emit_program\n"
              "from symgrad.reverse import derive_program\n"
              "from symgrad.second_order import derive_program_second_order\n"
              "from symgrad.syntax import parse_program\n"
              "p = parse_program('input x[N, N, D], z[D, N]\\nt1[d] = stop_gradient((max(n) (z[d, n])))\\n'\n"
              "                  't2[d] = log((sum(n) (exp(z[d, n] - t1[d])))) + t1[d]')\n"
              "texts = [p] + [parse_program(generate.program(campaign.program_seed(77, k)).text()) for k in range(2)]\n"
              "for p in texts:\n"
              "    d = derive_program(p)\n"
              "    try:\n"
              "        second = derive_program_second_order(d)\n"
              "    except Exception:\n"
              "        second = None\n"
              "    for backend in ('numpy', 'cupy', 'torch'):\n"
              "        print(hashlib.sha256(emit_program(d, backend, second=second, jvp=False).encode()).hexdigest())\n")
    outs = [subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONHASHSEED=seed),
                           capture_output=True, text=True, check=True).stdout for seed in ("1", "3")]
    assert outs[0] == outs[1] and len(outs[0].split()) == 9


def test_a_worker_that_dies_with_its_program_is_reported_not_waited_for():
    """A worker the system kills (out of memory: campaign seed 39 waited for ever on one) sends no
    result: after a silence the program is reported as a crash of its worker, with its text; the
    workers' heap is capped so that most such programs fail with MemoryError instead."""
    work = [(5, k, 10, ("numpy",), 60.0, 1) for k in range(3)]

    class Pool:  # two results, then silence
        def __init__(self):
            self.given = [Result(0, False, "", {}, index=2), Result(0, False, "", {}, index=0)]

        def next(self, timeout):
            if self.given:
                return self.given.pop(0)
            raise multiprocessing.TimeoutError

    results = campaign.collect(Pool(), work, 1.0)
    assert [r.index for r in results] == [2, 0, 1]
    assert results[2].status == "crash" and results[2].check == "worker" and "died" in results[2].detail
    assert results[2].text == generate.program(campaign.program_seed(5, 1)).text()
    assert 0 < campaign.memory_cap(2) < campaign.memory_cap(1)
