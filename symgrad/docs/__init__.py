"""A derivation for people, as documents: Markdown and LaTeX rendered from the engine's own steps
(:mod:`document`), and the documents kept in ``derivations/`` (:mod:`derivations`).  The text and
JSON summaries are :mod:`symgrad.summary`."""
