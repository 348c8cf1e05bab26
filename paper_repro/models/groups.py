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

    # -- per-channel reductions over the group's slices (no reshapes, any memory format) -------------
    def _reduce(self, module: nn.Module, t: torch.Tensor, role: str) -> torch.Tensor:
        """Sum `t` (shaped like module.weight) over everything but the channel axis -> (C,)."""
        if role == "producer":
            return t.sum(dim=tuple(range(1, t.dim())))
        if isinstance(module, nn.Linear):  # columns c*repeat ... (c+1)*repeat-1 belong to channel c
            return t.view(t.shape[0], self.width, self.repeat).sum(dim=(0, 2))
        return t.sum(dim=(0,) + tuple(range(2, t.dim())))

    def producer_sum(self, fn) -> torch.Tensor:
        """Σ over producer filters of channel c of fn(module), e.g. fn = lambda m: m.weight * m.weight.grad."""
        return sum(self._reduce(p, fn(p), "producer") for p in self.producers)

    def consumer_sum(self, fn) -> torch.Tensor:
        return sum(self._reduce(m, fn(m), "consumer") for m in self.consumers)

    def producer_rows(self) -> list[torch.Tensor]:
        """Producer filters as (C, -1) tensors (copies when the weight is not contiguous)."""
        return [p.weight.reshape(p.weight.shape[0], -1) for p in self.producers]

    def consumer_cols(self) -> list[torch.Tensor]:
        """Consumer weights as (C, -1): every input weight that reads channel c in row c."""
        cols = []
        for m in self.consumers:
            w = m.weight
            if isinstance(m, nn.Linear):
                cols.append(w.reshape(w.shape[0], self.width, self.repeat).transpose(0, 1).reshape(self.width, -1))
            else:
                cols.append(w.transpose(0, 1).reshape(self.width, -1))
        return cols

    def producer_norm(self) -> torch.Tensor:
        """‖W^l[c]‖₂ over all producer filters of channel c (expand + depthwise in MobileNetV2)."""
        return self.producer_sum(lambda m: m.weight.detach().float().square()).sqrt()

    def consumer_norm(self) -> torch.Tensor:
        return self.consumer_sum(lambda m: m.weight.detach().float().square()).sqrt()

    def channel_norm(self) -> torch.Tensor:
        """n_c = ‖W^l[c]‖₂ + ‖W^{l+1}[:, c]‖₂ (METHOD §3.2; BN not included)."""
        return self.producer_norm() + self.consumer_norm()

    @torch.no_grad()
    def scale_channels_(self, f_producer: torch.Tensor, f_consumer: torch.Tensor) -> None:
        """In place: producer filters of channel c times f_producer[c], consumer slices times f_consumer[c]."""
        for p in self.producers:
            p.weight.mul_(f_producer.view(-1, *([1] * (p.weight.dim() - 1))).to(p.weight.dtype))
        for m in self.consumers:
            f = f_consumer.to(m.weight.dtype)
            if isinstance(m, nn.Linear):
                m.weight.view(m.weight.shape[0], self.width, self.repeat).mul_(f.view(1, -1, 1))
            else:
                m.weight.mul_(f.view(1, -1, *([1] * (m.weight.dim() - 2))))

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
