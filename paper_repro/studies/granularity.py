"""Pruning granularity at matched sparsity, without fine-tuning (docs/method.md §8).

The weights pruned are those of the convolutions that the channel groups couple (producers and conv consumers;
in ResNet-56 every block conv, i.e. all conv weights but the 3-channel stem). Each of these conv tensors W
(O × I × k × k) loses the same fraction s of its weights, as units of one granularity ranked by L1 norm
within the tensor (per-layer magnitude pruning: every granularity then has the same sparsity in every layer):

- ``fine``: single weights (Han et al.);
- ``vector``: 1 × k rows of a kernel, W[o, i, r, :];
- ``kernel``: k × k kernels, W[o, i];
- ``filter``: whole channels of a channel group: the producer filter, its BN entries and the consumer slice
  (`ChannelGroup.zero_channels`), scored by the L1 norm of those weights; ⌊s·C⌉ channels, at least one kept.
  This is the only granularity whose zeros can be cut out (`surgery.prune_model`) into a smaller dense network.

The number of units zeroed in a tensor is round(s · units); the achieved sparsity is measured and reported.
`sparse_flops_pruned` is the share of conv/linear MACs whose weight is zero: what an ideal sparse kernel could
skip. `dense_flops_pruned` is what a dense kernel skips: counted on the physically cut network for ``filter``,
and 0 for the others, whose tensors keep their shapes.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..checks import check_choice
from ..counting import count_macs
from ..sensitivity import smallest_mask
from ..surgery import logit_gap, mask_model, prune_model

GRANULARITIES = ("fine", "vector", "kernel", "filter")
SHRINKS_DENSE = {"fine": False, "vector": False, "kernel": False, "filter": True}
UNIT = {"fine": "1 weight", "vector": "1×k row of a kernel", "kernel": "k×k kernel",
        "filter": "channel (filter + BN + consumer slice)"}


def check_granularity(granularity: str) -> str:
    check_choice("granularity", granularity, GRANULARITIES)
    return granularity


def check_sparsity(sparsity) -> float:
    if not (isinstance(sparsity, (int, float)) and 0.0 <= sparsity < 1.0):
        raise ValueError(f"sparsity: must be a number in [0, 1), got {sparsity!r}")
    return float(sparsity)


def population(model: nn.Module) -> list[nn.Conv2d]:
    """The conv layers whose weights are pruned: producers and conv consumers of the channel groups (once each)."""
    convs, seen = [], set()
    for g in model.channel_groups():
        for m in list(g.producers) + list(g.consumers):
            if isinstance(m, nn.Conv2d) and id(m) not in seen:
                seen.add(id(m))
                convs.append(m)
    return convs


def _unit_norms(w: torch.Tensor, granularity: str) -> torch.Tensor:
    a = w.detach().abs().float()
    if granularity == "fine":
        return a
    if granularity == "vector":
        return a.sum(dim=3, keepdim=True)  # (O, I, k, 1)
    return a.sum(dim=(2, 3), keepdim=True)  # kernel: (O, I, 1, 1)


@torch.no_grad()
def zero_tensor_(w: torch.Tensor, granularity: str, sparsity: float) -> int:
    """Zero round(sparsity · units) lowest-L1 units of one weight tensor in place; returns the units zeroed."""
    norms = _unit_norms(w, granularity)
    flat = norms.reshape(-1).cpu()
    n = int(round(sparsity * flat.numel()))
    mask = smallest_mask(flat, n).view(norms.shape).to(w.device)
    w.mul_((~mask).to(w.dtype).expand_as(w))
    return n


@torch.no_grad()
def filter_dead(model: nn.Module, sparsity: float) -> list[torch.Tensor]:
    """Per channel group: the round(s·C) channels (at most C − 1) with the smallest L1 over their coupled conv
    weights (producer filters + consumer slices)."""
    dead = []
    for g in model.channel_groups():
        score = g.producer_sum(lambda m: m.weight.detach().abs()) + g.consumer_sum(lambda m: m.weight.detach().abs())
        n = min(g.width - 1, int(round(sparsity * g.width)))
        dead.append(smallest_mask(score.float().cpu(), n))
    return dead


def prune_granularity(model: nn.Module, granularity: str, sparsity: float) -> tuple[nn.Module, list | None]:
    """A copy of `model` with `sparsity` of its population's weights zeroed at `granularity`.
    Returns (model, dead channel masks for ``filter``, else None)."""
    check_granularity(granularity)
    check_sparsity(sparsity)
    if granularity == "filter":
        dead = filter_dead(model, sparsity)
        return mask_model(model, dead), dead
    out = copy.deepcopy(model)
    for conv in population(out):
        zero_tensor_(conv.weight, granularity, sparsity)
    return out, None


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of the population's conv weights that are exactly zero."""
    convs = population(model)
    zeros = sum(int((c.weight == 0).sum()) for c in convs)
    return zeros / sum(c.weight.numel() for c in convs)


@torch.no_grad()
def zero_mac_fraction(model: nn.Module, input_size=(1, 3, 32, 32)) -> float:
    """Share of all conv + linear MACs (one image) whose weight is zero: the work a sparse kernel could skip."""
    spatial = {}
    mods = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    hooks = [m.register_forward_hook(lambda m, i, o: spatial.__setitem__(
        id(m), o.shape[-1] * o.shape[-2] if isinstance(m, nn.Conv2d) else 1)) for m in mods]
    was = model.training
    model.eval()
    model(torch.zeros(input_size, device=next(model.parameters()).device))
    model.train(was)
    for h in hooks:
        h.remove()
    total = zero = 0
    for m in mods:
        total += m.weight.numel() * spatial[id(m)]
        zero += int((m.weight == 0).sum()) * spatial[id(m)]
    return zero / total


def granularity_row(model: nn.Module, granularity: str, sparsity: float, evaluate_fn, macs_before: int,
                    example=None, recalibrate=None) -> dict:
    """Prune `model` at (granularity, sparsity), evaluate it with `evaluate_fn(model) -> accuracy`, count.
    `recalibrate(model) -> model`: also report the accuracy after it (e.g. BN statistics recomputed; it gets a
    copy, the zeros stay zeros)."""
    pruned, dead = prune_granularity(model, granularity, sparsity)
    acc_recal = evaluate_fn(recalibrate(copy.deepcopy(pruned)).eval()) if recalibrate else float("nan")
    row = dict(granularity=granularity, unit=UNIT[granularity], target_sparsity=sparsity,
               sparsity=weight_sparsity(pruned), test_acc=evaluate_fn(pruned.eval()), acc_bn_recalibrated=acc_recal,
               shrinks_dense_compute=SHRINKS_DENSE[granularity], sparse_flops_pruned=zero_mac_fraction(pruned),
               dense_flops_pruned=0.0, max_abs_logit_diff=float("nan"))
    if dead is not None:
        cut = prune_model(pruned, dead).eval()
        row["dense_flops_pruned"] = 1 - count_macs(cut) / macs_before
        if example is not None:
            row["max_abs_logit_diff"] = logit_gap(cut, pruned, example)
    return row
