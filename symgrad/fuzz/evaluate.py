"""A random program evaluated from its tree (:mod:`.tree`), statement by statement, over the grid of
each statement's indices: PyTorch tensors (the reference: autograd gives its gradients) or NumPy
arrays of mpmath numbers (the arbiter: high-precision values for finite differences).  The two share
this file's reading of the semantics and nothing of symgrad's:

* a read outside its tensor's range is 0 for that read (the factor, not the whole term);
* ``[c] e`` is ``e`` where c holds and 0 elsewhere;
* ``max(j) [c] e`` leaves out the elements where c fails (a bracket as the body's top factor);
  the maximum's gradient is split evenly among ties (``torch.amax``);
* ``stop_gradient(e)`` is ``e``, with no gradient through it.

A sum of a product of two factors is the broadcast product summed, or with ``einsum`` (a float32
yardstick: what a user writing ``torch.einsum`` gets, a GEMM where it is one) ``torch.einsum``.
"""
from __future__ import annotations

import numpy as np

from .tree import Affine, Bin, Brk, Fn, IndexValue, Map, Neg, Num, Pow, Read, Reduce, SizeRef, Stop, size_value


class TorchOps:
    """The reference: PyTorch tensors of ``dtype``, differentiable."""

    def __init__(self, dtype=None, einsum: bool = False):
        import torch
        self.torch = torch
        self.dtype = dtype or torch.float64
        self.einsum = einsum
        t = torch
        self.functions = {
            "exp": t.exp, "log": t.log, "sqrt": t.sqrt, "tanh": t.tanh, "erf": t.erf, "erfc": t.erfc,
            "sin": t.sin, "cos": t.cos, "abs": t.abs, "sigmoid": t.sigmoid, "relu": t.relu,
            "maximum": t.maximum, "minimum": t.minimum,
        }

    def number(self, text: str):
        return self.torch.tensor(float(text), dtype=self.dtype)

    def array(self, a):
        return self.torch.as_tensor(a, dtype=self.dtype)

    def gather(self, x, index: tuple):
        return x[tuple(self.torch.from_numpy(np.array(i)) for i in index)]

    def where(self, mask, a, b):
        return self.torch.where(self.torch.from_numpy(np.array(mask)), a, b)

    def expand(self, a, shape):
        return a.expand(*shape) if tuple(a.shape) != tuple(shape) else a

    def reshape(self, a, shape):
        return a.reshape(*shape) if shape else a.reshape(())

    def sum(self, a, axes):
        return a.sum(dim=axes) if axes else a

    def amax(self, a, axes):
        return a.amax(dim=axes) if axes else a

    def contract(self, a, b, shape: tuple, kept: int):
        """The sum of ``a * b`` (broadcast to ``shape``) over the axes after the first ``kept``, by
        ``torch.einsum``; None where a summed or kept axis is broadcast in both factors (no letter for it)."""
        if len(shape) > 26:
            return None
        letters = "abcdefghijklmnopqrstuvwxyz"
        full = [[k for k, n in enumerate(t.shape) if n == shape[k]] for t in (a, b)]
        if any(k not in full[0] and k not in full[1] for k in range(len(shape))):
            return None
        parts = [(t.reshape([shape[k] for k in ks]), "".join(letters[k] for k in ks)) for t, ks in zip((a, b), full)]
        return self.torch.einsum(f"{parts[0][1]},{parts[1][1]}->{letters[:kept]}", parts[0][0], parts[1][0])

    def power(self, a, exp: str):
        return a ** float(exp)

    def stop(self, a):
        return a.detach()

    @property
    def low(self):
        return self.torch.tensor(float("-inf"), dtype=self.dtype)


class MpOps:
    """The arbiter: NumPy object arrays of mpmath numbers at the working precision of ``mpmath.mp``."""

    def __init__(self):
        import mpmath
        self.mp = mpmath
        mp = mpmath
        vec = lambda f, n=1: np.frompyfunc(f, n, 1)
        self.functions = {
            "exp": vec(mp.exp), "log": vec(mp.log), "sqrt": vec(mp.sqrt), "tanh": vec(mp.tanh),
            "erf": vec(mp.erf), "erfc": vec(mp.erfc), "sin": vec(mp.sin), "cos": vec(mp.cos),
            "abs": vec(abs), "sigmoid": vec(lambda v: 1 / (1 + mp.exp(-v))),
            "relu": vec(lambda v: v if v > 0 else mp.mpf(0)),
            "maximum": vec(lambda a, b: a if a > b else b, 2), "minimum": vec(lambda a, b: a if a < b else b, 2),
        }

    def number(self, text: str):
        return np.array(self.mp.mpf(text), dtype=object)

    def array(self, a):
        a = np.asarray(a)
        if a.dtype == object:
            return a
        return np.vectorize(lambda v: self.mp.mpf(float(v)), otypes=[object])(a) if a.size else a.astype(object)

    def gather(self, x, index: tuple):
        return x[index]

    def where(self, mask, a, b):
        return np.where(mask, a, b)

    def expand(self, a, shape):
        return np.broadcast_to(a, shape)

    def reshape(self, a, shape):
        return np.reshape(a, shape)

    def sum(self, a, axes):
        if not axes:
            return a
        out = np.sum(a, axis=axes)
        return np.asarray(out, dtype=object) + self.mp.mpf(0)  # an empty sum's 0 as a number

    def amax(self, a, axes):
        return np.asarray(np.max(a, axis=axes), dtype=object) if axes else a

    def power(self, a, exp: str):
        return a ** self.mp.mpf(exp)

    def stop(self, a):
        return a

    @property
    def low(self):
        return np.array(self.mp.ninf, dtype=object)


class Evaluator:
    """Every tensor of ``program`` at concrete ``sizes`` with ``ops`` (:class:`TorchOps`, :class:`MpOps`)."""

    def __init__(self, program, sizes: dict, ops):
        self.program, self.ops = program, ops
        self.sizes = program.concrete(sizes)
        self.values = {}

    def run(self, arrays: dict) -> dict:
        self.values = dict(arrays)
        for s in self.program.statements:
            scope = [(v, size_value(e, self.sizes)) for v, e, _ in s.out]
            value = self.expr(s.rhs, scope)
            self.values[s.name] = self.ops.reshape(self.ops.expand(value, tuple(n for _, n in scope)),
                                                   tuple(n for _, n in scope))
        return self.values

    # index arithmetic (NumPy integers over the grid of the scope) ----------------------------------
    def index(self, e, scope) -> np.ndarray:
        if isinstance(e, Map):
            i, n = self.index(e.arg, scope), size_value(e.extent, self.sizes)
            if e.kind == "wrap":
                return np.mod(i, n)
            if e.kind == "reflect":
                return np.where(i < 0, -i, np.where(i >= n, 2 * n - 2 - i, i))
            return np.clip(i, 0, n - 1)
        out = np.full([1] * len(scope), e.const, dtype=np.int64)
        names = [v for v, _ in scope]
        for name, c in e.terms:
            if name in names:
                k = names.index(name)
                shape = [1] * len(scope)
                shape[k] = scope[k][1]
                out = out + c * np.arange(scope[k][1], dtype=np.int64).reshape(shape)
            else:
                out = out + c * self.sizes[name]
        return out

    def condition(self, conds, scope) -> np.ndarray:
        ok = np.ones([1] * len(scope), dtype=bool)
        compare = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
                   "==": np.equal, "!=": np.not_equal}
        for c in conds:
            parts = [self.index(p, scope) for p in c.parts]
            for op, a, b in zip(c.ops, parts, parts[1:]):
                ok = ok & compare[op](a, b)
        return ok

    # expressions -----------------------------------------------------------------------------------
    def expr(self, e, scope):
        ops, rank = self.ops, len(scope)
        if isinstance(e, Num):
            return ops.reshape(ops.number(e.value), [1] * rank)
        if isinstance(e, SizeRef):
            return ops.reshape(ops.number(str(size_value(e.extent, self.sizes))), [1] * rank)
        if isinstance(e, IndexValue):
            return ops.array(self.index(e.index, scope).astype(np.float64))
        if isinstance(e, Read):
            return self.read(e, scope)
        if isinstance(e, Bin):
            a, b = self.expr(e.a, scope), self.expr(e.b, scope)
            return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b}[e.op]()
        if isinstance(e, Neg):
            return -self.expr(e.a, scope)
        if isinstance(e, Pow):
            return ops.power(self.expr(e.base, scope), e.exp)
        if isinstance(e, Fn):
            return ops.functions[e.name](*[self.expr(a, scope) for a in e.args])
        if isinstance(e, Stop):
            return ops.stop(self.expr(e.a, scope))
        if isinstance(e, Brk):
            body = self.expr(e.body, scope)
            mask = self.condition(e.conds, scope)
            shape = np.broadcast_shapes(tuple(body.shape), mask.shape)
            return ops.where(np.broadcast_to(mask, shape), ops.expand(body, shape), ops.number("0"))
        if isinstance(e, Reduce):
            return self.reduce(e, scope)
        raise TypeError(f"cannot evaluate {e!r}")

    def read(self, e: Read, scope):
        ops, x = self.ops, self.values[e.tensor]
        if not e.index:
            return ops.reshape(x, [1] * len(scope))
        idx = np.broadcast_arrays(*[self.index(i, scope) for i in e.index])
        dims = tuple(x.shape)
        inside = np.ones(idx[0].shape, dtype=bool)
        for i, n in zip(idx, dims):
            inside &= (i >= 0) & (i < n)
        clipped = tuple(np.clip(i, 0, max(n - 1, 0)) for i, n in zip(idx, dims))
        if not all(dims):  # an empty tensor: every read is outside
            return ops.reshape(ops.number("0"), [1] * len(scope))
        return ops.where(inside, ops.gather(x, clipped), ops.number("0"))

    def reduce(self, e: Reduce, scope):
        ops = self.ops
        inner = scope + [(v, size_value(x, self.sizes)) for v, x, _ in e.over]
        shape = tuple(n for _, n in inner)
        axes = tuple(range(len(scope), len(inner)))
        if e.kind == "sum":
            if isinstance(e.body, Bin) and e.body.op == "*" and getattr(ops, "einsum", False):
                a, b = self.expr(e.body.a, inner), self.expr(e.body.b, inner)
                out = ops.contract(a, b, shape, len(scope))
                if out is not None:
                    return ops.reshape(out, [n for _, n in scope] or [])
                body = a * b  # (the factors evaluated once: their product, as expr gives it)
            else:
                body = self.expr(e.body, inner)
            return ops.reshape(ops.sum(ops.expand(body, shape), axes), [n for _, n in scope] or [])
        body, conds = e.body, ()
        if isinstance(body, Brk):  # the body's bracket leaves elements out of the maximum
            body, conds = body.body, body.conds
        value = ops.expand(self.expr(body, inner), shape)
        if conds:
            value = ops.where(np.broadcast_to(self.condition(conds, inner), shape), value, ops.low)
        return ops.reshape(ops.amax(value, axes), [n for _, n in scope] or [])


def torch_values(program, sizes: dict, arrays: dict, dtype=None, grad: bool = False, einsum: bool = False) -> tuple:
    """``(inputs, every tensor)`` as PyTorch tensors (the inputs requiring grad with ``grad``; with
    ``einsum`` a sum of two factors by ``torch.einsum``)."""
    ops = TorchOps(dtype, einsum)
    inputs = {n: ops.array(a).requires_grad_(grad) for n, a in arrays.items()}
    return inputs, Evaluator(program, sizes, ops).run(dict(inputs))


def mp_outputs(program, sizes: dict, arrays: dict) -> list:
    """The program's outputs in high precision (``arrays`` of mpmath numbers or floats)."""
    ops = MpOps()
    values = Evaluator(program, sizes, ops).run({n: ops.array(a) for n, a in arrays.items()})
    return [values[o] for o in program.outputs]


__all__ = ["Affine", "Evaluator", "MpOps", "TorchOps", "mp_outputs", "torch_values"]
