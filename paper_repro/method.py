"""The method: label-free, feature-learning-enhanced dynamic sparse training, then removal (docs/method.md §1-§4).

A frozen teacher T teaches N students copied from it. Each iteration: forward T (no_grad) and every
student, L_M per student (KD + features + mutual, no labels), one backward, one SGD step; then per
student and per layer: score channels (Taylor), pick the m_l weakest as the expected-sparse set S_l,
and soft-threshold S_l's channel groups (ISTA). Each epoch every student re-solves its own allocation
from its alive channels. At the end dead channels are cut out; no fine-tuning unless asked.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import data as D
from . import distributed as DI
from .allocation import Allocation, allocate, parse_target
from .checks import check_choice, check_known
from .config import (EXECUTION, check_compile, check_profile, config_key,
                     profile_settings, resolve_baseline, resolve_students)
from .counting import CostModel, count
from .engine import (RunFolder, autocast, check_precision, checked_target, compiled, curve_batches, epoch_loop,
                     eval_batches, evaluate, make_optimizer, milestone_epochs, prepare_data, pruning_run_dir,
                     run_precision, timed_pass, train_batches)
from .ista import PENALTIES, flat_group_prox_, penalty_scale, scaled_lambda
from .losses import KD_FORMS, FeatureTaps, feature_loss, kd_loss, mutual_loss
from .models import build_model
from .models.groups import FlatGroups
from .provenance import device_name, git_commit
from .runlock import holds_run_locks
from .sensitivity import CRITERIA, flat_scores, smallest_masks
from .storage import load_state, repo_path, save_checkpoint, sha256_file
from .export import save_pruned
from .surgery import dead_masks, logit_gap, mask_model, prune_model
from .train import BaselineRun, load_teacher, train_baseline

# dynamic [paper]: re-selected every iteration; static: once per epoch (at its first step); fixed: once, at the
# first step of training, and kept (the classic fixed mask).
SELECTIONS = ("dynamic", "static", "fixed")
LABELS = ("off", "on")
STUDENT_VIEWS = ("own", "shared")

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
)
# What a run measures besides its pruned students' test accuracy [chosen]: each student's accuracy on the curve
# subset after every epoch (the training-dynamics figures), and each trained student's accuracy on every test image
# before removal (02's exactness table). Both on unless a caller turns them off (the ablation arms,
# config.ABLATION_BUDGET: their tables read neither, and the two cost about a fifth of an arm); a setting left on is
# absent from the settings, so every earlier run keeps its cache key.
MEASURES = ("measure_curve", "measure_trained")
SELECT_RULES = ("teacher_agreement",)


def resolve_method(arch: str, target, profile: str = "cpu", seed: int = 0, **overrides) -> dict:
    """Flat method settings (+ the teacher's resolved baseline settings under 'baseline'). `compile` (an
    execution setting, `config.EXECUTION`) is recorded with them and left out of the run's cache key."""
    check_profile(profile)
    # "precision" is a students' setting absent from the settings at its default (config.PRECISIONS)
    base_keys = set(resolve_baseline(arch, profile, seed)) - {"arch", "profile", "seed"} | {"precision"}
    baseline = resolve_students(arch, profile, seed,
                                **{k: v for k, v in overrides.items() if k in base_keys and k != "epochs"})
    cfg = dict(METHOD, compile=EXECUTION["compile"], **profile_settings("method", profile, arch))
    check_known(overrides, set(cfg) | base_keys | {"student_widths", *MEASURES})
    for k in MEASURES:
        if overrides.get(k) is not None:
            if not isinstance(overrides[k], bool):
                raise ValueError(f"{k}: must be True or False, got {overrides[k]!r}")
            if not overrides[k]:
                cfg[k] = False
    cfg.update({k: v for k, v in overrides.items() if k in cfg and v is not None})
    if overrides.get("student_widths") is not None:  # absent otherwise: every other run's cache key stays as it was
        w = overrides["student_widths"]
        if not (isinstance(w, (list, tuple)) and w and all(isinstance(k, int) and k >= 1 for k in w)):
            raise ValueError(f"student_widths: must be a non-empty list of positive integers, got {w!r}")
        cfg["student_widths"] = [int(k) for k in w]
    if cfg["epochs"] is None:
        cfg["epochs"] = baseline["epochs"]
    check_choice("criterion", cfg["criterion"], CRITERIA)
    check_choice("selection", cfg["selection"], SELECTIONS)
    check_choice("penalty", cfg["penalty"], PENALTIES)
    check_choice("labels", cfg["labels"], LABELS)
    check_choice("kd_form", cfg["kd_form"], KD_FORMS)
    check_choice("student_views", cfg["student_views"], STUDENT_VIEWS)
    check_choice("select", cfg["select"], SELECT_RULES)
    if baseline["lr_schedule"] != "multistep":  # θ = lr·λ and E1 are per epoch: the students' LR must be too
        raise ValueError(f"lr_schedule: the students train with the per-epoch step schedule (multistep), "
                         f"got {baseline['lr_schedule']!r}")
    if not (isinstance(cfg["select_images"], int) and cfg["select_images"] >= 1):
        raise ValueError(f"select_images: must be a positive integer, got {cfg['select_images']!r}")
    check_compile(cfg["compile"])
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


def run_key(cfg: dict) -> str:
    """A method run's cache key: its resolved settings with its teacher's (`teacher_config`: what the teacher is,
    however it was handed in), less the profile's name, the execution setting `compile` and any path: a
    `teacher_checkpoint` says where a teacher was found, never what the run is (a clone elsewhere, or a shared
    runs/ cache, gets the same key)."""
    return config_key(cfg, exclude=("profile", "compile", "teacher_checkpoint"))


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


def fresh_students(teacher: torch.nn.Module, cfg: dict):
    """The frozen teacher and `students` networks of the shape `student_widths`, from random weights (seeded by
    the run's seed, without touching the global random stream): the same-FLOPs control of issue 23, taught by
    the same label-free loss as the copies are."""
    teacher = teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    b = cfg["baseline"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg["seed"] + 31)
        students = [build_model(cfg["arch"], b["num_classes"], width=b["width"], widths=cfg["student_widths"])
                    for _ in range(cfg["students"])]
    dev = next(teacher.parameters()).device
    fmt = torch.channels_last if b["channels_last"] else torch.contiguous_format
    return teacher, [s.to(dev, memory_format=fmt).train() for s in students]


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
    precision = run_precision(cfg["baseline"])
    with torch.no_grad(), autocast(views[0].device, precision):
        t_all = teacher(torch.cat(views) if own else views[0]).float()
    t_logits = t_all.chunk(n) if own else [t_all] * n
    t_feats = [{k: v.chunk(n)[i] for k, v in t_taps.out.items()} for i in range(n)] if own \
        else [dict(t_taps.out)] * n
    with autocast(views[0].device, precision):
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
    DI.average_gradients([p for g in opt.param_groups for p in g["params"]])  # torchrun: the global batch's
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


class Method:
    """The method's state between iterations (docs/method.md §3.5): the frozen teacher, the students and their
    feature taps, every student's channel groups (flat, for the one-shot sparsity step), the students' optimizer
    and step schedule, their allocations (re-solved every epoch), the expected-sparse sets kept by the static and
    fixed selections, and the generator of the random criterion. An epoch is `begin_epoch`, `step` per batch, the
    per-epoch LR step, then `end_epoch`; `state_dict`/`load_state_dict` resume it between epochs."""

    def __init__(self, teacher: torch.nn.Module, cfg: dict, cost_model: CostModel, target, steps_per_epoch: int):
        b = cfg["baseline"]
        self.cfg, self.cost_model, self.target = cfg, cost_model, target
        self.teacher, self.students = copy_students(teacher, cfg["students"]) if cfg.get("student_widths") is None \
            else fresh_students(teacher, cfg)
        for s in self.students:  # torchrun: BatchNorm statistics of the global batch (nothing in one process)
            DI.sync_batchnorm_(s)
        self.t_taps = FeatureTaps(self.teacher)  # after the copies: a deepcopy would carry the teacher's hooks along
        self.s_taps = [FeatureTaps(s) for s in self.students]
        self.groups = [s.channel_groups() for s in self.students]
        self.flat = FlatGroups(self.groups)  # every layer of every student at once in sparsify_step
        self.losses = compiled(distill_losses, cfg["compile"])
        self.opt, self.sched = make_optimizer(torch.nn.ModuleList(self.students), dict(b, epochs=cfg["epochs"]),
                                              steps_per_epoch)
        self.first_decay = milestone_epochs(b["lr_milestones"], cfg["epochs"])[0]
        self.lam_max = cfg["lambda_max"]
        if cfg["lambda_scaling"]:
            self.lam_max = scaled_lambda(cfg["lambda_max"], b["batch_size"], b["lr"], steps_per_epoch * b["batch_size"])
        self.allocs: list[Allocation] = [allocate(cost_model, self.alive(i), target) for i in range(len(self.students))]
        self.generator = torch.Generator().manual_seed(cfg["seed"] + 99)
        self.fixed = None  # selection "fixed": the expected-sparse sets chosen at the first step of training

    def alive(self, i: int) -> list[int]:
        """Student i's alive channels per layer (scale above `alive_threshold` of its layer's largest)."""
        return [int(g.alive(self.cfg["alive_threshold"]).sum()) for g in self.groups[i]]

    def begin_epoch(self, epoch: int) -> None:
        """This epoch's penalty λ and threshold θ = lr·λ, expected-sparse counts m_l from the allocations, fresh
        loss sums; static selection re-chooses at the epoch's first step, fixed keeps its first choice."""
        cfg, dev = self.cfg, self.teacher_device()
        self.lam = self.lam_max * penalty_scale(epoch, self.first_decay, cfg["penalty"])
        self.lr = self.opt.param_groups[0]["lr"]
        self.theta = self.lr * self.lam
        self.m_sparse = [expected_sparse_counts(self.cost_model.widths, a.keep) for a in self.allocs]
        self.sums = [{k: torch.zeros((), device=dev) for k in ("kd", "feature", "mutual", "ce")}
                     for _ in self.students]
        self.selected = self.fixed if cfg["selection"] == "fixed" and self.fixed is not None \
            else [None] * len(self.students)
        self.last_scores, self.n_steps = None, 0
        for s in self.students:
            s.train()

    def step(self, x, y) -> None:
        """One iteration: `distill` then `sparsify`."""
        self.distill(x, y)
        self.sparsify()

    def distill(self, x, y) -> None:
        """L_M of every student, one backward, one SGD step (loss terms summed on the device)."""
        distill_step(self.teacher, self.t_taps, self.students, self.s_taps, self.opt, self.cfg, x, y, self.sums,
                     self.losses)

    def sparsify(self) -> None:
        """Every student's sparsity step: scores, expected-sparse sets, group prox at θ."""
        sc = sparsify_step(self.flat, self.m_sparse, self.theta, self.cfg["criterion"], self.cfg["selection"],
                           self.selected, self.generator)
        self.last_scores = sc if sc is not None else self.last_scores
        self.n_steps += 1

    def end_epoch(self, epoch: int, curve_b, epoch_seconds: float) -> tuple[list[dict], list[dict]]:
        """After the epoch's LR step: re-solve every student's allocation from its alive channels. Returns
        (one metrics row per student, with its accuracy on `curve_b` unless `measure_curve` is off; student 0's
        channel scores)."""
        if self.cfg["selection"] == "fixed":
            self.fixed = self.selected
        # torchrun: gradients are averaged before the scores, so every rank must hold the same selection and
        # widths; checked every epoch (one small all_gather), and the loss sums are the ranks' mean
        DI.check_same(([[m.tolist() for m in sel] for sel in self.selected],
                       [self.alive(i) for i in range(len(self.students))]), "the expected-sparse sets or widths")
        if DI.active():
            self.sums = [{k: DI.sum_over_ranks(v)[0] / DI.world_size() for k, v in s.items()} for s in self.sums]
        scores = []  # `fixed` scores only at the first step of training: later epochs have no fresh scores to log
        for l, (v, sel) in enumerate(zip(self.last_scores or [], self.selected[0])):  # one host copy per layer
            for c, (score, chosen) in enumerate(zip(v.tolist(), sel.tolist())):
                scores.append(dict(epoch=epoch + 1, layer=l, channel=c, score=score, selected=chosen))
        rows, dev = [], self.teacher_device()
        p_full, f_full = self.cost_model.full()
        for i, s in enumerate(self.students):
            alive = self.alive(i)
            p_alive, f_alive = self.cost_model.cost(alive)
            acc = evaluate(s, curve_b, dev)[1] if self.cfg.get("measure_curve", True) else None
            self.allocs[i] = allocate(self.cost_model, alive, self.target)
            rows.append(dict(epoch=epoch + 1, student=i, lr=self.lr, lambda_=self.lam, theta=self.theta,
                             **{f"loss_{k}": float(v) / self.n_steps for k, v in self.sums[i].items()},
                             curve_acc=acc, curve_images=len(curve_b.split.y) if acc is not None else 0,
                             params_pruned=1 - p_alive / p_full,
                             flops_pruned=1 - f_alive / f_full, alloc_scale=self.allocs[i].scale,
                             alloc_ratio=self.allocs[i].ratio, alive_widths="|".join(map(str, alive)),
                             epoch_seconds=epoch_seconds))
        return rows, scores

    def teacher_device(self) -> torch.device:
        return next(self.teacher.parameters()).device

    def state_dict(self) -> dict:
        return dict(students=[s.state_dict() for s in self.students], optimizer=self.opt.state_dict(),
                    scheduler=self.sched.state_dict(), allocs=[a.__dict__ for a in self.allocs],
                    score_gen=self.generator.get_state(), fixed_selected=self.fixed)

    def load_state_dict(self, state: dict, path=None) -> None:
        for s, sd in zip(self.students, state["students"]):
            load_state(s, sd, path)
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.allocs = [Allocation(**a) for a in state["allocs"]]
        self.generator.set_state(state["score_gen"])
        self.fixed = state.get("fixed_selected")

    def close(self) -> None:
        """Remove the feature taps' hooks (the networks are used on without them)."""
        self.t_taps.remove()
        for tap in self.s_taps:
            tap.remove()


@holds_run_locks
def prune_train(arch: str, target, profile: str = "cpu", seed: int = 0, device: str = "auto", teacher=None,
                out=None, data_dir=None, download: bool = True, progress: bool = True,
                max_epochs_now: int | None = None, export: bool = True, time_budget_s: float | None = None,
                compile=EXECUTION["compile"], **overrides) -> MethodRun:
    """Baseline (cached) → label-free sparse training of N students → channel removal.

    `export=False` skips writing pruned.pt2 (slow; the ablations do not need it). `teacher`: a baseline checkpoint
    path, or a loaded `train.BaselineRun` (e.g. a committed teacher of other settings); either way the run is keyed
    by the teacher's settings, never by a path (`run_key`); default: the profile's baseline of this seed (committed,
    or cached, or trained). `out`: the run folder (default runs/prune/<arch>-<target>-<key>). Interrupted runs
    resume; `max_epochs_now` and `time_budget_s` stop between epochs on purpose (as in train_baseline; the budget
    covers this call's method epochs, not the teacher's training nor the removal after the last epoch). `compile`: a
    torch.compile mode for the distillation step (`config.COMPILE_MODES`), as in train_baseline."""
    cfg = resolve_method(arch, target, profile, seed, compile=compile, **overrides)
    # Everything that can be wrong with the input is checked before any training starts.
    tgt, dev, b, cost_model = checked_target(arch, cfg, device)
    dev = DI.local_device(dev)  # under torchrun on GPUs: cuda:LOCAL_RANK
    check_precision(run_precision(b), dev)
    given = None  # a teacher checkpoint's path: where it was found (recorded where it lies in the checkout), not keyed
    if isinstance(teacher, BaselineRun):  # a loaded baseline: its settings say what it is
        if teacher.config["width"] != b["width"] or teacher.config["arch"] != arch:
            raise ValueError(f"teacher: a {teacher.config['arch']} at width {teacher.config['width']}, the students "
                             f"are {arch} at width {b['width']}")
        teacher_model, baseline_acc, teacher_device = teacher.model, teacher.test_acc, teacher.device
        cfg["teacher_config"] = teacher.config
    elif teacher is not None:
        teacher_model, baseline_acc, teacher_cfg, _ = load_teacher(teacher, arch, b)
        teacher_device, given = "given checkpoint", str(teacher)
        # Keyed by its settings, as a loaded baseline is (one rule: what the teacher is, never where it lies), and
        # recorded beside `baseline`, which stays what the students train with (data, batch, lr): the teacher may
        # differ from the profile (e.g. fewer epochs), and the record says how. A checkpoint without settings is
        # known by its content.
        cfg["teacher_config"] = teacher_cfg if teacher_cfg is not None else {"sha256": sha256_file(teacher)}
    else:  # the profile's teacher (committed for the cpu profile), whatever the students' recipe
        base = train_baseline(arch, profile, seed, device=device, data_dir=data_dir, download=download,
                              progress=progress)
        teacher_model, baseline_acc, teacher_device = base.model, base.test_acc, base.device
        cfg["teacher_config"] = base.config
    key = run_key(cfg)
    run = RunFolder(pruning_run_dir("prune", cfg, key, tgt, out), key, cfg, {"arch": arch, "config_key": key})
    ds, train_split, test_split = prepare_data(b, dev, data_dir, download)
    complete = _complete(run, cfg["epochs"], export)
    if not complete:
        run.lock()  # one writer; a complete run is read without it and nothing is written
    views = cfg["students"] if cfg["student_views"] == "own" else 1
    train_b = train_batches(train_split, b, seed + 17, views=views, shard=DI.shard())  # torchrun: a slice
    test_b = eval_batches(test_split, b)
    _, curve_b = curve_batches(b, test_split, test_b)  # per-epoch curve: a fixed test subset (labelled so)
    select_split, select_heldout = D.heldout(ds.train, b["train_subset"], cfg["select_images"], seed=b["seed"] + 1)
    data = RunBatches(ds, train_b, test_b, curve_b, eval_batches(select_split, b), select_heldout)

    method = Method(teacher_model.to(dev), cfg, cost_model, tgt, len(data.train))
    start, metrics, scores_log, seconds = 0, [], [], 0.0
    st = run.resume(lambda state: method.load_state_dict(state, run.state_path))
    if st is not None:
        start, metrics, scores_log, seconds = st["epoch"], st["metrics"], st["scores"], st["seconds"]
    if not complete:
        where = repo_path(given) if given is not None else None
        run.write_settings(lambda_max_effective=method.lam_max, **ds.stamp(),
                           **({"teacher_checkpoint": where} if where is not None else {}))

    if progress and start >= cfg["epochs"] and DI.is_main():
        print(f"{arch} method ({cfg['target']}): trained students cached in {run.path.name}; cut again, measured as "
              "recorded",
              flush=True)
    for epoch, bar in epoch_loop(start, cfg["epochs"], f"{arch} method", progress, max_epochs_now, time_budget_s,
                                 metrics):
        torch.manual_seed(seed * 1000 + epoch + 7)
        method.begin_epoch(epoch)
        _, dt = timed_pass(lambda: [method.step(x, y) for x, y in data.train.set_epoch(epoch)], method.sched, dev)
        seconds += dt
        rows, scores = method.end_epoch(epoch, data.curve, dt)
        metrics += rows
        scores_log += scores
        curve = metrics[-1]["curve_acc"]
        bar.set_postfix(acc="—" if curve is None else f"{curve:.3f}", flops_pruned=f"{metrics[-1]['flops_pruned']:.2f}")
        run.save_epoch(dict(arch=arch, config_key=key, epoch=epoch + 1, **method.state_dict(), metrics=metrics,
                            scores=scores_log, seconds=seconds), metrics=metrics, scores=scores_log)
    method.close()
    done = bool(metrics) and metrics[-1]["epoch"] >= cfg["epochs"]
    summary = {}
    pruned = []
    if done:
        def finish(write):
            return _finish(method, run, data, dev, (baseline_acc, teacher_device), seconds, export, write=write)
        if DI.is_main():
            summary, pruned = finish(not complete)
        DI.barrier()  # torchrun: the other ranks read the summary rank 0 wrote
        if not DI.is_main():
            summary, pruned = finish(False)
    return MethodRun(cfg if given is None else dict(cfg, teacher_checkpoint=given), method.teacher, method.students,
                     pruned, summary, metrics, scores_log, run.path)


def finetune(model, teacher, cfg, train_b, dev):
    """Optional fine-tuning after removal [chosen]: label-free KD from the teacher (plus CE if labels=on)."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg["finetune_lr"], momentum=0.9, weight_decay=1e-4)
    for e in range(cfg["finetune_epochs"]):
        model.train()
        for x, y in train_b.set_epoch(10_000 + e):
            with torch.no_grad(), autocast(dev, run_precision(cfg["baseline"])):
                t = teacher(x).float()
            with autocast(dev, run_precision(cfg["baseline"])):
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


def select_student(per: list[dict], rule: str = "teacher_agreement", met: list[bool] | None = None) -> int:
    """The reported student: among the students whose pruned network meets the target (`met`; all of them when
    none or `met` is None), the highest `select_<rule>` score; ties go to the lower index. Test accuracy is never
    looked at (choosing on it would report a maximum over noise); whether the target is met is read from the
    network's own size, no label either."""
    check_choice("select", rule, SELECT_RULES)
    met = [True] * len(per) if met is None or not any(met) else met
    return max(range(len(per)), key=lambda i: (met[i], per[i][f"select_{rule}"], -i))


def _complete(run: RunFolder, epochs: int, export: bool) -> bool:
    """Whether an earlier call finished this run: state at the last epoch, summary.json (written last) and, when
    `export`, pruned.pt2 (an earlier call may have skipped it)."""
    return run.summary_path.exists() and (not export or (run.path / "pruned.pt2").exists()) \
        and run.epochs_done() >= epochs


@dataclass
class RunBatches:
    """What one method run reads, built once by `prune_train`: the dataset (its stamp), the students' training
    batches, the test batches, the per-epoch curve subset, and the label-free selection images (held out of
    training when the training subset leaves room, `select_heldout`)."""
    ds: D.Dataset
    train: D.Batches
    test: D.Batches
    curve: D.Batches
    select: D.Batches
    select_heldout: bool


def _finish(method: Method, run: RunFolder, data: RunBatches, dev, teacher_record: tuple[float, str],
            seconds: float, export: bool = True, write: bool = True):
    """Cut the dead channels out of every student, measure, and save the one `select_student` picks.
    `teacher_record`: the teacher's test accuracy and the device it was trained on. `write=False` (a complete
    run): the students are cut again (the models are not saved per student) but not re-measured: the summary is
    the one recorded in summary.json; nothing is written."""
    cfg, tgt, teacher, students = method.cfg, method.target, method.teacher, method.students
    test_b, train_b, ds, rdir = data.test, data.train, data.ds, run.path
    baseline_acc, teacher_device = teacher_record
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
        if not write:  # a complete run: its measurements are in summary.json; only the cut students are needed
            pruned_models.append(finetune(pruned, teacher, cfg, train_b, dev) if cfg["finetune_epochs"] else pruned)
            continue
        diff = logit_gap(pruned, masked, held)
        diff_trained = logit_gap(pruned, s, held)
        acc_trained = evaluate(s, test_b, dev)[1] if cfg.get("measure_trained", True) else None
        if cfg["finetune_epochs"]:
            pruned = finetune(pruned, teacher, cfg, train_b, dev)
        _, acc_pruned = evaluate(pruned, test_b, dev)
        select = agreement(pruned, teacher, data.select, dev)
        after = count(pruned)
        conv_after = cm.cost(pruned.widths(), conv_only=True)[1]
        per.append(dict(student=i, acc_trained=acc_trained, acc_pruned=acc_pruned, params_after=after["params"],
                        macs_after=after["macs"], params_pruned=1 - after["params"] / before["params"],
                        flops_pruned=1 - after["macs"] / before["macs"],
                        flops_pruned_dpfps=1 - conv_after / conv_before,
                        max_abs_logit_diff=diff, max_abs_logit_diff_vs_trained=diff_trained,
                        select_teacher_agreement=select, widths=pruned.widths(), masked=masked))
        pruned_models.append(pruned)
    if not write:
        return run.summary(), pruned_models
    best = select_student(per, cfg["select"], [tgt.met(p["params_pruned"], p["flops_pruned"]) for p in per])
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
        select_images_heldout=data.select_heldout, test_images=len(test_b.split.y),
        params_before=before["params"], params_after=bp["params_after"], macs_before=before["macs"],
        macs_after=bp["macs_after"], params_pruned=bp["params_pruned"], flops_pruned=bp["flops_pruned"],
        flops_pruned_dpfps=bp["flops_pruned_dpfps"], target_met=tgt.met(bp["params_pruned"], bp["flops_pruned"]),
        max_abs_logit_diff=max(p["max_abs_logit_diff"] for p in per),
        max_abs_logit_diff_vs_trained=max(p["max_abs_logit_diff_vs_trained"] for p in per),
        lambda_max_effective=method.lam_max, train_seconds=seconds, per_student=met,
        files={k: os.path.relpath(v, rdir) for k, v in paths.items()},  # relative: the run folder moves (commits)
    )
    run.write_summary(summary)
    return summary, pruned_models
