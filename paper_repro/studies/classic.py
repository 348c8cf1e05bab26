"""Classic pipeline baselines (docs/method.md §8): train → score → prune → fine-tune WITH labels.

Three arms, on the ablation subject (resnet56 at FLOPs 0.60, the profile's cached baseline as the start):

- ``l1_uniform`` (Li et al. 2017, "Pruning Filters for Efficient ConvNets"): a channel's score is the L1 norm
  of its producer filters; every prunable group loses the same fraction of its channels, the smallest fraction
  (by bisection) whose pruned network meets the FLOPs target.
- ``l1_global``: the same scores, each layer's divided by that layer's mean score (L1 norms grow with the
  filter size, so raw norms are not comparable across layers); one threshold over all layers, the lowest
  that meets the target. Every group keeps at least its strongest channel.
- ``slimming`` (Liu et al. 2017, "Learning Efficient Convolutional Networks through Network Slimming"):
  cross-entropy training with an L1 penalty on the BN scale γ of the prunable channels, then one global
  threshold on |γ| (raw: γ is already on one scale everywhere), prune, fine-tune.

Then the dead channels are cut out (`surgery.prune_model`) and the pruned network is fine-tuned with
cross-entropy. Every arm gets the epoch budget of the method's ablation arm (`ablation.budget`): the
fine-tuning of the L1 arms uses all of it; slimming splits it, ceil(E/3) sparse-training epochs then the rest
fine-tuning (3 → 1 + 2), so both pipelines see the same number of labelled epochs.

Runs are cached by their settings in runs/classic/<arch>-<arm>-<target>-<profile>-s<seed>-<key>/
(config.json, sparse.pt / finetune.pt written atomically after every epoch, pruned_state.pt, summary.json):
an interrupted run resumes, a finished one is loaded.

Under torchrun (docs/distributed.md) every labelled phase is split as the baseline's is: each rank trains on its
slice of every global batch in DistributedDataParallel with synced BatchNorm (slimming's γ penalty is added to
the averaged gradients, the same on every rank); the scores, the masks and the cut are computed on every rank
from the same weights (checked); BN recalibration and evaluation see whole splits; only rank 0 writes.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import data as D
from ..allocation import Target, parse_target, pruned_ratio
from ..checks import check_choice, check_known
from ..config import check_profile, config_key, profile_settings, resolve_students
from ..counting import CostModel, count
from .. import distributed as DI
from ..engine import (RunFolder, epoch_loop, eval_batches, evaluate, make_optimizer, plain_loss, predicted_counts,
                     prepare_data, pruning_run_dir, recalibrate_bn_, restore_training, resume, save_epoch,
                     timed_epoch, train_batches, training_state)
from ..export import write_pruned_state
from ..ista import scaled_lambda
from ..paper import SUBJECT
from ..provenance import device_name, git_commit, resolve_device
from ..runlock import holds_run_locks
from ..sensitivity import smallest_mask
from ..surgery import logit_gap, mask_model, prune_model
from .ablation import budget
from .ablation import teacher as ablation_teacher

ARMS = ("l1_uniform", "l1_global", "slimming")
NORMALISERS = ("mean", "max", "none")

# [chosen] unless marked. The optimiser of every labelled phase after the teacher: SGD, momentum 0.9, wd 1e-4,
# lr 0.01 (the method's finetune_lr) x0.1 at 50% and 75% of the phase's epochs.
CLASSIC = dict(
    lr=0.01, momentum=0.9, weight_decay=1e-4, lr_milestones=[0.5, 0.75], lr_gamma=0.1,
    slim_lambda=1e-4,  # [Liu et al. 2017, CIFAR] at batch 64, lr 0.1, 50k images; rescaled to the run's steps x lr
    slim_share=1 / 3,  # fraction of the budget's epochs spent on sparse training (rounded up)
    global_normaliser="mean",
    # Diagnostic only (the arm itself fine-tunes the un-recalibrated cut network, as the classic recipe does):
    # accuracy right after the cut with BN statistics recomputed over this many of the arm's (augmented)
    # training batches, no labels; None: one pass. Without it a cut ResNet collapses onto a few classes (06).
    bn_recal_batches=None,
)
ARM_INFO = {
    "l1_uniform": dict(criterion="L1 of producer filters", allocation="uniform fraction per layer"),
    "l1_global": dict(criterion="L1 of producer filters", allocation="global threshold (score / layer mean)"),
    "slimming": dict(criterion="abs(BN γ) after L1-on-γ training", allocation="global threshold on abs(γ)"),
}


def check_arm(arm: str) -> str:
    check_choice("arm", arm, ARMS)
    return arm


# -- scores and masks ------------------------------------------------------------------------------------------
@torch.no_grad()
def l1_scores(model: nn.Module) -> list[torch.Tensor]:
    """Per channel group: Σ |w| over the producer filters of each channel (Li et al.)."""
    return [g.producer_sum(lambda m: m.weight.detach().abs()).float().cpu() for g in model.channel_groups()]


@torch.no_grad()
def bn_scores(model: nn.Module) -> list[torch.Tensor]:
    """Per channel group: |γ| of the first BN on the channel (network slimming)."""
    return [g.norms[0].weight.detach().abs().float().cpu() for g in model.channel_groups()]


def normalise(scores: list[torch.Tensor], how: str = "mean") -> list[torch.Tensor]:
    """Make scores comparable across layers: divide each layer's by its mean or max ("none": unchanged)."""
    check_choice("normaliser", how, NORMALISERS)
    if how == "none":
        return [s.clone() for s in scores]
    return [s / (s.mean() if how == "mean" else s.max()).clamp_min(1e-12) for s in scores]


def _ratio(cost_model: CostModel, dead, kind: str) -> float:
    return pruned_ratio(cost_model, [len(d) - int(d.sum()) for d in dead], kind)


def uniform_masks(scores, cost_model: CostModel, target) -> tuple[list[torch.Tensor], dict]:
    """The same fraction f of every group's channels removed (its lowest scores; at least one kept), with the
    smallest f whose network meets `target` (bisection; n_l = min(C_l − 1, ⌊f·C_l⌋)). When even one channel per
    group misses the target, every group keeps one channel and the caller reports target_met=False."""
    tgt = parse_target(target)
    widths = [len(s) for s in scores]

    def dead_at(f):
        return [smallest_mask(s, min(c - 1, int(math.floor(f * c + 1e-9)))) for s, c in zip(scores, widths)]

    lo, hi = 0.0, 1.0
    if _ratio(cost_model, dead_at(hi), tgt.kind) >= tgt.ratio:
        for _ in range(50):  # invariant: dead_at(hi) meets the target, dead_at(lo) does not (or lo = 0)
            mid = 0.5 * (lo + hi)
            if _ratio(cost_model, dead_at(mid), tgt.kind) >= tgt.ratio:
                hi = mid
            else:
                lo = mid
    dead = dead_at(hi)
    return dead, dict(fraction=hi, achieved=_ratio(cost_model, dead, tgt.kind))


def global_masks(scores, cost_model: CostModel, target) -> tuple[list[torch.Tensor], dict]:
    """One threshold over all layers: channels are removed in ascending score order (ties: layer, then index),
    skipping a group's last channel, until the network meets `target`. `threshold` is the last removed score
    (everything below it in a group that still has more than one channel is gone)."""
    tgt = parse_target(target)
    dead = [torch.zeros(len(s), dtype=torch.bool) for s in scores]
    order = sorted((float(v), l, c) for l, s in enumerate(scores) for c, v in enumerate(s.tolist()))
    alive = [len(s) for s in scores]
    threshold, achieved = float("nan"), 0.0
    for v, l, c in order:
        if achieved >= tgt.ratio:
            break
        if alive[l] == 1:
            continue
        dead[l][c], alive[l], threshold = True, alive[l] - 1, v
        achieved = pruned_ratio(cost_model, alive, tgt.kind)
    return dead, dict(threshold=threshold, achieved=achieved)


# -- labelled training ---------------------------------------------------------------------------------------
def bn_l1_subgradient_(norms, lam: float) -> None:
    """Network slimming's update: γ.grad += λ·sign(γ) on the given BNs (the subgradient of λ·Σ|γ|)."""
    if lam <= 0:
        return
    for bn in norms:
        if bn.weight.grad is not None:
            bn.weight.grad.add_(lam * torch.sign(bn.weight.detach()))


def _optimizer(model, cfg, epochs):
    """SGD with CLASSIC's step schedule over `epochs` (engine.make_optimizer; per-epoch, so no step count)."""
    return make_optimizer(model, dict(cfg, epochs=epochs, lr_schedule="multistep", nesterov=False), 0)


def train_labels(model, train_b: D.Batches, test_b: D.Batches, epochs: int, cfg: dict, dev, state_path: Path,
                 seed: int, phase: str, slim_lambda: float = 0.0, extra: dict | None = None,
                 stop_after: int | None = None, time_budget_s: float | None = None,
                 progress: bool = False, desc: str | None = None) -> tuple[list, float]:
    """Cross-entropy training for `epochs` (+ slimming's γ penalty on the prunable BNs when slim_lambda > 0).

    Resumable: model, optimiser, scheduler and metrics go to `state_path` after every epoch; a finished state
    is loaded without training. `stop_after`, `time_budget_s`: leave after that many epochs, or before one would
    overrun that many seconds (a later call resumes). `progress`: a bar over the epochs, named `desc` (default:
    the phase). Returns (metrics, seconds)."""
    opt, sched = _optimizer(model, cfg, epochs)
    norms = [bn for g in model.channel_groups() for bn in g.norms]
    net = DI.wrap(model, dev)  # torchrun: DistributedDataParallel and synced BatchNorm; else `model` itself
    start, metrics, seconds = 0, [], 0.0
    expect = {"phase": phase, "config_key": cfg["config_key"], **(extra or {})}
    st = resume(state_path, expect, restore_training(model, opt, sched, state_path))
    if st is not None:
        start, metrics, seconds = st["epoch"], st["metrics"], st["seconds"]
    for epoch, _ in epoch_loop(start, epochs, desc or phase, progress, max_epochs_now=stop_after,
                               time_budget_s=time_budget_s, metrics=metrics):
        torch.manual_seed(seed * 1000 + epoch + (0 if phase == "sparse" else 500))
        lr, loss_sum, _, n, dt = timed_epoch(net, train_b.set_epoch(epoch + (0 if phase == "sparse" else 1000)),
                                             opt, sched, plain_loss, dev,
                                             after_backward=lambda: bn_l1_subgradient_(norms, slim_lambda))
        loss_sum, n = DI.sum_over_ranks(loss_sum, n)  # torchrun: the global batch's sums
        seconds += dt
        # test accuracy at the phase's end only: per-epoch evaluation would cost ~10 % of a cpu-profile arm
        acc = evaluate(model, test_b, dev)[1] if epoch + 1 == epochs else float("nan")
        gamma = torch.cat([bn.weight.detach().abs().flatten() for bn in norms]).mean().item()
        metrics.append(dict(phase=phase, epoch=epoch + 1, lr=lr, train_loss=loss_sum.item() / n, test_acc=acc,
                            mean_abs_gamma=gamma, epoch_seconds=dt))
        save_epoch(state_path, dict(expect, epoch=epoch + 1, **training_state(model, opt, sched), metrics=metrics,
                                    seconds=seconds))
    DI.plain_batchnorm_(model)  # the network leaves as it came: plain BatchNorm2d (it is cut and saved next)
    return metrics, seconds


# -- one arm -------------------------------------------------------------------------------------------------
def resolve_classic(arm: str, profile: str = "cpu", seed: int = 0, target=None, arch: str | None = None,
                    width: float | None = None, **overrides) -> dict:
    """Flat settings of one classic arm; epochs and train_subset come from `ablation.budget(profile)`. `width`:
    the network's (default: the profile's; another one for a teacher of another width)."""
    check_arm(arm)
    check_profile(profile)
    arch = arch or SUBJECT["arch"]
    baseline = resolve_students(arch, profile, seed, width=width)
    b = budget(profile)
    cfg = dict(CLASSIC, **profile_settings("classic", profile, arch), epochs=b.get("epochs", baseline["epochs"]),
               train_subset=b.get("train_subset", baseline["train_subset"]))
    check_known(overrides, cfg)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    if not (isinstance(cfg["epochs"], int) and cfg["epochs"] >= 1):
        raise ValueError(f"epochs: must be a positive integer, got {cfg['epochs']!r}")
    if not (0 < cfg["slim_share"] <= 1):
        raise ValueError(f"slim_share: must be in (0, 1], got {cfg['slim_share']!r}")
    for k in ("lr", "slim_lambda"):
        if not (isinstance(cfg[k], (int, float)) and cfg[k] >= 0):
            raise ValueError(f"{k}: must be a number >= 0, got {cfg[k]!r}")
    normalise([], cfg["global_normaliser"])  # validates the name
    sparse = min(cfg["epochs"], math.ceil(cfg["epochs"] * cfg["slim_share"])) if arm == "slimming" else 0
    cfg.update(arch=arch, arm=arm, profile=profile, seed=seed, target=str(parse_target(target or SUBJECT["target"])),
               sparse_epochs=sparse, finetune_epochs=cfg["epochs"] - sparse,
               baseline=baseline, batch_size=baseline["batch_size"])
    return dict(sorted(cfg.items()))


# What a classic arm uses of its `baseline` block (the students' settings of the profile): the data, the batches,
# the network. Its recipe (lr, epochs, schedule, training images) is CLASSIC's and the arm's own, at the top level.
BASELINE_USED = ("arch", "batch_size", "channels_last", "dataset", "num_classes", "seed", "test_subset", "width")


def recorded_settings(cfg: dict) -> dict:
    """The settings config.json records: `cfg` with its `baseline` block cut to what the arm uses (`BASELINE_USED`),
    so that the record says only what the run used. The cache key still hashes the whole resolved `cfg` (keys of
    committed arms unchanged)."""
    b = cfg["baseline"]
    return dict(cfg, baseline={k: b[k] for k in BASELINE_USED if k in b})


@dataclass
class ClassicRun:
    config: dict
    summary: dict
    run_dir: Path
    model: nn.Module | None  # the fine-tuned pruned network (None when loaded from a finished run's summary)


@holds_run_locks
def run_classic(arm: str, profile: str = "cpu", seed: int = 0, device: str = "auto", teacher_run=None,
                target=None, data_dir=None, download: bool = True, time_budget_s: float | None = None,
                out=None, progress: bool = False, **overrides) -> ClassicRun:
    """Teacher (cached baseline) → [slimming: sparse training] → score → prune → fine-tune with labels.
    `time_budget_s`: stop between epochs before that many seconds (the summary is then empty; a later call
    resumes the phase from its state file). `out`: the run folder (default runs/classic/...). `progress`: a bar
    over each training phase's epochs."""
    t_call = time.perf_counter()
    cfg = resolve_classic(arm, profile, seed, target, **overrides)
    tgt: Target = parse_target(cfg["target"])
    dev = DI.local_device(resolve_device(device))  # under torchrun on GPUs: cuda:LOCAL_RANK
    b = cfg["baseline"]
    teacher_run = teacher_run or ablation_teacher(profile, seed, device, arch=cfg["arch"])
    cfg["teacher_config_key"] = config_key(teacher_run.config)
    key = config_key({k: v for k, v in cfg.items() if k != "config_key"})
    cfg["config_key"] = key
    run = RunFolder(pruning_run_dir("classic", cfg, key, tgt, out, arm=arm), key, recorded_settings(cfg),
                    {"arch": cfg["arch"], "config_key": key})
    rdir, summary = run.path, run.summary()
    if DI.from_main(summary.get("config_key") == key):  # torchrun: rank 0's answer holds for every rank
        return ClassicRun(cfg, summary, rdir, None)

    ds, train_split, test_split = prepare_data(dict(b, train_subset=cfg["train_subset"]), dev, data_dir, download)
    train_b = train_batches(train_split, b, seed + 23)  # whole batches: BN recalibration, and the step count
    shard_b = train_batches(train_split, b, seed + 23, shard=DI.shard())  # torchrun: this rank's slices
    test_b = eval_batches(test_split, b)
    run.lock()  # one writer (a finished run was served above, without the lock)
    run.write_settings(**ds.stamp())

    teacher = teacher_run.model.to(dev).eval()
    model = copy.deepcopy(teacher)
    for p in model.parameters():
        p.requires_grad_(True)
    cost_model = CostModel(model)
    steps_x_lr = len(train_b) * cfg["lr"]
    lam = scaled_lambda(cfg["slim_lambda"], b["batch_size"], cfg["lr"], len(train_b) * b["batch_size"]) \
        if arm == "slimming" else 0.0
    metrics, seconds = [], 0.0
    acc_sparse = float("nan")
    def left():
        return None if time_budget_s is None else time_budget_s - (time.perf_counter() - t_call)

    if cfg["sparse_epochs"]:
        m, s = train_labels(model, shard_b, test_b, cfg["sparse_epochs"], cfg, dev, rdir / "sparse.pt", seed,
                            "sparse", slim_lambda=lam, time_budget_s=left(), progress=progress,
                            desc=f"{cfg['arch']} {arm} sparse")
        if len(m) < cfg["sparse_epochs"]:
            return ClassicRun(cfg, {}, rdir, None)
        metrics, seconds, acc_sparse = metrics + m, seconds + s, m[-1]["test_acc"]
    model.eval()

    if arm == "slimming":
        scores = bn_scores(model)
        dead, info = global_masks(scores, cost_model, tgt)
    elif arm == "l1_global":
        dead, info = global_masks(normalise(l1_scores(model), cfg["global_normaliser"]), cost_model, tgt)
    else:
        dead, info = uniform_masks(l1_scores(model), cost_model, tgt)
    DI.check_same([d.tolist() for d in dead], "the pruned channels")  # torchrun: one cut on every rank
    masked = mask_model(model, dead).eval()
    pruned = prune_model(masked, dead).eval()
    held = next(iter(test_b))[0][:64]
    gap = logit_gap(pruned, masked, held)
    _, acc_pruned = evaluate(pruned, test_b, dev)
    nc = b["num_classes"]
    predicted_cut = predicted_counts(pruned, test_b, nc)
    recal = recalibrate_bn_(copy.deepcopy(pruned), train_b.set_epoch(20_000), cfg["bn_recal_batches"])
    _, acc_recal = evaluate(recal, test_b, dev)
    predicted_recal = predicted_counts(recal, test_b, nc)
    del recal
    widths = [int(w) for w in pruned.widths()]
    for p in pruned.parameters():
        p.requires_grad_(True)
    if cfg["finetune_epochs"]:
        m, s = train_labels(pruned, shard_b, test_b, cfg["finetune_epochs"], cfg, dev, rdir / "finetune.pt", seed,
                            "finetune", extra={"widths": widths}, time_budget_s=left(), progress=progress,
                            desc=f"{cfg['arch']} {arm} fine-tune")
        if len(m) < cfg["finetune_epochs"]:
            return ClassicRun(cfg, {}, rdir, None)
        metrics, seconds = metrics + m, seconds + s
    pruned.eval()
    _, acc_final = evaluate(pruned, test_b, dev)
    before, after = count(teacher), count(pruned)
    if DI.is_main():
        write_pruned_state(rdir, cfg["arch"], b["num_classes"], b["width"], widths,
                           {k: v.detach().cpu() for k, v in pruned.state_dict().items()})
    flops_pruned = 1 - after["macs"] / before["macs"]
    params_pruned = 1 - after["params"] / before["params"]
    summary = dict(
        arm=arm, **ARM_INFO[arm], label_use="labels", config_key=key, arch=cfg["arch"], target=cfg["target"],
        profile=profile, seed=seed, sparse_epochs=cfg["sparse_epochs"], finetune_epochs=cfg["finetune_epochs"],
        epochs=cfg["epochs"], train_images=cfg["train_subset"] or "all", lr=cfg["lr"],
        slim_lambda_effective=lam, baseline_acc=teacher_run.test_acc, acc_sparse_trained=acc_sparse,
        acc_before_finetune=acc_pruned, acc_bn_recalibrated=acc_recal, final_acc=acc_final,
        predicted_before_finetune=predicted_cut, predicted_bn_recalibrated=predicted_recal,
        test_class_counts=torch.bincount(test_split.y.cpu(), minlength=nc).tolist(), params_before=before["params"],
        params_after=after["params"], macs_before=before["macs"], macs_after=after["macs"],
        params_pruned=params_pruned, flops_pruned=flops_pruned, target_met=tgt.met(params_pruned, flops_pruned),
        uniform_fraction=info.get("fraction", float("nan")), global_threshold=info.get("threshold", float("nan")),
        max_abs_logit_diff=gap, widths=widths, full_widths=cost_model.widths, train_seconds=seconds,
        lr_steps=steps_x_lr, metrics=metrics, device=device_name(dev), commit=git_commit(), **ds.stamp(),
    )
    run.write_summary(summary)
    DI.barrier()  # torchrun: the run is finished for every rank once rank 0 has written it
    return ClassicRun(cfg, summary, rdir, pruned)


ROW_KEYS = ("arm", "label_use", "criterion", "allocation", "sparse_epochs", "finetune_epochs", "epochs",
            "train_images", "target", "baseline_acc", "acc_before_finetune", "acc_bn_recalibrated", "final_acc",
            "params_pruned",
            "flops_pruned", "target_met", "max_abs_logit_diff", "train_seconds", "device", "dataset",
            "dataset_official", "dataset_fingerprint")


def classic_row(run: ClassicRun) -> dict:
    """One table row of a classic arm (a missed target is a row with target_met=False)."""
    return {k: run.summary[k] for k in ROW_KEYS}


def method_row(arm_row: dict, arm: str = "ours (label-free, no fine-tuning)") -> dict:
    """`ablation.arm_row` of our method, in the columns of `classic_row`."""
    return dict(arm=arm, label_use="none", criterion="Taylor (dynamic, ISTA)",
                allocation="global FLOPs allocation, re-solved per epoch", sparse_epochs=arm_row["epochs"],
                finetune_epochs=arm_row["finetune_epochs"], epochs=arm_row["epochs"] + arm_row["finetune_epochs"],
                train_images=arm_row["train_images"], target=arm_row["target"], baseline_acc=arm_row["baseline_acc"],
                acc_before_finetune=arm_row["best_acc"], acc_bn_recalibrated=float("nan"),
                final_acc=arm_row["best_acc"],
                params_pruned=arm_row["params_pruned"], flops_pruned=arm_row["flops_pruned"],
                target_met=arm_row["target_met"], max_abs_logit_diff=float("nan"),
                train_seconds=arm_row["seconds_per_epoch"] * arm_row["epochs"], device=arm_row["device"],
                **{k: arm_row[k] for k in ("dataset", "dataset_official", "dataset_fingerprint")})
