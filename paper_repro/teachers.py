"""Committed teachers: a profile's converged baselines, trained once by `make teachers` and kept in the
repository, so that `make reproduce` on a fresh clone trains no teacher.

teachers/<profile>/<arch>-s<seed>/ (at the profile's width; <arch>-w<width>-s<seed>/ at another one, e.g. the
paper-width teachers of config.PAPER_WIDTH) holds, once the teacher is finished:
    teacher.pt        weights + the settings, cache key and data fingerprint they were trained with (no optimizer)
    config.json       the resolved settings (+ cache key, data stamp)
    metrics.csv       one row per epoch (the curve on a fixed test subset, all test images at the last epoch)
    provenance.json   device, processor, threads, torch version, commit, training seconds, final accuracy
and, while it is still training, resume.pt: the full resumable checkpoint (weights, optimizer, schedule,
metrics), one path overwritten after each call of `make teachers`, so a run split over several sessions
resumes on any machine from the committed state.

`train.train_teachers` is the job that trains them (`make teachers`); this module only stores and checks them.
Loading checks arch, width, cache key and data fingerprint; a mismatch is one error line naming `make
teachers`. Nothing is ever retrained over a committed teacher silently."""
from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from .config import config_key, paper_width_overrides, profile_settings, resolve_baseline
from .datasets import load_dataset
from .engine import metrics_csv
from .models import build_model
from .provenance import ROOT, cpu_model, git_commit
from .storage import (CheckpointError, copy_if_further, load_checkpoint, load_state, save_checkpoint, write_json,
                      write_text)

TEACHERS = ROOT / "teachers"
# Profiles whose teachers live in the repository: the cpu profile's (trained here), and the paper profile's, trained
# on GPUs lent for minutes at a time (`campaign`): resume.pt carries an unfinished one from one machine to the next.
COMMITTED_PROFILES = ("cpu", "paper")
RETRAIN_COMMAND = "make teachers"
WEIGHTS, RESUME = "teacher.pt", "resume.pt"


def teacher_goals(profile: str) -> dict:
    """{arch: test accuracy} a converged teacher of `profile` reaches (config.TEACHER_GOALS; notebook 01)."""
    return profile_settings("teacher_goals", profile)


def teacher_dir(arch: str, profile: str, seed: int = 0, width: float | None = None) -> Path:
    """The committed teacher's folder; `width` names it only where it differs from the profile's own width."""
    if width is None or width == resolve_baseline(arch, profile, seed)["width"]:
        return TEACHERS / profile / f"{arch}-s{seed}"
    return TEACHERS / profile / f"{arch}-w{width:g}-s{seed}"


def committed_variants(arch: str, profile: str) -> list[dict]:
    """The teacher-setting overrides that have a committed teacher: the profile's own ({}) and, where
    config.PAPER_WIDTH names `arch`, the paper-width one."""
    try:
        return [{}, paper_width_overrides(arch, profile)]
    except ValueError:
        return [{}]


def is_committed_settings(cfg: dict) -> bool:
    """True when `cfg` (resolved baseline settings) are those of a committed teacher of its profile."""
    if not is_committed_profile(cfg["profile"]):
        return False
    return any(cfg == resolve_baseline(cfg["arch"], cfg["profile"], cfg["seed"], **o)
               for o in committed_variants(cfg["arch"], cfg["profile"]))


def is_committed_profile(profile: str) -> bool:
    return profile in COMMITTED_PROFILES


def check_teacher(ckpt: dict, path: Path, cfg: dict, fingerprint: str | None = None) -> None:
    """Raise CheckpointError (one line, naming the retrain command) unless `ckpt` was trained with `cfg`."""
    fix = f"retrain the teachers with `{RETRAIN_COMMAND}` (cost: README, 'Teachers')"
    for k, want in (("arch", cfg["arch"]), ("width", cfg["width"]), ("config_key", config_key(cfg))):
        if ckpt.get(k) != want:
            raise CheckpointError(f"{path}: committed teacher has {k}={ckpt.get(k)!r}, the {cfg['profile']} profile "
                                  f"now gives {want!r}; {fix}")
    if fingerprint is not None and ckpt.get("dataset_fingerprint") != fingerprint:
        raise CheckpointError(f"{path}: committed teacher was trained on data {ckpt.get('dataset_fingerprint')}, "
                              f"this data is {fingerprint}; {fix}")
    if ckpt.get("epoch", 0) < cfg["epochs"]:
        raise CheckpointError(f"{path}: committed teacher stopped at epoch {ckpt.get('epoch')} of {cfg['epochs']}; "
                              f"finish it with `{RETRAIN_COMMAND}`")


def load_committed(arch: str, profile: str, seed: int = 0, fingerprint: str | None = None, **overrides):
    """(model in eval mode, checkpoint dict) of the committed teacher, checked against today's settings.
    None when the profile has no committed teacher folder for `arch` (the caller decides what that means)."""
    cfg = resolve_baseline(arch, profile, seed, **overrides)
    path = teacher_dir(arch, profile, seed, cfg["width"]) / WEIGHTS
    if not path.exists():
        return None
    ckpt = load_checkpoint(path)
    check_teacher(ckpt, path, cfg, fingerprint)
    model = build_model(arch, cfg["num_classes"], width=cfg["width"])
    load_state(model, ckpt["model"], path)
    return model.eval(), ckpt


def missing_teacher_error(arch: str, profile: str, seed: int, width: float | None = None) -> CheckpointError:
    d = teacher_dir(arch, profile, seed, width)
    state = f"unfinished ({RESUME} present)" if (d / RESUME).exists() else "absent"
    return CheckpointError(f"{d / WEIGHTS}: committed {profile} teacher {state}; `make reproduce` never trains one. "
                           f"Train it with `{RETRAIN_COMMAND}`")


def seed_run_from_resume(arch: str, profile: str, seed: int, run_checkpoint: Path,
                         width: float | None = None) -> bool:
    """Copy the committed resume.pt into the run folder when it is further along than what is there (a new
    clone, or another machine). True when copied."""
    return copy_if_further(teacher_dir(arch, profile, seed, width) / RESUME, run_checkpoint,
                           expect={"arch": arch})


def publish(arch: str, profile: str, seed: int, run_checkpoint: Path, dataset_stamp: dict | None = None) -> str:
    """Copy a run's state into teachers/: the weights and records when finished (resume.pt removed), else the
    resumable checkpoint as resume.pt. Returns 'finished', 'in progress' or 'nothing yet'."""
    if not run_checkpoint.exists():
        return "nothing yet"
    ckpt = load_checkpoint(run_checkpoint, expect={"arch": arch})
    cfg = ckpt["config"]
    d = teacher_dir(arch, profile, seed, cfg["width"])
    if ckpt["epoch"] < cfg["epochs"]:
        save_checkpoint(d / RESUME, {k: v for k, v in ckpt.items() if k != "format"})
        return "in progress"
    if dataset_stamp is None:
        dataset_stamp = load_dataset(cfg["dataset"], download=False).stamp()
    keep = ("arch", "num_classes", "width", "widths", "config_key", "config", "dataset_fingerprint", "epoch",
            "model", "metrics", "train_seconds", "device")
    save_checkpoint(d / WEIGHTS, {k: ckpt[k] for k in keep if k in ckpt})
    write_json(d / "config.json", {**cfg, "config_key": ckpt["config_key"], **dataset_stamp})
    write_text(d / "metrics.csv", metrics_csv(ckpt["metrics"]))
    last = ckpt["metrics"][-1]
    write_json(d / "provenance.json", dict(
        device=ckpt["device"], precision=cfg.get("precision", "auto"), processor=cpu_model(),
        machine=platform.machine(), torch=torch.__version__,
        commit=git_commit(), train_seconds=round(ckpt["train_seconds"], 1), epochs=ckpt["epoch"],
        test_acc=last["test_acc"], test_images=cfg["test_subset"] or "all", **dataset_stamp,
        published=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
    (d / RESUME).unlink(missing_ok=True)
    return "finished"
