"""Channel sensitivity: which channels form the expected-sparse set S_l (METHOD §3.5 step 2-3).

taylor [paper/DPFPS]: Θ_l(c) = |Σ_{w∈W^l[c]} w·∂L/∂w + Σ_{w∈W^{l+1}[:,c]} w·∂L/∂w|, the first-order estimate
of how much the loss changes when the whole channel group is zeroed. l1, bn and random are ablations."""
from __future__ import annotations

import torch

from .models import ChannelGroup

CRITERIA = ("taylor", "l1", "bn", "random")


def _wg(m):
    g = m.weight.grad
    return m.weight.detach() * g if g is not None else torch.zeros_like(m.weight)


@torch.no_grad()
def channel_scores(group: ChannelGroup, criterion: str = "taylor", generator: torch.Generator | None = None):
    """(C,) importance of each channel in `group`; the smallest ones are pushed to zero."""
    if criterion == "taylor":
        return (group.producer_sum(_wg) + group.consumer_sum(_wg)).abs().float()
    if criterion == "l1":
        return group.producer_sum(lambda m: m.weight.detach().abs()).float()
    if criterion == "bn":
        return group.norms[0].weight.detach().abs().float()
    if criterion == "random":
        return torch.rand(group.width, generator=generator).to(group.producers[0].weight.device)
    raise ValueError(f"criterion: unknown criterion {criterion!r}; valid: {', '.join(CRITERIA)}")


def smallest_mask(scores: torch.Tensor, m: int) -> torch.Tensor:
    """Boolean mask of the m lowest-scoring channels (ties broken by index, deterministically)."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if m > 0:
        order = torch.sort(scores, stable=True).indices
        mask[order[:m]] = True
    return mask
