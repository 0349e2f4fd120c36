"""The nn.Modules a torch target writes beside its function, with torch.nn's constructor: a
convolution's (``Conv1d``/``2d``/``3d``, every padding mode) and a norm's (``LayerNorm``, ``RMSNorm``).  Each carries the
settings its module was derived for (``derived``), which the runtime's checks (``runtime/torch/layer.py``)
compare the constructor's arguments with."""
from __future__ import annotations

import sympy as sp

from .. import naming

#: programs with a torch.nn layer: name -> (class, whether its constructor takes ``bias``)
NORM_LAYERS = {"layer_norm": ("LayerNorm", True), "rms_norm": ("RMSNorm", False)}


def conv_layer(source) -> dict | None:
    """torch.nn.Conv*d for a convolution op (inputs x, w and maybe b) or a convolution program with a
    padding mode (``conv2d_reflect``): the class, the settings derived and the constructor's defaults
    (the derived values); None for other ops and programs."""
    names = [t.name for t in source.inputs]
    if names[:2] != ["x", "w"] or "groups" not in source.params or "stride" not in source.params:
        return None
    p = source.params
    w = next(t for t in source.inputs if t.name == "w")
    kernel = [int(dim) if dim.is_Integer else None for dim in w.shape[2:]]
    pads = [tuple(sp.sympify(v) for v in pair) for pair in p["padding"]]
    concrete = all(v.is_Integer for pair in pads for v in pair)
    padding = tuple(tuple(int(v) for v in pair) for pair in pads) if concrete else \
        str(getattr(source, "spec", {}).get("padding")).strip().lower()
    derived = {"spatial": len(kernel), "kernel_size": None if None in kernel else tuple(kernel),
               "stride": tuple(int(v) for v in p["stride"]), "dilation": tuple(int(v) for v in p["dilation"]),
               "groups": int(p["groups"]), "bias": "b" in names, "padding": padding,
               "padding_mode": p.get("padding_mode", "zeros")}
    shown = tuple(lo for lo, _ in padding) if concrete and all(lo == hi for lo, hi in padding) else padding
    return {"kind": "conv", "class": naming.camel(f"conv{len(kernel)}d"), "bias": "b" in names,
            "spatial": len(kernel), "derived": repr(derived), "defaults": {
                "stride": repr(derived["stride"]), "padding": repr(shown), "dilation": repr(derived["dilation"]),
                "groups": derived["groups"], "bias": "b" in names, "padding_mode": repr(derived["padding_mode"])}}


def norm_layer(program) -> dict | None:
    """torch.nn.LayerNorm or RMSNorm for the built-in ``layer_norm`` and ``rms_norm`` programs: the
    class, the settings derived (``ndim``, ``eps``, ``weight``, ``bias``) and the constructor's eps
    default; None for other programs."""
    if program.name not in NORM_LAYERS or program.origin is not None:
        return None
    name, takes_bias = NORM_LAYERS[program.name]
    p = program.params
    derived = {"ndim": int(p.get("ndim", 1)), "eps": p.get("eps"), "weight": bool(p.get("weight")),
               "bias": bool(p.get("bias", False))}
    return {"kind": "norm", "class": name, "derived": repr(derived), "eps": repr(derived["eps"]), "takes_bias": takes_bias,
            "weight": derived["weight"], "bias": derived["bias"]}
