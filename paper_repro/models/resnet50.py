"""ResNet-50 in torchvision's layout (the ImageNet network DPFPS pruned): same module names and shapes, so at
width 1.0 a torchvision `resnet50()` state_dict loads into it (tested).

Written out rather than wrapped so that `width` scales every channel count as in the CIFAR networks, and
`widths` rebuilds a pruned network: two prunable widths per bottleneck (conv1's and conv2's outputs). Block
outputs, stems and shortcuts stay whole: they meet in residual adds.
"""
from __future__ import annotations

from torch import nn

from .groups import ChannelGroup
from .registry import register_model

RESOLUTION, NUM_CLASSES = 224, 1000  # its native input and classes: what `count resnet50` counts at
STAGES = [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]  # (planes, blocks, first stride)
EXPANSION = 4


def _scale(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


class Bottleneck(nn.Module):
    """1x1 (mid1) -> 3x3 stride s (mid2) -> 1x1 (out), each + BN, ReLU after the residual add (torchvision v1.5:
    the stride is on the 3x3)."""

    def __init__(self, in_ch: int, mid1: int, mid2: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, mid1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid1)
        self.conv2 = nn.Conv2d(mid1, mid2, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid2)
        self.conv3 = nn.Conv2d(mid2, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """`widths`: 2 per bottleneck, in block order (conv1 out, conv2 out), 32 in all."""

    input_resolution = RESOLUTION  # what counting.count_macs and CostModel measure at unless told otherwise

    def __init__(self, num_classes=NUM_CLASSES, width: float = 1.0, widths=None):
        super().__init__()
        n_blocks = sum(n for _, n, _ in STAGES)
        if widths is None:
            widths = [_scale(p, width) for p, n, _ in STAGES for _ in range(n) for _ in range(2)]
        if len(widths) != 2 * n_blocks:
            raise ValueError(f"widths: expected {2 * n_blocks} inner widths (2 per bottleneck), got {len(widths)}")
        stem = _scale(64, width)
        self.conv1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch, k = stem, 0
        for s, (planes, n, stride) in enumerate(STAGES, 1):
            out_ch, blocks = _scale(planes, width) * EXPANSION, []
            for b in range(n):
                blocks.append(Bottleneck(in_ch, int(widths[k]), int(widths[k + 1]), out_ch, stride if b == 0 else 1))
                in_ch, k = out_ch, k + 2
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))

    def stages(self):
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def channel_groups(self) -> list[ChannelGroup]:
        groups = []
        for s, layer in enumerate(self.stages(), 1):
            for i, b in enumerate(layer):
                groups.append(ChannelGroup(f"layer{s}.{i}.conv1", [b.conv1], [b.bn1], [b.conv2]))
                groups.append(ChannelGroup(f"layer{s}.{i}.conv2", [b.conv2], [b.bn2], [b.conv3]))
        return groups

    def widths(self) -> list[int]:
        return [w for layer in self.stages() for b in layer for w in (b.conv1.out_channels, b.conv2.out_channels)]

    def feature_taps(self) -> dict[str, nn.Module]:
        # Stage outputs, as for the CIFAR ResNets: residual adds keep their width whole.
        return {f"layer{s}": layer for s, layer in enumerate(self.stages(), 1)}


@register_model
def resnet50(num_classes=NUM_CLASSES, width=1.0, widths=None):
    return ResNet50(num_classes, width, widths)
