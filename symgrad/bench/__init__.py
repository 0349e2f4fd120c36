"""``symgrad bench``: emitted modules timed against PyTorch, on the CPU (:mod:`cpu`, child processes
with fixed thread counts) and on the GPU (:mod:`gpu`, CUDA events against cuDNN/cuBLAS)."""
