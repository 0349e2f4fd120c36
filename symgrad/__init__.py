"""symgrad: symbolic derivation of backward passes from index notation.

>>> import symgrad
>>> d = symgrad.derive(symgrad.ops.conv(2, stride=2, padding=1))
>>> [f.kind for f in d.grads["w"].forms]
['conv_general_dilated']
"""
from . import ops
from .api import module
from .derive import Derivation, derive
from .ir import SymgradError
from .reverse import ProgramDerivation, derive_program
from .syntax import parse_program
from .version import __version__

__all__ = ["Derivation", "ProgramDerivation", "SymgradError", "derive", "derive_program", "module", "ops",
           "parse_program", "__version__"]
