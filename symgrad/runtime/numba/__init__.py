"""numba loops for the NumPy modules: elementwise functions and loop nests, compiled once and cached on disk."""
