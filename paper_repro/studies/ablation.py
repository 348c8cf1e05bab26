"""The subject and budget every comparison of notebooks 03-07 shares, and one row per arm.

Subject: resnet56 at FLOPs 0.60, taught by the profile's cached baseline (notebook 01). Every arm of a
comparison starts from that same teacher and trains for the same budget (`budget(profile)`, set per profile in
`config.ABLATION_BUDGET`), which each
table states in its own columns (epochs, train_images, students). The cpu budget is smaller than the main
table's (notebook 02) so that ~25 trainings fit `make reproduce` on 2 cores; its numbers rank arms on this
budget only, they are not the paper's accuracy.
"""
from __future__ import annotations

import copy
import math
import time

import torch

from ..config import profile_settings
from ..engine import eval_batches, evaluate, milestone_epochs, prepare_data, train_batches
from ..method import finetune, prune_train
from ..paper import SUBJECT
from ..provenance import resolve_device
from ..train import train_baseline


def budget(profile: str) -> dict:
    """The settings every ablation arm of `profile` trains with (`config.ABLATION_BUDGET`)."""
    return profile_settings("ablation", profile)


def shared_budget(profile: str) -> dict:
    """The part of the budget every method shares (epochs, training images); λ_max etc. are ours only."""
    return {k: v for k, v in budget(profile).items() if k in ("epochs", "train_subset")}


def teacher(profile: str, seed: int = 0, device: str = "auto", arch: str | None = None, progress: bool = False):
    """The subject's baseline of this profile (cached; trained when missing)."""
    return train_baseline(arch or SUBJECT["arch"], profile, seed, device=device, progress=progress)


def teacher_checkpoint(run) -> str:
    return str(run.checkpoint)


def run_arm(arm: str, profile: str, seed: int = 0, device: str = "auto", progress: bool = False,
            target: str | None = None, **overrides) -> dict:
    """Train one arm (cached under runs/prune/ by its settings) and return its table row."""
    t = teacher(profile, seed, device)
    settings = {**budget(profile), **overrides}
    run = prune_train(SUBJECT["arch"], target or SUBJECT["target"], profile, seed, device=device,
                      teacher=teacher_checkpoint(t), progress=progress, export=False, **settings)
    return arm_row(arm, run)


def arm_row(arm: str, run) -> dict:
    """What every ablation table reports for an arm; a missed target is a row with target_met=False."""
    s, c = run.summary, run.config
    return dict(
        arm=arm, students=c["students"], epochs=c["epochs"], finetune_epochs=c["finetune_epochs"],
        train_images=c["baseline"]["train_subset"] or "all", target=c["target"], baseline_acc=s["baseline_acc"],
        best_acc=s["pruned_acc"], mean_acc=s["pruned_acc_mean"], params_pruned=s["params_pruned"],
        flops_pruned=s["flops_pruned"], target_met=s["target_met"],
        pruned_after_first_epoch=first_epoch_pruned(run),
        seconds_per_epoch=s["train_seconds"] / c["epochs"], device=s["device"],
        **{k: s[k] for k in ("dataset", "dataset_official", "dataset_fingerprint")},
    )


def first_epoch_pruned(run) -> float | None:
    """The reported student's pruned ratio (of the target's kind: params or FLOPs) by its alive channels at the end of
    the first method epoch: how much of the cut the penalty had made before the engine's later choices could act."""
    kind = run.config["target"].split("=")[0]
    row = next((m for m in run.metrics if m["epoch"] == 1 and m["student"] == run.summary["best_student"]), None)
    return None if row is None else row[f"{kind}_pruned"]


def run_arms(arms: dict, profile: str, seed: int = 0, device: str = "auto", **common):
    """One row per arm: {name: overrides}, every arm with `common` settings and the profile's budget."""
    import pandas as pd

    return pd.DataFrame([run_arm(name, profile, seed, device, **{**common, **over}) for name, over in arms.items()])


def last_epoch_lr(cfg: dict) -> float:
    """The LR the students' step schedule ran at in the run's last method epoch."""
    b = cfg["baseline"]
    decays = sum(m <= cfg["epochs"] - 1 for m in milestone_epochs(b["lr_milestones"], cfg["epochs"]))
    return b["lr"] * b["lr_gamma"] ** decays


def finetune_rows(arm: str, profile: str, epochs_list=(0, 1, 2), seed: int = 0, device: str = "auto",
                  lr: float | None = None, **overrides) -> list[dict]:
    """Is fine-tuning needed after removal? The arm's best pruned student, fine-tuned for each number of epochs
    in `epochs_list` from the same starting point, as `finetune_epochs` would (label-free KD from the teacher,
    plus cross-entropy when the arm has labels="on"). Cheap (one pruned network), so not cached.

    `lr`: the fine-tuning LR; None [chosen]: the LR the students ended their training at (`last_epoch_lr`),
    so that fine-tuning continues the training rather than restarting it. The method's fixed `finetune_lr`
    (0.01) destroyed a cpu student trained at lr 0.0005: 79.0% -> 37.9% after one epoch (measured)."""
    t = teacher(profile, seed, device)
    run = prune_train(SUBJECT["arch"], SUBJECT["target"], profile, seed, device=device,
                      teacher=teacher_checkpoint(t), progress=False, export=False,
                      **{**budget(profile), **overrides})
    cfg, b, dev = run.config, run.config["baseline"], resolve_device(device)
    _, train_split, test_split = prepare_data(b, dev)
    train_b = train_batches(train_split, b, seed + 23)
    test_b = eval_batches(test_split, b)
    start = run.pruned[run.summary["best_student"]]
    lr = last_epoch_lr(cfg) if lr is None else lr
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr: the fine-tuning LR must be a number > 0, got {lr!r}")
    rows = []
    for e in epochs_list:
        if not (isinstance(e, int) and e >= 0):
            raise ValueError(f"epochs_list: fine-tuning epochs must be integers >= 0, got {e!r}")
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        model = finetune(copy.deepcopy(start), run.teacher, dict(cfg, finetune_epochs=e, finetune_lr=lr), train_b,
                         dev)
        seconds = time.perf_counter() - t0
        rows.append({**arm_row(arm, run), "finetune_epochs": e, "best_acc": evaluate(model, test_b, dev)[1],
                     "mean_acc": float("nan"), "finetune_lr": lr, "finetune_seconds": seconds,
                     "finetune_loss": "KD" + (" + CE (labels)" if cfg["labels"] == "on" else " (no labels)")})
    return rows


def arms_figure(df, title: str, arm_col: str = "arm", noise=None, tolerance_pts: float = 1.0):
    """Two panels per arm: accuracy after removal (selected and mean student, teacher dashed) and FLOPs pruned
    (target dashed). An arm that missed the target is drawn hatched and labelled, never left out; one that overshot
    it by more than `tolerance_pts` (cut harder: not comparable with the others, as the verdicts say) is cross-hatched
    and labelled. `noise` (a noise.Noise, run-to-run noise measured on the reference arm): error bars of ±√2σ on the
    selected students' bars, half the ±2√2σ interval of a difference of two arms that the verdicts use, so two arms
    whose error bars do not overlap differ by more than that interval."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    order = list(dict.fromkeys(df[arm_col].astype(str)))
    parts = [df.assign(student="selected", acc=100 * df["best_acc"])]
    if (df["students"] > 1).any():  # with one student, best = mean
        parts.append(df.assign(student="mean", acc=100 * df["mean_acc"]))
    acc = pd.concat(parts).dropna(subset=["acc"])
    acc[arm_col] = acc[arm_col].astype(str)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(7, 0.4 * len(order) + 2.0), sharey=True)
    sns.barplot(data=acc, y=arm_col, x="acc", hue="student", order=order, ax=a1, orient="h")
    bar_err = 0.0 if noise is None else math.sqrt(2.0) * noise.sd_points
    selected = [b for b in (a1.containers[0] if a1.containers else []) if b.get_width() > 0]
    if noise is not None and selected:
        a1.errorbar([b.get_width() for b in selected], [b.get_y() + b.get_height() / 2 for b in selected],
                    xerr=bar_err, fmt="none", ecolor="0.15", elinewidth=1, capsize=2,
                    label="±√2σ: bars apart = a difference beyond ±2σ")
    for bar in a1.patches:  # the values (past the error bar): on a short budget arms differ by fractions of it
        if bar.get_width() > 0:
            end = bar.get_width() + (bar_err if any(bar is b for b in selected) else 0.0)
            a1.annotate(f"{bar.get_width():.1f}", (end, bar.get_y() + bar.get_height() / 2),
                        xytext=(2, 0), textcoords="offset points", va="center", fontsize=7)
    a1.axvline(100 * df["baseline_acc"].iloc[0], ls="--", color="0.3", lw=1, label="teacher")
    a1.set(xlabel="test accuracy after removal (%)", ylabel="", title="accuracy")
    a1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    d = df.assign(flops=100 * df["flops_pruned"], **{arm_col: df[arm_col].astype(str)})
    sns.barplot(data=d, y=arm_col, x="flops", order=order, ax=a2, orient="h", color="C2")
    ratio = float(str(df["target"].iloc[0]).split("=")[1])
    for bar, (_, r) in zip(a2.patches, d.set_index(arm_col).loc[order].reset_index().iterrows()):
        over = r["flops"] > 100 * ratio + tolerance_pts
        if not r["target_met"] or over:
            bar.set_hatch("//" if not r["target_met"] else "xx")
            bar.set_alpha(0.6)
        note = "" if r["target_met"] and not over else ": target missed" if not r["target_met"] else ": overshoots"
        a2.annotate(f" {bar.get_width():.2f}{note}", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                    va="center", fontsize=7)
    a2.axvline(100 * ratio, ls="--", color="C3", lw=1)
    a2.set(xlabel=f"FLOPs pruned (%); dashed: target {df['target'].iloc[0]}", ylabel="", title="FLOPs pruned")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
