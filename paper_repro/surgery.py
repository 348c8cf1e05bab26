"""Pruning surgery (docs/method.md §4): cut the dead channels out, leaving a real, smaller network.

During training nothing changes shape: a dead channel is only zeroed (`mask_model`). At the end each
channel group's dead channels are sliced out of its producers (dim 0), its BatchNorms and its consumers
(dim 1, or the Linear columns). Every parameter of a dead channel is zero in the masked model, so it adds
nothing downstream and the pruned model computes what the masked one computes, up to float error.

The result is the same model class with smaller layers: `build_model(arch, num_classes, width,
widths=pruned.widths())` rebuilds it, so a checkpoint is just the state_dict plus those widths (export.py saves,
loads and exports it). This module only cuts: it imports no network, so the models may use it.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def dead_masks(model: nn.Module, rel_threshold: float = 0.01) -> list[torch.Tensor]:
    """Per channel group, in `model.channel_groups()` order: True for the channels to remove."""
    return [~g.alive(rel_threshold) for g in model.channel_groups()]


def _check(groups, dead) -> None:
    if len(dead) != len(groups):
        raise ValueError(f"dead: expected {len(groups)} masks (one per channel group), got {len(dead)}")
    for g, d in zip(groups, dead):
        if d.shape != (g.width,):
            raise ValueError(f"dead: group {g.name} has {g.width} channels, mask has shape {tuple(d.shape)}")
        if bool(d.all()):
            raise ValueError(f"dead: every channel of group {g.name} is dead; at least one must stay")


def mask_model(model: nn.Module, dead) -> nn.Module:
    """A copy of `model` with every parameter of the dead channels zeroed (same shapes)."""
    masked = copy.deepcopy(model)
    groups = masked.channel_groups()
    _check(groups, dead)
    for g, d in zip(groups, dead):
        g.zero_channels(d)
    return masked


def _cut(module: nn.Module, name: str, index: torch.Tensor, dim: int) -> None:
    """Replace module.<name> by its slices `index` along `dim`: a fresh contiguous tensor (the model may be
    channels_last), so the pruned model shares no storage with the original."""
    old = getattr(module, name)
    if old is None:  # bias=False, affine=False
        return
    new = old.detach().index_select(dim, index.to(old.device)).contiguous()
    setattr(module, name, nn.Parameter(new, old.requires_grad) if isinstance(old, nn.Parameter) else new)


@torch.no_grad()
def prune_model(model: nn.Module, dead=None, rel_threshold: float = 0.01) -> nn.Module:
    """A copy of `model` with the dead channels physically removed (`dead` defaults to `dead_masks`)."""
    pruned = copy.deepcopy(model)
    groups = pruned.channel_groups()
    if dead is None:
        dead = dead_masks(pruned, rel_threshold)
    _check(groups, dead)
    # Fix every index before cutting anything: a VGG conv produces its own group and consumes the previous
    # one, and the groups' widths are read from the live shapes.
    keeps = [torch.nonzero(~d.cpu()).flatten() for d in dead]
    for g, keep in zip(groups, keeps):
        n = len(keep)
        for conv in g.producers:
            depthwise = conv.groups > 1 and conv.groups == conv.in_channels
            if conv.groups > 1 and not depthwise:
                raise NotImplementedError(f"{g.name}: grouped (non-depthwise) producer conv")
            _cut(conv, "weight", keep, 0)
            _cut(conv, "bias", keep, 0)
            conv.out_channels = n
            if depthwise:  # each filter reads only its own channel: weight dim 1 stays 1
                conv.in_channels = conv.groups = n
        for bn in g.norms:
            for name in ("weight", "bias", "running_mean", "running_var"):
                _cut(bn, name, keep, 0)
            bn.num_features = n
        for m in g.consumers:
            if isinstance(m, nn.Linear):  # after the (C, H, W) flatten, channel c owns `repeat` columns
                cols = (keep[:, None] * g.repeat + torch.arange(g.repeat)).flatten()
                _cut(m, "weight", cols, 1)
                m.in_features = len(cols)
            else:
                if m.groups != 1:
                    raise NotImplementedError(f"{g.name}: grouped consumer conv")
                _cut(m, "weight", keep, 1)
                m.in_channels = n
    return pruned


def logit_gap(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> float:
    """max |a(x) − b(x)| in eval mode, on CPU copies in float64. Removal is exact in exact arithmetic; in float32
    the rounding of differently sized sums is amplified by BatchNorms of nearly dead channels (small running
    variance; up to ~1e-3 on a short-budget student) and a GPU's TF32 adds ~1e-3 more. Float64 leaves only what
    the surgery itself does: ~1e-12 when it is exact, the size of a logit when it is not."""
    a, b = copy.deepcopy(a).cpu().double().eval(), copy.deepcopy(b).cpu().double().eval()
    with torch.no_grad():
        x = x.detach().cpu().double().contiguous()
        return (a(x) - b(x)).abs().max().item()
