"""ISTA for the group-sparse penalty (docs/method.md §3.4-3.5): the progressive strength and the proximal step.

After each optimiser step, every channel c in the expected-sparse set S_l has its producer filters and
its consumer slice soft-thresholded as groups: W ← W·max(0, 1 − θ/‖W‖₂) with θ = lr_t·λ(t). `group_prox_`
does one layer; `flat_group_prox_` every layer of every student in a few ops (the training loop's)."""
from __future__ import annotations

import math

import torch

from .checks import check_choice
from .models import ChannelGroup
from .models.groups import FlatGroups

PENALTIES = ("progressive", "constant")


def penalty_scale(epoch: int, first_decay_epoch: int, schedule: str = "progressive") -> float:
    """s_e = 1/(1 + exp(15 − 30·(epoch+1)/E1)) before E1, then 1 [DPFPS]; 'constant' is always 1."""
    if schedule == "constant":
        return 1.0
    if schedule != "progressive":
        check_choice("penalty", schedule, PENALTIES)
    if epoch >= first_decay_epoch:
        return 1.0
    return 1.0 / (1.0 + math.exp(15.0 - 30.0 * (epoch + 1) / first_decay_epoch))


def scaled_lambda(lambda_ref: float, batch_size: int, lr: float, train_images: int,
                  ref_batch: int = 64, ref_lr: float = 0.1, ref_images: int = 50_000) -> float:
    """Keep steps-per-epoch × lr × λ at DPFPS's value (λ = 0.01 at batch 64, lr 0.1, 50k images)."""
    ref = (ref_images / ref_batch) * ref_lr * lambda_ref
    return ref / ((train_images / batch_size) * lr)


def shrink_factors(norm: torch.Tensor, theta: float, selected: torch.Tensor) -> torch.Tensor:
    """max(0, 1 − θ/‖w‖) on selected channels, 1 elsewhere; a zero-norm channel stays zero."""
    f = torch.clamp(1.0 - theta / norm.clamp_min(1e-12), min=0.0)
    return torch.where(selected, f, torch.ones_like(f))


@torch.no_grad()
def group_prox_(group: ChannelGroup, selected: torch.Tensor, theta: float) -> None:
    """Group soft-thresholding of the selected channels' producer filters and consumer slices, in place."""
    if theta <= 0:  # no `selected.any()` test: it would cost a host sync per layer per step on a GPU
        return
    group.scale_channels_(shrink_factors(group.producer_norm(), theta, selected),
                          shrink_factors(group.consumer_norm(), theta, selected))


@torch.no_grad()
def flat_group_prox_(flat: FlatGroups, selected: torch.Tensor, theta: float) -> None:
    """group_prox_ on every group of `flat` (selected: flat mask). Consumer slices first, then producer norms
    read after that scaling: the order the per-group loop has when a VGG conv is group l's consumer and group
    l+1's producer (FlatGroups refuses other overlaps)."""
    if theta <= 0:
        return
    flat.scale_("consumer", shrink_factors(flat.norm("consumer"), theta, selected))
    flat.scale_("producer", shrink_factors(flat.norm("producer"), theta, selected))
