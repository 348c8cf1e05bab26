"""Profiles and resolved settings.

A profile fixes the data, the budget and the widths; `resolve_baseline` turns (arch, profile, seed,
overrides) into one flat dict that is saved next to every run and hashed into its cache key.
Values marked [chosen] are ours, not the paper's (the README lists them).
"""
from __future__ import annotations

import hashlib
import json

from .data import check_dataset
from .models import check_arch

PROFILES = ("smoke", "cpu", "paper")
ENV_PROFILE = "PAPER_REPRO_PROFILE"

# Baseline (teacher) recipe [DPFPS]: SGD 0.9, wd 1e-4, lr 0.1 x0.1 at 50% and 75%, 200 epochs, batch 64.
# lr_schedule "multistep" steps the LR per epoch at `lr_milestones` (fractions of the run); "cosine" ramps it
# linearly from 0 over `warmup_epochs`, then follows a half cosine to 0, updated every step.
# curve_test_subset: images of a fixed test subset for the per-epoch curve (None: the whole test split every
# epoch); the last epoch is always evaluated on the whole `test_subset`.
BASELINE = dict(
    dataset="cifar10", epochs=200, batch_size=64, lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
    lr_schedule="multistep", lr_milestones=[0.5, 0.75], lr_gamma=0.1, warmup_epochs=0, width=1.0,
    train_subset=None, test_subset=None, curve_test_subset=None, channels_last=True,
)
LR_SCHEDULES = ("multistep", "cosine")

# Per-profile overrides; a dict value keyed by arch ("*" = any other arch) picks per network.
PROFILE_SETTINGS = {
    # Seconds on 2 CPU cores: synthetic data, quarter width. For tests and nbval only, never reported.
    "smoke": dict(dataset="synthetic", epochs=2, batch_size=64, width=0.25, train_subset=512, test_subset=256),
    # [chosen] Converged teachers at reduced width on 2 CPU cores (about 4 h in all, trained once by `make
    # teachers` and committed): all 50,000 training images, all 10,000 test images, a short warm-up + cosine
    # schedule (a step schedule needs ~200 epochs), Nesterov SGD, batch 128, wd 5e-4 (the usual CIFAR value for
    # short runs). No label smoothing: it makes a worse teacher for distillation (Mueller et al., 2019).
    # Widths: the largest that fit the budget (ResNet-56 at 8-16-32 channels ~ ResNet-20's size).
    "cpu": dict(
        dataset="cifar10", batch_size=128, lr={"mobilenetv2": 0.1, "*": 0.2}, nesterov=True, weight_decay=5e-4,
        lr_schedule="cosine", warmup_epochs=2, curve_test_subset=2000,
        width={"vgg_small": 0.25, "vgg_small_lq": 0.25, "mobilenetv2": 0.25, "*": 0.5},
        epochs={"vgg_small": 30, "vgg_small_lq": 30, "resnet56": 40, "mobilenetv2": 20, "*": 40},
    ),
    # The full recipe, for a GPU.
    "paper": dict(dataset="cifar10", epochs=200, batch_size=64),
}


# The students' recipe (pruning runs and every arm compared with them): the teacher's recipe [DPFPS trains
# both alike], with these per-profile changes.
STUDENT_RECIPE = {
    "smoke": dict(),
    # [chosen] DPFPS's step schedule on 10,000 of the training images at batch 64, not the cpu teachers'
    # cosine one (made for training from scratch); all 10,000 test images at the end, a fixed 2,000 per epoch.
    "cpu": dict(train_subset=10000, batch_size=64, lr=0.05, nesterov=False, weight_decay=1e-4,
                lr_schedule="multistep", warmup_epochs=0),
    "paper": dict(),
}


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile: unknown profile {profile!r}; valid names: {', '.join(PROFILES)}")
    return profile


def pick_for_arch(value, arch):
    """A profile value, or its entry for `arch` when it is a dict keyed by arch (\"*\" = any other arch)."""
    if isinstance(value, dict):
        return value.get(arch, value.get("*"))
    return value


def resolve_baseline(arch: str, profile: str = "cpu", seed: int = 0, **overrides) -> dict:
    """Flat settings for training the baseline `arch` under `profile`; `overrides` win (None = keep)."""
    check_arch(arch)
    check_profile(profile)
    cfg = dict(BASELINE)
    cfg.update({k: pick_for_arch(v, arch) for k, v in PROFILE_SETTINGS[profile].items()})
    unknown = set(overrides) - set(cfg) - {"num_classes"}
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; valid: {sorted(set(cfg) | {'num_classes'})}")
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    check_dataset(cfg["dataset"])
    if cfg.get("num_classes") is None:
        cfg["num_classes"] = 100 if cfg["dataset"] == "cifar100" else 10
    if not (isinstance(seed, int) and seed >= 0):
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    for k in ("epochs", "batch_size"):
        if not (isinstance(cfg[k], int) and cfg[k] >= 1):
            raise ValueError(f"{k}: must be a positive integer, got {cfg[k]!r}")
    if cfg["lr_schedule"] not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule: unknown value {cfg['lr_schedule']!r}; valid: {', '.join(LR_SCHEDULES)}")
    if not (isinstance(cfg["warmup_epochs"], int) and 0 <= cfg["warmup_epochs"] < cfg["epochs"]):
        raise ValueError(f"warmup_epochs: must be an integer in [0, epochs), got {cfg['warmup_epochs']!r}")
    cfg.update(arch=arch, profile=profile, seed=seed)
    return dict(sorted(cfg.items()))


def config_key(cfg: dict, exclude=("profile",)) -> str:
    """Cache key: a hash of every setting that changes the result (the profile name itself does not)."""
    blob = json.dumps({k: v for k, v in cfg.items() if k not in exclude}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def resolve_students(arch: str, profile: str = "cpu", seed: int = 0, **overrides) -> dict:
    """The students' data and optimizer settings: the baseline's, with `STUDENT_RECIPE[profile]`, then
    `overrides` (None = keep)."""
    check_profile(profile)
    recipe = {k: pick_for_arch(v, arch) for k, v in STUDENT_RECIPE[profile].items()}
    return resolve_baseline(arch, profile, seed, **{**recipe, **{k: v for k, v in overrides.items() if v is not None}})
