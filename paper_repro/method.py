"""The method: label-free, feature-learning-enhanced dynamic sparse training, then removal (docs/method.md §1-§4).

A frozen teacher T teaches N students copied from it. Each iteration: forward T (no_grad) and every
student, L_M per student (KD + features + mutual, no labels), one backward, one SGD step; then per
student and per layer: score channels (Taylor), pick the m_l weakest as the expected-sparse set S_l,
and soft-threshold S_l's channel groups (ISTA). Each epoch every student re-solves its own allocation
from its alive channels. At the end dead channels are cut out; no fine-tuning unless asked.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import data as D
from .allocation import Allocation, allocate, check_reachable, parse_target
from .config import check_profile, config_key, pick_for_arch, resolve_baseline, resolve_students
from .counting import CostModel, count
from .ista import PENALTIES, flat_group_prox_, penalty_scale, scaled_lambda
from .losses import KD_FORMS, FeatureTaps, feature_loss, kd_loss, mutual_loss
from .models import build_model
from .provenance import device_name, git_commit, resolve_device
from .runlock import epochs_done, holds_run_locks, lock_run_folder
from .models.groups import FlatGroups
from .sensitivity import CRITERIA, flat_scores, smallest_masks
from .storage import CheckpointError, load_checkpoint, load_state, save_checkpoint, write_json, write_text
from .storage import TEACHER_REMEDY
from .surgery import dead_masks, mask_model, prune_model, save_pruned
from . import train as _train
from .train import (autocast, compiled, curve_split, epoch_bar, evaluate, make_optimizer, metrics_csv, milestone_epochs,
                    out_of_time, prepare_data, train_baseline)

# dynamic [paper]: re-selected every iteration; static: once per epoch (at its first step); fixed: once, at the
# first step of training, and kept (the classic fixed mask).
SELECTIONS = ("dynamic", "static", "fixed")
LABELS = ("off", "on")
STUDENT_VIEWS = ("own", "shared")
COMPILE_MODES = (False, "default", "reduce-overhead", "max-autotune-no-cudagraphs")

# [chosen] unless marked: the paper gives no values for these (docs/method.md §2, §3, §6).
METHOD = dict(
    students=2, kd_weight=1.0, feature_weight=1.0, mutual_weight=1.0, kd_temperature=4.0, kd_form="kl",
    mutual_temperature=1.0, criterion="taylor", selection="dynamic", penalty="progressive",
    lambda_max=0.01,  # [DPFPS] at batch 64, lr 0.1, 50k images; scaled to the run by `lambda_scaling`
    lambda_scaling=True, alive_threshold=0.01,  # [DPFPS]
    labels="off", ce_weight=1.0, finetune_epochs=0, finetune_lr=0.01, epochs=None,
    # Which student is reported [chosen]: the one that agrees most with the teacher's predicted class on
    # `select_images` training images the students did not train on. No label is read (the method is
    # label-free) and no test image is used: choosing on test accuracy would report a maximum over noise.
    select="teacher_agreement", select_images=2000,
    # Students are exact copies of T: fed the same batch they get the same gradients and stay identical (the
    # mutual term is then 0 and N > 1 only costs compute). "own": each student sees its own crop + flip of
    # the batch's images and T is run on each view; "shared": one view for all.
    student_views="own",
    # torch.compile mode for the distillation forward/backward (teacher + students + L_M), or False: eager, the
    # CPU default (bitwise reproducible). An execution setting like the device: not part of the cache key.
    compile=False,
)
SELECT_RULES = ("teacher_agreement",)
# Method epochs per profile (None: the baseline's epochs, the DPFPS schedule). The students' data and optimizer
# settings are `config.resolve_students` (the run's `baseline` settings); the teacher stays the profile's.
PROFILE_METHOD = {
    "smoke": dict(epochs=2, select_images=128),
    # [chosen] 5x DPFPS's per-epoch penalty: with 3 epochs instead of 200 the progressive schedule has about
    # one epoch at full strength, too little for λ_max = 0.01 to kill channels (an 8-epoch GPU run at 0.01
    # reached 34% of a 60% FLOPs target).
    # 3 epochs: two with the penalty before the LR decays, one to recover (fewer leave no recovery epoch).
    "cpu": dict(epochs=3, lambda_max=0.05),
    "paper": dict(),
}


def _choice(name, value, valid):
    if value not in valid:
        raise ValueError(f"{name}: unknown value {value!r}; valid: {', '.join(map(str, valid))}")


def resolve_method(arch: str, target, profile: str = "cpu", seed: int = 0, **overrides) -> dict:
    """Flat method settings (+ the teacher's resolved baseline settings under 'baseline')."""
    check_profile(profile)
    base_keys = set(resolve_baseline(arch, profile, seed)) - {"arch", "profile", "seed"}
    baseline = resolve_students(arch, profile, seed,
                                **{k: v for k, v in overrides.items() if k in base_keys and k != "epochs"})
    cfg = dict(METHOD)
    for k, v in PROFILE_METHOD[profile].items():
        cfg[k] = pick_for_arch(v, arch)
    unknown = set(overrides) - set(cfg) - base_keys
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; valid: {sorted(set(cfg) | base_keys)}")
    cfg.update({k: v for k, v in overrides.items() if k in cfg and v is not None})
    if cfg["epochs"] is None:
        cfg["epochs"] = baseline["epochs"]
    _choice("criterion", cfg["criterion"], CRITERIA)
    _choice("selection", cfg["selection"], SELECTIONS)
    _choice("penalty", cfg["penalty"], PENALTIES)
    _choice("labels", cfg["labels"], LABELS)
    _choice("kd_form", cfg["kd_form"], KD_FORMS)
    _choice("student_views", cfg["student_views"], STUDENT_VIEWS)
    _choice("select", cfg["select"], SELECT_RULES)
    if baseline["lr_schedule"] != "multistep":  # θ = lr·λ and E1 are per epoch: the students' LR must be too
        raise ValueError(f"lr_schedule: the students train with the per-epoch step schedule (multistep), "
                         f"got {baseline['lr_schedule']!r}")
    if not (isinstance(cfg["select_images"], int) and cfg["select_images"] >= 1):
        raise ValueError(f"select_images: must be a positive integer, got {cfg['select_images']!r}")
    if cfg["compile"] is not False and cfg["compile"] not in COMPILE_MODES:  # `is`: 0 would pass `in`
        raise ValueError(f"compile: unknown value {cfg['compile']!r}; valid: {', '.join(map(str, COMPILE_MODES))}")
    if not (isinstance(cfg["students"], int) and cfg["students"] >= 1):
        raise ValueError(f"students: must be an integer >= 1, got {cfg['students']!r}")
    for k in ("kd_weight", "feature_weight", "mutual_weight", "ce_weight", "lambda_max"):
        if not (isinstance(cfg[k], (int, float)) and cfg[k] >= 0):
            raise ValueError(f"{k}: must be a number >= 0, got {cfg[k]!r}")
    for k in ("epochs", "finetune_epochs"):
        if not (isinstance(cfg[k], int) and cfg[k] >= (1 if k == "epochs" else 0)):
            raise ValueError(f"{k}: must be a non-negative integer (epochs >= 1), got {cfg[k]!r}")
    cfg.update(arch=arch, profile=profile, seed=seed, target=str(parse_target(target)), baseline=baseline)
    return dict(sorted(cfg.items()))


@dataclass
class MethodRun:
    config: dict
    teacher: torch.nn.Module
    students: list  # trained (unpruned, unmasked) students
    pruned: list  # physically pruned students
    summary: dict
    metrics: list[dict]
    scores: list[dict]
    run_dir: Path


def _load_teacher(path, cfg) -> tuple[torch.nn.Module, float]:
    b = cfg["baseline"]
    ckpt = load_checkpoint(path, expect={"arch": cfg["arch"], "num_classes": b["num_classes"], "width": b["width"]},
                           remedy=TEACHER_REMEDY)  # the user's file: never "delete it"
    model = build_model(cfg["arch"], b["num_classes"], width=b["width"])
    load_state(model, ckpt["model"], path, remedy=TEACHER_REMEDY)
    acc = ckpt["metrics"][-1]["test_acc"] if ckpt.get("metrics") else float("nan")
    return model, acc, ckpt.get("config")


def _alive_counts(groups, rel):
    return [int(g.alive(rel).sum()) for g in groups]


def _student_losses(cfg, s_logits, s_feats, t_logits, t_feats, i, y):
    terms = {"kd": kd_loss(s_logits[i], t_logits, cfg["kd_temperature"], cfg["kd_form"]),
             "feature": feature_loss(s_feats[i], t_feats) if cfg["feature_weight"] else s_logits[i].new_zeros(()),
             "mutual": mutual_loss(s_logits[i], [z for j, z in enumerate(s_logits) if j != i],
                                   cfg["mutual_temperature"])}
    total = cfg["kd_weight"] * terms["kd"] + cfg["feature_weight"] * terms["feature"] \
        + cfg["mutual_weight"] * terms["mutual"]
    if cfg["labels"] == "on":  # the labelled ablation: the only place labels are read in training
        terms["ce"] = F.cross_entropy(s_logits[i], y)
        total = total + cfg["ce_weight"] * terms["ce"]
    return total, terms


def copy_students(teacher: torch.nn.Module, n: int):
    """The frozen teacher (eval, no gradients) and n trainable copies of it, structure and weights [paper]."""
    teacher = teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    students = [copy.deepcopy(teacher).train() for _ in range(n)]
    for s in students:
        for p in s.parameters():
            p.requires_grad_(True)
    return teacher, students


def expected_sparse_counts(widths, keep) -> list[int]:
    """m_l = max(1, C_l − k_l): the C_l − k_l channels beyond the keep count, at least one (docs/method.md §3.5)."""
    return [max(1, min(c - k, c)) for c, k in zip(widths, keep)]


def distill_losses(teacher, t_taps, students, s_taps, cfg, x, y):
    """L_M of every student (docs/method.md §3.5 step 1): forward T (frozen) and every student. `x` is one batch for
    all students or a list with one view per student (T then sees every view, in one forward).
    Returns (Σ_i L_M,i, per-student loss terms); what `torch.compile` compiles when `compile` is set."""
    n = len(students)
    views = list(x) if isinstance(x, (list, tuple)) else [x] * n
    own = isinstance(x, (list, tuple))
    with torch.no_grad(), autocast(views[0].device):
        t_all = teacher(torch.cat(views) if own else views[0]).float()
    t_logits = t_all.chunk(n) if own else [t_all] * n
    t_feats = [{k: v.chunk(n)[i] for k, v in t_taps.out.items()} for i in range(n)] if own \
        else [dict(t_taps.out)] * n
    with autocast(views[0].device):
        s_logits = [s(v).float() for s, v in zip(students, views)]
    s_feats = [dict(tap.out) for tap in s_taps]
    total, terms = 0.0, []
    for i in range(n):
        loss_i, terms_i = _student_losses(cfg, s_logits, s_feats, t_logits[i], t_feats[i], i, y)
        total = total + loss_i
        terms.append(terms_i)
    return total, terms


def distill_step(teacher, t_taps, students, s_taps, opt, cfg, x, y, sums, losses=distill_losses) -> None:
    """One label-free iteration: `losses` (distill_losses, or its compiled form), one backward, one SGD step.
    Loss terms accumulate into `sums` on the device (no host sync)."""
    total, terms = losses(teacher, t_taps, students, s_taps, cfg, x, y)
    for i, terms_i in enumerate(terms):
        for k, v in terms_i.items():
            sums[i][k] += v.detach()
    opt.zero_grad(set_to_none=True)
    total.backward()  # peers are detached and T is frozen: student i's gradient is its own L_M
    opt.step()


def sparsify_step(groups, m_sparse, theta, criterion, selection, selected, generator):
    """docs/method.md §3.5 steps 2-4 for every student: score channels, pick the m_l weakest as the expected-sparse
    set S_l (every iteration when `selection` is dynamic, else kept in `selected`), group-prox them.
    `groups`: one ChannelGroup list per student, or their FlatGroups (built once by prune_train): all layers
    of all students are scored, selected and shrunk together, a few ops in all (on a GPU the per-layer loop
    was launch-bound, 31-45% of a method step); the numbers are the per-layer ones (tests/test_fast_path.py).
    Returns student 0's scores when they were recomputed (for the log), else None."""
    flat = groups if isinstance(groups, FlatGroups) else FlatGroups(groups)
    need = [selection == "dynamic" or sel is None for sel in selected]
    first = None
    if any(need):
        per_group_need = [n for n, k in zip(need, flat.per_net) for _ in range(k)]
        scores = flat_scores(flat, criterion, generator, per_group_need)
        masks = flat.split(smallest_masks(flat, scores, flat.limit(m_sparse)))
        for i, n in enumerate(need):
            if n:
                selected[i] = masks[i]
        if need[0]:
            first = flat.split(scores)[0]
    flat_group_prox_(flat, torch.cat([m for sel in selected for m in sel]), theta)
    return first


def checked_target(arch: str, cfg: dict, device):
    """(target, device, the run's baseline settings, cost model) of a resolved pruning config; an unreachable
    target or a bad device fails here, before any training."""
    tgt = parse_target(cfg["target"])
    dev = resolve_device(device)
    b = cfg["baseline"]
    cost_model = CostModel(build_model(arch, b["num_classes"], width=b["width"]))
    check_reachable(cost_model, tgt)
    return tgt, dev, b, cost_model


@holds_run_locks
def prune_train(arch: str, target, profile: str = "cpu", seed: int = 0, device: str = "auto", teacher=None,
                out=None, data_dir=None, download: bool = True, progress: bool = True,
                max_epochs_now: int | None = None, export: bool = True, time_budget_s: float | None = None,
                **overrides) -> MethodRun:
    """Baseline (cached) → label-free sparse training of N students → channel removal.

    `export=False` skips writing pruned.pt2 (slow; the ablations do not need it). `teacher`: a baseline
    checkpoint path (default: the cached baseline of these settings, trained if missing). `out`: the run
    folder (default runs/prune/<arch>-<target>-<key>). Interrupted runs resume; `max_epochs_now` and
    `time_budget_s` stop between epochs on purpose (as in train_baseline; the budget covers this call's method
    epochs, not the teacher's training nor the removal after the last epoch)."""
    cfg = resolve_method(arch, target, profile, seed, **overrides)
    # Everything that can be wrong with the input is checked before any training starts.
    tgt, dev, b, cost_model = checked_target(arch, cfg, device)
    if teacher is not None:
        teacher_model, baseline_acc, teacher_cfg = _load_teacher(teacher, cfg)
        teacher_device = "given checkpoint"
        # Recorded beside `baseline`, which stays what the students train with (data, batch, lr): the teacher
        # may differ from the profile (e.g. fewer epochs), and the record says how.
        cfg["teacher_checkpoint"], cfg["teacher_config"] = str(teacher), teacher_cfg
    else:  # the profile's teacher (committed for the cpu profile), whatever the students' recipe
        base = train_baseline(arch, profile, seed, device=device, data_dir=data_dir, download=download,
                              progress=progress)
        teacher_model, baseline_acc, teacher_device = base.model, base.test_acc, base.device
        cfg["teacher_config"] = base.config
    key = config_key({k: v for k, v in cfg.items()}, exclude=("profile", "compile"))
    rdir = Path(out) if out is not None else \
        _train.RUNS / "prune" / f"{arch}-{tgt.kind}{tgt.ratio:g}-{profile}-s{seed}-{key}"
    ds, train_split, test_split = prepare_data(b, dev, data_dir, download)
    complete = _complete(rdir, arch, key, cfg["epochs"], export)
    if not complete:
        lock_run_folder(rdir)  # one writer; a complete run is read without it and nothing is written
    mean, std = D.MEAN[b["dataset"]], D.STD[b["dataset"]]
    views = cfg["students"] if cfg["student_views"] == "own" else 1
    train_b = D.Batches(train_split, b["batch_size"], mean, std, train=True, seed=seed + 17,
                        channels_last=b["channels_last"], views=views)
    test_b = D.Batches(test_split, 500, mean, std, train=False, channels_last=b["channels_last"])
    curve = curve_split(b, test_split)  # per-epoch curve: a fixed test subset (labelled so in metrics.csv)
    curve_b = test_b if curve is test_split else D.Batches(curve, 500, mean, std, train=False,
                                                           channels_last=b["channels_last"])
    select_split, select_heldout = D.heldout(ds.train, b["train_subset"], cfg["select_images"], seed=b["seed"] + 1)
    select_b = D.Batches(select_split, 500, mean, std, train=False, channels_last=b["channels_last"])

    teacher_model, students = copy_students(teacher_model.to(dev), cfg["students"])
    t_taps = FeatureTaps(teacher_model)  # after the copies: a deepcopy would carry the teacher's hooks along
    s_taps = [FeatureTaps(s) for s in students]
    groups = [s.channel_groups() for s in students]
    flat = FlatGroups(groups)  # every layer of every student at once in sparsify_step
    losses = compiled(distill_losses, cfg["compile"])
    widths = cost_model.widths
    opt_cfg = dict(b, epochs=cfg["epochs"])
    opt, sched = make_optimizer(torch.nn.ModuleList(students), opt_cfg, len(train_b))
    first_decay = milestone_epochs(b["lr_milestones"], cfg["epochs"])[0]
    lam_max = cfg["lambda_max"]
    if cfg["lambda_scaling"]:
        lam_max = scaled_lambda(cfg["lambda_max"], b["batch_size"], b["lr"], len(train_b) * b["batch_size"])
    rel = cfg["alive_threshold"]
    allocs: list[Allocation] = [allocate(cost_model, _alive_counts(g, rel), tgt) for g in groups]
    score_gen = torch.Generator().manual_seed(seed + 99)

    state_path = rdir / "state.pt"
    start, metrics, scores_log, seconds = 0, [], [], 0.0
    fixed = None  # selection "fixed": the expected-sparse sets chosen at the first step of training
    if state_path.exists():
        st = load_checkpoint(state_path, expect={"arch": arch, "config_key": key})
        for s, sd in zip(students, st["students"]):
            load_state(s, sd, state_path)
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        allocs = [Allocation(**a) for a in st["allocs"]]
        start, metrics, scores_log, seconds = st["epoch"], st["metrics"], st["scores"], st["seconds"]
        score_gen.set_state(st["score_gen"])
        fixed = st.get("fixed_selected")
    if not complete:
        write_json(rdir / "config.json", {**cfg, "config_key": key, "lambda_max_effective": lam_max, **ds.stamp()})

    end = cfg["epochs"] if max_epochs_now is None else min(cfg["epochs"], start + max_epochs_now)
    if progress and start >= cfg["epochs"]:
        print(f"{arch} method ({cfg['target']}): trained students cached in {rdir.name}; removal re-measured",
              flush=True)
    bar = epoch_bar(range(start, end), f"{arch} method", progress, cfg["epochs"])
    t_call, walls = time.perf_counter(), []
    for epoch in bar:
        if out_of_time(t_call, time_budget_s, walls, metrics):
            break
        t_wall = time.perf_counter()
        torch.manual_seed(seed * 1000 + epoch + 7)
        lam = lam_max * penalty_scale(epoch, first_decay, cfg["penalty"])
        lr = opt.param_groups[0]["lr"]
        theta = lr * lam
        m_sparse = [expected_sparse_counts(widths, a.keep) for a in allocs]
        sums = [dict(kd=torch.zeros((), device=dev), feature=torch.zeros((), device=dev),
                     mutual=torch.zeros((), device=dev), ce=torch.zeros((), device=dev)) for _ in students]
        # static: chosen at the first step of each epoch; fixed: at the first step of training, then kept
        selected = fixed if cfg["selection"] == "fixed" and fixed is not None else [None] * len(students)
        last_scores, n_steps, t0 = None, 0, time.perf_counter()
        for s in students:
            s.train()
        for x, y in train_b.set_epoch(epoch):
            distill_step(teacher_model, t_taps, students, s_taps, opt, cfg, x, y, sums, losses)
            sc = sparsify_step(flat, m_sparse, theta, cfg["criterion"], cfg["selection"], selected, score_gen)
            last_scores = sc if sc is not None else last_scores
            n_steps += 1
        sched.step()
        if cfg["selection"] == "fixed":
            fixed = selected
        if dev.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        seconds += dt
        # `fixed` scores only at the first step of training: later epochs have no fresh scores to log
        for l, (v, sel) in enumerate(zip(last_scores or [], selected[0])):  # one host copy per layer
            for c, (score, chosen) in enumerate(zip(v.tolist(), sel.tolist())):
                scores_log.append(dict(epoch=epoch + 1, layer=l, channel=c, score=score, selected=chosen))
        for i, (s, gs) in enumerate(zip(students, groups)):
            alive = _alive_counts(gs, rel)
            p_alive, f_alive = cost_model.cost(alive)
            p_full, f_full = cost_model.full()
            _, acc = evaluate(s, curve_b, dev)
            allocs[i] = allocate(cost_model, alive, tgt)
            metrics.append(dict(epoch=epoch + 1, student=i, lr=lr, lambda_=lam, theta=theta,
                                **{f"loss_{k}": float(v) / n_steps for k, v in sums[i].items()},
                                curve_acc=acc, curve_images=len(curve.y), params_pruned=1 - p_alive / p_full,
                                flops_pruned=1 - f_alive / f_full,
                                alloc_scale=allocs[i].scale, alloc_ratio=allocs[i].ratio,
                                alive_widths="|".join(map(str, alive)), epoch_seconds=dt))
        bar.set_postfix(acc=f"{metrics[-1]['curve_acc']:.3f}", flops_pruned=f"{metrics[-1]['flops_pruned']:.2f}")
        save_checkpoint(state_path, dict(arch=arch, config_key=key, epoch=epoch + 1,
                                         students=[s.state_dict() for s in students], optimizer=opt.state_dict(),
                                         scheduler=sched.state_dict(), allocs=[a.__dict__ for a in allocs],
                                         metrics=metrics, scores=scores_log, seconds=seconds,
                                         score_gen=score_gen.get_state(), fixed_selected=fixed))
        write_text(rdir / "metrics.csv", metrics_csv(metrics))
        write_text(rdir / "scores.csv", metrics_csv(scores_log))
        walls.append(time.perf_counter() - t_wall)
    bar.close()
    t_taps.remove()
    for tap in s_taps:
        tap.remove()
    done = bool(metrics) and metrics[-1]["epoch"] >= cfg["epochs"]
    summary = {}
    pruned = []
    if done:
        summary, pruned = _finish(cfg, tgt, teacher_model, students, test_b, train_b, dev, rdir, baseline_acc,
                                  ds, seconds, teacher_device, lam_max, export, select_b, select_heldout,
                                  write=not complete)
    return MethodRun(cfg, teacher_model, students, pruned, summary, metrics, scores_log, rdir)


def _finetune(model, teacher, cfg, train_b, dev):
    """Optional fine-tuning after removal [chosen]: label-free KD from the teacher (plus CE if labels=on)."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg["finetune_lr"], momentum=0.9, weight_decay=1e-4)
    for e in range(cfg["finetune_epochs"]):
        model.train()
        for x, y in train_b.set_epoch(10_000 + e):
            with torch.no_grad(), autocast(dev):
                t = teacher(x).float()
            with autocast(dev):
                z = model(x).float()
            loss = kd_loss(z, t, cfg["kd_temperature"], cfg["kd_form"])
            if cfg["labels"] == "on":
                loss = loss + cfg["ce_weight"] * F.cross_entropy(z, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def agreement(model, teacher, batches, device) -> float:
    """Fraction of the images of `batches` on which `model` predicts the teacher's class. Reads no label."""
    model.eval()
    same = n = 0
    for x, _ in batches:
        with autocast(device):
            same += (model(x).argmax(1) == teacher(x).argmax(1)).sum().item()
        n += len(x)
    return same / n


def select_student(per: list[dict], rule: str = "teacher_agreement") -> int:
    """The reported student: the highest `select_<rule>` score; ties go to the lower index. Test accuracy is
    never looked at (choosing on it would report a maximum over noise)."""
    _choice("select", rule, SELECT_RULES)
    return max(range(len(per)), key=lambda i: (per[i][f"select_{rule}"], -i))


def _complete(rdir, arch, key, epochs, export) -> bool:
    """Whether an earlier call finished this run: state at the last epoch, summary.json (written last) and, when
    `export`, pruned.pt2 (an earlier call may have skipped it)."""
    return (rdir / "summary.json").exists() and (not export or (rdir / "pruned.pt2").exists()) \
        and epochs_done(rdir / "state.pt", {"arch": arch, "config_key": key}) >= epochs


def _finish(cfg, tgt, teacher, students, test_b, train_b, dev, rdir, baseline_acc, ds, seconds, teacher_device,
            lam_max, export=True, select_b=None, select_heldout=False, write=True):
    """Cut the dead channels out of every student, measure, and save the one `select_student` picks.
    `write=False` (a complete run): the pruned students only, and the summary as recorded in summary.json;
    nothing is written."""
    held = next(iter(test_b))[0][:64]  # float64 on the CPU is slow; 64 images show any inexact surgery
    before = count(teacher)
    cm = CostModel(teacher)
    conv_before = cm.cost(cm.widths, conv_only=True)[1]
    per, pruned_models = [], []
    for i, s in enumerate(students):
        s.eval()
        dead = dead_masks(s, cfg["alive_threshold"])
        masked = mask_model(s, dead).eval()
        pruned = prune_model(masked, dead).eval()
        diff = logit_gap(pruned, masked, held)
        diff_trained = logit_gap(pruned, s, held)
        _, acc_trained = evaluate(s, test_b, dev)
        if cfg["finetune_epochs"]:
            pruned = _finetune(pruned, teacher, cfg, train_b, dev)
        _, acc_pruned = evaluate(pruned, test_b, dev)
        select = agreement(pruned, teacher, select_b, dev)
        after = count(pruned)
        conv_after = cm.cost(pruned.widths(), conv_only=True)[1]
        per.append(dict(student=i, acc_trained=acc_trained, acc_pruned=acc_pruned, params_after=after["params"],
                        macs_after=after["macs"], params_pruned=1 - after["params"] / before["params"],
                        flops_pruned=1 - after["macs"] / before["macs"],
                        flops_pruned_dpfps=1 - conv_after / conv_before,
                        max_abs_logit_diff=diff, max_abs_logit_diff_vs_trained=diff_trained,
                        select_teacher_agreement=select, widths=pruned.widths(), masked=masked))
        pruned_models.append(pruned)
    best = select_student(per, cfg["select"])
    if not write:
        return json.loads((rdir / "summary.json").read_text()), pruned_models
    bp = per[best]
    b = cfg["baseline"]
    save_checkpoint(rdir / "student_masked.pt", dict(arch=cfg["arch"], num_classes=b["num_classes"], width=b["width"],
                                                     widths=students[best].widths(), student=best,
                                                     model=bp["masked"].state_dict()))
    paths = save_pruned(pruned_models[best].cpu(), cfg["arch"], b["num_classes"], b["width"], rdir, held[:1].cpu(),
                        export=export)
    pruned_models[best].to(dev)
    met = [{k: v for k, v in p.items() if k != "masked"} for p in per]
    accs = [p["acc_pruned"] for p in per]
    summary = dict(
        arch=cfg["arch"], target=cfg["target"], profile=cfg["profile"], seed=cfg["seed"], **ds.stamp(),
        device=device_name(dev), teacher_device=teacher_device, commit=git_commit(), students=cfg["students"],
        epochs=cfg["epochs"], finetune_epochs=cfg["finetune_epochs"], baseline_acc=baseline_acc,
        pruned_acc=bp["acc_pruned"], pruned_acc_mean=sum(accs) / len(accs), pruned_acc_all=accs,
        best_student=best, selection_rule=cfg["select"], select_images=cfg["select_images"],
        select_images_heldout=select_heldout, test_images=len(test_b.split.y),
        params_before=before["params"], params_after=bp["params_after"], macs_before=before["macs"],
        macs_after=bp["macs_after"], params_pruned=bp["params_pruned"], flops_pruned=bp["flops_pruned"],
        flops_pruned_dpfps=bp["flops_pruned_dpfps"], target_met=_met(tgt, bp),
        max_abs_logit_diff=max(p["max_abs_logit_diff"] for p in per),
        max_abs_logit_diff_vs_trained=max(p["max_abs_logit_diff_vs_trained"] for p in per),
        lambda_max_effective=lam_max, train_seconds=seconds, per_student=met,
        files={k: str(v) for k, v in paths.items()},
    )
    write_json(rdir / "summary.json", summary)
    return summary, pruned_models


def logit_gap(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> float:
    """max |a(x) − b(x)| in eval mode, on CPU copies in float64. Removal is exact in exact arithmetic; in float32
    the rounding of differently sized sums is amplified by BatchNorms of nearly dead channels (small running
    variance; up to ~1e-3 on a short-budget student) and a GPU's TF32 adds ~1e-3 more. Float64 leaves only what
    the surgery itself does: ~1e-12 when it is exact, the size of a logit when it is not."""
    a, b = copy.deepcopy(a).cpu().double().eval(), copy.deepcopy(b).cpu().double().eval()
    with torch.no_grad():
        x = x.detach().cpu().double().contiguous()
        return (a(x) - b(x)).abs().max().item()


def _met(tgt, p) -> bool:
    achieved = p["params_pruned"] if tgt.kind == "params" else p["flops_pruned"]
    return achieved >= tgt.ratio - 1e-9
