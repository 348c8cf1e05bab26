"""The runs at the paper's width (issue 23): ResNet-56 at width 1.0, the paper's own network, trained on the CPU in
the background across sessions and committed, so that `make reproduce` reads them and never retrains them.

They start from the paper-width teacher (config.PAPER_WIDTH, committed in teachers/<profile>/ and trained by `make
teachers` or by the `teacher` run here), with the recipe of config.PAPER_WIDTH_STUDY:

- ``method-s<seed>``: the method (`method.prune_train`): N students copied from the teacher, label-free, no
  fine-tuning; one run per seed of the study, all taught by the seed-0 teacher (the seeds measure the students'
  run-to-run noise);
- ``control-distill``: the same-FLOPs control taught the same way: students of the network with every prunable
  width narrowed by one scale to the target (`uniform_widths`), from random weights, the same label-free loss from
  the same teacher, the same epochs and images, no penalty; its own LR (`control_lr`, chosen without labels by
  bench/control_lr_probe.py);
- ``control-scratch``: that narrow network trained from random weights with labels, by the teacher's recipe, for
  as many epochs as the teacher and the students together;
- ``peer-tp``: Torch-Pruning with its own recipe (group-norm sparse training with labels and TP's magnitude
  importance, a global cut at the ratio, fine-tuning with labels), its epochs split at the method's first LR decay;
- ``peer-l1``: L1-norm pruning of the teacher (one global threshold over layer-normalised norms) at the ratio,
  then fine-tuning with labels for the students' epochs (studies/classic.py).
  Both peers aim at the ratio ``method-s0`` measured (`peer_target`), not at the study's nominal target: the method
  may land short of it or past it, and a peer more than one point away could not be compared. They wait for it.
- ``finetune``: the pruned network of ``method-s0`` fine-tuned with labels (classic.CLASSIC's optimiser,
  `finetune_epochs`): what labels add after the method, measured rather than assumed.

Each run lives in paper_width/<profile>/<run>/. While it trains: resume/<file>, the run folder's state files after
its last finished epoch (copied from runs/ after every epoch, and at the end of every call, so that the next call on
any machine resumes from the repository alone, even after a process stopped hard; one of other settings is refused;
a state above `CARRY_EVERY_EPOCH_MAX_BYTES` travels at the end of a call only, unless `carry_every_epoch`). Once
finished: its records (config.json, summary.json, metrics.csv where the run writes one, provenance.json,
digests.json) and its network (pruned_state.pt: `export.load_pruned` rebuilds it without our training code);
resume/ is removed. chunks.json, kept throughout, says which epochs trained on which processor (`log_chunk`, after
every epoch that travels); epochs it does not cover are flagged (`chunk_gaps`).

The store keeps what it holds (`check_store`, called for every named run before anything trains, and by
`load_records`): its JSON is read by one reader that names a malformed file; a finished record is checked against the
sha256 of each file recorded when it was published (digests.json; a record published before digests were kept has
none and is accepted, 'legacy'); records without summary.json and without resume/ are refused (restore with `git
checkout`), never retrained over. Publishing writes summary.json, the finished marker, last (after digests.json),
with resume/ kept until then: a publish stopped half-way is published again by the next call. `retrain` takes the
run folder's lock before it deletes anything. `load_records` checks each finished record against today's settings
(its cache key) and data (its fingerprint): a mismatch is one error line naming the command that retrains, the only
case that retrains.
"""
from __future__ import annotations

import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .. import teachers as T
from ..allocation import allocate, parse_target
from ..config import PAPER_WIDTH_STUDY, check_profile, config_key, paper_width_overrides, resolve_baseline
from ..counting import CostModel, count
from ..datasets import load_dataset
from ..engine import (after_each_epoch, epochs_run, eval_batches, evaluate, metrics_csv, milestone_epochs,
                      prepare_data, run_folder, train_batches)
from ..export import PRUNED_STATE, load_pruned, pruned_state
from ..method import prune_train, resolve_method, run_key
from ..models import build_model
from ..paired import PER_IMAGE, PerImage, PerImageError, correct_per_image, file_sha256, read_per_image, \
    scored_split, write_per_image
from ..provenance import ROOT, cpu_model, device_name, git_commit, processor_of, resolve_device
from ..runlock import holds_run_locks, is_locked, lock_run_folder
from ..storage import (DIGESTS, CheckpointError, check_digests, checkpoint_bytes, copy_if_further, json_bytes,
                       load_checkpoint, read_json, restore_remedy, sha256_bytes, write_bytes, write_digests, write_json,
                       write_text)
from ..studies import classic, peer
from ..train import run_dir_for, train_baseline, train_teachers
from .noise import Noise, from_values

STORE = ROOT / "paper_width"
RETRAIN_COMMAND = "make paper-width"
RESUME = "resume"  # the folder of a run's carried state files
CHUNKS = "chunks.json"  # a run's record of which epochs trained where (`log_chunk`); kept once it has finished
KINDS = ("teacher", "method", "control_distill", "control_scratch", "peer_tp", "peer_l1", "finetune")
# The state files each kind's training writes in its run folder (what travels while it is unfinished).
STATE_FILES = {"method": ("state.pt",), "control_distill": ("state.pt",), "control_scratch": ("checkpoint.pt",),
               "peer_tp": ("state.pt", "finetune.pt"), "peer_l1": ("finetune.pt",), "finetune": ("finetune.pt",)}
# What a finished run keeps, copied from its run folder (small files; pruned_state.pt is the network, a few MB).
RECORDS = {"method": ("config.json", "metrics.csv", "summary.json", "widths.json", PRUNED_STATE),
           "peer_tp": ("config.json", "metrics.csv", "summary.json", PRUNED_STATE),
           "peer_l1": ("config.json", "summary.json", PRUNED_STATE)}
RECORDS["control_distill"] = RECORDS["method"]
MARKER = "summary.json"  # a run is finished once its summary.json is in the store: written last when publishing
# Every file a finished run's folder may hold besides chunks.json (what `check_store` looks for without a marker),
# and those of them that are JSON (read, named, before anything trains).
RECORD_FILES = ("config.json", "metrics.csv", "widths.json", PRUNED_STATE, "provenance.json", DIGESTS, PER_IMAGE,
                MARKER)
JSON_FILES = ("config.json", "provenance.json", DIGESTS, PER_IMAGE, MARKER, CHUNKS)
# A run's state files travel to the store after every epoch up to this size in all (resnet56 at width 1: a method
# state of a few MB); a larger one (VGG-Small's 229 MiB) at the end of each call only, unless `carry_every_epoch`.
CARRY_EVERY_EPOCH_MAX_BYTES = 64 * 2**20


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

    def run_dir(self, profile: str) -> Path:
        """Where it trains (runs/paper_width/<profile>/<run>; the labelled control: its baseline folder)."""
        if self.kind == "control_scratch":
            return run_dir_for(_scratch_config(profile))
        return run_folder("paper_width", f"{profile}/{self.name}")


def has_study(profile: str) -> bool:
    return bool(PAPER_WIDTH_STUDY[check_profile(profile)])


def study(profile: str) -> dict:
    """The study's resolved recipe for `profile`: arch, target, seeds, students' overrides, control LR, fine-tuning
    epochs, and the teacher's settings overrides (its width: config.PAPER_WIDTH)."""
    s = PAPER_WIDTH_STUDY[check_profile(profile)]
    if not s:
        raise ValueError(f"profile: {profile!r} has no paper-width study; valid: "
                         f"{', '.join(p for p, v in PAPER_WIDTH_STUDY.items() if v)}")
    teacher = paper_width_overrides(s["arch"], profile)
    return dict(s, target=str(parse_target(s["target"])), teacher=teacher, width=teacher["width"],
                teacher_goal=s.get("teacher_goal"))


# The runs of a profile's study that trained on less than their own recipe, and how (issue 36, item 4): a comparison
# with one of them reports its number but may not say "supported" (verdicts.SHORT_OF_RECIPE) until it is re-run with
# its recipe scaled to the same total budget. cpu: the budget of 15 student epochs starved both.
SHORT_OF_RECIPE = {
    "smoke": {},
    "cpu": {"peer-tp": "Torch-Pruning's recipe trains 200 epochs; here it had 15 (8 sparse, 7 fine-tuning), its "
                       "penalty scaled up to fit",
            "control-distill": "it learns from random weights in the students' 15 epochs, where the labelled "
                               "same-FLOPs control had 75"},
    "paper": {},
}


def short_of_recipe(profile: str) -> dict[str, str]:
    """{run: how it fell short of its own recipe} for `profile`'s study (SHORT_OF_RECIPE)."""
    return dict(SHORT_OF_RECIPE[check_profile(profile)])


def runs(profile: str) -> dict[str, Run]:
    """Every run of the study, by name, in the order `train_runs` takes them by default."""
    s = study(profile)
    out = [Run("teacher", "teacher"), Run(f"method-s{s['seeds'][0]}", "method", s["seeds"][0]),
           Run("control-distill", "control_distill"), Run("control-scratch", "control_scratch"),
           Run("peer-tp", "peer_tp"), Run("peer-l1", "peer_l1"), Run("finetune", "finetune")]
    out += [Run(f"method-s{n}", "method", n) for n in s["seeds"][1:]]
    return {r.name: r for r in out}


def uniform_widths(profile: str) -> list[int]:
    """The study's network with every prunable width narrowed by one common scale to the target: the keep counts
    the method's own allocation gives a network with every channel alive (floor(s·C_l), the largest s that meets
    the target, then single channels handed back while it still holds), so the FLOPs land just past the target."""
    s = study(profile)
    cm = CostModel(build_model(s["arch"], width=s["width"]))
    return allocate(cm, cm.widths, parse_target(s["target"])).keep


# -- each kind's settings and the cache key they give -----------------------------------------------------------------
def _teacher_config(profile: str) -> dict:
    s = study(profile)
    return resolve_baseline(s["arch"], profile, 0, **s["teacher"])


def _method_overrides(run: Run, profile: str) -> dict:
    s = study(profile)
    over = dict(s["students"], width=s["width"])
    if run.kind == "control_distill":
        over.update(student_widths=uniform_widths(profile), lambda_max=0.0, lr=s["control_lr"])
    return over


def _students(profile: str) -> dict:
    """The method's resolved settings (seed 0): the budget every other run is measured against."""
    s = study(profile)
    return resolve_method(s["arch"], s["target"], profile, 0, **_method_overrides(Run("", "method"), profile))


def _scratch_config(profile: str) -> dict:
    s = study(profile)
    epochs = _teacher_config(profile)["epochs"] + _students(profile)["epochs"]
    return resolve_baseline(s["arch"], profile, 0, **{**s["teacher"], "widths": uniform_widths(profile),
                                                      "epochs": epochs})


def _peer_overrides(profile: str) -> dict:
    """TP's own recipe at the students' budget: labels, its magnitude importance (its sparse-learning default), its
    penalty; sparse training until the method's first LR decay, then fine-tuning for the rest, a global cut at the
    target in between (`landing` exact)."""
    st = _students(profile)
    b = st["baseline"]
    sparse = milestone_epochs(b["lr_milestones"], st["epochs"])[0]
    return dict(importance="magnitude", loss="ce", landing="exact", epochs=sparse,
                finetune_epochs=st["epochs"] - sparse, width=b["width"], train_subset=b["train_subset"], lr=b["lr"])


def peer_target(profile: str) -> str | None:
    """The peers' target: the pruned ratio that the method's first seed measured (the study's target kind, 4
    decimals), so that they land where ours did; None until that run has finished (the peers wait for it)."""
    src = runs(profile)[first_method(profile)]
    f = src.folder(profile) / "summary.json"
    if not f.exists():
        return None
    kind = parse_target(study(profile)["target"]).kind
    return f"{kind}={read_json(f)[f'{kind}_pruned']:.4f}"


def first_method(profile: str) -> str:
    """The method's first seed: the main table's row, the fine-tuning test's source, the ratio the peers aim at."""
    return f"method-s{study(profile)['seeds'][0]}"


def _l1_overrides(profile: str) -> dict:
    st = _students(profile)
    return dict(arch=study(profile)["arch"], width=st["baseline"]["width"], epochs=st["epochs"],
                train_subset=st["baseline"]["train_subset"])


def _finetune_config(profile: str) -> dict:
    """The fine-tuning test: method-s0's pruned network, trained on with labels by classic.CLASSIC's optimiser
    (lr 0.01, x0.1 at 50% and 75%) for `finetune_epochs` on the students' images."""
    s = study(profile)
    st = _students(profile)
    src = runs(profile)[first_method(profile)]
    return dict({k: classic.CLASSIC[k] for k in ("lr", "momentum", "weight_decay", "lr_milestones", "lr_gamma")},
                epochs=s["finetune_epochs"], source=src.name, source_key=expected_key(src, profile),
                baseline=st["baseline"], seed=0, arch=s["arch"], profile=profile)


def expected_key(run: Run, profile: str) -> str:
    """The cache key today's settings give `run`: the one its training function computes (tests check they agree),
    which its records and carried state must carry."""
    s = study(profile)
    if run.kind == "control_scratch":
        return config_key(_scratch_config(profile))
    if run.kind in ("method", "control_distill"):
        cfg = resolve_method(s["arch"], s["target"], profile, run.seed, **_method_overrides(run, profile))
        return run_key(dict(cfg, teacher_config=_teacher_config(profile)))
    if run.kind == "peer_tp":
        cfg = peer.resolve_peer(s["arch"], _ready_peer_target(profile), profile, 0, **_peer_overrides(profile))
        return config_key(dict(cfg, teacher_config_key=config_key(_teacher_config(profile))), exclude=("profile",))
    if run.kind == "peer_l1":
        cfg = classic.resolve_classic("l1_global", profile, 0, _ready_peer_target(profile), **_l1_overrides(profile))
        return config_key(dict(cfg, teacher_config_key=config_key(_teacher_config(profile))))
    if run.kind == "finetune":
        return config_key(_finetune_config(profile))
    raise ValueError(f"kind: {run.kind!r} has no settings of its own here; valid: {', '.join(KINDS[1:])}")


def _ready_peer_target(profile: str) -> str:
    t = peer_target(profile)
    if t is None:
        raise ValueError(f"runs: the peers aim at the ratio {first_method(profile)} measured; train it first "
                         f"(`{RETRAIN_COMMAND} ONLY={first_method(profile)}`)")
    return t


def _remedy(run: Run) -> str:
    return f"retrain it with `{RETRAIN_COMMAND} ONLY={run.name} RETRAIN=1` (cost: docs/profiles.md)"


# -- training ---------------------------------------------------------------------------------------------------------
def _finished(run: Run, profile: str) -> bool:
    return (run.folder(profile) / (T.WEIGHTS if run.kind == "teacher" else MARKER)).exists()


def check_store(run: Run, profile: str) -> str | None:
    """Refuse a damaged store folder, before anything trains (one CheckpointError naming the file and its remedy):
    its JSON files must parse (`storage.read_json`); records without summary.json and without resume/ mean
    summary.json was lost (a publish stopped half-way keeps resume/ until summary.json lands), so they are refused
    rather than retrained over; a finished record must match the digests recorded when it was published. Returns
    the digests' verdict for a finished run ('checked', or 'legacy: ...' for a record published before them), else
    None. The teacher's folder: `teachers.check_record` (its digests are checked where it is loaded)."""
    d = run.folder(profile)
    if run.kind == "teacher":
        T.check_record(d)
        return None
    for name in JSON_FILES:
        if (d / name).exists():
            read_json(d / name)
    if _finished(run, profile):
        lost = [n for n in published_files(run) if not (d / n).exists()]
        if lost:
            raise CheckpointError(f"{d / lost[0]}: missing from a finished run's records. "
                                  f"{restore_remedy(d / lost[0])}")
        return check_digests(d)
    present = [n for n in RECORD_FILES if (d / n).exists()]
    if present and not (d / RESUME).exists():
        raise CheckpointError(f"{d / MARKER}: missing beside the records of a finished run ({', '.join(present)}); "
                              f"`{RETRAIN_COMMAND}` would train over them. {restore_remedy(d / MARKER)} (or "
                              f"retrain on purpose: `{RETRAIN_COMMAND} ONLY={run.name} RETRAIN=1`)")
    return None


def published_files(run: Run) -> tuple[str, ...]:
    """The files a finished run of `run`'s kind holds (what `_publish` writes, digests.json aside: a record
    published before digests has none)."""
    return (*RECORDS.get(run.kind, ("config.json", "metrics.csv", MARKER, PRUNED_STATE)), "provenance.json")


@holds_run_locks
def _drop_for_retrain(run: Run, profile: str) -> None:
    """`retrain`: take the run folder's lock first (a lane training this run holds it: the call fails here and
    nothing is deleted), then remove the run's records, carried state and local state."""
    lock_run_folder(run.run_dir(profile))
    shutil.rmtree(run.folder(profile), ignore_errors=True)
    for f in STATE_FILES[run.kind]:
        (run.run_dir(profile) / f).unlink(missing_ok=True)


def _carry_in(run: Run, profile: str) -> None:
    """Seed the run folder from the committed state files where those are this run further along; a committed
    state of other settings is refused (one line naming the retrain command)."""
    key = expected_key(run, profile)
    for name in STATE_FILES[run.kind]:
        copy_if_further(run.folder(profile) / RESUME / name, run.run_dir(profile) / name,
                        expect={"config_key": key}, remedy=_remedy(run))


def _carry_out(run: Run, profile: str) -> None:
    """Copy the local state to the store where it is further along (never back over epochs brought from elsewhere,
    e.g. a GPU window's)."""
    for name in STATE_FILES[run.kind]:
        copy_if_further(run.run_dir(profile) / name, run.folder(profile) / RESUME / name)


def _publish(run: Run, profile: str, summary: dict, seconds: float, files: dict | None = None) -> str:
    """A finished run's records: the kind's files from its run folder and `files` {name: bytes}, provenance.json,
    digests.json (the sha256 of each), then summary.json, the finished marker, last; the carried state goes after
    it. The final state is carried to resume/ first, so a publish stopped anywhere reads 'in progress' and the next
    call publishes again."""
    d = run.folder(profile)
    _carry_out(run, profile)
    out = {name: (run.run_dir(profile) / name).read_bytes() for name in RECORDS.get(run.kind, ())}
    out.update(files or {})
    out["provenance.json"] = json_bytes(dict(
        device=summary.get("device"), processor=cpu_model(), machine=platform.machine(), torch=torch.__version__,
        commit=git_commit(), train_seconds=round(seconds, 1),
        published=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
    marker = out.pop(MARKER)
    (d / PER_IMAGE).unlink(missing_ok=True)  # it measured another network (train_runs writes it again)
    for name, data in out.items():
        write_bytes(d / name, data)
    write_digests(d, {**{name: sha256_bytes(data) for name, data in out.items()}, MARKER: sha256_bytes(marker)})
    write_bytes(d / MARKER, marker)
    shutil.rmtree(d / RESUME, ignore_errors=True)
    return "finished"


def _unfinished(run: Run, profile: str, done: int, total: int) -> str:
    _carry_out(run, profile)
    return f"epoch {done} of {total}"


def _teacher_run(profile: str, common: dict):
    """The committed paper-width teacher, checked (arch, width, settings, data), or None while it is unfinished.
    Never trained here."""
    s = study(profile)
    if not (T.teacher_dir(s["arch"], profile, 0, s["width"]) / T.WEIGHTS).exists():
        return None
    return train_baseline(s["arch"], profile, 0, progress=False, allow_training=False,
                          **{k: common[k] for k in ("device", "data_dir", "download")}, **s["teacher"])


def _train_method(run: Run, profile: str, teacher, left, common: dict, max_epochs_now=None) -> str:
    s = study(profile)
    r = prune_train(s["arch"], s["target"], profile, run.seed, teacher=teacher, out=run.run_dir(profile),
                    export=False, time_budget_s=left, max_epochs_now=max_epochs_now, **common,
                    **_method_overrides(run, profile))
    if not r.summary:
        return _unfinished(run, profile, r.metrics[-1]["epoch"] if r.metrics else 0, r.config["epochs"])
    return _publish(run, profile, r.summary, r.summary["train_seconds"])


def _train_scratch(run: Run, profile: str, teacher, left, common: dict, max_epochs_now=None) -> str:
    s = study(profile)
    cfg = _scratch_config(profile)
    r = train_baseline(s["arch"], profile, 0, time_budget_s=left, max_epochs_now=max_epochs_now,
                       use_committed=False, allow_training=True, **common,
                       **{k: cfg[k] for k in ("width", "widths", "epochs")})
    if len(r.metrics) < cfg["epochs"]:
        return _unfinished(run, profile, len(r.metrics), cfg["epochs"])
    key = config_key(cfg)
    full = count(build_model(s["arch"], cfg["num_classes"], width=cfg["width"]))
    c = count(r.model)
    network = pruned_state(s["arch"], cfg["num_classes"], cfg["width"], cfg["widths"],
                           {k: v.detach().cpu() for k, v in r.model.state_dict().items()}, config_key=key)
    summary = dict(arch=s["arch"], target=s["target"], profile=profile, seed=cfg["seed"], **r.dataset_stamp,
                   device=r.device, commit=git_commit(), epochs=len(r.metrics), labels="on",
                   train_images=cfg["train_subset"] or "all", pruned_acc=r.test_acc,
                   params_before=full["params"], params_after=c["params"], macs_before=full["macs"],
                   macs_after=c["macs"], params_pruned=1 - c["params"] / full["params"],
                   flops_pruned=1 - c["macs"] / full["macs"], widths=cfg["widths"], train_seconds=r.train_seconds)
    return _publish(run, profile, summary, r.train_seconds,
                    {PRUNED_STATE: checkpoint_bytes(network), "metrics.csv": metrics_csv(r.metrics).encode(),
                     "config.json": json_bytes({**cfg, "config_key": key, **r.dataset_stamp}),
                     MARKER: json_bytes(summary)})


def _train_peer_tp(run: Run, profile: str, teacher, left, common: dict, max_epochs_now=None) -> str:
    s = study(profile)
    r = peer.peer_train(s["arch"], _ready_peer_target(profile), profile, 0, teacher=teacher, out=run.run_dir(profile),
                        time_budget_s=left, max_epochs_now=max_epochs_now, **common, **_peer_overrides(profile))
    if not r.summary:
        total = r.config["epochs"] + r.config["finetune_epochs"]
        return _unfinished(run, profile, _epochs_done(run, profile), total)
    # Every epoch, sparse and fine-tuning, from the run itself: the folder's metrics.csv holds only the sparse epochs
    # trained on this machine (a run resumed elsewhere after them has none).
    write_text(run.run_dir(profile) / "metrics.csv", metrics_csv(r.metrics))
    return _publish(run, profile, r.summary, r.summary["train_seconds"])


def _train_peer_l1(run: Run, profile: str, teacher, left, common: dict, max_epochs_now=None) -> str:
    s = study(profile)
    r = classic.run_classic("l1_global", profile, 0, common["device"], teacher_run=teacher,
                            target=_ready_peer_target(profile),
                            data_dir=common["data_dir"], download=common["download"], time_budget_s=left,
                            out=run.run_dir(profile), progress=common["progress"], **_l1_overrides(profile))
    if not r.summary:
        return _unfinished(run, profile, _epochs_done(run, profile), r.config["epochs"])
    return _publish(run, profile, r.summary, r.summary["train_seconds"])


def _epochs_done(run: Run, profile: str) -> int:
    done = 0
    for name in STATE_FILES[run.kind]:
        f = run.run_dir(profile) / name
        if f.exists():
            done += load_checkpoint(f).get("epoch", 0)
    return done


@holds_run_locks
def _train_finetune(run: Run, profile: str, teacher, left, common: dict, max_epochs_now=None) -> str:
    """The fine-tuning test: method-s0's committed pruned network, fine-tuned with labels; its accuracy before and
    after on every test image."""
    cfg = _finetune_config(profile)
    src = runs(profile)[cfg["source"]]  # finished: train_runs waits for it
    key = config_key(cfg)
    b = cfg["baseline"]
    dev = resolve_device(common["device"])
    rdir = run.run_dir(profile)
    lock_run_folder(rdir)
    ds, train_split, test_split = prepare_data(b, dev, common["data_dir"], common["download"])
    model = load_pruned(src.folder(profile)).to(dev)
    test_b = eval_batches(test_split, b)
    _, acc_before = evaluate(model, test_b, dev)
    for p in model.parameters():
        p.requires_grad_(True)
    metrics, seconds = classic.train_labels(model, train_batches(train_split, b, cfg["seed"] + 29), test_b,
                                            cfg["epochs"], dict(cfg, batch_size=b["batch_size"], config_key=key),
                                            dev, rdir / "finetune.pt", cfg["seed"], "finetune",
                                            stop_after=max_epochs_now, time_budget_s=left,
                                            progress=common["progress"], desc=f"{b['arch']} fine-tune")
    if len(metrics) < cfg["epochs"]:
        return _unfinished(run, profile, len(metrics), cfg["epochs"])
    model.eval()
    _, acc_after = evaluate(model, test_b, dev)
    source = read_json(src.folder(profile) / MARKER)
    network = pruned_state(cfg["arch"], b["num_classes"], b["width"], model.widths(),
                           {k: v.detach().cpu() for k, v in model.state_dict().items()}, config_key=key)
    summary = dict(arch=cfg["arch"], target=source["target"], profile=profile, seed=cfg["seed"], **ds.stamp(),
                   device=device_name(dev), commit=git_commit(), source=src.name, epochs=cfg["epochs"],
                   lr=cfg["lr"], labels="on", baseline_acc=source["baseline_acc"], acc_before_finetune=acc_before,
                   pruned_acc=acc_after, gain_points=100 * (acc_after - acc_before),
                   params_pruned=source["params_pruned"], flops_pruned=source["flops_pruned"],
                   train_seconds=seconds, test_images=len(test_split.y))
    return _publish(run, profile, summary, seconds,
                    {PRUNED_STATE: checkpoint_bytes(network), "metrics.csv": metrics_csv(metrics).encode(),
                     "config.json": json_bytes({**cfg, "config_key": key, **ds.stamp()}), MARKER: json_bytes(summary)})


TRAIN = {"method": _train_method, "control_distill": _train_method, "control_scratch": _train_scratch,
         "peer_tp": _train_peer_tp, "peer_l1": _train_peer_l1, "finetune": _train_finetune}
NEEDS_TEACHER = ("method", "control_distill", "peer_tp", "peer_l1")
PEERS = ("peer_tp", "peer_l1")  # they also wait for first_method's measured ratio (peer_target)
COMPILED = ("method", "control_distill", "control_scratch")  # the kinds whose trainers take `compile`


def train_runs(names=None, profile: str = "cpu", budget_s: float | None = None, retrain: bool = False,
               device: str = "auto", data_dir=None, download: bool = True, progress: bool = True,
               max_epochs_now: int | None = None, publish_only: bool = False, compile=False,
               carry_every_epoch: bool | None = None) -> list[dict]:
    """`make paper-width`: train (or resume) each run of `names` (default: all, in `runs` order) within `budget_s`
    seconds, then copy its state or records to paper_width/<profile>/ (the teacher's to teachers/). A finished run
    is skipped unless `retrain` (which also drops its state; never the teacher's: `make teachers RETRAIN=1`). A run
    whose teacher (or source run) is not finished waits (its status says so). `publish_only`: train nothing, only
    copy each unfinished run's state from runs/ to the store (e.g. to commit while another process trains it).
    `compile`: a torch.compile mode for the method's and the labelled control's training step (config.COMPILE_MODES;
    an execution setting, never in a settings key: a GPU window, scripts/gpu_window.sh); the rest stay eager.
    `carry_every_epoch`: copy a run's state (and log its epochs) to the store after every epoch, so that a process
    stopped hard loses none; None: where its state files hold at most `CARRY_EVERY_EPOCH_MAX_BYTES`, else at the
    end of the call only.

    Before anything trains, each named run's store folder is checked (`check_store`; `retrain` first takes the run
    folder's lock, then deletes). A row's `unlogged_epochs` flags epochs in the store that chunks.json does not
    cover (`chunk_gaps`: a call stopped before it logged them)."""
    known = runs(profile)
    names = list(known) if names is None else list(names)
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"runs: unknown run {bad[0]!r}; valid: {', '.join(known)}")
    for name in names:  # before anything trains: a refused retrain deletes nothing, a damaged record stops the call
        if retrain and not publish_only and known[name].kind != "teacher":
            _drop_for_retrain(known[name], profile)  # the run folder's lock first, then its records and state
        check_store(known[name], profile)
    t0, rows, code = time.perf_counter(), [], git_commit()  # the code this call runs (HEAD may move while it trains)
    call = f"{time.time():.6f}-{os.getpid()}"  # this call's chunks.json entries grow epoch by epoch
    common = dict(device=device, data_dir=data_dir, download=download, progress=progress)
    teacher, stopped = None, None  # stopped: the run that stopped for the budget; no run starts after it
    for name in names:
        run = known[name]
        d = run.folder(profile)
        if publish_only:
            rows.append(dict(run=name, status=_publish_state(run, profile), folder=str(d)))
            continue
        if _finished(run, profile):
            rows.append(dict(run=name, status="finished (committed)", folder=str(d)))
            continue
        left = None if budget_s is None else budget_s - (time.perf_counter() - t0)
        if left is not None and (left <= 0 or stopped):
            why = f"{stopped} stopped for it" if stopped else "no time left"
            rows.append(dict(run=name, status=f"not reached (budget spent: {why})", folder=str(d)))
            continue
        if run.kind == "teacher":  # `make teachers`'s job, for this one teacher; never retrained from here
            t = train_teachers([study(profile)["arch"]], profile, 0, left, False, paper_width=True, **common)[0]
            rows.append(dict(run=name, status=t["status"], folder=t["folder"]))
            if _finished(run, profile):  # its per-image correctness, for the paired verdicts
                write_study_per_image(profile, [name], device, data_dir, download)
            stopped = stopped if left is None or _finished(run, profile) else name
            continue
        if run.kind in NEEDS_TEACHER:
            teacher = teacher or _teacher_run(profile, common)
            if teacher is None:
                rows.append(dict(run=name, status=f"waiting for the teacher ({T.RETRAIN_COMMAND})", folder=str(d)))
                continue
        if waits := _waits_for_a_run(run, profile):
            rows.append(dict(run=name, status=waits, folder=str(d)))
            continue
        _carry_in(run, profile)
        first, trained = _epochs_done(run, profile), epochs_run()
        gaps = chunk_gaps(_chunks(run, profile), first)
        flag = {"unlogged_epochs": gaps} if gaps else {}
        guess = first_epoch_estimate(run, profile) if first == 0 else None
        if left is not None and guess is not None and guess > left:  # the engine has no estimate before epoch 1
            rows.append(dict(run=name, status=f"not reached (budget spent: one epoch ≈ {guess / 60:.0f} min as "
                                               f"in its finished siblings, {max(left, 0) / 60:.0f} min left)",
                             folder=str(d)))
            stopped = name
            continue
        kw = dict(common, compile=compile) if run.kind in COMPILED else common
        stamp = device_name(resolve_device(device))
        with after_each_epoch(_epoch_carrier(run, profile, first, stamp, code, call, carry_every_epoch)):
            status = TRAIN[run.kind](run, profile, teacher, left, kw, max_epochs_now)
        if status == "finished":  # its per-image correctness, for the paired verdicts (an evaluation, no training)
            write_study_per_image(profile, [name], device, data_dir, download)
        if epochs_run() > trained:  # a result read from the cache trained nothing here
            last = total_epochs(run, profile) if _finished(run, profile) else _epochs_done(run, profile)
            log_chunk(run, profile, first, last, stamp, "trained", code, call)
        if left is not None and max_epochs_now is None and not _finished(run, profile):
            stopped = name  # it stopped because its next epoch would overrun the budget
        rows.append(dict(run=name, status=status, folder=str(d), **flag))
    return rows


def _epoch_carrier(run: Run, profile: str, first: int, device: str, commit: str, call: str,
                   every_epoch: bool | None):
    """The `engine.after_each_epoch` callback of a run trained by `train_runs`: its state to the store (resume/) and
    its epochs to chunks.json after every epoch, so that a process stopped hard loses none of them. With
    `every_epoch` None, only while its state files hold at most `CARRY_EVERY_EPOCH_MAX_BYTES` (else at the end of
    the call, as before: a 229 MiB state written after every epoch costs more than the epochs it saves)."""
    def carry(_state_path) -> None:
        if every_epoch is False:
            return
        if every_epoch is None:
            size = sum(f.stat().st_size for f in (run.run_dir(profile) / n for n in STATE_FILES[run.kind])
                       if f.exists())
            if size > CARRY_EVERY_EPOCH_MAX_BYTES:
                return
        _carry_out(run, profile)
        log_chunk(run, profile, first, _epochs_done(run, profile), device, "trained", commit, call)
    return carry


def _waits_for_a_run(run: Run, profile: str) -> str | None:
    """The status of a run that needs another run finished first (the peers: the ratio method-s0 lands at; the
    fine-tuning test: method-s0's pruned network), else None."""
    if run.kind in PEERS and peer_target(profile) is None:
        return f"waiting for {first_method(profile)} (the ratio it lands at)"
    if run.kind == "finetune" and not _finished(src := runs(profile)[_finetune_config(profile)["source"]], profile):
        return f"waiting for {src.name}"
    return None


def first_epoch_estimate(run: Run, profile: str) -> float | None:
    """Seconds of one epoch of a run that has none recorded: the median `epoch_seconds` of its finished siblings
    (the same kind in the same profile, e.g. method-s0 for method-s2), else None. The engine's budget check
    (`engine.out_of_time`) estimates from the run's own epochs, so without this a lane would start a run's first
    epoch (17-25 min for a method run on one CPU thread) with minutes of budget left."""
    seconds = []
    for other in runs(profile).values():
        f = other.folder(profile) / "metrics.csv"
        if other.kind == run.kind and other.name != run.name and _finished(other, profile) and f.exists():
            m = pd.read_csv(f)
            if "epoch_seconds" in m:
                seconds += m.drop_duplicates("epoch")["epoch_seconds"].dropna().tolist()
    return float(pd.Series(seconds).median()) if seconds else None


def _publish_state(run: Run, profile: str) -> str:
    """Copy an unfinished run's state from runs/ to the store (the teacher's through teachers.publish)."""
    if _finished(run, profile):
        return "finished (committed)"
    if run.kind == "teacher":
        s = study(profile)
        return T.publish(s["arch"], profile, 0, run_dir_for(_teacher_config(profile)) / "checkpoint.pt")
    first = _committed_epochs(run, profile) or 0
    _carry_out(run, profile)
    if not is_locked(run.run_dir(profile)):  # a lane training it now logs its own epochs when its call ends
        log_chunk(run, profile, first, _committed_epochs(run, profile) or 0, None, "published by --publish-only")
    return run_state(run, profile)


# -- reading ----------------------------------------------------------------------------------------------------------
def run_state(run: Run, profile: str) -> str:
    """'finished', 'epoch k of E' (from the committed state), or 'not started'."""
    d = run.folder(profile)
    if _finished(run, profile):
        return "finished"
    if run.kind == "teacher":
        if not (d / T.RESUME).exists():
            return "not started"
        ck = load_checkpoint(d / T.RESUME)
        return f"epoch {ck['epoch']} of {ck['config']['epochs']}"
    done = _committed_epochs(run, profile)
    if done is None:
        return "not started"
    return f"epoch {done} of {total_epochs(run, profile)}"


def _committed_epochs(run: Run, profile: str) -> int | None:
    """The epochs in the committed state (resume/), or None where there is none."""
    files = [run.folder(profile) / RESUME / n for n in STATE_FILES[run.kind]]
    files = [f for f in files if f.exists()]
    return sum(load_checkpoint(f).get("epoch", 0) for f in files) if files else None


def log_chunk(run: Run, profile: str, first: int, last: int, device: str | None, how: str,
              commit: str | None = None, call: str | None = None) -> None:
    """Append to the run's chunks.json that epochs first+1..last trained on this machine (`device`: its stamp, None
    where the caller did not train them, e.g. `--publish-only` after a lane that stopped without logging; beside a
    lane that still trains, it logs nothing and the lane does): a run trained across sessions spans processors,
    and the noise its numbers carry depends on which (the verdicts name them). Epochs before the first entry were
    trained before the log existed: `processors` says so. `commit`: the code that trained them (the commit when the
    call started: HEAD may move while a lane trains for hours); default HEAD now. `call`: the id of the `train_runs`
    call that trained them: its entry grows epoch by epoch (one entry per call, logged after every epoch)."""
    f = run.folder(profile) / CHUNKS
    log = _chunks(run, profile)
    first = max([first] + [c["epochs"][1] for c in log])  # epochs already logged (e.g. by --publish-only) stay theirs
    if last <= first:
        return
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if call is not None and log and log[-1].get("call") == call and log[-1]["epochs"][1] == first:
        log[-1] = dict(log[-1], epochs=[log[-1]["epochs"][0], last], when=when)
    else:
        log.append(dict(epochs=[first + 1, last], processor=cpu_model(), device=device, how=how,
                        commit=commit or git_commit(), when=when, **({"call": call} if call is not None else {})))
    write_json(f, log)


def _chunks(run: Run, profile: str) -> list[dict]:
    f = run.folder(profile) / CHUNKS
    return read_json(f) if f.exists() else []


def chunk_gaps(chunks: list[dict], done: int) -> str | None:
    """The epochs 1..`done` that no chunks.json entry covers, as spans ('3-4, 7'), or None: epochs whose state
    reached the store but whose call stopped before logging them (a process stopped hard, before per-epoch
    logging), or trained before the log existed. A run without any entry is not flagged (no log at all)."""
    if not chunks:
        return None
    covered = {e for c in chunks for e in range(c["epochs"][0], c["epochs"][1] + 1)}
    spans = []
    for e in (e for e in range(1, done + 1) if e not in covered):
        if spans and spans[-1][1] == e - 1:
            spans[-1][1] = e
        else:
            spans.append([e, e])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans) or None


def processor_names(record: dict) -> set[str]:
    """The processors (or GPUs: a GPU's epochs name the GPU, not its host's processor) of a run's chunks.json; a run
    without one: its summary's (the last processor of a run that spanned several); none before it has any."""
    chunks = record.get("chunks") or []
    if not chunks:
        device = (record.get("summary") or {}).get("device")
        return set() if device is None else {processor_of(device)}
    return {c["device"] if str(c.get("device")).startswith("cuda") else c["processor"] for c in chunks}


def processors(record: dict) -> str | None:
    """The processors (or GPUs) a run's epochs trained on (`processor_names`), with the epochs no chunks.json entry
    covers, e.g. 'AMD EPYC (epochs 1-7 unrecorded)'."""
    chunks = record.get("chunks") or []
    names = " and ".join(sorted(processor_names(record))) or None
    if not chunks:
        return names
    covered = {e for c in chunks for e in range(c["epochs"][0], c["epochs"][1] + 1)}
    missing = sorted(set(range(1, max(covered) + 1)) - covered)
    spans = []
    for e in missing:  # consecutive epochs as one span
        if spans and spans[-1][1] == e - 1:
            spans[-1][1] = e
        else:
            spans.append([e, e])
    gaps = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)
    return names if not spans else f"{names} (epochs {gaps} unrecorded)"


def total_epochs(run: Run, profile: str) -> int:
    """The epochs `run` trains in all (both phases of a pipeline)."""
    if run.kind == "control_scratch":
        return _scratch_config(profile)["epochs"]
    if run.kind == "peer_tp":
        o = _peer_overrides(profile)
        return o["epochs"] + o["finetune_epochs"]
    if run.kind == "peer_l1":
        return _l1_overrides(profile)["epochs"]
    if run.kind == "finetune":
        return _finetune_config(profile)["epochs"]
    s = study(profile)
    return resolve_method(s["arch"], s["target"], profile, run.seed, **_method_overrides(run, profile))["epochs"]


def load_records(profile: str = "cpu", fingerprint: str | None = None) -> list[dict]:
    """One row per run of the study (the teacher is loaded by train_baseline where a notebook needs it): its name,
    kind, seed, state and folder, and for a finished one its summary and config, checked against today's settings
    and (`fingerprint`) data. Reads files only; trains nothing."""
    rows = []
    for run in runs(profile).values():
        if run.kind == "teacher":
            continue
        d = run.folder(profile)
        digests = check_store(run, profile)
        row = dict(run=run.name, kind=run.kind, seed=run.seed, state=run_state(run, profile), folder=str(d))
        row["chunks"] = _chunks(run, profile)
        if row["state"] == "finished":
            row["digests"] = digests
            cfg = read_json(d / "config.json")
            want = expected_key(run, profile)
            if cfg.get("config_key") != want:
                raise CheckpointError(f"{d}: committed run has settings key {cfg.get('config_key')!r}, today's "
                                      f"settings give {want!r}; {_remedy(run)}")
            if fingerprint is not None and cfg.get("dataset_fingerprint") != fingerprint:
                raise CheckpointError(f"{d}: committed run was trained on data {cfg.get('dataset_fingerprint')}, "
                                      f"this data is {fingerprint}; {_remedy(run)}")
            row.update(summary=read_json(d / MARKER), config=cfg)
        rows.append(row)
    return rows


def method_noise(records: list[dict]) -> Noise | None:
    """σ of the method's accuracy over its finished seeds (`noise.from_values`: per-seed values, the two-seed floor),
    naming every processor their epochs trained on; None before one has finished."""
    done = [r for r in records if r["kind"] == "method" and r["state"] == "finished"]
    if not done:
        return None
    names = " and ".join(sorted(set().union(*(processor_names(r) for r in done)))) or None
    return from_values([r["summary"]["pruned_acc"] for r in done], [r["seed"] for r in done],
                       int(done[0]["summary"]["test_images"]), names)


def main_rows(records: list[dict], profile: str) -> list[dict]:
    """The main table's row at the paper's width (`tables.main_table(paper_width=...)`): the method's first seed once
    finished, as the profile's rows report their first seed; none before."""
    first = first_method(profile)
    return [r for r in records if r["run"] == first and r["state"] == "finished"]


def curves(records: list[dict]) -> pd.DataFrame:
    """Per epoch and student, the finished label-free runs' metrics (method seeds, control-distill; their committed
    metrics.csv) with a `run` column, and `lr_decay`: whether the recorded LR of the next epoch is lower (the step
    schedule's milestones, as the run applied them). Empty before any has finished."""
    out = []
    for r in records:
        if r["kind"] not in ("method", "control_distill") or r["state"] != "finished":
            continue
        m = pd.read_csv(Path(r["folder"]) / "metrics.csv").assign(run=r["run"])
        following = m.groupby("student")["lr"].shift(-1)
        out.append(m.assign(lr_decay=(following < m["lr"]).fillna(False)))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def data_fingerprint(profile: str = "cpu", data_dir=None) -> str:
    """The fingerprint of the study's dataset as found here (no download)."""
    return load_dataset(_teacher_config(profile)["dataset"], data_dir=data_dir, download=False).fingerprint


# -- per-image correctness (paired.py): the paired verdicts' input ---------------------------------------------------
ACC_FIELD = {"peer_l1": "final_acc"}  # the summary field of a run's accuracy on every test image (else pruned_acc)


def network_file(run: Run, profile: str) -> Path:
    """The file a finished run's network is rebuilt from: the teacher's weights, else pruned_state.pt."""
    return run.folder(profile) / (T.WEIGHTS if run.kind == "teacher" else PRUNED_STATE)


def committed_accuracy(run: Run, profile: str) -> float:
    """The accuracy on every test image that a finished run's records state (the teacher: its provenance.json)."""
    d = run.folder(profile)
    if run.kind == "teacher":
        return float(read_json(d / "provenance.json")["test_acc"])
    return float(read_json(d / MARKER)[ACC_FIELD.get(run.kind, "pruned_acc")])


def write_study_per_image(profile: str = "cpu", names=None, device: str = "cpu", data_dir=None,
                          download: bool = False) -> list[dict]:
    """(Re)write per_image.json beside each finished run of `names` (default: all, the teacher included): its
    network rebuilt from the committed file and scored on the study's test images (eval mode, as engine.evaluate:
    plain fp32 on the CPU, where every committed run was measured). Never trains. Returns one row per run: the
    recomputed accuracy, the committed one, and whether they are equal (a difference is reported, not hidden: the
    file is written either way, says what it measured, and `load_study_per_image` refuses it)."""
    known = runs(profile)
    names = list(known) if names is None else list(names)
    dev = resolve_device(device)
    b = _teacher_config(profile)  # every run is scored on the teacher's test split: all test images, in order
    ds, test, subset = scored_split(b, dev, data_dir, download)
    rows = []
    for name in names:
        run = known[name]
        if not _finished(run, profile):
            rows.append(dict(run=name, status=run_state(run, profile)))
            continue
        if run.kind == "teacher":
            s = study(profile)
            model = T.load_committed(s["arch"], profile, 0, ds.fingerprint, **s["teacher"])[0]
        else:
            model = load_pruned(run.folder(profile))
        correct = correct_per_image(model.to(dev), eval_batches(test, b))
        rec = write_per_image(run.folder(profile) / PER_IMAGE, correct, ds.stamp(), subset, network_file(run, profile),
                              dev)
        committed = committed_accuracy(run, profile)
        rows.append(dict(run=name, status="written", accuracy=rec["accuracy"], committed=committed,
                         equal=rec["correct"] == round(committed * rec["n_images"])))
    return rows


def load_study_per_image(profile: str, fingerprint: str | None = None) -> dict[str, PerImage]:
    """{run: PerImage} of every finished run of the study and its teacher, from the committed per_image.json files,
    each checked against the data (`fingerprint`), the network beside it (its sha256: a network retrained after
    its record is refused) and its committed accuracy. A finished run without a record, or with a stale one, is a
    PerImageError naming the file and the function that rewrites it. Reads files only."""
    fix = f"rewrite it with `paper_width.write_study_per_image({profile!r})` (an evaluation, no training)"
    out = {}
    for name, run in runs(profile).items():
        if not _finished(run, profile):
            continue
        path = run.folder(profile) / PER_IMAGE
        try:
            rec = read_per_image(path, fingerprint)
        except PerImageError as e:
            raise PerImageError(f"{e}; {fix}") from None
        if rec.record["network_sha256"] != file_sha256(network_file(run, profile)):
            raise PerImageError(f"{path}: measured another {rec.record['network']} than the one beside it; {fix}")
        if int(rec.correct.sum()) != round(committed_accuracy(run, profile) * rec.correct.size):
            raise PerImageError(f"{path}: {rec.accuracy:.2%} correct, the run's records say "
                                f"{committed_accuracy(run, profile):.2%}: its network does not reproduce its recorded "
                                f"accuracy where the record was written; {fix} on the device kind it trained on")
        out[name] = rec
    return out
