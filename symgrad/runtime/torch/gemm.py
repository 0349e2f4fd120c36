"""GEMMs for the torch target: torch's own (differentiable), under the names :mod:`gemm` defines."""
import torch


def _matmul(a, b):
    """a @ b (torch.matmul)."""
    return torch.matmul(a, b)
