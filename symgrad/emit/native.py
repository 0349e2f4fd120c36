"""What the torch target needs to register its operation as a native torch op
(``runtime/torch/native.py``): the op's name and schema, its derived batching rule
(:func:`symgrad.batching.folds`) and its autocast policy."""
from __future__ import annotations

import hashlib
import json

from ..batching import folds
from ..forms import jsonable
from ..naming import identifier
from ..printing.text import shape_code, statement_text
from ..program import Program
from ..version import __version__

#: the namespace of every op symgrad registers (torch.ops.symgrad.<name>)
NAMESPACE = "symgrad"

#: forms whose op torch.autocast runs in its lower-precision dtype (as F.conv2d, matmul and
#: scaled_dot_product_attention); an op without one runs in its first input's dtype
LOWER_PRECISION = ("conv_general_dilated", "matmul")


def native_context(program: Program, results: list, kinds: set, elementwise: bool = False) -> dict:
    """The op ``symgrad::<name>_<hash>`` of ``program`` (an op as its one-statement program), whose
    kernel returns ``results`` (the outputs, then the residuals the backward reads), for a program
    whose forms are of ``kinds`` (``elementwise``: an op that takes any shape, its result of its
    input's): the hash covers the statements, shapes, parameters and symgrad's version, so two
    configurations of one op are two ops and a module loaded again is the same.  ``program`` is
    normalised (its hoisted statements are what the batching rule reads)."""
    text = json.dumps([__version__, program.name, jsonable(program.params), [str(t.shape) for t in program.inputs],
                       [statement_text(s) for s in program.statements], list(results)], sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    returns = "Tensor" if len(results) == 1 else f"({', '.join(['Tensor'] * len(results))})"
    qualname = f"{NAMESPACE}::{identifier(program.name)}_{digest}"
    return {"qualname": repr(qualname), "name": qualname.replace("::", "."),
            "schema": repr(f"({', '.join(f'Tensor {t.name}' for t in program.inputs)}) -> {returns}"),
            "shapes": [f"{program.inputs[0].name}.shape" if elementwise else shape_code(program.tensors[r].shape)
                       for r in results],
            "folds": repr(folds(program, results)), "lower": bool(kinds & set(LOWER_PRECISION)), "count": len(results)}
