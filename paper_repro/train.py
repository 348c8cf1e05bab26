"""Baseline (teacher) training: cached by resolved settings, resumable, atomic, deterministic on CPU."""
from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm  # text bars: tqdm.auto needs ipywidgets in Jupyter

from . import data as D
from .config import config_key, resolve_baseline
from .models import build_model
from .provenance import ROOT, device_name, resolve_device
from .runlock import epochs_done, holds_run_locks, lock_run_folder
from .storage import CheckpointError, load_checkpoint, load_state, save_checkpoint, write_json, write_text

ENV_RUNS = "PAPER_REPRO_RUNS"  # the runs/ folder: a shared one lets many machines fill one cache (arms.py)
RUNS = Path(os.environ.get(ENV_RUNS) or ROOT / "runs")
ENV_PROGRESS = "PAPER_REPRO_PROGRESS"  # "0": no progress bars (set by `reproduce`); bars stay for CLI and Lab


def epoch_bar(epochs: range, desc: str, progress: bool, total: int):
    """A tqdm bar over the epochs still to run; off when `progress` is False or $PAPER_REPRO_PROGRESS is 0."""
    quiet = not progress or os.environ.get(ENV_PROGRESS) == "0"
    return tqdm(epochs, desc=desc, disable=quiet, initial=epochs.start, total=total)


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


def curve_split(cfg: dict, test: D.Split) -> D.Split:
    """The fixed test subset behind the per-epoch curve (`curve_test_subset`; the whole split when None)."""
    return D.subset(test, cfg.get("curve_test_subset"), seed=cfg["seed"] + 3)


def prepare_data(cfg: dict, device, data_dir=None, download=True) -> tuple[D.Dataset, D.Split, D.Split]:
    ds = D.load_cifar(cfg["dataset"], data_dir=data_dir, download=download)
    if ds.num_classes != cfg["num_classes"]:
        raise ValueError(f"num_classes: {cfg['dataset']} has {ds.num_classes} classes, settings say {cfg['num_classes']}")
    ds.to(device)
    train = D.subset(ds.train, cfg["train_subset"], seed=cfg["seed"] + 1)
    test = D.subset(ds.test, cfg["test_subset"], seed=cfg["seed"] + 2)
    return ds, train, test


def autocast(device):
    """bf16 autocast on a GPU (BatchNorm stays fp32 under autocast); plain fp32 on the CPU."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compiled(fn, mode):
    """torch.compile(fn, mode=mode), or fn itself when mode is False (eager: the default, and what the CPU runs;
    at batch 64 a GPU step is launch-bound and compiling fuses kernels / replays them as a CUDA graph)."""
    return torch.compile(fn, mode=mode) if mode else fn


def plain_loss(model, x, y):
    with autocast(x.device):
        out = model(x)
        return F.cross_entropy(out.float(), y), out


def train_epoch(model, batches, opt, loss_fn, after_backward=None, sched=None):
    """One pass of SGD over `batches`: loss_fn(model, x, y) -> (loss, logits); `after_backward()` may edit the
    gradients before the step (a sparsity penalty); `sched` (a per-step schedule) steps after every update.
    Returns (Σ loss·n, correct, n), the sums kept on the device (no host sync inside the loop)."""
    dev = next(model.parameters()).device
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    n = 0
    for x, y in batches:
        loss, out = loss_fn(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if after_backward is not None:
            after_backward()
        opt.step()
        if sched is not None:
            sched.step()
        loss_sum += loss.detach() * len(y)
        correct += (out.argmax(1) == y).sum()
        n += len(y)
    return loss_sum, correct, n


def timed_epoch(model, batches, opt, sched, loss_fn, device, after_backward=None):
    """train_epoch in train mode, then the LR step, timed to the end of the device's work. Returns
    (the lr it trained at, Σ loss·n, correct, n, seconds)."""
    model.train()
    lr, t0 = opt.param_groups[0]["lr"], time.perf_counter()
    per_step = isinstance(sched, PerStepLR)
    loss_sum, correct, n = train_epoch(model, batches, opt, loss_fn, after_backward, sched if per_step else None)
    if not per_step:
        sched.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return lr, loss_sum, correct, n, time.perf_counter() - t0


@torch.no_grad()
def evaluate(model, batches: D.Batches, device) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a whole split; one host sync at the end."""
    was = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    for x, y in batches:
        with autocast(device):
            out = model(x)
        loss_sum += F.cross_entropy(out.float(), y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
        n += len(y)
    model.train(was)
    return loss_sum.item() / n, correct.item() / n


@torch.no_grad()
def predicted_counts(model, batches: D.Batches, num_classes: int) -> list[int]:
    """How many images of the split the model assigns to each class (a collapsed network piles onto a few)."""
    was = model.training
    model.eval()
    counts = None
    for x, _ in batches:
        with autocast(x.device):
            c = torch.bincount(model(x).argmax(1), minlength=num_classes)
        counts = c if counts is None else counts + c
    model.train(was)
    return counts.tolist()


@torch.no_grad()
def recalibrate_bn_(model, batches, max_batches: int | None = None):
    """Recompute every BatchNorm's running mean/variance from scratch (cumulative average over `batches`, no
    labels, no weight update), then eval mode. After channels are cut out, the later BNs' statistics no longer
    match their inputs; this is the standard cheap repair (adaptive BN, Li et al. 2020, EagleEye)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative moving average, all batches weigh the same
    model.train()
    for i, (x, _) in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        with autocast(x.device):
            model(x)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    return model.eval()


class PerStepLR(torch.optim.lr_scheduler.LambdaLR):
    """A LambdaLR over optimizer steps (not epochs): `train_epoch` steps it after every update."""


def milestone_epochs(fractions, epochs: int) -> list[int]:
    """Epochs at which a step schedule decays, from fractions of the run: each at least 1 (a milestone at 0
    would decay before the first step) and each after the previous one. Rounding alone collides on short runs:
    with 3 epochs round(0.5·3) == round(0.75·3) == 2, and the last epoch ran at lr/100 instead of lr/10."""
    out = []
    for f in fractions:
        m = max(1, int(round(f * epochs)))
        out.append(max(m, out[-1] + 1) if out else m)
    return out


def warmup_cosine(total_steps: int, warmup_steps: int):
    """LR factor at step t: linear from 1/warmup_steps up to 1, then a half cosine down to 0 at total_steps."""
    def factor(t: int) -> float:
        if t < warmup_steps:
            return (t + 1) / warmup_steps
        done = (t - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))
    return factor


def make_optimizer(model, cfg: dict, steps_per_epoch: int):
    """SGD with the schedule of `cfg` (multistep: per epoch; cosine: per step, see `PerStepLR`)."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                          weight_decay=cfg["weight_decay"], nesterov=cfg.get("nesterov", False))
    if cfg.get("lr_schedule", "multistep") == "cosine":
        total = cfg["epochs"] * steps_per_epoch
        sched = PerStepLR(opt, warmup_cosine(total, cfg.get("warmup_epochs", 0) * steps_per_epoch))
    else:
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestone_epochs(cfg["lr_milestones"],
                                                                                      cfg["epochs"]),
                                                     gamma=cfg["lr_gamma"])
    return opt, sched


def run_dir_for(cfg: dict, kind: str = "baselines") -> Path:
    return RUNS / kind / f"{cfg['arch']}-{cfg['dataset']}-s{cfg['seed']}-{config_key(cfg)}"


def out_of_time(t_call: float, budget_s: float | None, walls: list[float], metrics: list[dict],
                now: float | None = None) -> bool:
    """`time_budget_s` of the training loops: True when one more epoch would end more than `budget_s` seconds
    after `t_call` (perf_counter; `now` defaults to it). An epoch is assumed as long as the last one of this
    call (training, test and checkpoint), else the last recorded one (a first epoch also compiles: too long)."""
    if budget_s is None:
        return False
    estimate = walls[-1] if walls else (metrics[-1]["epoch_seconds"] if metrics else 0.0)
    return (time.perf_counter() if now is None else now) - t_call + estimate > budget_s


def metrics_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


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
    from . import teachers as T

    cfg = resolve_baseline(arch, profile, seed, **overrides)
    dev = resolve_device(device)
    key = config_key(cfg)
    rdir = run_dir_for(cfg)
    ckpt_path = rdir / "checkpoint.pt"
    ds, train_split, test_split = prepare_data(cfg, dev, data_dir, download)
    committed = T.is_committed_profile(profile) and cfg == resolve_baseline(arch, profile, seed)
    if committed and use_committed:
        found = T.load_committed(arch, profile, seed, fingerprint=ds.fingerprint)
        if found is not None:
            model, ckpt = found
            d = T.teacher_dir(arch, profile, seed)
            if progress:
                print(f"{arch} teacher: committed {(d / T.WEIGHTS).relative_to(ROOT)}, trained on {ckpt['device']}, "
                      f"{ckpt['metrics'][-1]['test_acc']:.2%} on the test images", flush=True)
            return BaselineRun(model.to(dev), cfg, ckpt["metrics"], ckpt["metrics"][-1]["test_acc"],
                               ckpt["train_seconds"], d, ckpt["device"], ds.stamp(), d / T.WEIGHTS)
    if allow_training is None:
        allow_training = not committed
    if not allow_training and epochs_done(ckpt_path, {"arch": arch, "config_key": key}) < cfg["epochs"]:
        raise T.missing_teacher_error(arch, profile, seed)
    if epochs_done(ckpt_path, {"arch": arch, "config_key": key}) < cfg["epochs"]:
        lock_run_folder(rdir)  # one writer; a finished run is read without it and nothing is written

    torch.manual_seed(seed)
    model = build_model(arch, cfg["num_classes"], width=cfg["width"]).to(dev)
    if cfg["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    train_b = D.Batches(train_split, cfg["batch_size"], D.MEAN[cfg["dataset"]], D.STD[cfg["dataset"]], train=True,
                        seed=seed, channels_last=cfg["channels_last"])
    test_b = D.Batches(test_split, 500, D.MEAN[cfg["dataset"]], D.STD[cfg["dataset"]], train=False,
                       channels_last=cfg["channels_last"])
    curve = curve_split(cfg, test_split)
    curve_b = test_b if curve is test_split else D.Batches(curve, 500, D.MEAN[cfg["dataset"]], D.STD[cfg["dataset"]],
                                                           train=False, channels_last=cfg["channels_last"])
    opt, sched = make_optimizer(model, cfg, len(train_b))
    loss_fn = compiled(plain_loss, compile)

    start, metrics, seconds, trained_on = 0, [], 0.0, device_name(dev)
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, expect={"arch": arch, "config_key": key,
                                                  "dataset_fingerprint": ds.fingerprint})
        load_state(model, ckpt["model"], ckpt_path)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start, metrics, seconds = ckpt["epoch"], ckpt["metrics"], ckpt["train_seconds"]
        trained_on = ckpt["device"] if start >= cfg["epochs"] else trained_on
    if start < cfg["epochs"]:
        write_json(rdir / "config.json", {**cfg, "config_key": key, **ds.stamp()})

    end = cfg["epochs"] if max_epochs_now is None else min(cfg["epochs"], start + max_epochs_now)
    if progress and start >= cfg["epochs"]:
        print(f"{arch} baseline: cached in {rdir.relative_to(ROOT) if rdir.is_relative_to(ROOT) else rdir}, "
              f"{metrics[-1]['test_acc']:.2%} on the test images", flush=True)
    bar = epoch_bar(range(start, end), f"{arch} baseline", progress, cfg["epochs"])
    t_call, walls = time.perf_counter(), []
    for epoch in bar:
        if out_of_time(t_call, time_budget_s, walls, metrics):
            break
        torch.manual_seed(seed * 1000 + epoch)  # dropout etc.: same stream whether resumed or not
        t0 = time.perf_counter()
        lr, loss_sum, correct, n, dt = timed_epoch(model, train_b.set_epoch(epoch), opt, sched, loss_fn, dev)
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
        save_checkpoint(ckpt_path, dict(arch=arch, num_classes=cfg["num_classes"], width=cfg["width"],
                                        widths=model.widths(), config_key=key, config=cfg,
                                        dataset_fingerprint=ds.fingerprint, epoch=epoch + 1,
                                        model=model.state_dict(), optimizer=opt.state_dict(),
                                        scheduler=sched.state_dict(), metrics=metrics, train_seconds=seconds,
                                        device=device_name(dev)))
        write_text(rdir / "metrics.csv", metrics_csv(metrics))
        walls.append(time.perf_counter() - t0)
    bar.close()
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
    model = build_model(arch, cfg["num_classes"], width=cfg["width"])
    load_state(model, ckpt["model"], path)
    return model.to(resolve_device(device)).eval(), ckpt


def baseline_row(run: BaselineRun) -> dict:
    """One row of the baselines table, stamped with where and on what it was trained."""
    from .counting import count
    from .provenance import git_commit

    c = count(run.model)
    cfg = run.config
    return {"arch": cfg["arch"], "width": cfg["width"], **run.dataset_stamp, "profile": cfg["profile"],
            "seed": cfg["seed"], "device": run.device, "commit": git_commit(), "params": c["params"],
            "macs": c["macs"], "test_acc": round(run.test_acc, 4), "epochs": len(run.metrics),
            "train_images": cfg["train_subset"] or "all", "test_images": cfg["test_subset"] or "all",
            "train_seconds": round(run.train_seconds, 1)}
