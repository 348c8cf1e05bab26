"""Model registry: every network by name, each declaring its prunable channel groups."""
from __future__ import annotations

from torch import nn

from .groups import ChannelGroup
from .mobilenetv2 import mobilenetv2
from .resnet import resnet20, resnet32, resnet56, resnet110
from .vgg import vgg_small, vgg_small_lq

MODELS = {
    "vgg_small": vgg_small,
    "vgg_small_lq": vgg_small_lq,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet56": resnet56,
    "resnet110": resnet110,
    "mobilenetv2": mobilenetv2,
}


def check_arch(arch: str) -> str:
    if arch not in MODELS:
        raise ValueError(f"arch: unknown architecture {arch!r}; valid names: {', '.join(MODELS)}")
    return arch


def build_model(arch: str, num_classes: int = 10, width: float = 1.0, widths=None) -> nn.Module:
    """Build `arch`. `width` scales every channel count (1.0 = the paper's network); `widths` gives
    the per-group widths of a pruned network (see `model.widths()`), overriding `width` for those."""
    check_arch(arch)
    if not (isinstance(num_classes, int) and num_classes >= 2):
        raise ValueError(f"num_classes: must be an integer >= 2 (10 for CIFAR-10, 100 for CIFAR-100), got {num_classes!r}")
    if not (0 < width <= 4):
        raise ValueError(f"width: multiplier must be in (0, 4], got {width!r}")
    return MODELS[arch](num_classes=num_classes, width=width, widths=widths)


__all__ = ["MODELS", "ChannelGroup", "build_model", "check_arch"]
