"""Prunable channel groups: the unit the method scores, penalises and removes (docs/method.md §3.1).

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
        """n_c = ‖W^l[c]‖₂ + ‖W^{l+1}[:, c]‖₂ (docs/method.md §3.2; BN not included)."""
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


class FlatGroups:
    """The channels of every group of several networks (one group list per student) laid end to end on one
    flat axis, so that scoring, selecting and shrinking all layers takes a few tensor ops instead of a few
    dozen per layer: at batch 64 a GPU step is bound by kernel launches, not arithmetic. Per-tensor reductions
    and elementwise ops are the ChannelGroup ones, so on the CPU the results are bitwise those of the per-group
    methods (tested). Channel k of the flat axis is channel k − offset[g] of group g, in list order."""

    def __init__(self, nets: list[list[ChannelGroup]]):
        self.groups = [g for gs in nets for g in gs]
        self.per_net = [len(gs) for gs in nets]
        self.widths = [g.width for g in self.groups]
        dev = self.groups[0].producers[0].weight.device
        offsets = [0]
        for w in self.widths:
            offsets.append(offsets[-1] + w)
        self.offsets, self.size = offsets, offsets[-1]
        # Group id of each flat channel (ascending) and the channel's position inside its group.
        self.segment = torch.repeat_interleave(torch.arange(len(self.widths), device=dev),
                                               torch.tensor(self.widths, device=dev))
        self.position = torch.arange(self.size, device=dev) - torch.tensor(offsets[:-1], device=dev)[self.segment]
        self.slices = {"producer": [(gi, p) for gi, g in enumerate(self.groups) for p in g.producers],
                       "consumer": [(gi, m) for gi, g in enumerate(self.groups) for m in g.consumers]}
        # Where each slice's (C,) reduction lands on the flat axis.
        self._index = {role: torch.cat([torch.arange(offsets[gi], offsets[gi + 1], device=dev) for gi, _ in sl])
                       for role, sl in self.slices.items()}
        self._check_order()

    def _check_order(self):
        """prox_ reads all consumer norms, scales, then reads producer norms. That equals the per-group loop
        (norms of group g read after groups < g were scaled) when a tensor that is a consumer of group a and a
        producer of group b has a < b, as in a VGG chain; refuse any other overlap rather than differ."""
        cons = {}
        for gi, m in self.slices["consumer"]:
            cons.setdefault(id(m), []).append(gi)
        for gi, p in self.slices["producer"]:
            if any(a >= gi for a in cons.get(id(p), [])):
                raise ValueError(f"FlatGroups: {self.groups[gi].name} produces from a tensor an earlier-or-same "
                                 "group consumes; the flat prox would not match the per-group order")

    def limit(self, counts: list[list[int]]) -> torch.Tensor:
        """(size,) m of each flat channel's group, from one list of m_l per net. Cached: m changes once an
        epoch, and a fresh host-to-device copy every step is what a GPU step should not wait on."""
        key = tuple(c for cs in counts for c in cs)
        if getattr(self, "_limit_key", None) != key:
            if len(key) != len(self.widths):
                raise ValueError(f"FlatGroups.limit: {len(key)} counts for {len(self.widths)} groups")
            self._limit_key = key
            self._limit = torch.tensor(key, device=self.segment.device)[self.segment]
        return self._limit

    def split(self, flat: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per net, per group views of a flat (size,) tensor."""
        parts, out, i = flat.split(self.widths), [], 0
        for n in self.per_net:
            out.append(list(parts[i:i + n]))
            i += n
        return out

    def channel_sum(self, role: str, tensors: list[torch.Tensor]) -> torch.Tensor:
        """(size,): Σ over the role's slices of channel c of tensors[j] (shaped like slice j's weight).
        index_add_ on zeros adds the slices in list order, as `sum()` over a group's modules does."""
        red = torch.cat([self.groups[gi]._reduce(m, t, role) for (gi, m), t in zip(self.slices[role], tensors)])
        return torch.zeros(self.size, dtype=red.dtype, device=red.device).index_add_(0, self._index[role], red)

    def weights(self, role: str) -> list[torch.Tensor]:
        return [m.weight.detach() for _, m in self.slices[role]]

    def norm(self, role: str) -> torch.Tensor:
        """(size,) ‖slice of channel c‖₂ over the role's tensors, as ChannelGroup.producer_norm/consumer_norm."""
        w = [t.float() for t in self.weights(role)]
        return self.channel_sum(role, torch._foreach_mul(w, w)).sqrt()

    @torch.no_grad()
    def scale_(self, role: str, f: torch.Tensor) -> None:
        """In place: every slice of flat channel k times f[k] (one foreach call for all layers)."""
        targets, factors = [], []
        for gi, m in self.slices[role]:
            g, fg = self.groups[gi], f[self.offsets[gi]:self.offsets[gi + 1]].to(m.weight.dtype)
            w = m.weight
            if role == "producer":
                targets.append(w)
                factors.append(fg.view(-1, *([1] * (w.dim() - 1))))
            elif isinstance(m, nn.Linear):
                targets.append(w.view(w.shape[0], g.width, g.repeat))
                factors.append(fg.view(1, -1, 1))
            else:
                targets.append(w)
                factors.append(fg.view(1, -1, *([1] * (w.dim() - 2))))
        torch._foreach_mul_(targets, factors)
