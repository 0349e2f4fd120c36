"""The parameters of a torch-target convolution layer, initialised as torch.nn's convolutions
initialise theirs."""
import math

import torch as xp


def _init_conv(weight, bias):
    """Kaiming-uniform weight (a = √5) and a bias uniform in ±1/√fan_in, as torch.nn.Conv*d's
    reset_parameters; ``bias`` may be None."""
    xp.nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in else 0
        xp.nn.init.uniform_(bias, -bound, bound)
