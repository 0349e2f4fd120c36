"""The torch targets' layers (nn.Modules): a convolution's as torch.nn.Conv*d, a norm's as
torch.nn.LayerNorm and RMSNorm — their constructors' arguments checked against what the module was
derived for, their parameters initialised as torch.nn's, their reprs."""
import math

import torch


def _init_conv(weight, bias):
    """Kaiming-uniform weight (a = √5) and a bias uniform in ±1/√fan_in, as torch.nn.Conv*d's
    reset_parameters; ``bias`` may be None."""
    torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in else 0
        torch.nn.init.uniform_(bias, -bound, bound)


def _conv_settings(op, derived, kernel_size, stride, padding, dilation, groups, bias, padding_mode):
    """torch.nn.Conv*d's constructor arguments as its attributes (kernel_size, stride, padding,
    dilation: tuples; padding as given when a string, or (lo, hi) pairs where they differ), checked
    against the values the module was ``derived`` for: a ValueError names the parameter, the value
    given and the one derived, and how to emit a module for the given one."""
    n = derived["spatial"]
    per_axis = lambda value: (value,) * n if isinstance(value, int) else tuple(value)

    def refuse(name, given, flag, value):
        raise ValueError(f"{op}: this module was derived for {name}={derived[name]!r}, got {name}={given!r}; "
                         f"emit it again with {flag} {value}")

    kernel = per_axis(kernel_size)
    if derived["kernel_size"] is not None and kernel != derived["kernel_size"]:
        refuse("kernel_size", kernel, "--kernel-size", ",".join(map(str, kernel)))
    stride, dilation = per_axis(stride), per_axis(dilation)
    for name, value in (("stride", stride), ("dilation", dilation)):
        if value != derived[name]:
            refuse(name, value, f"--{name}", ",".join(map(str, value)))
    if groups != derived["groups"]:
        refuse("groups", groups, "--groups", groups)
    if padding_mode != derived["padding_mode"]:
        refuse("padding_mode", padding_mode, "--padding-mode", padding_mode)
    if bias and not derived["bias"]:  # (bias=False where one was derived: the layer passes zeros)
        raise ValueError(f"{op}: this module was derived without a bias, got bias={bias!r}; emit it again with "
                         "--bias true")
    if isinstance(padding, str):
        word = padding.lower()
        if word == "same" and stride != (1,) * n:
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (as torch.nn says)")
        pairs = {"valid": ((0, 0),) * n, "same": tuple(((k - 1) * d // 2, (k - 1) * d - (k - 1) * d // 2)
                                                        for k, d in zip(kernel, dilation))}.get(word, word)
        said = word
    else:
        pairs = tuple((p, p) if isinstance(p, int) else tuple(p) for p in per_axis(padding))
        said = tuple(lo for lo, _ in pairs) if all(lo == hi for lo, hi in pairs) else pairs
    if pairs != derived["padding"] and said != derived["padding"]:
        refuse("padding", padding, "--padding", said if isinstance(said, str) else
               ",".join(f"{lo}:{hi}" for lo, hi in pairs))
    return kernel, stride, said, dilation


def _conv_repr(layer):
    """The layer's settings as torch.nn.Conv*d's repr writes them."""
    n = len(layer.kernel_size)
    text = f"{layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size}, stride={layer.stride}"
    if layer.padding != (0,) * n:
        text += f", padding={layer.padding}"
    if layer.dilation != (1,) * n:
        text += f", dilation={layer.dilation}"
    if layer.groups != 1:
        text += f", groups={layer.groups}"
    if layer.bias is None:
        text += ", bias=False"
    if layer.padding_mode != "zeros":
        text += f", padding_mode={layer.padding_mode}"
    return text


def _norm_settings(op, derived, normalized_shape, eps, elementwise_affine, bias=False):
    """torch.nn.LayerNorm's or RMSNorm's constructor arguments (normalized_shape as a tuple, eps)
    checked against what the module was ``derived`` for (``ndim`` axes, ``eps`` — None: the dtype's
    machine epsilon —, ``weight``, ``bias``); a ValueError names the parameter and the flag that
    emits a module for it.  A parameter the module has and the layer turns off is passed as ones
    (weight) or zeros (bias)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if len(shape) != derived["ndim"]:
        axes = f"{derived['ndim']} axis" if derived["ndim"] == 1 else f"{derived['ndim']} axes"
        raise ValueError(f"{op}: this module was derived for a normalized_shape of {axes}, got "
                         f"{shape}; emit it again with --ndim {len(shape)}")
    if (eps is None) != (derived["eps"] is None) or (eps is not None and float(eps) != derived["eps"]):
        raise ValueError(f"{op}: this module was derived for eps={derived['eps']!r}, got eps={eps!r}; emit it again "
                         f"with --eps {eps}")
    for name, wanted in (("weight", elementwise_affine), ("bias", elementwise_affine and bias)):
        if wanted and not derived[name]:
            raise ValueError(f"{op}: this module was derived without a {name}, got "
                             f"{'elementwise_affine=True' if name == 'weight' else 'bias=True'}; emit it again with "
                             f"--{name} true")
    return shape, eps


def _or_filled(parameter, shape, fill, like):
    """``parameter``, or where the layer has none (turned off) a tensor of ``fill`` like ``like``'s."""
    return like.new_full(shape, fill) if parameter is None else parameter


def _init_norm(weight, bias):
    """Weight ones and bias zeros, as torch.nn.LayerNorm's and RMSNorm's reset_parameters; either may be None."""
    if weight is not None:
        torch.nn.init.ones_(weight)
    if bias is not None:
        torch.nn.init.zeros_(bias)


def _norm_repr(layer, with_bias):
    """The layer's settings as torch.nn.LayerNorm's (``with_bias``) and RMSNorm's repr write them."""
    text = f"{layer.normalized_shape}, eps={layer.eps}, elementwise_affine={layer.elementwise_affine}"
    return text + (f", bias={layer.bias is not None}" if with_bias else "")
