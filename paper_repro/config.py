"""Profiles and resolved settings: the one home of every profile's values.

A profile fixes the data, the budget and the widths. Its values for each part of the work are one table per
part, all here (`PROFILE_TABLES`: the teachers, the students' recipe, the method, the classic pipelines, the
ablation budget, the notebooks' own values), read through one resolver (`profile_settings`) and checked
against unknown keys by one function (`check_known`). The recipes' defaults (`BASELINE` here, `method.METHOD`,
`studies.classic.CLASSIC`, `studies.peer.PEER`) are what a profile changes. `resolve_baseline` turns (arch,
profile, seed, overrides) into one flat dict that is saved next to every run and hashed into its cache key.

Execution settings (`EXECUTION`: device, compile mode, progress bars) say where and how fast a run goes, not
what it computes: they are arguments of the training functions, never part of a cache key.
Values marked [chosen] are ours, not the paper's (the README lists them).
"""
from __future__ import annotations

import hashlib
import json

from .checks import check_choice, check_known
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
# precision of the training passes: "auto" (the device's default: bf16 autocast on a GPU, fp32 on the CPU; what
# every run before the setting existed did, so "auto" is absent from the settings and their cache keys stay), or
# "fp32" / "bf16" on any device. bf16 is autocast: fp32 weights, optimizer and BatchNorm, bf16 matmuls and
# convolutions. On the CPU a bf16 run needs native bf16 (provenance.native_bf16_cpu); evaluation stays fp32 there.
PRECISIONS = ("auto", "fp32", "bf16")

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
    # The LR per network, chosen without labels: of the LRs tried (bench/results/cpu_budget.jsonl: 0.05 down to
    # 0.0005), the one whose reported student agrees most with its teacher on held-out training images. The
    # students start converged, so a small LR keeps what the teacher learnt while the penalty (rescaled with the
    # LR, method.py) still removes channels; resnet56's choice also holds on the ablation budget.
    "cpu": dict(train_subset=10000, batch_size=64, nesterov=False, weight_decay=1e-4, lr_schedule="multistep",
                warmup_epochs=0,
                lr={"vgg_small": 0.01, "vgg_small_lq": 0.01, "mobilenetv2": 0.001, "*": 0.0005}),
    "paper": dict(),
}


# Method epochs per profile (None: the baseline's epochs, the DPFPS schedule). The students' data and optimizer
# settings are `resolve_students` (the run's `baseline` settings); the teacher stays the profile's.
PROFILE_METHOD = {
    "smoke": dict(epochs=2, select_images=128),
    # [chosen] 5x DPFPS's per-epoch penalty: with 3 epochs instead of 200 the progressive schedule has about
    # one epoch at full strength, too little for λ_max = 0.01 to kill channels (an 8-epoch GPU run at 0.01
    # reached 34% of a 60% FLOPs target).
    # 3 epochs: two with the penalty before the LR decays, one to recover (fewer leave no recovery epoch).
    "cpu": dict(epochs=3, lambda_max=0.05),
    "paper": dict(),
}

# The classic pipelines (06), as PROFILE_METHOD: the cpu budget is ~1 % of the paper's steps, so slimming's λ
# gets the same 5x the method's λ_max gets there.
PROFILE_CLASSIC = {"smoke": dict(), "cpu": dict(slim_lambda=5e-4), "paper": dict()}

# [chosen] Per-profile budget of one ablation arm (03-07; overrides of the method/students' settings).
ABLATION_BUDGET = {
    "smoke": dict(train_subset=256, epochs=1, lambda_max=0.3,  # strong enough that smoke arms do prune
                  measure_curve=False, measure_trained=False),
    # 3,000 of the 50,000 training images, 3 epochs (as notebook 02: two with the penalty, one to recover), so
    # that the ~25 trainings of 03-07 fit beside 01, 02 and 08 in `make reproduce` on 2 cores. λ_max 0.1 (2x
    # notebook 02's): at 0.05 a 4,000-image budget stopped at 58.9% of the 60% FLOPs target after the penalty
    # epochs, and arms compare better at (nearly) the same ratio. 05 sweeps λ_max around it. The LR is the
    # students' (resnet56: 0.0005; on this budget 0.0005 agreed with the teacher more than 0.001, 0.002, 0.01).
    # No per-epoch curve and no accuracy of the unpruned students (method.MEASURES): the ablation tables read only
    # the pruned students, and the two evaluations took ~27 s of a profiled 116-s two-student arm (estimated ~420
    # lane-s of `make reproduce`).
    "cpu": dict(train_subset=3000, epochs=3, lambda_max=0.1, measure_curve=False, measure_trained=False),
    "paper": dict(),  # the full recipe (200 epochs, 50,000 images): GPU-days for every arm
}

# [chosen] The notebooks' own per-profile values (smoke: just enough to run every cell).
_NOTEBOOK_FULL = dict(
    granularity_levels=[0.1, 0.3, 0.5, 0.7, 0.9],  # 06: weight sparsity levels of the granularity study
    tp_kd_arm=False,  # 07: + a label-free TP Taylor arm (KD from the teacher); see 07's text for why not on cpu
    tp_iterative_steps=400,  # 07: TP's benchmark, ratio 1.0 in 400 steps, stopped at the target
    latency_repeats=30,  # 08: timed calls per measurement, warm-up excluded
)
NOTEBOOK = {"smoke": dict(_NOTEBOOK_FULL, granularity_levels=[0.3, 0.7], tp_kd_arm=True, tp_iterative_steps=100,
                          latency_repeats=5),
            "cpu": dict(_NOTEBOOK_FULL), "paper": dict(_NOTEBOOK_FULL)}

# [chosen] Seeds that measure the run-to-run noise (reproduction/noise.py): the reference settings rerun with each (a dict
# picks per network, as above). `seeds`: the ablations' reference arm (03-07); `main_seeds`: each network's row of
# notebook 02's main table. smoke: two, so that the code path runs in the tests; paper: three, the fewest that give a
# standard deviation. cpu: three for the ablations, whose arms differ by fractions of a point; one for 02's
# reduced-budget rows (σ falls back to the test set's sampling error, labelled a lower bound): those rows sit 5-42
# points from the paper, far outside any σ measured here (2σ at most 0.99), ResNet-56's seed noise comes from the
# paper-width study's own seeds (PAPER_WIDTH_STUDY), and the two extra seeds of vgg_small and resnet56 cost
# ~1,200 lane-seconds, ~10 min of `make reproduce`, which its hour (docs/profiles.md) cannot afford.
NOISE = {"smoke": dict(seeds=(0, 1), main_seeds=(0, 1)), "cpu": dict(seeds=(0, 1, 2), main_seeds=(0,)),
         "paper": dict(seeds=(0, 1, 2), main_seeds=(0, 1, 2))}

# [chosen] What a converged teacher reaches on all 10,000 test images (notebook 01's verdicts): issue 11's goals
# for the cpu profile's reduced widths; the paper's full-width teachers are at 93-94%. None at smoke or paper.
TEACHER_GOALS = {"smoke": dict(), "cpu": dict(resnet56=0.88, vgg_small=0.88, mobilenetv2=0.82), "paper": dict()}

# [chosen] Teachers at the paper's width on the CPU (issue 23), trained once in the background across sessions
# and committed like the reduced-width ones: per arch, overrides of the profile's teacher settings. ResNet-56 at
# width 1.0 (0.85 M params, 125.5 M MACs): the cpu recipe with 60 epochs instead of 40 (the width-0.5 teacher
# still underfit at 40: 92.2% train accuracy at its last epoch); ~11 h of one AMD core, ~6 h of one Intel core.
# VGG-Small and MobileNetV2 at width 1.0 (issue 38), recipe fixed before any of their runs and without test labels:
# the cpu teachers' recipe as it stands (batch 128, Nesterov SGD, wd 5e-4, 2 warm-up epochs + cosine, LR 0.2 and
# 0.1), 40 epochs (the floor; more is a new run, not a longer one), in bf16 autocast (fp32 weights and
# BatchNorm; parity with fp32 measured first: bench/results/precision_parity.jsonl, docs/profiles.md), which
# bench/epoch_time.py measured 2.0x (VGG-Small) faster than fp32 per plain epoch on one AMD EPYC thread beside another
# lane; channels_last (faster than contiguous in both precisions there). A lane on a CPU without native bf16 skips them.
# smoke: a small stand-in, so that the tests run the same path.
PAPER_WIDTH = {"smoke": dict(resnet20=dict(width=0.5)),
               "cpu": dict(resnet56=dict(width=1.0, epochs=60),
                           vgg_small=dict(width=1.0, epochs=40, precision="bf16"),
                           mobilenetv2=dict(width=1.0, epochs=40, precision="bf16")),
               "paper": dict()}

# [chosen] The runs that start from the paper-width teacher (issue 23; reproduction/paper_width.py): the network
# and target, the seeds of the method, and the students' recipe (overrides of the profile's students' settings).
# cpu: all 50,000 training images, N = 2, 15 epochs (DPFPS's step schedule: the progressive penalty over the
# first 8, the LR x0.1 at epochs 8 and 11), ~4 h of one Intel core per run by bench/epoch_time.py (966 s per
# method epoch beside another lane), so three seeds would fit; the runs measured 4.5-6 h, so the third trains last.
# lr 0.01: the usual LR for training on from a converged CIFAR ResNet, a tenth of DPFPS's from-scratch 0.1; set
# before any run, no label or test image read. λ_max 0.03 (after the rescaling to the LR that every run gets:
# λ_eff 0.30, 30x DPFPS's weight against the loss, 3x its shrinkage per epoch; docs/choices.md): with 8 penalty
# epochs instead of 100 the penalty has ~4.5 epochs at full strength; at 0.02 a 10-epoch pilot (width 0.5) stopped
# at 59.05% of 60%.
# The same-FLOPs controls: `control_lr` is the distilled control's LR (its students start from random weights).
# cpu: 0.02, chosen without labels by bench/control_lr_probe.py (2026-12-06, bench/results/control_lr_probe.jsonl):
# of 0.1, 0.05, 0.02 and 0.01, the one whose students agree most with the teacher's predicted class on training
# images after 200 steps (mean agreement 0.24 on 256 images; 0.1, DPFPS's from-scratch LR, collapsed to one class:
# 0.11, and a run at 0.1 stood at 10-18% curve accuracy after two epochs). The smoke stand-in keeps 0.1. The
# labelled control trains with the teacher's recipe for the teacher's epochs plus the students'. The fine-tuning
# test: 5 epochs with labels at classic.CLASSIC's lr 0.01 (x0.1 at 50% and 75%), ~15 min.
# smoke: a small stand-in with the same path.
PAPER_WIDTH_STUDY = {
    "smoke": dict(arch="resnet20", target="flops=0.5", seeds=(0, 1), control_lr=0.1, finetune_epochs=1,
                  students=dict(students=2, epochs=2, lambda_max=0.3)),
    "cpu": dict(arch="resnet56", target="flops=0.60", seeds=(0, 1, 2), control_lr=0.02, finetune_epochs=5,
                teacher_goal=0.925,  # issue 23's goal for the paper-width teacher, all 10,000 test images
                students=dict(students=2, epochs=15, lr=0.01, lambda_max=0.03, train_subset=50_000)),
    "paper": dict(),
}

# Every per-profile table, by the part of the work it sets.
PROFILE_TABLES = {"teacher": PROFILE_SETTINGS, "students": STUDENT_RECIPE, "method": PROFILE_METHOD,
                  "classic": PROFILE_CLASSIC, "ablation": ABLATION_BUDGET, "notebook": NOTEBOOK, "noise": NOISE,
                  "teacher_goals": TEACHER_GOALS}

# Execution settings: where and how a run goes, not what it computes (never in a cache key).
# compile: a torch.compile mode for the training step, or False: eager, the CPU default (bitwise reproducible);
# the command line spells False "off".
COMPILE_MODES = (False, "default", "reduce-overhead", "max-autotune-no-cudagraphs")
EXECUTION = dict(device="auto", compile=False, progress=True)


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile: unknown profile {profile!r}; valid names: {', '.join(PROFILES)}")
    return profile


def pick_for_arch(value, arch):
    """A profile value, or its entry for `arch` when it is a dict keyed by arch (\"*\" = any other arch)."""
    if isinstance(value, dict):
        return value.get(arch, value.get("*"))
    return value


def profile_settings(part: str, profile: str, arch: str | None = None) -> dict:
    """The values `profile` sets for `part` (a key of PROFILE_TABLES), each picked for `arch`."""
    check_profile(profile)
    return {k: pick_for_arch(v, arch) for k, v in PROFILE_TABLES[part][profile].items()}


def check_compile(mode) -> None:
    if mode is not False and mode not in COMPILE_MODES:  # `is`: 0 would pass `in`
        raise ValueError(f"compile: unknown value {mode!r}; valid: {', '.join(map(str, COMPILE_MODES))}")


def resolve_baseline(arch: str, profile: str = "cpu", seed: int = 0, **overrides) -> dict:
    """Flat settings for training the baseline `arch` under `profile`; `overrides` win (None = keep)."""
    check_arch(arch)
    cfg = dict(BASELINE)
    cfg.update(profile_settings("teacher", profile, arch))
    check_known(overrides, set(cfg) | {"num_classes", "widths", "precision"})
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    check_choice("precision", cfg.get("precision", "auto"), PRECISIONS)
    if cfg.get("precision") == "auto":  # absent: the settings (and keys) of every run before the setting
        del cfg["precision"]
    if cfg.get("widths") is not None:  # a given network shape (e.g. a uniformly narrowed control); absent otherwise,
        # so that every other run's settings, and hence its cache key, stay what they were
        w = cfg["widths"]
        if not (isinstance(w, (list, tuple)) and w and all(isinstance(k, int) and k >= 1 for k in w)):
            raise ValueError(f"widths: must be a non-empty list of positive integers (per prunable group), got {w!r}")
        cfg["widths"] = [int(k) for k in w]
    check_dataset(cfg["dataset"])
    if cfg.get("num_classes") is None:
        cfg["num_classes"] = 100 if cfg["dataset"] == "cifar100" else 10
    if not (isinstance(seed, int) and seed >= 0):
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    for k in ("epochs", "batch_size"):
        if not (isinstance(cfg[k], int) and cfg[k] >= 1):
            raise ValueError(f"{k}: must be a positive integer, got {cfg[k]!r}")
    check_choice("lr_schedule", cfg["lr_schedule"], LR_SCHEDULES)
    if not (isinstance(cfg["warmup_epochs"], int) and 0 <= cfg["warmup_epochs"] < cfg["epochs"]):
        raise ValueError(f"warmup_epochs: must be an integer in [0, epochs), got {cfg['warmup_epochs']!r}")
    cfg.update(arch=arch, profile=profile, seed=seed)
    return dict(sorted(cfg.items()))


def paper_width_overrides(arch: str, profile: str) -> dict:
    """The teacher settings that put `arch` at the paper's width under `profile` (PAPER_WIDTH)."""
    table = PAPER_WIDTH[check_profile(profile)]
    if arch not in table:
        raise ValueError(f"arch: the {profile} profile has no paper-width teacher for {arch!r}; valid: "
                         f"{', '.join(table) or 'none'}")
    return dict(table[arch])


def config_key(cfg: dict, exclude=("profile",)) -> str:
    """Cache key: a hash of every setting that changes the result (the profile name itself does not)."""
    blob = json.dumps({k: v for k, v in cfg.items() if k not in exclude}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def resolve_students(arch: str, profile: str = "cpu", seed: int = 0, **overrides) -> dict:
    """The students' data and optimizer settings: the baseline's, with `STUDENT_RECIPE[profile]`, then
    `overrides` (None = keep)."""
    recipe = profile_settings("students", profile, arch)
    return resolve_baseline(arch, profile, seed, **{**recipe, **{k: v for k, v in overrides.items() if v is not None}})
