"""symgrad's own random-program differential test: programs of the text syntax drawn by seed
(:mod:`.generate`), printed as text and evaluated independently (:mod:`.evaluate`), every result
of the engine held to PyTorch autograd with a 50-digit arbiter for disagreements (:mod:`.oracle`,
:mod:`.run`), failures shrunk to a minimal program (:mod:`.shrink`); ``symgrad fuzz`` runs a
campaign (:mod:`.campaign`)."""
