"""Channel sensitivity: which channels form the expected-sparse set S_l (docs/method.md §3.5 step 2-3).

taylor [paper/DPFPS]: Θ_l(c) = |Σ_{w∈W^l[c]} w·∂L/∂w + Σ_{w∈W^{l+1}[:,c]} w·∂L/∂w|, the first-order estimate
of how much the loss changes when the whole channel group is zeroed. l1, bn and random are ablations.
`flat_scores` / `smallest_masks` do the same for every layer of every student at once (`FlatGroups`)."""
from __future__ import annotations

import torch

from .checks import check_choice
from .models import ChannelGroup
from .models.groups import FlatGroups

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
    check_choice("criterion", criterion, CRITERIA)  # raises: no criterion above matched


def smallest_mask(scores: torch.Tensor, m: int) -> torch.Tensor:
    """Boolean mask of the m lowest-scoring channels (ties broken by index, deterministically)."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if m > 0:
        order = torch.sort(scores, stable=True).indices
        mask[order[:m]] = True
    return mask


@torch.no_grad()
def flat_scores(flat: FlatGroups, criterion: str = "taylor", generator: torch.Generator | None = None,
                need: list[bool] | None = None) -> torch.Tensor:
    """(flat.size,) channel_scores of every group, Taylor in a few ops for all layers. `need[g]` False: group g
    gets no score (zeros), so `random` draws from `generator` for exactly the groups the per-group loop would."""
    if criterion == "taylor":
        def wg(role):
            ws = flat.weights(role)
            gs = [m.weight.grad if m.weight.grad is not None else torch.zeros_like(m.weight)
                  for _, m in flat.slices[role]]
            return flat.channel_sum(role, torch._foreach_mul(ws, gs))
        return (wg("producer") + wg("consumer")).abs().float()
    need = [True] * len(flat.groups) if need is None else need
    return torch.cat([channel_scores(g, criterion, generator) if n else
                      torch.zeros(g.width, device=g.producers[0].weight.device)
                      for g, n in zip(flat.groups, need)]).float()


def smallest_masks(flat: FlatGroups, scores: torch.Tensor, limit: torch.Tensor) -> torch.Tensor:
    """(flat.size,) mask: in every group the `limit` lowest-scoring channels (`limit` per flat channel:
    m of its group), ties broken by index, exactly as smallest_mask per group. A stable sort by score, then a
    stable sort of that order by group, gives each group's channels by (score, index); the first m are chosen."""
    order = torch.sort(scores, stable=True).indices
    order = order[torch.sort(flat.segment[order], stable=True).indices]
    # After the second sort, position i of `order` belongs to group segment[i], at rank position[i] in it.
    return torch.zeros_like(scores, dtype=torch.bool).index_put_((order,), flat.position < limit)
