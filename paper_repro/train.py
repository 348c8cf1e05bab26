"""Baseline (teacher) training: cached by resolved settings, resumable, atomic, deterministic on CPU; and
`train_teachers`, the job of `make teachers` that trains the committed teachers (teachers.py stores them)."""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import distributed as DI
from . import teachers as T
from .config import config_key, paper_width_overrides, resolve_baseline
from .engine import (RunFolder, check_precision, compiled, curve_batches, epoch_loop, eval_batches, evaluate,
                     make_optimizer, plain_loss, precision_refusal, prepare_data, restore_training, run_folder,
                     run_precision, timed_epoch, train_batches, training_state)
from .counting import count
from .models import build_model
from .provenance import ROOT, device_name, git_commit, resolve_device
from .runlock import holds_run_locks
from .storage import TEACHER_REMEDY, CheckpointError, check_digests, load_checkpoint, load_state


@dataclass
class BaselineRun:
    model: torch.nn.Module
    config: dict
    metrics: list[dict]
    test_acc: float
    train_seconds: float
    run_dir: Path
    device: str  # where it was trained
    dataset_stamp: dict
    checkpoint: Path | None = None  # the weights file: run_dir/checkpoint.pt, or a committed teacher's teacher.pt


def run_dir_for(cfg: dict, kind: str = "baselines") -> Path:
    return run_folder(kind, f"{cfg['arch']}-{cfg['dataset']}-s{cfg['seed']}-{config_key(cfg)}")


@holds_run_locks
def train_baseline(arch: str, profile: str = "cpu", seed: int = 0, device: str = "auto", data_dir=None,
                   download: bool = True, max_epochs_now: int | None = None, progress: bool = True,
                   compile=False, time_budget_s: float | None = None, use_committed: bool = True,
                   allow_training: bool | None = None, **overrides) -> BaselineRun:
    """Train (or load from cache, or resume) the baseline `arch` under `profile`.

    The run lives in runs/baselines/<arch>-<dataset>-s<seed>-<key>/ where key hashes the resolved
    settings: config.json, metrics.csv (one row per epoch) and checkpoint.pt (written atomically after
    every epoch). `max_epochs_now` stops after that many epochs in this call (to split a long run across
    sessions); `time_budget_s` stops between epochs before that many seconds have passed (see `out_of_time`);
    calling again resumes and ends with the same numbers as an uninterrupted run. `compile`: a torch.compile
    mode for the forward/backward (False: eager); like `device`, not part of the cache key.

    Profiles with committed teachers (`teachers.COMMITTED_PROFILES`, the cpu profile): with the profile's own
    settings, the committed teacher is loaded and checked (`use_committed`); where there is none, a finished
    run in runs/ is used, and training happens only with `allow_training` (the `train` CLI, `make teachers`),
    never inside `make reproduce`. Other profiles train when needed (`allow_training` None = True)."""
    cfg = resolve_baseline(arch, profile, seed, **overrides)
    dev = DI.local_device(resolve_device(device))  # under torchrun on GPUs: cuda:LOCAL_RANK
    key = config_key(cfg)
    run = RunFolder(run_dir_for(cfg), key, cfg, {"arch": arch, "config_key": key}, state_name="checkpoint.pt")
    rdir, ckpt_path = run.path, run.state_path
    ds, train_split, test_split = prepare_data(cfg, dev, data_dir, download)
    committed = T.is_committed_settings(cfg)
    if committed and use_committed:
        found = T.load_committed(arch, profile, seed, fingerprint=ds.fingerprint, **overrides)
        if found is not None:
            model, ckpt = found
            d = T.teacher_dir(arch, profile, seed, cfg["width"])
            if progress:
                print(f"{arch} teacher: committed {(d / T.WEIGHTS).relative_to(ROOT)}, trained on {ckpt['device']}, "
                      f"{ckpt['metrics'][-1]['test_acc']:.2%} on the test images", flush=True)
            return BaselineRun(model.to(dev), cfg, ckpt["metrics"], ckpt["metrics"][-1]["test_acc"],
                               ckpt["train_seconds"], d, ckpt["device"], ds.stamp(), d / T.WEIGHTS)
    if allow_training is None:
        allow_training = not committed
    if not allow_training and run.epochs_done() < cfg["epochs"]:
        raise T.missing_teacher_error(arch, profile, seed, cfg["width"])
    if run.epochs_done() < cfg["epochs"]:
        run.lock()  # one writer; a finished run is read without it and nothing is written

    torch.manual_seed(seed)
    model = build_model(arch, cfg["num_classes"], width=cfg["width"], widths=cfg.get("widths")).to(dev)
    if cfg["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    train_b = train_batches(train_split, cfg, seed, shard=DI.shard())  # torchrun: this rank's slice of each batch
    test_b = eval_batches(test_split, cfg)
    curve, curve_b = curve_batches(cfg, test_split, test_b)
    opt, sched = make_optimizer(model, cfg, len(train_b))
    check_precision(run_precision(cfg), dev)
    loss_fn = compiled(functools.partial(plain_loss, precision=run_precision(cfg)), compile)
    net = DI.wrap(model, dev)  # torchrun: DistributedDataParallel and synced BatchNorm; else `model` itself

    start, metrics, seconds, trained_on = 0, [], 0.0, device_name(dev)
    ckpt = run.resume(restore_training(model, opt, sched, ckpt_path), dataset_fingerprint=ds.fingerprint)
    if ckpt is not None:
        start, metrics, seconds = ckpt["epoch"], ckpt["metrics"], ckpt["train_seconds"]
        trained_on = ckpt["device"] if start >= cfg["epochs"] else trained_on
    if start < cfg["epochs"]:
        run.write_settings(**ds.stamp())

    if progress and start >= cfg["epochs"] and DI.is_main():
        print(f"{arch} baseline: cached in {rdir.relative_to(ROOT) if rdir.is_relative_to(ROOT) else rdir}, "
              f"{metrics[-1]['test_acc']:.2%} on the test images", flush=True)
    for epoch, bar in epoch_loop(start, cfg["epochs"], f"{arch} baseline", progress, max_epochs_now, time_budget_s,
                                 metrics):
        torch.manual_seed(seed * 1000 + epoch)  # dropout etc.: same stream whether resumed or not
        lr, loss_sum, correct, n, dt = timed_epoch(net, train_b.set_epoch(epoch), opt, sched, loss_fn, dev)
        loss_sum, correct, n = DI.sum_over_ranks(loss_sum, correct, n)  # torchrun: the global batch's sums
        seconds += dt
        curve_loss, curve_acc = evaluate(model, curve_b, dev)
        test_loss = test_acc = None  # the whole test split: every epoch without a curve subset, else the last only
        if curve_b is test_b:
            test_loss, test_acc = curve_loss, curve_acc
        elif epoch + 1 == cfg["epochs"]:
            test_loss, test_acc = evaluate(model, test_b, dev)
        metrics.append(dict(epoch=epoch + 1, lr=lr, train_loss=loss_sum.item() / n, train_acc=correct.item() / n,
                            curve_loss=curve_loss, curve_acc=curve_acc, curve_images=len(curve.y),
                            test_loss=test_loss, test_acc=test_acc, epoch_seconds=dt, images_per_second=n / dt))
        bar.set_postfix(acc=f"{curve_acc:.3f}")
        run.save_epoch(dict(arch=arch, num_classes=cfg["num_classes"], width=cfg["width"],
                                   widths=model.widths(), config_key=key, config=cfg,
                                   dataset_fingerprint=ds.fingerprint, epoch=epoch + 1,
                                   **training_state(model, opt, sched), metrics=metrics, train_seconds=seconds,
                                   device=device_name(dev)), metrics=metrics)
    done = len(metrics) >= cfg["epochs"]
    if done and start < cfg["epochs"]:
        trained_on = device_name(dev)
    final_acc = metrics[-1]["test_acc"] if done else float("nan")
    model.eval()
    return BaselineRun(model, cfg, metrics, final_acc, seconds, rdir, trained_on, ds.stamp(), ckpt_path)


def load_baseline(arch: str, profile: str = "cpu", seed: int = 0, device: str = "auto", **overrides):
    """The finished baseline model for these settings, or CheckpointError if it was never trained."""
    cfg = resolve_baseline(arch, profile, seed, **overrides)
    path = run_dir_for(cfg) / "checkpoint.pt"
    if not path.exists():
        raise CheckpointError(f"{path}: no baseline for these settings. Train it first: "
                              f"python -m paper_repro train {arch} --profile {profile} --seed {seed}")
    ckpt = load_checkpoint(path, expect={"arch": arch, "config_key": config_key(cfg)})
    if ckpt["epoch"] < cfg["epochs"]:
        raise CheckpointError(f"{path}: baseline stopped at epoch {ckpt['epoch']} of {cfg['epochs']}. "
                              f"Resume it: python -m paper_repro train {arch} --profile {profile} --seed {seed}")
    model = build_model(arch, cfg["num_classes"], width=cfg["width"], widths=cfg.get("widths"))
    load_state(model, ckpt["model"], path)
    return model.to(resolve_device(device)).eval(), ckpt


def load_teacher(path, arch: str, b: dict, remedy: str | None = TEACHER_REMEDY):
    """A baseline checkpoint as the teacher of a pruning run with the settings `b`: (model, its final test
    accuracy, its settings, its config key). `remedy`: what a bad file's error advises (a given file is the
    user's: never "delete it")."""
    ckpt = load_checkpoint(path, expect={"arch": arch, "num_classes": b["num_classes"], "width": b["width"]},
                           remedy=remedy)
    model = build_model(arch, b["num_classes"], width=b["width"])
    load_state(model, ckpt["model"], path, remedy=remedy)
    acc = ckpt["metrics"][-1]["test_acc"] if ckpt.get("metrics") else float("nan")
    return model, acc, ckpt.get("config"), ckpt.get("config_key")


def baseline_row(run: BaselineRun) -> dict:
    """One row of the baselines table, stamped with where and on what it was trained."""
    c = count(run.model)
    cfg = run.config
    return {"arch": cfg["arch"], "width": cfg["width"], **run.dataset_stamp, "profile": cfg["profile"],
            "seed": cfg["seed"], "device": run.device, "commit": git_commit(), "params": c["params"],
            "macs": c["macs"], "test_acc": round(run.test_acc, 4), "epochs": len(run.metrics),
            "train_images": cfg["train_subset"] or "all", "test_images": cfg["test_subset"] or "all",
            "train_seconds": round(run.train_seconds, 1)}


def train_teachers(archs, profile: str = "cpu", seed: int = 0, budget_s: float | None = None,
                   retrain: bool = False, device: str = "auto", data_dir=None, download: bool = True,
                   progress: bool = True, compile=False, paper_width: bool = False) -> list[dict]:
    """`make teachers`: train (or resume) each teacher of `archs` in turn within `budget_s` seconds, then
    publish its state to teachers/. Finished, matching teachers are skipped unless `retrain`. `paper_width`:
    the teachers of config.PAPER_WIDTH instead of the profile's reduced-width ones."""
    if not T.is_committed_profile(profile):
        raise ValueError(f"profile: teachers are committed for {', '.join(T.COMMITTED_PROFILES)} only, got {profile!r}")
    t0, rows = time.perf_counter(), []
    for arch in archs:  # before anything trains: a refused retrain deletes nothing, a damaged record stops the call
        overrides = paper_width_overrides(arch, profile) if paper_width else {}
        cfg = resolve_baseline(arch, profile, seed, **overrides)
        d = T.teacher_dir(arch, profile, seed, cfg["width"])
        if retrain:
            T.drop_for_retrain(d, run_dir_for(cfg))  # the run folder's lock first, then delete
        T.check_record(d)
    for arch in archs:
        overrides = paper_width_overrides(arch, profile) if paper_width else {}
        cfg = resolve_baseline(arch, profile, seed, **overrides)
        d = T.teacher_dir(arch, profile, seed, cfg["width"])
        ckpt_path = run_dir_for(cfg) / "checkpoint.pt"
        if (d / T.WEIGHTS).exists():
            ckpt = T.read_committed(d)  # a teacher.pt that does not load is refused (restore it), never replaced
            try:
                T.check_teacher(ckpt, d / T.WEIGHTS, cfg)
            except CheckpointError:  # other settings: `make teachers` is the command that replaces a stale teacher
                T.clear_record(d)
            else:
                check_digests(d)
                rows.append(dict(arch=arch, status="finished (committed)", folder=str(d)))
                continue
        refused = precision_refusal(run_precision(cfg), resolve_device(device))
        if refused is not None:  # this lane trains the teachers it can; the one line says why not this one
            rows.append(dict(arch=arch, status=f"skipped: {refused}", folder=str(d)))
            continue
        T.seed_run_from_resume(arch, profile, seed, ckpt_path, cfg["width"])
        left = None if budget_s is None else budget_s - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            rows.append(dict(arch=arch, status=T.publish(arch, profile, seed, ckpt_path), folder=str(d)))
            continue
        run = train_baseline(arch, profile, seed, device=device, data_dir=data_dir, download=download,
                             progress=progress, time_budget_s=left, use_committed=False,
                             allow_training=True, compile=compile, **overrides)
        status = T.publish(arch, profile, seed, ckpt_path, run.dataset_stamp)
        rows.append(dict(arch=arch, status=status, epochs_done=len(run.metrics), epochs=cfg["epochs"],
                         test_acc=run.test_acc if status == "finished" else None, folder=str(d)))
    return rows
