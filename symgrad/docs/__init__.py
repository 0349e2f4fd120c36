"""A derivation for people: as text and JSON (:mod:`describe`), as Markdown and LaTeX documents
rendered from the engine's own steps (:mod:`document`), and the documents kept in ``derivations/``
(:mod:`derivations`)."""
