"""Prunable channel groups: the unit the method scores, penalises and removes (METHOD §3.1).

A group couples every tensor slice that belongs to one channel, in the style of Torch-Pruning's
dependency groups: the producer filters (dim 0 of each producer conv, a depthwise conv included), the
BatchNorm entries on that channel, and the consumer input slices (dim 1 of the next conv, or the
columns of a Linear layer; `repeat` > 1 when a flatten puts several spatial positions per channel).
Removing channel c means removing all of them together, which keeps the network well formed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class ChannelGroup:
    name: str
    producers: list[nn.Conv2d]
    norms: list[nn.BatchNorm2d]
    consumers: list[nn.Module]  # nn.Conv2d or nn.Linear reading these channels
    repeat: int = 1  # consumer input features per channel (Linear after a flatten of C x H x W)
    extra: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        return self.producers[0].out_channels

    # -- per-channel views (no copies), shaped (C, -1) ---------------------------------------------
    def producer_rows(self) -> list[torch.Tensor]:
        return [p.weight.reshape(p.weight.shape[0], -1) for p in self.producers]

    def consumer_cols(self) -> list[torch.Tensor]:
        """Consumer weights as (C, -1): every input weight that reads channel c in row c."""
        cols = []
        for m in self.consumers:
            w = m.weight
            if isinstance(m, nn.Linear):
                # Flatten order is (C, H, W): channel c owns features c*repeat ... (c+1)*repeat - 1.
                cols.append(w.reshape(w.shape[0], -1, self.repeat).transpose(0, 1).reshape(self.width, -1))
            else:
                cols.append(w.transpose(0, 1).reshape(self.width, -1))
        return cols

    def producer_norm(self) -> torch.Tensor:
        """‖W^l[c]‖₂ over all producer filters of channel c (expand + depthwise in MobileNetV2)."""
        sq = sum(r.detach().float().pow(2).sum(1) for r in self.producer_rows())
        return sq.sqrt()

    def consumer_norm(self) -> torch.Tensor:
        sq = sum(c.detach().float().pow(2).sum(1) for c in self.consumer_cols())
        return sq.sqrt()

    def channel_norm(self) -> torch.Tensor:
        """n_c = ‖W^l[c]‖₂ + ‖W^{l+1}[:, c]‖₂ (METHOD §3.2; BN not included)."""
        return self.producer_norm() + self.consumer_norm()

    def alive(self, rel_threshold: float = 0.01) -> torch.Tensor:
        """Boolean (C,): n_c > rel·max n_c, with at least the strongest channel kept."""
        n = self.channel_norm()
        mask = n > rel_threshold * n.max()
        if not mask.any():
            mask[n.argmax()] = True
        return mask

    @torch.no_grad()
    def zero_channels(self, dead: torch.Tensor) -> None:
        """Mask: zero every parameter of the dead channels (filters, BN γ/β/stats, consumer slices).

        The result computes exactly what the physically pruned network computes (tested)."""
        dead = dead.to(self.producers[0].weight.device)
        for p in self.producers:
            p.weight[dead] = 0
            if p.bias is not None:
                p.bias[dead] = 0
        for bn in self.norms:
            bn.weight[dead] = 0
            bn.bias[dead] = 0
            bn.running_mean[dead] = 0
        for m in self.consumers:
            if isinstance(m, nn.Linear):
                idx = torch.nonzero(dead).flatten()
                cols = (idx[:, None] * self.repeat + torch.arange(self.repeat, device=idx.device)).flatten()
                m.weight[:, cols] = 0
            else:
                m.weight[:, dead] = 0
