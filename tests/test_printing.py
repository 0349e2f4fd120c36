"""Size code (printing/text.size_code): the sizes an emitted module computes in Python integers equal
SymPy's value of the same expression, for random expressions of floors, ceilings, min, max, sums,
products and negations over size symbols (a floor multiplied or negated needs its parentheses:
``2*((L - 1) // 2)``, not ``2*(L - 1) // 2``)."""
import random

import pytest
import sympy as sp

from symgrad.printing.text import size_code

SYMBOLS = sp.symbols("L K s p", positive=True, integer=True)


def _expression(rng: random.Random, depth: int):
    """A random integer-valued size expression."""
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(SYMBOLS) if rng.random() < 0.7 else sp.Integer(rng.randint(1, 4))
    kind = rng.choice(["floor", "ceiling", "add", "sub", "mul", "neg", "min", "max"])
    a, b = _expression(rng, depth - 1), _expression(rng, depth - 1)
    if kind in ("floor", "ceiling"):
        divisor = rng.choice([sp.Integer(rng.randint(2, 5)), rng.choice(SYMBOLS), 2 * rng.choice(SYMBOLS)])
        return getattr(sp, kind)((a + rng.randint(-3, 3)) / divisor)
    return {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "neg": lambda: -a,
            "min": lambda: sp.Min(a, b), "max": lambda: sp.Max(a, b)}[kind]()


@pytest.mark.parametrize("seed", range(20))
def test_size_code_computes_what_sympy_does(seed):
    rng = random.Random(seed)
    for _ in range(25):
        expr = _expression(rng, 3)
        code = size_code(expr)
        for _ in range(6):
            values = {str(s): rng.randint(1, 40) for s in SYMBOLS}
            want = expr.subs({s: values[str(s)] for s in SYMBOLS})
            assert eval(code, {"min": min, "max": max}, dict(values)) == int(want), (expr, code, values)


def test_size_code_reads_as_written():
    L, K, s, _ = SYMBOLS
    assert size_code(sp.floor((L - K) / 2) + 1) == "(-K + L) // 2 + 1"
    assert size_code(2 * sp.floor((L - 1) / 2)) == "2*((L - 1) // 2)"
    assert size_code(-sp.floor(L / s)) == "-(L // s)"
    assert size_code(sp.floor(sp.floor(L / 2) / s)) == "(L // 2) // s"
    assert size_code(sp.floor(L / (2 * s))) == "L // (2*s)"
