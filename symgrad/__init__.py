"""symgrad: symbolic derivation of backward passes from index notation.

>>> import symgrad
>>> d = symgrad.derive(symgrad.ops.conv(2, stride=2, padding=1))
>>> [f.kind for f in d.grads["w"].forms]
['conv_general_dilated']
"""
__version__ = "0.1.0"

from . import ops  # noqa: E402
from .api import module  # noqa: E402
from .derive import Derivation, derive  # noqa: E402
from .ir import SymgradError  # noqa: E402
from .reverse import ProgramDerivation, derive_program  # noqa: E402
from .syntax import parse_program  # noqa: E402

__all__ = ["Derivation", "ProgramDerivation", "SymgradError", "derive", "derive_program", "module", "ops",
           "parse_program", "__version__"]
