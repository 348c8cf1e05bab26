"""The subject and budget every comparison of notebooks 03-07 shares, and one row per arm.

Subject: resnet56 at FLOPs 0.60, taught by the profile's cached baseline (notebook 01). Every arm of a
comparison starts from that same teacher and trains for the same budget (`BUDGET[profile]`), which each
table states in its own columns (epochs, train_images, students). The cpu budget is smaller than the main
table's (notebook 02) so that ~25 arms fit `make reproduce` on 2 cores; its numbers rank arms on this
budget only, they are not the paper's accuracy.
"""
from __future__ import annotations

from .method import prune_train
from .train import train_baseline

SUBJECT = dict(arch="resnet56", target="flops=0.60")

# [chosen] Per-profile budget of one arm (overrides of the method/students' settings).
BUDGET = {
    "smoke": dict(train_subset=256, epochs=1),
    # 4,000 of the profile's training images, 3 epochs (as notebook 02: two with the penalty, one to recover).
    "cpu": dict(train_subset=4000, epochs=3),
    "paper": dict(),  # the full recipe (200 epochs, 50,000 images): GPU-days for every arm
}


def budget(profile: str) -> dict:
    if profile not in BUDGET:
        raise ValueError(f"profile: unknown profile {profile!r}; valid names: {', '.join(BUDGET)}")
    return dict(BUDGET[profile])


def teacher(profile: str, seed: int = 0, device: str = "auto", arch: str | None = None, progress: bool = False):
    """The subject's baseline of this profile (cached; trained when missing)."""
    return train_baseline(arch or SUBJECT["arch"], profile, seed, device=device, progress=progress)


def teacher_checkpoint(run) -> str:
    return str(run.run_dir / "checkpoint.pt")


def run_arm(arm: str, profile: str, seed: int = 0, device: str = "auto", progress: bool = False,
            target: str | None = None, **overrides) -> dict:
    """Train one arm (cached under runs/prune/ by its settings) and return its table row."""
    t = teacher(profile, seed, device)
    settings = {**budget(profile), **overrides}
    run = prune_train(SUBJECT["arch"], target or SUBJECT["target"], profile, seed, device=device,
                      teacher=teacher_checkpoint(t), progress=progress, **settings)
    return arm_row(arm, run)


def arm_row(arm: str, run) -> dict:
    """What every ablation table reports for an arm; a missed target is a row with target_met=False."""
    s, c = run.summary, run.config
    return dict(
        arm=arm, students=c["students"], epochs=c["epochs"], finetune_epochs=c["finetune_epochs"],
        train_images=c["baseline"]["train_subset"] or "all", target=c["target"], baseline_acc=s["baseline_acc"],
        best_acc=s["pruned_acc"], mean_acc=s["pruned_acc_mean"], params_pruned=s["params_pruned"],
        flops_pruned=s["flops_pruned"], target_met=s["target_met"],
        seconds_per_epoch=s["train_seconds"] / c["epochs"], device=s["device"],
        **{k: s[k] for k in ("dataset", "dataset_official", "dataset_fingerprint")},
    )
