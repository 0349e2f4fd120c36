"""What a torch-target module takes: floating-point tensors of one dtype on one device."""
import torch


def _tensors(op, names, values):
    """``values`` checked: torch tensors of real floating point, all of one dtype and on one device
    (torch's kernels take nothing else); a TypeError naming the op and the input otherwise."""
    first = None
    for name, value in zip(names, values):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{op}: input {name} must be a torch tensor, got {type(value).__name__} "
                            "(torch.as_tensor converts arrays and lists)")
        if not value.is_floating_point():
            raise TypeError(f"{op}: input {name} must hold real floating-point numbers, got {value.dtype}")
        if first is None:
            first = (name, value)
        elif (value.dtype, value.device) != (first[1].dtype, first[1].device):
            raise TypeError(f"{op}: input {name} is {value.dtype} on {value.device} but {first[0]} is "
                            f"{first[1].dtype} on {first[1].device}; give every input one dtype and device")
    return values


def _wide(a):
    """``a`` in double precision when it is a narrower float: elementwise work computes in float64 and
    rounds once at the end, as the NumPy modules do (a limit guard's threshold is a float64 number)."""
    return a.double() if a.dtype in (torch.float16, torch.bfloat16, torch.float32) else a
