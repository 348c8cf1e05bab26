"""MobileNetV2, the DPFPS CIFAR variant: stride-1 stem and only two downsamplings (32 -> 16 -> 8).

Not the common CIFAR MobileNetV2 with three downsamplings (~88M MACs): this one has ~265.7M."""
from __future__ import annotations

from torch import nn

from .groups import ChannelGroup
from .registry import register_model

# (expansion t, output channels c, repeats n, first stride s)
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 1), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
STEM, LAST = 32, 1280


def _scale(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


class InvertedResidual(nn.Module):
    """[1x1 expand + BN + ReLU6] -> 3x3 depthwise + BN + ReLU6 -> 1x1 project + BN (+ identity)."""

    def __init__(self, in_ch: int, hidden: int, out_ch: int, stride: int, expand: bool, residual: bool):
        super().__init__()
        self.expand = expand
        if expand:
            self.conv_expand = nn.Conv2d(in_ch, hidden, 1, bias=False)
            self.bn_expand = nn.BatchNorm2d(hidden)
        self.conv_dw = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.bn_dw = nn.BatchNorm2d(hidden)
        self.conv_project = nn.Conv2d(hidden, out_ch, 1, bias=False)
        self.bn_project = nn.BatchNorm2d(out_ch)
        self.use_residual = residual
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x):
        h = self.act(self.bn_expand(self.conv_expand(x))) if self.expand else x
        h = self.act(self.bn_dw(self.conv_dw(h)))
        h = self.bn_project(self.conv_project(h))
        return x + h if self.use_residual else h


class MobileNetV2(nn.Module):
    """`widths` = hidden width of each of the 17 blocks (block 0's hidden channels are the stem's outputs)."""

    def __init__(self, num_classes=10, width: float = 1.0, widths=None, dropout: float = 0.5):
        super().__init__()
        plan = []  # (expand, out, stride) per block
        for t, c, n, s in SETTINGS:
            for i in range(n):
                plan.append((t, _scale(c, width), s if i == 0 else 1))
        stem = _scale(STEM, width)
        default, in_ch = [], stem
        for t, out, _ in plan:
            default.append(in_ch * t)
            in_ch = out
        if widths is None:
            widths = default
        if len(widths) != len(plan):
            raise ValueError(f"widths: expected {len(plan)} hidden widths, got {len(widths)}")
        self.conv_stem = nn.Conv2d(3, int(widths[0]), 3, 1, 1, bias=False)  # block 0 has t = 1
        self.bn_stem = nn.BatchNorm2d(int(widths[0]))
        self.act = nn.ReLU6(inplace=True)
        blocks, in_ch = [], int(widths[0])
        for (t, out, s), full_in, hidden in zip(plan, [stem] + [p[1] for p in plan[:-1]], widths):
            blocks.append(InvertedResidual(in_ch, int(hidden), out, s, expand=t != 1,
                                           residual=(s == 1 and full_in == out)))
            in_ch = out
        self.blocks = nn.Sequential(*blocks)
        last = _scale(LAST, width) if width > 1 else LAST
        self.conv_last = nn.Conv2d(in_ch, last, 1, bias=False)
        self.bn_last = nn.BatchNorm2d(last)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(last, num_classes)
        self._plan = plan

    def forward(self, x):
        x = self.act(self.bn_stem(self.conv_stem(x)))
        x = self.blocks(x)
        x = self.act(self.bn_last(self.conv_last(x)))
        x = self.pool(x).flatten(1)
        return self.classifier(self.dropout(x))

    def channel_groups(self) -> list[ChannelGroup]:
        groups = []
        for i, b in enumerate(self.blocks):
            if b.expand:
                producers, norms = [b.conv_expand, b.conv_dw], [b.bn_expand, b.bn_dw]
            else:
                producers, norms = [self.conv_stem, b.conv_dw], [self.bn_stem, b.bn_dw]
            groups.append(ChannelGroup(f"blocks.{i}", producers, norms, [b.conv_project]))
        return groups

    def widths(self) -> list[int]:
        return [b.conv_dw.out_channels for b in self.blocks]

    def feature_taps(self) -> dict[str, nn.Module]:
        # Last block of each resolution stage (32x32, 16x16, 8x8) and the pooled feature: block outputs
        # are never pruned, so these shapes never change.
        taps, strides = {}, [s for _, _, s in self._plan]
        stage_ends = [i - 1 for i, s in enumerate(strides) if s == 2 and i > 0] + [len(strides) - 1]
        for i in stage_ends:
            taps[f"blocks.{i}"] = self.blocks[i]
        taps["pool"] = self.pool
        return taps


@register_model
def mobilenetv2(num_classes=10, width=1.0, widths=None):
    return MobileNetV2(num_classes, width, widths)
