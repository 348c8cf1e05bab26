"""CIFAR ResNet (He et al. 2016) with the option-A shortcut: resnet20/32/56/110."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .groups import ChannelGroup
from .registry import register_model


class ShortcutA(nn.Module):
    """Parameter-free shortcut: stride-2 subsample, then zero-pad the new channels on both sides."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.stride, self.pad = stride, out_ch - in_ch
        if self.pad % 2:
            raise ValueError(f"option-A shortcut needs an even channel increase, got {in_ch}->{out_ch}")

    def forward(self, x):
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad // 2)) if self.pad else x


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, mid: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, mid, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = ShortcutA(in_ch, out_ch, stride) if (stride != 1 or in_ch != out_ch) else nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem 3x3 -> 3 stages of n basic blocks (widths 16/32/64 x width) -> global pool -> Linear.

    Only the inner channel of each block (conv1 out, bn1, conv2 in) is prunable; `widths` gives those."""

    def __init__(self, depth: int, num_classes=10, width: float = 1.0, widths=None):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth: CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        stage = [max(2, 2 * int(round(c * width / 2))) for c in (16, 32, 64)]  # even, for option A
        if widths is None:
            widths = [c for c in stage for _ in range(n)]
        if len(widths) != 3 * n:
            raise ValueError(f"widths: expected {3 * n} inner widths, got {len(widths)}")
        self.depth = depth
        self.conv1 = nn.Conv2d(3, stage[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stage[0])
        in_ch, k, layers = stage[0], 0, []
        for s, out_ch in enumerate(stage):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(in_ch, int(widths[k]), out_ch, 2 if (s > 0 and b == 0) else 1))
                in_ch, k = out_ch, k + 1
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))

    def blocks(self):
        return [b for layer in (self.layer1, self.layer2, self.layer3) for b in layer]

    def channel_groups(self) -> list[ChannelGroup]:
        names = [f"layer{s}.{i}" for s, layer in enumerate((self.layer1, self.layer2, self.layer3), 1)
                 for i in range(len(layer))]
        return [ChannelGroup(name, [b.conv1], [b.bn1], [b.conv2]) for name, b in zip(names, self.blocks())]

    def widths(self) -> list[int]:
        return [b.conv1.out_channels for b in self.blocks()]

    def feature_taps(self) -> dict[str, nn.Module]:
        # Stage outputs: their width is never pruned (block outputs and shortcuts stay whole).
        return {"layer1": self.layer1, "layer2": self.layer2, "layer3": self.layer3}


def cifar_resnet(depth: int):
    """The builder of the CIFAR ResNet of `depth` layers, registered as resnet<depth>."""
    def build(num_classes=10, width=1.0, widths=None):
        return CifarResNet(depth, num_classes, width, widths)

    build.__name__ = build.__qualname__ = f"resnet{depth}"
    return register_model(build)


resnet20, resnet32, resnet56, resnet110 = (cifar_resnet(depth) for depth in (20, 32, 56, 110))
