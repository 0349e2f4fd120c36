"""Expression printers, by ``_print_<Node>`` dispatch over SymPy's own printers.

* :mod:`array` — NumPy/CuPy array code (SciPy or cupyx for special functions);
* :mod:`scalar` — scalar code for one element: numba loops (Python) and CuPy kernels (CUDA C);
* :mod:`text` — sizes as Python integer arithmetic, and index notation on one line.

Every printer that writes code records what the code needs (modules to import, runtime pieces)
while it prints, so the emitter never searches the text it generated.
"""
