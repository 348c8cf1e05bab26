"""The runs at the paper's width (issue 23): ResNet-56 at width 1.0, the paper's own network, trained on the CPU in
the background across sessions and committed, so that `make reproduce` reads them and never retrains them.

They start from the paper-width teacher (config.PAPER_WIDTH, committed in teachers/<profile>/, trained by `make
teachers`), with the recipe of config.PAPER_WIDTH_STUDY:

- ``method-s<seed>``: the method (`method.prune_train`), N students copied from the teacher, label-free, one run
  per seed of the study (all taught by the seed-0 teacher: the seeds measure the students' run-to-run noise);
- ``control-distill``: the same-FLOPs control taught the same way: students of the network with every prunable
  width narrowed uniformly to the target (`uniform_widths`), from random weights, the same label-free loss from
  the same teacher, the same epochs and images, no penalty (`lambda_max` 0);
- ``control-scratch``: that narrow network trained from random weights with labels, by the teacher's recipe, for
  as many epochs as the teacher and the students together.

Each run lives in paper_width/<profile>/<run>/. While it trains: resume.pt, the run's whole state after its last
finished epoch (copied from runs/ after every call, so that the next call on any machine resumes from the
repository alone). Once finished: its records (config.json, metrics.csv, summary.json, provenance.json) and its
network (pruned_state.pt: `export.load_pruned` rebuilds it without our training code); resume.pt is removed.
`load_records` checks each finished record against today's settings (its cache key) and data (its fingerprint):
a mismatch is one error line naming the command that retrains.
"""
from __future__ import annotations

import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import teachers as T
from ..allocation import allocate, parse_target
from ..config import PAPER_WIDTH_STUDY, check_profile, config_key, paper_width_overrides, resolve_baseline
from ..counting import CostModel, count
from ..datasets import load_dataset
from ..engine import metrics_csv, pruning_run_dir
from ..export import write_pruned_state
from ..method import prune_train, resolve_method
from ..models import build_model
from ..provenance import ROOT, cpu_model, git_commit
from ..storage import CheckpointError, copy_if_further, load_checkpoint, write_bytes, write_json, write_text
from ..train import run_dir_for, train_baseline, train_teachers

STORE = ROOT / "paper_width"
RETRAIN_COMMAND = "make paper-width"
RESUME = "resume.pt"
KINDS = ("teacher", "method", "control_distill", "control_scratch")
# What a finished run keeps (small files; pruned_state.pt is the network, a few MB).
METHOD_RECORDS = ("config.json", "metrics.csv", "summary.json", "widths.json", "pruned_state.pt")


@dataclass(frozen=True)
class Run:
    name: str  # its folder under paper_width/<profile>/ and its name on the command line
    kind: str  # one of KINDS
    seed: int = 0

    def folder(self, profile: str) -> Path:
        if self.kind == "teacher":  # the committed teachers' store (teachers.py)
            s = study(profile)
            return T.teacher_dir(s["arch"], profile, 0, s["width"])
        return STORE / profile / self.name


def study(profile: str) -> dict:
    """The study's resolved recipe for `profile`: arch, target, seeds, students' overrides, control LR, and the
    teacher's settings overrides (its width: config.PAPER_WIDTH)."""
    s = PAPER_WIDTH_STUDY[check_profile(profile)]
    if not s:
        raise ValueError(f"profile: {profile!r} has no paper-width study; valid: "
                         f"{', '.join(p for p, v in PAPER_WIDTH_STUDY.items() if v)}")
    teacher = paper_width_overrides(s["arch"], profile)
    return dict(s, target=str(parse_target(s["target"])), teacher=teacher, width=teacher["width"])


def runs(profile: str) -> dict[str, Run]:
    """Every run of the study, by name, in the order `train_runs` takes them by default."""
    s = study(profile)
    out = [Run("teacher", "teacher")] + [Run(f"method-s{n}", "method", n) for n in s["seeds"][:1]]
    out += [Run("control-distill", "control_distill"), Run("control-scratch", "control_scratch")]
    out += [Run(f"method-s{n}", "method", n) for n in s["seeds"][1:]]
    return {r.name: r for r in out}


def uniform_widths(profile: str) -> list[int]:
    """The study's network with every prunable width narrowed by one common scale to the target: the keep counts
    the method's own allocation gives a network with every channel alive (floor(s·C_l), the largest s that meets
    the target, then single channels handed back while it still holds), so the FLOPs land just past the target."""
    s = study(profile)
    cm = CostModel(build_model(s["arch"], width=s["width"]))
    return allocate(cm, cm.widths, parse_target(s["target"])).keep


def _teacher_config(profile: str) -> dict:
    s = study(profile)
    return resolve_baseline(s["arch"], profile, 0, **s["teacher"])


def _method_overrides(run: Run, profile: str) -> dict:
    s = study(profile)
    over = dict(s["students"], width=s["width"])
    if run.kind == "control_distill":
        over.update(student_widths=uniform_widths(profile), lambda_max=0.0, lr=s["control_lr"])
    return over


def _scratch_config(profile: str) -> dict:
    s = study(profile)
    teacher = _teacher_config(profile)
    students = resolve_method(s["arch"], s["target"], profile, 0, **_method_overrides(Run("", "method"), profile))
    return resolve_baseline(s["arch"], profile, 0, **{**s["teacher"], "widths": uniform_widths(profile),
                                                      "epochs": teacher["epochs"] + students["epochs"]})


def expected_key(run: Run, profile: str) -> str:
    """The cache key today's settings give `run` (what its records and state must carry): for the method and the
    distilled control, prune_train's (its settings with the teacher's settings); for the labelled control,
    train_baseline's."""
    if run.kind == "control_scratch":
        return config_key(_scratch_config(profile))
    s = study(profile)
    cfg = resolve_method(s["arch"], s["target"], profile, run.seed, **_method_overrides(run, profile))
    cfg["teacher_config"] = _teacher_config(profile)
    return config_key(cfg, exclude=("profile", "compile"))


def _remedy(run: Run) -> str:
    return f"retrain it with `{RETRAIN_COMMAND} ONLY={run.name} RETRAIN=1` (cost: docs/profiles.md)"


# -- training ---------------------------------------------------------------------------------------------------------
def _finished(run: Run, profile: str) -> bool:
    return (run.folder(profile) / (T.WEIGHTS if run.kind == "teacher" else "summary.json")).exists()


def _provenance(summary: dict, seconds: float) -> dict:
    return dict(device=summary.get("device"), processor=cpu_model(), machine=platform.machine(),
                torch=torch.__version__, commit=git_commit(), train_seconds=round(seconds, 1),
                published=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _publish_method(run: Run, profile: str, result) -> str:
    d = run.folder(profile)
    if not result.summary:  # unfinished: its state travels in the repository
        write_bytes(d / RESUME, (result.run_dir / "state.pt").read_bytes())
        return f"epoch {result.metrics[-1]['epoch'] if result.metrics else 0} of {result.config['epochs']}"
    for name in METHOD_RECORDS:
        write_bytes(d / name, (result.run_dir / name).read_bytes())
    write_json(d / "provenance.json", _provenance(result.summary, result.summary["train_seconds"]))
    (d / RESUME).unlink(missing_ok=True)
    return "finished"


def _train_method(run: Run, profile: str, left, common: dict, max_epochs_now=None) -> str:
    s = study(profile)
    if not (T.teacher_dir(s["arch"], profile, 0, s["width"]) / T.WEIGHTS).exists():
        return f"waiting for the teacher ({T.RETRAIN_COMMAND})"
    # the committed paper-width teacher, checked (arch, width, settings, data); never trained here
    teacher = train_baseline(s["arch"], profile, 0, progress=False, allow_training=False,
                             **{k: common[k] for k in ("device", "data_dir", "download")}, **s["teacher"])
    result = prune_train(s["arch"], s["target"], profile, run.seed, teacher=teacher, export=False,
                         time_budget_s=left, max_epochs_now=max_epochs_now, resume_from=run.folder(profile) / RESUME,
                         resume_remedy=_remedy(run), **common, **_method_overrides(run, profile))
    return _publish_method(run, profile, result)


def _train_scratch(run: Run, profile: str, left, common: dict, max_epochs_now=None) -> str:
    s = study(profile)
    cfg = _scratch_config(profile)
    key = config_key(cfg)
    ckpt_path = run_dir_for(cfg) / "checkpoint.pt"
    d = run.folder(profile)
    copy_if_further(d / RESUME, ckpt_path, expect={"arch": s["arch"], "config_key": key}, remedy=_remedy(run))
    over = {k: cfg[k] for k in ("width", "widths", "epochs")}
    r = train_baseline(s["arch"], profile, 0, time_budget_s=left, max_epochs_now=max_epochs_now,
                       use_committed=False, allow_training=True, **common, **over)
    if len(r.metrics) < cfg["epochs"]:
        write_bytes(d / RESUME, ckpt_path.read_bytes())
        return f"epoch {len(r.metrics)} of {cfg['epochs']}"
    full = count(build_model(s["arch"], cfg["num_classes"], width=cfg["width"]))
    c = count(r.model)
    state = {k: v.detach().cpu() for k, v in r.model.state_dict().items()}
    write_pruned_state(d, s["arch"], cfg["num_classes"], cfg["width"], cfg["widths"], state, config_key=key)
    write_json(d / "config.json", {**cfg, "config_key": key, **r.dataset_stamp})
    write_text(d / "metrics.csv", metrics_csv(r.metrics))
    summary = dict(arch=s["arch"], target=s["target"], profile=profile, seed=cfg["seed"], **r.dataset_stamp,
                   device=r.device, commit=git_commit(), epochs=len(r.metrics), labels="on",
                   train_images=cfg["train_subset"] or "all", pruned_acc=r.test_acc, baseline_acc=None,
                   params_before=full["params"], params_after=c["params"], macs_before=full["macs"],
                   macs_after=c["macs"], params_pruned=1 - c["params"] / full["params"],
                   flops_pruned=1 - c["macs"] / full["macs"], widths=cfg["widths"], train_seconds=r.train_seconds)
    write_json(d / "summary.json", summary)
    write_json(d / "provenance.json", _provenance(summary, r.train_seconds))
    (d / RESUME).unlink(missing_ok=True)
    return "finished"


def train_runs(names=None, profile: str = "cpu", budget_s: float | None = None, retrain: bool = False,
               device: str = "auto", data_dir=None, download: bool = True, progress: bool = True,
               max_epochs_now: int | None = None) -> list[dict]:
    """`make paper-width`: train (or resume) each run of `names` (default: all, in `runs` order) within `budget_s`
    seconds, then copy its state or records to paper_width/<profile>/ (the teacher's to teachers/). A finished run
    is skipped unless `retrain` (which also drops its state; never the teacher's: `make teachers RETRAIN=1`). A run
    whose teacher is not finished waits (its status says so)."""
    known = runs(profile)
    names = list(known) if names is None else list(names)
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"runs: unknown run {bad[0]!r}; valid: {', '.join(known)}")
    t0, rows = time.perf_counter(), []
    common = dict(device=device, data_dir=data_dir, download=download, progress=progress)
    for name in names:
        run = known[name]
        d = run.folder(profile)
        if retrain and run.kind != "teacher":  # train_teachers(retrain=True) replaces the teacher's files
            shutil.rmtree(d, ignore_errors=True)
        if _finished(run, profile):
            rows.append(dict(run=name, status="finished (committed)", folder=str(d)))
            continue
        left = None if budget_s is None else budget_s - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            rows.append(dict(run=name, status="not reached (budget spent)", folder=str(d)))
            continue
        if run.kind == "teacher":  # `make teachers`'s job, for this one teacher
            # never retrained from here (hours of compute): `make teachers RETRAIN=1` does that
            t = train_teachers([study(profile)["arch"]], profile, 0, left, False, paper_width=True, **common)[0]
            rows.append(dict(run=name, status=t["status"], folder=t["folder"]))
            continue
        train = _train_scratch if run.kind == "control_scratch" else _train_method
        if retrain:  # the runs/ state of these settings goes too: a retrain starts from epoch 0
            _drop_local_state(run, profile)
        rows.append(dict(run=name, status=train(run, profile, left, common, max_epochs_now), folder=str(d)))
    return rows


def _drop_local_state(run: Run, profile: str) -> None:
    if run.kind == "control_scratch":
        (run_dir_for(_scratch_config(profile)) / "checkpoint.pt").unlink(missing_ok=True)
        return
    s = study(profile)
    cfg = resolve_method(s["arch"], s["target"], profile, run.seed, **_method_overrides(run, profile))
    shutil.rmtree(pruning_run_dir("prune", cfg, expected_key(run, profile)), ignore_errors=True)


# -- reading ----------------------------------------------------------------------------------------------------------
def run_state(run: Run, profile: str) -> str:
    """'finished', 'epoch k of E' (committed state), or 'not started'."""
    d = run.folder(profile)
    if _finished(run, profile):
        return "finished"
    if (d / RESUME).exists():  # (teachers.RESUME is the same name)
        ck = load_checkpoint(d / RESUME)
        total = ck["config"]["epochs"] if "config" in ck else None
        if total is None:
            total = resolve_method(study(profile)["arch"], study(profile)["target"], profile, run.seed,
                                   **_method_overrides(run, profile))["epochs"]
        return f"epoch {ck['epoch']} of {total}"
    return "not started"


def load_records(profile: str = "cpu", fingerprint: str | None = None) -> list[dict]:
    """One row per run of the study: its name, kind, seed and state, and for a finished one its summary and
    config, checked against today's settings and (`fingerprint`) data. Reads files only; trains nothing."""
    import json

    rows = []
    for run in runs(profile).values():
        if run.kind == "teacher":  # loaded and checked by train_baseline where a notebook needs it
            continue
        d = run.folder(profile)
        row = dict(run=run.name, kind=run.kind, seed=run.seed, state=run_state(run, profile), folder=str(d))
        if row["state"] == "finished":
            cfg = json.loads((d / "config.json").read_text())
            want = expected_key(run, profile)
            if cfg.get("config_key") != want:
                raise CheckpointError(f"{d}: committed run has settings key {cfg.get('config_key')!r}, today's "
                                      f"settings give {want!r}; {_remedy(run)}")
            if fingerprint is not None and cfg.get("dataset_fingerprint") != fingerprint:
                raise CheckpointError(f"{d}: committed run was trained on data {cfg.get('dataset_fingerprint')}, "
                                      f"this data is {fingerprint}; {_remedy(run)}")
            row.update(summary=json.loads((d / "summary.json").read_text()), config=cfg)
        rows.append(row)
    return rows


def data_fingerprint(profile: str = "cpu", data_dir=None) -> str:
    """The fingerprint of the study's dataset as found here (no download)."""
    return load_dataset(_teacher_config(profile)["dataset"], data_dir=data_dir, download=False).fingerprint
