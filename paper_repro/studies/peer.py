"""A peer method from a public library: Torch-Pruning (DepGraph), beside ours on the same subject and budget.

Torch-Pruning's sparse-training recipe (`GroupNormPruner`): train the network with cross-entropy and, after
every backward, add a group-norm penalty gradient to every prunable channel group (weighted by 2^α·(max−imp)
/ (max−min) so that unimportant groups shrink fastest); then prune globally until the MACs target is reached (TP's
own steps, or one ranking of its importance cut exactly at the target: `landing`); then (in the library's recipe)
fine-tune with labels (`finetune_epochs`). Here, in notebook 07:

- same teacher (the profile's cached baseline, which the TP network starts from), same data path and
  augmentation (`data.Batches`, the batches our student 0 sees), same optimiser schedule (the profile's SGD,
  lr, momentum, weight decay, milestones), same epochs and training images (`ablation.budget`), same target
  counted by our `counting` (fvcore / CostModel), and **no fine-tuning** (ours has none either; the paper-width
  peer of reproduction/paper_width.py fine-tunes, as the library's recipe does);
- the same search space as ours: only the inner channel of each residual block (conv1 out / bn1 / conv2 in).
  The stem, every block's conv2 (the stage width, tied across the stage by the additions and the parameter-free
  option-A shortcut) and the classifier are TP `ignored_layers`;
- importance: TP's `GroupMagnitudeImportance(p=2)` or `GroupTaylorImportance()`, both with the library
  defaults (mean over the group's layers, normalised by the group mean), used both in the penalty and in the
  pruning ranking. Taylor needs gradients at pruning time: they are accumulated over `taylor_batches` training
  batches (eval mode) of the arm's own loss, as the library's benchmark does;
- loss: "ce" (labels, the library's recipe) or "kd" (label-free: τ²·KL to the teacher at τ = 4, our KD term
  alone) to separate "labels vs none" from "their sparsity vs ours".

[chosen] The penalty coefficient. TP's CIFAR recipe is reg = 5e-4 over 100 epochs of 390 steps at lr 0.01
(×0.1 at epochs 60 and 80). Its shrinkage accumulates as Σ_steps lr·reg, which a 3-epoch budget would cut
~40×, leaving the network unsparsified. With `reg_scaling` the coefficient is set so that Σ lr·reg over this
run equals the recipe's (the same idea as our λ scaling, `ista.scaled_lambda`); `reg_effective` is recorded.

Runs are cached by their settings in runs/peer/<arch>-<kind><ratio>-<profile>-s<seed>-<key>/ (config.json,
metrics.csv, state.pt after every epoch, pruned_state.pt, summary.json) and resume when interrupted.

Under torchrun (docs/distributed.md) the sparse training is split as the baseline's is (each rank its slice of
every global batch, DistributedDataParallel, synced BatchNorm); TP's penalty is added to the averaged gradients,
the same on every rank. The Taylor gradients for the ranking are those of whole batches on every rank, so every
rank prunes the same channels (checked); only rank 0 writes.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..allocation import parse_target
from ..checks import check_choice, check_known
from ..config import check_profile, config_key, resolve_baseline, resolve_students
from ..counting import CostModel, count
from .. import distributed as DI
from ..engine import (RunFolder, autocast, checked_target, epoch_loop, eval_batches, evaluate, make_optimizer,
                     milestone_epochs, prepare_data, pruning_run_dir, restore_training, timed_epoch, train_batches,
                     training_state)
from ..export import write_pruned_state
from ..losses import kd_loss
from ..method import prune_train
from ..models import build_model
from ..paper import SUBJECT
from ..provenance import device_name, git_commit
from ..runlock import holds_run_locks
from ..storage import TEACHER_REMEDY, load_checkpoint, load_state, repo_path
from ..surgery import logit_gap
from ..train import BaselineRun, load_teacher, train_baseline
from . import ablation
from .classic import CLASSIC, train_labels

IMPORTANCES = ("magnitude", "taylor")
LOSSES = ("ce", "kd")
ARCHS = ("resnet20", "resnet32", "resnet56", "resnet110")  # the CIFAR ResNets: their prunable groups are known

# TP's CIFAR sparse-learning recipe (benchmarks/main.py and its scripts, resnet56 group_sl / group_norm).
TP_RECIPE = dict(reg=5e-4, epochs=100, batch_size=128, train_images=50_000, lr=0.01, milestones=(60, 80), gamma=0.1)

# [chosen] unless marked.
PEER = dict(
    importance="taylor", loss="ce",
    reg=TP_RECIPE["reg"],  # [TP] before scaling
    reg_scaling=True,
    alpha=4,  # [TP] the penalty weight spans [2^0, 2^alpha]
    # How the pruned network lands at the target. "exact" [chosen]: TP's importance of every group, one global
    # ranking, channels removed in order until our count meets the target, then TP's own cut (`exact_cut`).
    # "tp_steps" [TP]: the library's global steps until the target; a step removes every channel tied at its
    # threshold, and after sparse training many groups are exactly 0: one Taylor step went from 0% to 80.9%.
    landing="exact",
    iterative_steps=400,  # [TP] pruning_ratio 1.0 in 400 steps: 0.25% of the channels per step until the target
    max_pruning_ratio=1.0,  # [TP] default; a layer keeps at least one channel whatever this is
    taylor_batches=10,
    kd_temperature=4.0,  # as our KD term
    epochs=None,  # None: the profile's method epochs are not used; give the budget's (ablation.budget)
    # Fine-tuning with labels after the cut [TP's recipe], by the classic pipelines' optimiser (classic.CLASSIC:
    # lr 0.01, x0.1 at 50% and 75%); 0: none (notebook 07 compares with ours, which has none either).
    finetune_epochs=0,
)
LANDINGS = ("exact", "tp_steps")


def resolve_peer(arch: str, target, profile: str = "cpu", seed: int = 0, **overrides) -> dict:
    """Flat settings of one Torch-Pruning arm (+ the data/optimiser settings under 'baseline')."""
    check_profile(profile)
    if arch not in ARCHS:
        raise ValueError(f"arch: the peer comparison supports {', '.join(ARCHS)}, got {arch!r}")
    base_keys = set(resolve_baseline(arch, profile, seed)) - {"arch", "profile", "seed"}
    check_known(overrides, set(PEER) | base_keys)
    baseline = resolve_students(arch, profile, seed,
                                **{k: v for k, v in overrides.items() if k in base_keys and k != "epochs"})
    cfg = dict(PEER)
    cfg.update({k: v for k, v in overrides.items() if k in PEER and v is not None})
    if cfg["epochs"] is None:
        cfg["epochs"] = baseline["epochs"]
    check_choice("importance", cfg["importance"], IMPORTANCES)
    check_choice("loss", cfg["loss"], LOSSES)
    check_choice("reg_scaling", cfg["reg_scaling"], (True, False))
    check_choice("landing", cfg["landing"], LANDINGS)
    if not (isinstance(cfg["finetune_epochs"], int) and not isinstance(cfg["finetune_epochs"], bool)
            and cfg["finetune_epochs"] >= 0):
        raise ValueError(f"finetune_epochs: must be an integer >= 0, got {cfg['finetune_epochs']!r}")
    for k in ("epochs", "iterative_steps", "taylor_batches"):
        if not (isinstance(cfg[k], int) and not isinstance(cfg[k], bool) and cfg[k] >= 1):
            raise ValueError(f"{k}: must be an integer >= 1, got {cfg[k]!r}")
    for k in ("reg", "alpha", "kd_temperature"):
        if not (isinstance(cfg[k], (int, float)) and not isinstance(cfg[k], bool) and cfg[k] >= 0):
            raise ValueError(f"{k}: must be a number >= 0, got {cfg[k]!r}")
    if not (isinstance(cfg["max_pruning_ratio"], (int, float)) and 0 < cfg["max_pruning_ratio"] <= 1):
        raise ValueError(f"max_pruning_ratio: must be a number in (0, 1], got {cfg['max_pruning_ratio']!r}")
    cfg.update(arch=arch, profile=profile, seed=seed, target=str(parse_target(target)), baseline=baseline)
    return dict(sorted(cfg.items()))


def lr_sum(lr: float, epochs: int, milestones, gamma: float, steps_per_epoch: int) -> float:
    """Σ over every SGD step of the learning rate, for a MultiStepLR schedule (milestones in epochs)."""
    return steps_per_epoch * sum(lr * gamma ** sum(e >= m for m in milestones) for e in range(epochs))


def scaled_reg(reg_ref: float, baseline: dict, epochs: int, steps_per_epoch: int) -> float:
    """The reg that gives this run TP's recipe shrinkage Σ lr·reg (see the module docstring)."""
    r = TP_RECIPE
    ref = reg_ref * lr_sum(r["lr"], r["epochs"], r["milestones"], r["gamma"], r["train_images"] // r["batch_size"])
    milestones = milestone_epochs(baseline["lr_milestones"], epochs)  # as engine.make_optimizer
    ours = lr_sum(baseline["lr"], epochs, milestones, baseline["lr_gamma"], steps_per_epoch)
    return ref / ours


def ignored_layers(model) -> list:
    """Everything but the blocks' inner channels: the stem, every block's conv2 and the classifier."""
    return [model.conv1, model.fc] + [b.conv2 for b in model.blocks()]


def make_pruner(model, cfg: dict, reg: float, example):
    """TP's GroupNormPruner on `model`: global pruning, ratio 1.0 reached in `iterative_steps` steps."""
    import torch_pruning as tp

    imp = tp.importance.GroupMagnitudeImportance(p=2) if cfg["importance"] == "magnitude" \
        else tp.importance.GroupTaylorImportance()
    return tp.pruner.GroupNormPruner(model, example, importance=imp, reg=reg, alpha=cfg["alpha"],
                                     global_pruning=True, pruning_ratio=1.0,
                                     max_pruning_ratio=cfg["max_pruning_ratio"],
                                     iterative_steps=cfg["iterative_steps"], ignored_layers=ignored_layers(model))


def _loss(cfg, model, teacher, x, y):
    with autocast(x.device):
        out = model(x).float()
        if cfg["loss"] == "ce":
            return F.cross_entropy(out, y), out
        with torch.no_grad():
            t = teacher(x).float()
        return kd_loss(out, t, cfg["kd_temperature"], "kl"), out


def achieved(cost_model: CostModel, widths) -> tuple[float, float]:
    """(params pruned, FLOPs pruned) of a network with these inner widths, by our analytic count."""
    p, f = cost_model.cost(widths)
    p0, f0 = cost_model.full()
    return 1 - p / p0, 1 - f / f0


def prune_to_target(model, pruner, cost_model: CostModel, tgt) -> tuple[int, bool]:
    """TP's progressive pruning: pruner.step() until our count says the target is met, or TP's schedule is
    spent (ratio 1.0 after `iterative_steps` steps; layers stop at one channel, or at max_pruning_ratio).
    Returns (steps taken, target met)."""
    steps = 0
    while True:
        pp, fp = achieved(cost_model, model.widths())
        if tgt.met(pp, fp):
            return steps, True
        if pruner.current_step >= pruner.iterative_steps:
            return steps, False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pruner.step()
        steps += 1


def exact_cut(model, pruner, cost_model: CostModel, tgt, max_ratio: float = 1.0) -> tuple[int, bool]:
    """TP's importance of every prunable group (`pruner.estimate_importance`), one global ranking (ascending; ties
    by block, then channel), channels taken in that order, a block keeping its last channel and at least
    1 − `max_ratio` of its channels (TP's max_pruning_ratio), until our count meets the target; then TP cuts them
    (`manual_prune_width`). Lands within one channel of the target. Returns (channels cut, target met)."""
    import torch_pruning as tp

    blocks = {id(b.conv1): l for l, b in enumerate(model.blocks())}
    imps = [None] * len(blocks)
    for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                          root_module_types=pruner.root_module_types):
        root = group[0].dep.target.module
        if id(root) in blocks and pruner.DG.is_out_channel_pruning_fn(group[0].dep.handler):
            imps[blocks[id(root)]] = pruner.estimate_importance(group).detach().float().cpu()
    missing = [l for l, v in enumerate(imps) if v is None]
    if missing:
        raise RuntimeError(f"Torch-Pruning gave no importance for blocks {missing}: its groups no longer match "
                           "the blocks' inner channels")
    alive = [len(v) for v in imps]
    floor = [max(1, len(v) - int(math.floor(max_ratio * len(v) + 1e-9))) for v in imps]
    dead = [[] for _ in imps]
    met = tgt.met(*achieved(cost_model, alive))
    for _, l, c in sorted((float(v), l, c) for l, imp in enumerate(imps) for c, v in enumerate(imp.tolist())):
        if met:
            break
        if alive[l] <= floor[l]:
            continue
        dead[l].append(c)
        alive[l] -= 1
        met = tgt.met(*achieved(cost_model, alive))
    for l, b in enumerate(model.blocks()):
        if dead[l]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pruner.manual_prune_width(b.conv1, tp.prune_conv_out_channels, dead[l])
    return sum(map(len, dead)), met


@dataclass
class PeerRun:
    config: dict
    model: torch.nn.Module  # the TP-pruned network (a CifarResNet with smaller inner widths), eval mode
    summary: dict
    metrics: list[dict]
    run_dir: Path
    loaded: bool  # True when everything came from the cache (nothing trained or pruned in this call)


@holds_run_locks
def peer_train(arch: str, target, profile: str = "cpu", seed: int = 0, device: str = "auto", teacher=None,
               out=None, data_dir=None, download: bool = True, progress: bool = True,
               max_epochs_now: int | None = None, time_budget_s: float | None = None, **overrides) -> PeerRun:
    """Teacher → TP group-norm sparse training (`epochs`) → TP global pruning to the target (`landing`) →
    fine-tuning with labels (`finetune_epochs`; 0: none).

    `teacher`: a baseline checkpoint.pt, or a loaded `train.BaselineRun` (recorded by its settings); default: the
    profile's cached baseline, trained if missing. `max_epochs_now`, `time_budget_s`: stop between epochs (of
    either phase); a later call resumes."""
    cfg = resolve_peer(arch, target, profile, seed, **overrides)
    tgt, dev, b, cost_model = checked_target(arch, cfg, device)
    dev = DI.local_device(dev)  # under torchrun on GPUs: cuda:LOCAL_RANK
    remedy = None if teacher is None else TEACHER_REMEDY  # a given teacher is the user's file: never "delete it"
    if teacher is None:
        teacher = train_baseline(arch, profile, seed, device=device, data_dir=data_dir, download=download,
                                 progress=progress).checkpoint
    if isinstance(teacher, BaselineRun):
        if (teacher.config["arch"], teacher.config["width"]) != (arch, b["width"]):
            raise ValueError(f"teacher: a {teacher.config['arch']} at width {teacher.config['width']}, the run is "
                             f"{arch} at width {b['width']}")
        t_model, baseline_acc, t_cfg = teacher.model, teacher.test_acc, teacher.config
        t_key, teacher = config_key(t_cfg), teacher.checkpoint
    else:
        t_model, baseline_acc, t_cfg, t_key = load_teacher(teacher, arch, b, remedy)
    cfg["teacher_config_key"] = t_key  # what the teacher is, not where it lies: a clone elsewhere shares the cache
    key = config_key(cfg, exclude=("profile",))
    run = RunFolder(pruning_run_dir("peer", cfg, key, tgt, out), key, cfg, {"arch": arch, "config_key": key})
    rdir = run.path
    ds, train_split, test_split = prepare_data(b, dev, data_dir, download)
    train_b = train_batches(train_split, b, seed + 17)  # seed + 17: the stream of batches our student 0 sees
    shard_b = train_batches(train_split, b, seed + 17, shard=DI.shard())  # torchrun: this rank's slices
    test_b = eval_batches(test_split, b)
    reg = scaled_reg(cfg["reg"], b, cfg["epochs"], len(train_b)) if cfg["reg_scaling"] else cfg["reg"]

    pruned_path = rdir / "pruned_state.pt"
    if DI.from_main(run.summary_path.exists() and pruned_path.exists()):  # torchrun: rank 0's answer for every rank
        ck = load_checkpoint(pruned_path, expect={"arch": arch, "config_key": key})
        model = build_model(arch, b["num_classes"], width=b["width"], widths=ck["widths"])
        load_state(model, ck["state_dict"], pruned_path)
        return PeerRun(cfg, model.to(dev).eval(), run.summary(), ck["metrics"], rdir, True)

    run.lock()  # one writer (a finished run was served above, without the lock)
    t_model = t_model.to(dev).eval()
    for p in t_model.parameters():
        p.requires_grad_(False)
    model = copy.deepcopy(t_model).train()
    for p in model.parameters():
        p.requires_grad_(True)
    example = next(iter(test_b))[0][:1]
    opt, sched = make_optimizer(model, dict(b, epochs=cfg["epochs"]), len(train_b))
    start, metrics, seconds = 0, [], 0.0
    st = run.resume(restore_training(model, opt, sched, run.state_path))
    if st is not None:
        start, metrics, seconds = st["epoch"], st["metrics"], st["seconds"]
    pruner = make_pruner(model, cfg, reg, example)  # after loading: its graph holds the model's modules
    where = repo_path(teacher)  # a record names a file relative to the checkout, or not at all (never absolute)
    run.write_settings(reg_effective=reg, teacher_config=t_cfg, **ds.stamp(),
                       **({"teacher_checkpoint": where} if where is not None else {}))
    net = DI.wrap(model, dev)  # torchrun: DistributedDataParallel and synced BatchNorm; else `model` itself

    for epoch, bar in epoch_loop(start, cfg["epochs"], f"{arch} TP {cfg['importance']}", progress, max_epochs_now,
                                 time_budget_s, metrics):
        torch.manual_seed(seed * 1000 + epoch + 11)
        lr, loss_sum, correct, n, dt = timed_epoch(
            net, shard_b.set_epoch(epoch), opt, sched, lambda m, x, y: _loss(cfg, m, t_model, x, y), dev,
            after_backward=lambda: pruner.regularize(model, alpha=2 ** cfg["alpha"]))  # TP: group penalty on grads
        loss_sum, correct, n = DI.sum_over_ranks(loss_sum, correct, n)  # torchrun: the global batch's sums
        seconds += dt
        _, acc = evaluate(model, test_b, dev)
        metrics.append(dict(epoch=epoch + 1, lr=lr, train_loss=loss_sum.item() / n, train_acc=correct.item() / n,
                            test_acc=acc, epoch_seconds=dt))
        bar.set_postfix(acc=f"{acc:.3f}")
        run.save_epoch(dict(arch=arch, config_key=key, epoch=epoch + 1, **training_state(model, opt, sched),
                            metrics=metrics, seconds=seconds), metrics=metrics)
    DI.plain_batchnorm_(model)  # TP prunes plain BatchNorm2d layers
    if not metrics or metrics[-1]["epoch"] < cfg["epochs"]:  # stopped early (max_epochs_now): resume later
        return PeerRun(cfg, model.eval(), {}, metrics, rdir, False)
    left = None if time_budget_s is None else time_budget_s - sum(m["epoch_seconds"] for m in metrics[start:])
    summary, model, metrics = _prune_and_measure(cfg, tgt, run, model, pruner, t_model, train_b, shard_b, test_b,
                                                 cost_model, dev, baseline_acc, ds, seconds, metrics, reg, left,
                                                 progress)
    return PeerRun(cfg, model, summary, metrics, rdir, False)  # every epoch: sparse, then fine-tuning


def _prune_and_measure(cfg, tgt, run: RunFolder, model, pruner, t_model, train_b, shard_b, test_b, cost_model, dev,
                       baseline_acc, ds, seconds, metrics, reg, time_budget_s=None, progress: bool = False):
    """Cut the sparse-trained model to the target, fine-tune it (TP's recipe), measure: (summary, model, every
    epoch's metrics, the sparse ones then the fine-tuning ones); the summary is {} while the budget stopped it."""
    b, key, rdir = cfg["baseline"], run.key, run.path
    before = count(t_model)
    _, acc_trained = evaluate(model, test_b, dev)
    model.eval()
    if cfg["importance"] == "taylor":  # gradients for the Taylor ranking: the arm's own loss, no update
        model.zero_grad(set_to_none=True)
        for i, (x, y) in enumerate(train_b.set_epoch(10_000)):
            if i >= cfg["taylor_batches"]:
                break
            _loss(cfg, model, t_model, x, y)[0].backward()
    t0 = time.perf_counter()
    if cfg["landing"] == "exact":
        steps, met = exact_cut(model, pruner, cost_model, tgt, cfg["max_pruning_ratio"])
    else:
        steps, met = prune_to_target(model, pruner, cost_model, tgt)
    prune_seconds = time.perf_counter() - t0
    DI.check_same(model.widths(), "the pruned widths")  # torchrun: one pruned network on every rank
    model.zero_grad(set_to_none=True)
    model = model.eval()
    _, acc_pruned = evaluate(model, test_b, dev)
    acc_cut = acc_pruned
    if cfg["finetune_epochs"]:  # TP's recipe: fine-tune the cut network with labels (resumable, classic's loop)
        for p in model.parameters():
            p.requires_grad_(True)
        ft_cfg = dict(CLASSIC, batch_size=b["batch_size"], config_key=key)
        ft, ft_seconds = train_labels(model, shard_b, test_b, cfg["finetune_epochs"], ft_cfg, dev,
                                      rdir / "finetune.pt", cfg["seed"], "finetune",
                                      extra={"widths": [int(w) for w in model.widths()]},
                                      time_budget_s=time_budget_s, progress=progress,
                                      desc=f"{b['arch']} TP fine-tune")
        if len(ft) < cfg["finetune_epochs"]:  # stopped by the budget: the next call resumes the fine-tuning
            return {}, model.eval(), metrics
        seconds += ft_seconds
        metrics = metrics + ft
        model = model.eval()
        _, acc_pruned = evaluate(model, test_b, dev)
    after = count(model)
    widths = [int(w) for w in model.widths()]
    # The TP-pruned module is a plain CifarResNet with smaller inner widths: rebuild it from (widths, weights)
    # alone and check it computes the same logits (float64, CPU).
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    rebuilt = build_model(cfg["arch"], b["num_classes"], width=b["width"], widths=widths)
    load_state(rebuilt, state, rdir / "pruned_state.pt")
    held = next(iter(test_b))[0][:64]
    diff = logit_gap(model, rebuilt, held)
    pp, fp = achieved(cost_model, widths)
    summary = dict(
        arch=cfg["arch"], target=cfg["target"], profile=cfg["profile"], seed=cfg["seed"], **ds.stamp(),
        device=device_name(dev), commit=git_commit(), importance=cfg["importance"], loss=cfg["loss"],
        epochs=cfg["epochs"], finetune_epochs=cfg["finetune_epochs"], train_images=b["train_subset"] or "all",
        baseline_acc=baseline_acc, trained_acc=acc_trained, acc_before_finetune=acc_cut, pruned_acc=acc_pruned,
        landing=cfg["landing"],
        params_before=before["params"], params_after=after["params"], macs_before=before["macs"],
        macs_after=after["macs"], params_pruned=1 - after["params"] / before["params"],
        flops_pruned=1 - after["macs"] / before["macs"], params_pruned_analytic=pp, flops_pruned_analytic=fp,
        target_met=bool(met), pruning_steps=steps if cfg["landing"] == "tp_steps" else None,
        channels_cut=sum(cost_model.widths) - sum(widths), tp_step_ratio=1.0 / cfg["iterative_steps"],
        prune_seconds=prune_seconds, reg_effective=reg, train_seconds=seconds,
        widths=widths, full_widths=cost_model.widths, max_abs_logit_diff_rebuilt=diff,
    )
    if DI.is_main():
        write_pruned_state(rdir, cfg["arch"], b["num_classes"], b["width"], widths, state, config_key=key,
                           metrics=metrics)
    run.write_summary(summary)
    DI.barrier()  # torchrun: the run is finished for every rank once rank 0 has written it
    return summary, model, metrics


def peer_row(arm: str, run: PeerRun) -> dict:
    """The peer's row in the same columns as `ablation.arm_row`, plus what is specific to it."""
    s, c = run.summary, run.config
    return dict(
        arm=arm, label_use="labels" if c["loss"] == "ce" else "none", students=1, epochs=c["epochs"],
        finetune_epochs=c["finetune_epochs"], train_images=c["baseline"]["train_subset"] or "all", target=c["target"],
        baseline_acc=s["baseline_acc"], best_acc=s["pruned_acc"], mean_acc=s["pruned_acc"],
        params_pruned=s["params_pruned"], flops_pruned=s["flops_pruned"], target_met=s["target_met"],
        seconds_per_epoch=s["train_seconds"] / c["epochs"], device=s["device"],
        **{k: s[k] for k in ("dataset", "dataset_official", "dataset_fingerprint")},
    )


def widths_rows(arm: str, widths, full_widths, names=None) -> list[dict]:
    """One row per prunable group: kept channels and the fraction of the original width."""
    names = names or [f"g{i}" for i in range(len(widths))]
    return [dict(arm=arm, layer=i, group=n, kept=int(w), full=int(f), kept_frac=w / f)
            for i, (n, w, f) in enumerate(zip(names, widths, full_widths))]


def ours_run(profile: str, seed: int = 0, device: str = "auto", students: int = 2, progress: bool = False):
    """Our arm as `ablation.run_arm(arm, profile, seed, students=students)` trains it: the same call, hence the
    same cached run under runs/prune/; returned whole (MethodRun) so that its pruned network can be counted
    and its widths plotted. `ablation.arm_row(arm, run)` gives the row `run_arm` would."""
    t = ablation.teacher(profile, seed, device)
    return prune_train(SUBJECT["arch"], SUBJECT["target"], profile, seed, device=device,
                       teacher=ablation.teacher_checkpoint(t), progress=progress, export=False,
                       **{**ablation.budget(profile), "students": students})
