"""The engine's generic passes: check a rule (:mod:`validate`), differentiate it (:mod:`diff`),
eliminate the Kronecker deltas over the integers (:mod:`deltas`).  Nothing here knows an op."""
