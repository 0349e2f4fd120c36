"""symgrad: symbolic derivation of backward passes from index notation.

>>> import symgrad
>>> d = symgrad.derive(symgrad.ops.conv(2, stride=2, padding=1))
>>> [f.kind for f in d.grads["w"].forms]
['conv_general_dilated']
"""
__version__ = "0.1.0"

from . import ops  # noqa: E402
from .derive import Derivation, derive  # noqa: E402
from .ir import SymgradError  # noqa: E402

__all__ = ["Derivation", "SymgradError", "derive", "ops", "__version__"]
