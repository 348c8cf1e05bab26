"""Every network by name, each declaring its prunable channel groups. A network registers itself where it is
defined (`registry.register_model`); importing its module here is what adds it, in this order."""
from __future__ import annotations

from torch import nn

from . import vgg, resnet, mobilenetv2  # noqa: F401 (registers vgg_small(_lq), resnet20-110, mobilenetv2)
from . import resnet50 as _r50  # registers resnet50 (torchvision's layout)
from . import derive  # noqa: F401 (registers tv_resnet18: torchvision's, groups derived from its graph)
from .groups import ChannelGroup
from .registry import MODELS, register_model

# Input size and classes a network is counted at when nothing else is said (the CIFAR convention otherwise).
NATIVE = {"resnet50": dict(resolution=_r50.RESOLUTION, num_classes=_r50.NUM_CLASSES)}


def check_arch(arch: str) -> str:
    if arch not in MODELS:
        raise ValueError(f"arch: unknown architecture {arch!r}; valid names: {', '.join(MODELS)}")
    return arch


def native(arch: str) -> dict:
    """{resolution, num_classes} of `arch`'s own dataset: 224 and 1000 for ImageNet networks, else 32 and 10."""
    return {"resolution": 32, "num_classes": 10, **NATIVE.get(check_arch(arch), {})}


def build_model(arch: str, num_classes: int = 10, width: float = 1.0, widths=None) -> nn.Module:
    """Build `arch`. `width` scales every channel count (1.0 = the paper's network); `widths` gives
    the per-group widths of a pruned network (see `model.widths()`), overriding `width` for those."""
    check_arch(arch)
    if not (isinstance(num_classes, int) and num_classes >= 2):
        raise ValueError(f"num_classes: must be an integer >= 2 (10 for CIFAR-10, 100 for CIFAR-100), got {num_classes!r}")
    if not (0 < width <= 4):
        raise ValueError(f"width: multiplier must be in (0, 4], got {width!r}")
    return MODELS[arch](num_classes=num_classes, width=width, widths=widths)


__all__ = ["MODELS", "ChannelGroup", "build_model", "check_arch", "native", "register_model"]
