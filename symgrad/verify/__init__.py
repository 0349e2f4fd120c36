"""How we know a derivation is right: the emitted module against the definition evaluated literally,
central finite differences and PyTorch (:mod:`check`); terms evaluated at concrete sizes
(:mod:`evaluate`); PyTorch's own gradients of the built-in ops (:mod:`reference`)."""
