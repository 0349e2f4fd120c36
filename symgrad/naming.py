"""Every name the emitted code uses, in one place."""
from __future__ import annotations

GRAD_OUTPUT = "grad_output"
UPSTREAM = "g"


def view(tensor: str) -> str:
    """The index-space view of a tensor (grouped axes split)."""
    return f"{tensor}_v"


def grad(tensor: str) -> str:
    return f"d{tensor}"


def grad_outputs(outputs) -> list:
    """What a pullback calls the upstream gradients of the outputs named ``outputs``."""
    return [GRAD_OUTPUT] if len(outputs) == 1 else [f"{GRAD_OUTPUT}_{o}" for o in outputs]


def term(target: str, k: int) -> str:
    return f"{target}_term{k}"


def aligned(tensor: str, k: int) -> str:
    return f"{tensor}_{k}"


def gathered(tensor: str, k: int) -> str:
    return f"{tensor}_at{k}"


def index_var(symbol) -> str:
    return "i_" + str(symbol).replace("'", "_flip")


def grad_function(tensor: str) -> str:
    """The emitted function computing one input's gradient."""
    return f"grad_{tensor}"


def grad_grad(tensor: str) -> str:
    """The upstream gradient of the gradient ``d<tensor>`` in double backward (PyTorch's ggI, ggW)."""
    return f"gg{tensor}"


def contribution(of: str, by: str) -> str:
    """The variable holding ∂ℒ₂/∂``of`` from the gradient ``d<by>`` (``dw_ggx``: of w, from ggx)."""
    return f"{grad(of)}_{grad_grad(by)}"


def adjoint(tensor: str) -> str:
    """The adjoint of ``tensor`` as a tensor of a program (x̄: a program's backward taken as a program
    of its own, where ``d<tensor>`` names the derivative of that program's loss); one word, so the
    documents print it as one name."""
    return f"{tensor}bar"


def tangent(tensor: str) -> str:
    """The tangent of ``tensor`` as a tensor of a JVP program (forward mode); one word, as the adjoint."""
    return f"{tensor}dot"


def selector(tensor: str) -> str:
    """A max statement's tie-splitting selector (1/count at the maxima, 0 elsewhere)."""
    return f"{tensor}_sel"


def identifier(text: str) -> str:
    """``text`` as a Python identifier: each run of characters that cannot be in one as one ``_``
    (``t1 -> t2`` is ``t1_t2``)."""
    out = []
    for c in text:
        word = c.isalnum() or c == "_"
        if word or not out or out[-1] != "\0":
            out.append(c if word else "\0")
    return "".join(out).replace("\0", "_")


def camel(name: str) -> str:
    """``conv2d`` -> ``Conv2d``, ``avg_pool1d`` -> ``AvgPool1d``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))
