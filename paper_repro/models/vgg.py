"""VGG for CIFAR: `vgg_small` (DPFPS's VGG-16-BN variant) and `vgg_small_lq` (the LQ-Nets VGG-Small)."""
from __future__ import annotations

from torch import nn

from .groups import ChannelGroup
from .registry import register_model

# "M" = 2x2 max-pool. Numbers are conv widths (3x3, BN, ReLU).
VGG_SMALL_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
VGG_SMALL_LQ_CFG = [128, 128, "M", 256, 256, "M", 512, 512, "M"]


def _scale(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


class VGG(nn.Module):
    """Conv stack from `cfg`, flatten, then [Linear(C*HW, hidden)] -> Linear(., num_classes).

    `widths` overrides the conv widths (one per conv, in order): that is how a pruned network is rebuilt.
    There is no nonlinearity between the two Linear layers (DPFPS's vggsmall).
    """

    def __init__(self, cfg, num_classes=10, fc_hidden: int | None = 512, width: float = 1.0, widths=None):
        super().__init__()
        n_convs = sum(1 for v in cfg if v != "M")
        if widths is None:
            widths = [_scale(v, width) for v in cfg if v != "M"]
        if len(widths) != n_convs:
            raise ValueError(f"widths: expected {n_convs} conv widths, got {len(widths)}")
        self.cfg = list(cfg)
        layers, in_ch, i, size = [], 3, 0, 32
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                size //= 2
            else:
                out = int(widths[i])
                layers += [nn.Conv2d(in_ch, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                in_ch, i = out, i + 1
        self.features = nn.Sequential(*layers)
        self.spatial = size * size  # positions per channel after the last pool (1 for vgg_small)
        hidden = None if fc_hidden is None else _scale(fc_hidden, width)
        self.fc_hidden = hidden
        if hidden is None:
            self.fc1 = None
            self.classifier = nn.Linear(in_ch * self.spatial, num_classes)
        else:
            self.fc1 = nn.Linear(in_ch * self.spatial, hidden)
            self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = self.features(x).flatten(1)
        if self.fc1 is not None:
            x = self.fc1(x)
        return self.classifier(x)

    def convs(self):
        return [m for m in self.features if isinstance(m, nn.Conv2d)]

    def channel_groups(self) -> list[ChannelGroup]:
        mods = list(self.features)
        convs = [(j, m) for j, m in enumerate(mods) if isinstance(m, nn.Conv2d)]
        groups = []
        for k, (j, conv) in enumerate(convs):
            bn = mods[j + 1]
            if k + 1 < len(convs):
                consumer, repeat = convs[k + 1][1], 1
            else:  # the last conv feeds the first Linear layer through the flatten
                consumer, repeat = (self.fc1 or self.classifier), self.spatial
            groups.append(ChannelGroup(f"features.{j}", [conv], [bn], [consumer], repeat=repeat))
        return groups

    def widths(self) -> list[int]:
        return [c.out_channels for c in self.convs()]

    def feature_taps(self) -> dict[str, nn.Module]:
        # The 512-d output of the first FC layer: never pruned, so the feature loss cannot fight the prox step.
        return {"fc1": self.fc1} if self.fc1 is not None else {}


@register_model
def vgg_small(num_classes=10, width=1.0, widths=None):
    return VGG(VGG_SMALL_CFG, num_classes, fc_hidden=512, width=width, widths=widths)


@register_model
def vgg_small_lq(num_classes=10, width=1.0, widths=None):
    return VGG(VGG_SMALL_LQ_CFG, num_classes, fc_hidden=None, width=width, widths=widths)
