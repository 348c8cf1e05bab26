"""Committed teachers: a profile's converged baselines, trained once by `make teachers` and kept in the
repository, so that `make reproduce` on a fresh clone trains no teacher.

teachers/<profile>/<arch>-s<seed>/ holds, once the teacher is finished:
    teacher.pt        weights + the settings, cache key and data fingerprint they were trained with (no optimizer)
    config.json       the resolved settings (+ cache key, data stamp)
    metrics.csv       one row per epoch (the curve on a fixed test subset, all test images at the last epoch)
    provenance.json   device, processor, threads, torch version, commit, training seconds, final accuracy
and, while it is still training, resume.pt: the full resumable checkpoint (weights, optimizer, schedule,
metrics), one path overwritten after each call of `make teachers`, so a run split over several sessions
resumes on any machine from the committed state.

Loading checks arch, width, cache key and data fingerprint; a mismatch is one error line naming `make
teachers`. Nothing is ever retrained over a committed teacher silently."""
from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from .config import config_key, profile_settings, resolve_baseline
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


def teacher_dir(arch: str, profile: str, seed: int = 0) -> Path:
    return TEACHERS / profile / f"{arch}-s{seed}"


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
    path = teacher_dir(arch, profile, seed) / WEIGHTS
    if not path.exists():
        return None
    ckpt = load_checkpoint(path)
    check_teacher(ckpt, path, cfg, fingerprint)
    model = build_model(arch, cfg["num_classes"], width=cfg["width"])
    load_state(model, ckpt["model"], path)
    return model.eval(), ckpt


def missing_teacher_error(arch: str, profile: str, seed: int) -> CheckpointError:
    d = teacher_dir(arch, profile, seed)
    state = f"unfinished ({RESUME} present)" if (d / RESUME).exists() else "absent"
    return CheckpointError(f"{d / WEIGHTS}: committed {profile} teacher {state}; `make reproduce` never trains one. "
                           f"Train it with `{RETRAIN_COMMAND}`")


def seed_run_from_resume(arch: str, profile: str, seed: int, run_checkpoint: Path) -> bool:
    """Copy the committed resume.pt into the run folder when it is further along than what is there (a new
    clone, or another machine). True when copied."""
    return copy_if_further(teacher_dir(arch, profile, seed) / RESUME, run_checkpoint, expect={"arch": arch})


def publish(arch: str, profile: str, seed: int, run_checkpoint: Path, dataset_stamp: dict | None = None) -> str:
    """Copy a run's state into teachers/: the weights and records when finished (resume.pt removed), else the
    resumable checkpoint as resume.pt. Returns 'finished', 'in progress' or 'nothing yet'."""
    if not run_checkpoint.exists():
        return "nothing yet"
    ckpt = load_checkpoint(run_checkpoint, expect={"arch": arch})
    cfg = ckpt["config"]
    d = teacher_dir(arch, profile, seed)
    if ckpt["epoch"] < cfg["epochs"]:
        save_checkpoint(d / RESUME, {k: v for k, v in ckpt.items() if k != "format"})
        return "in progress"
    if dataset_stamp is None:
        from .data import load_cifar

        dataset_stamp = load_cifar(cfg["dataset"], download=False).stamp()
    keep = ("arch", "num_classes", "width", "widths", "config_key", "config", "dataset_fingerprint", "epoch",
            "model", "metrics", "train_seconds", "device")
    save_checkpoint(d / WEIGHTS, {k: ckpt[k] for k in keep if k in ckpt})
    write_json(d / "config.json", {**cfg, "config_key": ckpt["config_key"], **dataset_stamp})
    from .engine import metrics_csv

    write_text(d / "metrics.csv", metrics_csv(ckpt["metrics"]))
    last = ckpt["metrics"][-1]
    write_json(d / "provenance.json", dict(
        device=ckpt["device"], processor=cpu_model(), machine=platform.machine(), torch=torch.__version__,
        commit=git_commit(), train_seconds=round(ckpt["train_seconds"], 1), epochs=ckpt["epoch"],
        test_acc=last["test_acc"], test_images=cfg["test_subset"] or "all", **dataset_stamp,
        published=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
    (d / RESUME).unlink(missing_ok=True)
    return "finished"


def train_teachers(archs, profile: str = "cpu", seed: int = 0, budget_s: float | None = None,
                   retrain: bool = False, device: str = "auto", data_dir=None, download: bool = True,
                   progress: bool = True, compile=False) -> list[dict]:
    """`make teachers`: train (or resume) each teacher of `archs` in turn within `budget_s` seconds, then
    publish its state to teachers/. Finished, matching teachers are skipped unless `retrain`."""
    from .train import run_dir_for, train_baseline

    if not is_committed_profile(profile):
        raise ValueError(f"profile: teachers are committed for {', '.join(COMMITTED_PROFILES)} only, got {profile!r}")
    t0, rows = time.perf_counter(), []
    for arch in archs:
        cfg = resolve_baseline(arch, profile, seed)
        d = teacher_dir(arch, profile, seed)
        ckpt_path = run_dir_for(cfg) / "checkpoint.pt"
        if retrain:
            for f in (d / WEIGHTS, d / RESUME, ckpt_path):
                f.unlink(missing_ok=True)
        elif (d / WEIGHTS).exists():
            try:
                check_teacher(load_checkpoint(d / WEIGHTS), d / WEIGHTS, cfg)
                rows.append(dict(arch=arch, status="finished (committed)", folder=str(d)))
                continue
            except CheckpointError:
                (d / WEIGHTS).unlink()  # `make teachers` is the command that replaces a stale teacher
        seed_run_from_resume(arch, profile, seed, ckpt_path)
        left = None if budget_s is None else budget_s - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            rows.append(dict(arch=arch, status=publish(arch, profile, seed, ckpt_path), folder=str(d)))
            continue
        run = train_baseline(arch, profile, seed, device=device, data_dir=data_dir, download=download,
                             progress=progress, time_budget_s=left, use_committed=False,
                             allow_training=True, compile=compile)
        status = publish(arch, profile, seed, ckpt_path, run.dataset_stamp)
        rows.append(dict(arch=arch, status=status, epochs_done=len(run.metrics), epochs=cfg["epochs"],
                         test_acc=run.test_acc if status == "finished" else None, folder=str(d)))
    return rows
