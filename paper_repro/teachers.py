"""Committed teachers: a profile's converged baselines, trained once by `make teachers` and kept in the
repository, so that `make reproduce` on a fresh clone trains no teacher.

teachers/<profile>/<arch>-s<seed>/ (at the profile's width; <arch>-w<width>-s<seed>/ at another one, e.g. the
paper-width teachers of config.PAPER_WIDTH) holds, once the teacher is finished:
    teacher.pt        weights + the settings, cache key and data fingerprint they were trained with (no optimizer)
    config.json       the resolved settings (+ cache key, data stamp)
    metrics.csv       one row per epoch (the curve on a fixed test subset, all test images at the last epoch)
    provenance.json   device, processor, threads, torch version, commit, training seconds, final accuracy
    digests.json      the sha256 of each of those files, recorded at publish and checked on load (a teacher
                      published before digests were kept has none: accepted as it is, 'legacy')
and, while it is still training, resume.pt: the full resumable checkpoint (weights, optimizer, schedule,
metrics), one path overwritten after each call of `make teachers`, so a run split over several sessions
resumes on any machine from the committed state.

Publishing writes teacher.pt, the finished marker, last (after the records and digests.json) and removes resume.pt
after it; resume.pt is written first where it is absent, so a publish stopped half-way leaves an unfinished teacher
that the next call publishes again, never a "finished" one without its records.

`train.train_teachers` is the job that trains them (`make teachers`); this module only stores and checks them.
Loading checks arch, width, cache key and data fingerprint; a mismatch is one error line naming `make
teachers`, the one case where `make teachers` retrains. Nothing is ever retrained over a committed teacher
silently: a teacher.pt that does not load, a file that differs from its digest, malformed JSON, or records without
teacher.pt and without resume.pt are refused, naming the file and `git checkout -- FILE`."""
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
from .runlock import holds_run_locks, lock_run_folder
from .storage import (DIGESTS, CheckpointError, checkpoint_bytes, check_digests, copy_if_further, json_bytes,
                      load_checkpoint, load_state, read_json, restore_remedy, save_checkpoint, sha256_bytes,
                      write_bytes, write_digests)

TEACHERS = ROOT / "teachers"
# Profiles whose teachers live in the repository: the cpu profile's (trained here), and the paper profile's, trained
# on GPUs lent for minutes at a time (`campaign`): resume.pt carries an unfinished one from one machine to the next.
COMMITTED_PROFILES = ("cpu", "paper")
RETRAIN_COMMAND = "make teachers"
WEIGHTS, RESUME = "teacher.pt", "resume.pt"
JSON_RECORDS = ("config.json", "provenance.json", DIGESTS, "per_image.json")  # read (named) before any training
RECORDS = (WEIGHTS, "config.json", "metrics.csv", "provenance.json", DIGESTS, "per_image.json")
PUBLISHED = (WEIGHTS, "config.json", "metrics.csv", "provenance.json")  # what every finished teacher holds


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


def check_record(d: Path) -> None:
    """Refuse a damaged teacher folder before anything trains: its JSON records must parse (`read_json` names the
    file); a finished teacher (teacher.pt, the finished marker) must hold every file of `PUBLISHED`; records without
    teacher.pt and without resume.pt (a teacher in progress, or a publish stopped half-way) mean teacher.pt was
    lost: restore it, never retrain over the records."""
    for name in JSON_RECORDS:
        if (d / name).exists():
            read_json(d / name)
    if (d / WEIGHTS).exists():
        lost = [n for n in PUBLISHED if not (d / n).exists()]
        if lost:
            raise CheckpointError(f"{d / lost[0]}: missing from a finished teacher's records. "
                                  f"{restore_remedy(d / lost[0])}")
    elif not (d / RESUME).exists():
        present = [n for n in RECORDS if (d / n).exists()]
        if present:
            raise CheckpointError(f"{d / WEIGHTS}: missing beside the records of a finished teacher "
                                  f"({', '.join(present)}); `{RETRAIN_COMMAND}` would train over them. "
                                  f"{restore_remedy(d / WEIGHTS)} (or retrain on purpose: `{RETRAIN_COMMAND} "
                                  "RETRAIN=1`)")


def read_committed(d: Path) -> dict:
    """teacher.pt's checkpoint, after `check_record`; a file that does not load is refused with its remedy (restore
    it from git), never deleted."""
    check_record(d)
    return load_checkpoint(d / WEIGHTS, remedy=restore_remedy(d / WEIGHTS))


def load_committed(arch: str, profile: str, seed: int = 0, fingerprint: str | None = None, **overrides):
    """(model in eval mode, checkpoint dict) of the committed teacher, checked against today's settings and its
    digests (`storage.check_digests`). None when the profile has no committed teacher folder for `arch` (the
    caller decides what that means)."""
    cfg = resolve_baseline(arch, profile, seed, **overrides)
    d = teacher_dir(arch, profile, seed, cfg["width"])
    path = d / WEIGHTS
    if not path.exists():
        check_record(d)  # records without teacher.pt are refused, not taken for "never trained"
        return None
    ckpt = read_committed(d)
    check_teacher(ckpt, path, cfg, fingerprint)
    check_digests(d)
    model = build_model(arch, cfg["num_classes"], width=cfg["width"])
    load_state(model, ckpt["model"], path, remedy=restore_remedy(path))
    return model.eval(), ckpt


def clear_record(d: Path) -> None:
    """Remove a teacher's records and carried state (what `make teachers` replaces: a stale or retrained one)."""
    for name in (*RECORDS, RESUME):
        (d / name).unlink(missing_ok=True)


@holds_run_locks
def drop_for_retrain(d: Path, run_dir: Path) -> None:
    """`make teachers RETRAIN=1`: take the run folder's lock first (a lane training this teacher keeps it: the call
    fails here, and nothing is deleted), then remove the committed teacher, its state and the local state."""
    lock_run_folder(run_dir)
    clear_record(d)
    (run_dir / "checkpoint.pt").unlink(missing_ok=True)


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
    resumable checkpoint as resume.pt. Returns 'finished', 'in progress' or 'nothing yet'.

    Finished: resume.pt first where absent (the folder reads 'in progress' until the end), then config.json,
    metrics.csv, provenance.json, digests.json (the sha256 of all four and of teacher.pt), teacher.pt last (the
    finished marker), then resume.pt goes: a publish stopped anywhere is published again by the next call."""
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
    if not (d / RESUME).exists():  # "in progress" until teacher.pt is written
        save_checkpoint(d / RESUME, {k: v for k, v in ckpt.items() if k != "format"})
    keep = ("arch", "num_classes", "width", "widths", "config_key", "config", "dataset_fingerprint", "epoch",
            "model", "metrics", "train_seconds", "device")
    last = ckpt["metrics"][-1]
    files = {
        "config.json": json_bytes({**cfg, "config_key": ckpt["config_key"], **dataset_stamp}),
        "metrics.csv": metrics_csv(ckpt["metrics"]).encode(),
        "provenance.json": json_bytes(dict(
            device=ckpt["device"], precision=cfg.get("precision", "auto"), processor=cpu_model(),
            machine=platform.machine(), torch=torch.__version__,
            commit=git_commit(), train_seconds=round(ckpt["train_seconds"], 1), epochs=ckpt["epoch"],
            test_acc=last["test_acc"], test_images=cfg["test_subset"] or "all", **dataset_stamp,
            published=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))),
        WEIGHTS: checkpoint_bytes({k: ckpt[k] for k in keep if k in ckpt}),
    }
    for name, data in files.items():
        if name != WEIGHTS:
            write_bytes(d / name, data)
    write_digests(d, {name: sha256_bytes(data) for name, data in files.items()})
    write_bytes(d / WEIGHTS, files[WEIGHTS])
    (d / RESUME).unlink(missing_ok=True)
    return "finished"
