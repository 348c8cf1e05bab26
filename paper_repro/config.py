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
BASELINE = dict(
    dataset="cifar10", epochs=200, batch_size=64, lr=0.1, momentum=0.9, weight_decay=1e-4,
    lr_milestones=[0.5, 0.75], lr_gamma=0.1, width=1.0, train_subset=None, test_subset=None,
    channels_last=True,
)

# Per-profile overrides; a dict value keyed by arch ("*" = any other arch) picks per network.
PROFILE_SETTINGS = {
    # Seconds on 2 CPU cores: synthetic data, quarter width. For tests and nbval only, never reported.
    "smoke": dict(dataset="synthetic", epochs=2, batch_size=64, width=0.25, train_subset=512, test_subset=256),
    # [chosen] Sized for `make reproduce` on 2 CPU cores: 10,000 random training images, 2,000 random test
    # images, reduced widths, a few epochs, batch 64 at lr 0.05 (lr 0.1 stalls ResNet-56 in so few steps).
    # Numbers are far below the paper's; they show the pipeline working, not the paper's accuracy.
    "cpu": dict(
        dataset="cifar10", batch_size=64, lr=0.05, train_subset=10000, test_subset=2000,
        width={"vgg_small": 0.25, "vgg_small_lq": 0.25, "mobilenetv2": 0.25, "*": 0.5},
        epochs={"vgg_small": 6, "vgg_small_lq": 6, "resnet56": 4, "mobilenetv2": 2, "*": 4},
    ),
    # The full recipe, for a GPU.
    "paper": dict(dataset="cifar10", epochs=200, batch_size=64),
}


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile: unknown profile {profile!r}; valid names: {', '.join(PROFILES)}")
    return profile


def _pick(value, arch):
    if isinstance(value, dict):
        return value.get(arch, value.get("*"))
    return value


def resolve_baseline(arch: str, profile: str = "cpu", seed: int = 0, **overrides) -> dict:
    """Flat settings for training the baseline `arch` under `profile`; `overrides` win (None = keep)."""
    check_arch(arch)
    check_profile(profile)
    cfg = dict(BASELINE)
    cfg.update({k: _pick(v, arch) for k, v in PROFILE_SETTINGS[profile].items()})
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
    cfg.update(arch=arch, profile=profile, seed=seed)
    return dict(sorted(cfg.items()))


def config_key(cfg: dict, exclude=("profile",)) -> str:
    """Cache key: a hash of every setting that changes the result (the profile name itself does not)."""
    blob = json.dumps({k: v for k, v in cfg.items() if k not in exclude}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
