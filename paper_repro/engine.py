"""The training engine every training loop shares: the baseline (`train.train_baseline`), the method
(`method.prune_train`), the classic pipelines (`studies.classic.train_labels`) and the Torch-Pruning arms
(`studies.peer.peer_train`).

What is here: the data of a run (`prepare_data`, `train_batches`, `eval_batches`), autocast and compile, one
SGD pass and its timing, evaluation and BN recalibration, the optimizer and its schedule, a run's folder
(`RunFolder`: key, lock, settings, state, summary), and the one resume/checkpoint path (`RunFolder.resume`,
`epoch_loop`, `RunFolder.save_epoch`): a state file written atomically after every
epoch, a metrics CSV beside it, stops between epochs (`max_epochs_now`, `time_budget_s`). What each loop does
inside an epoch stays with it.
"""
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
from . import datasets
from . import distributed as DI
from .allocation import Target, check_reachable, parse_target
from .counting import CostModel
from .models import build_model
from .provenance import NATIVE_BF16_FLAGS, ROOT, cpu_model, native_bf16_cpu, resolve_device
from .runlock import epochs_done, lock_run_folder
from .storage import load_checkpoint, load_state, read_json, save_checkpoint, write_json, write_text

ENV_RUNS = "PAPER_REPRO_RUNS"  # the runs/ folder: a shared one lets many machines fill one cache (reproduction/arms.py)
RUNS = Path(os.environ.get(ENV_RUNS) or ROOT / "runs")
ENV_PROGRESS = "PAPER_REPRO_PROGRESS"  # "0": no progress bars (set by `reproduce`); bars stay for CLI and Lab
EVAL_BATCH = 500  # evaluation batches: no gradients, so larger than training's
_EPOCHS_RUN = [0]  # epochs trained by this process (every loop goes through epoch_loop): "did it train?"


def epochs_run() -> int:
    """How many training epochs this process has run so far (any run, any loop); 0 when it only read caches."""
    return _EPOCHS_RUN[0]


# -- run folders and data ---------------------------------------------------------------------------------------------
def run_folder(kind: str, name: str) -> Path:
    """runs/<kind>/<name>: where a cached run of that kind lives (read at call time: tests point RUNS elsewhere)."""
    return RUNS / kind / name


def pruning_run_dir(kind: str, cfg: dict, key: str, tgt: Target, out=None, arm: str | None = None) -> Path:
    """`out`, or runs/<kind>/<arch>[-<arm>]-<target kind><ratio>-<profile>-s<seed>-<key> for a pruning run."""
    if out is not None:
        return Path(out)
    parts = [cfg["arch"], *([arm] if arm else []), f"{tgt.kind}{tgt.ratio:g}", cfg["profile"], f"s{cfg['seed']}",
             key]
    return run_folder(kind, "-".join(parts))


@dataclass
class RunFolder:
    """One training run's folder, as the four training loops (baseline, method, classic arms, peer) share it:
    where it lives, the cache key its settings hash to, the one-writer lock, the settings record (config.json),
    the state file written after every epoch and read to resume, and the summary (summary.json), written last.
    Under torchrun rank 0 alone locks and writes."""
    path: Path
    key: str
    settings: dict  # what config.json records: the resolved settings the key hashes (a classic arm: less what it
    # does not use of its baseline block), plus what the run measured (e.g. the data); never a machine path
    identity: dict  # what a state file must record to be this run's: arch and config_key
    state_name: str = "state.pt"

    @property
    def state_path(self) -> Path:
        return self.path / self.state_name

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    def epochs_done(self) -> int:
        """The epochs its state file records (0: none), read without the lock."""
        return epochs_done(self.state_path, self.identity)

    def lock(self) -> None:
        """Take the one-writer lock (held until the process's run call returns, `runlock.holds_run_locks`)."""
        if DI.is_main():
            lock_run_folder(self.path)

    def write_settings(self, **measured) -> None:
        """config.json: the settings, their key, and `measured` (the dataset's stamp, effective coefficients)."""
        if DI.is_main():
            write_json(self.path / "config.json", {**self.settings, "config_key": self.key, **measured})

    def resume(self, restore, **expect) -> dict | None:
        """The state of the last finished epoch, passed to `restore` (None: nothing saved yet); `expect`: more
        that the state must record (e.g. the dataset's fingerprint)."""
        return resume(self.state_path, {**self.identity, **expect}, restore)

    def save_epoch(self, state: dict, **tables) -> None:
        save_epoch(self.state_path, state, **tables)

    def summary(self) -> dict:
        """The recorded summary ({} before the run finished)."""
        if not self.summary_path.exists():
            return {}
        return read_json(self.summary_path, f"Delete it (rm '{self.summary_path}') to finish that run again.")

    def write_summary(self, summary: dict) -> None:
        if DI.is_main():
            write_json(self.summary_path, summary)


def checked_target(arch: str, cfg: dict, device):
    """(target, device, the run's baseline settings, cost model) of a resolved pruning config; an unreachable
    target or a bad device fails here, before any training."""
    tgt = parse_target(cfg["target"])  # the one parse of a run's target: carried as a Target from here on
    dev = resolve_device(device)
    b = cfg["baseline"]
    cost_model = CostModel(build_model(arch, b["num_classes"], width=b["width"]))
    check_reachable(cost_model, tgt)
    return tgt, dev, b, cost_model


def prepare_data(cfg: dict, device, data_dir=None, download=True) -> tuple[D.Dataset, D.Split, D.Split]:
    ds = datasets.load_dataset(cfg["dataset"], data_dir=data_dir, download=download)
    if ds.num_classes != cfg["num_classes"]:
        raise ValueError(f"num_classes: {cfg['dataset']} has {ds.num_classes} classes, settings say {cfg['num_classes']}")
    ds.to(device)
    train = D.subset(ds.train, cfg["train_subset"], seed=cfg["seed"] + 1)
    test = D.subset(ds.test, cfg["test_subset"], seed=cfg["seed"] + 2)
    return ds, train, test


def curve_split(cfg: dict, test: D.Split) -> D.Split:
    """The fixed test subset behind the per-epoch curve (`curve_test_subset`; the whole split when None)."""
    return D.subset(test, cfg.get("curve_test_subset"), seed=cfg["seed"] + 3)


def train_batches(split: D.Split, b: dict, seed: int, views: int = 1,
                  shard: tuple[int, int] = (0, 1)) -> D.Batches:
    """Shuffled, augmented batches of `split` with the settings `b` (batch size, dataset statistics, layout);
    `shard` (rank, ranks): this rank's slice of every global batch under torchrun (`distributed.shard()`)."""
    return datasets.batches(split, b["batch_size"], D.MEAN[b["dataset"]], D.STD[b["dataset"]], train=True,
                            seed=seed, channels_last=b["channels_last"], views=views, shard=shard)


def eval_batches(split: D.Split, b: dict) -> D.Batches:
    """Evaluation batches of `split` (in order, no augmentation)."""
    return datasets.batches(split, EVAL_BATCH, D.MEAN[b["dataset"]], D.STD[b["dataset"]], train=False,
                            channels_last=b["channels_last"])


def curve_batches(b: dict, test: D.Split, test_b: D.Batches) -> tuple[D.Split, D.Batches]:
    """The per-epoch curve's split and batches: `test_b` itself when there is no curve subset."""
    curve = curve_split(b, test)
    return curve, test_b if curve is test else eval_batches(curve, b)


# -- autocast, compile and one training pass --------------------------------------------------------------------------
def autocast(device, precision: str = "auto"):
    """The autocast of a run's `precision` (config.PRECISIONS): "auto" is bf16 on a GPU and plain fp32 on the CPU;
    "bf16" is bf16 autocast on either (BatchNorm stays fp32 under autocast); "fp32" is plain fp32."""
    dev = torch.device(device)
    if precision == "bf16" or (precision == "auto" and dev.type == "cuda"):
        return torch.autocast(dev.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_precision(cfg: dict) -> str:
    """The precision of a run's training passes from its resolved settings ("auto" when they name none)."""
    return cfg.get("precision", "auto")


def precision_refusal(precision: str, device) -> str | None:
    """Why this machine will not train a run of `precision` (None: it will). A bf16 run on a CPU without native
    bf16 would be emulated, hours slower than fp32, and a run never changes precision between its chunks."""
    if precision == "bf16" and torch.device(device).type == "cpu" and not native_bf16_cpu():
        return (f"precision: this run is bf16 and this processor ({cpu_model()}) has none of the flags "
                f"{', '.join(NATIVE_BF16_FLAGS)}: PyTorch would emulate bf16, slower than fp32. Train it on a "
                f"processor with native bf16 or a GPU; fp32 runs train here")
    return None


def check_precision(precision: str, device) -> None:
    """Refuse, in one line, a run this machine would only emulate (`precision_refusal`)."""
    why = precision_refusal(precision, device)
    if why is not None:
        raise RuntimeError(why)


def compiled(fn, mode):
    """torch.compile(fn, mode=mode), or fn itself when mode is False (eager: the default, and what the CPU runs;
    at batch 64 a GPU step is launch-bound and compiling fuses kernels / replays them as a CUDA graph)."""
    return torch.compile(fn, mode=mode) if mode else fn


def plain_loss(model, x, y, precision: str = "auto"):
    with autocast(x.device, precision):
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


def timed_pass(run_pass, sched, device):
    """run_pass(), then the per-epoch LR step (a per-step schedule steps inside the pass), timed to the end of
    the device's work. Returns (what run_pass returned, seconds)."""
    t0 = time.perf_counter()
    out = run_pass()
    if not isinstance(sched, PerStepLR):
        sched.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def timed_epoch(model, batches, opt, sched, loss_fn, device, after_backward=None):
    """train_epoch in train mode, then the LR step, timed to the end of the device's work. Returns
    (the lr it trained at, Σ loss·n, correct, n, seconds)."""
    model.train()
    lr = opt.param_groups[0]["lr"]
    per_step = sched if isinstance(sched, PerStepLR) else None
    (loss_sum, correct, n), dt = timed_pass(lambda: train_epoch(model, batches, opt, loss_fn, after_backward, per_step),
                                            sched, device)
    return lr, loss_sum, correct, n, dt


# -- evaluation and BN recalibration ----------------------------------------------------------------------------------
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


# -- optimizer and schedule -------------------------------------------------------------------------------------------
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


# -- one resume/checkpoint path ---------------------------------------------------------------------------------------
def resume(path: Path, expect: dict, restore) -> dict | None:
    """The state saved after the last finished epoch, passed to `restore(state)` (None: nothing saved yet)."""
    if not path.exists():
        return None
    state = load_checkpoint(path, expect=expect)
    restore(state)
    return state


def restore_training(model, opt, sched, path: Path):
    """A `restore` for `resume`: one network (under "model"), its optimizer and its schedule."""
    def restore(state):
        load_state(model, state["model"], path)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    return restore


def training_state(model, opt, sched) -> dict:
    """What `restore_training` restores."""
    return dict(model=model.state_dict(), optimizer=opt.state_dict(), scheduler=sched.state_dict())


def epoch_loop(start: int, total: int, desc: str, progress: bool = False, max_epochs_now: int | None = None,
               time_budget_s: float | None = None, metrics: list | None = None):
    """Yield (epoch, bar) from `start` to `total`, stopping after `max_epochs_now` epochs of this call or before
    one would overrun `time_budget_s` (`out_of_time`). The wall time of an epoch counts everything done between
    two yields (training, evaluation, checkpoint)."""
    end = total if max_epochs_now is None else min(total, start + max_epochs_now)
    bar = epoch_bar(range(start, end), desc, progress, total)
    t_call, walls = time.perf_counter(), []
    try:
        for epoch in bar:
            # under torchrun rank 0's clock decides for every rank (a rank alone in the next epoch would hang)
            if DI.from_main(out_of_time(t_call, time_budget_s, walls, [] if metrics is None else metrics)):
                break
            t0 = time.perf_counter()
            yield epoch, bar
            walls.append(time.perf_counter() - t0)
            _EPOCHS_RUN[0] += 1
    finally:
        bar.close()


def epoch_bar(epochs: range, desc: str, progress: bool, total: int):
    """A tqdm bar over the epochs still to run; off when `progress` is False or $PAPER_REPRO_PROGRESS is 0."""
    quiet = not progress or os.environ.get(ENV_PROGRESS) == "0" or not DI.is_main()
    return tqdm(epochs, desc=desc, disable=quiet, initial=epochs.start, total=total)


def out_of_time(t_call: float, budget_s: float | None, walls: list[float], metrics: list[dict],
                now: float | None = None) -> bool:
    """`time_budget_s` of the training loops: True when one more epoch would end more than `budget_s` seconds
    after `t_call` (perf_counter; `now` defaults to it). An epoch is assumed as long as the last one of this
    call (training, test and checkpoint), else the median recorded one: a first epoch of this call also
    compiles (too long), and one recorded epoch may hold a pause (a stopped process) that is not its cost."""
    if budget_s is None:
        return False
    recorded = sorted(m["epoch_seconds"] for m in metrics if m.get("epoch_seconds") is not None)
    estimate = walls[-1] if walls else (recorded[len(recorded) // 2] if recorded else 0.0)
    return (time.perf_counter() if now is None else now) - t_call + estimate > budget_s


_AFTER_EPOCH: list = []  # callbacks of `after_each_epoch`, called by `save_epoch`


@contextlib.contextmanager
def after_each_epoch(fn):
    """Within the block, call `fn(state_path)` after every epoch's state and tables are written (rank 0 only), e.g.
    to carry a committed run's state to its store after every epoch. It reads what was written and changes
    nothing of the training."""
    _AFTER_EPOCH.append(fn)
    try:
        yield
    finally:
        _AFTER_EPOCH.remove(fn)


def save_epoch(state_path: Path, state: dict, **tables) -> None:
    """After an epoch: the state (atomically), then each table as <name>.csv beside it, then the `after_each_epoch`
    callbacks; under torchrun rank 0 writes and the others wait for it (the next epoch, or a resume, reads what was
    written)."""
    if not DI.is_main():
        DI.barrier()
        return
    save_checkpoint(state_path, state)
    for name, rows in tables.items():
        write_text(state_path.parent / f"{name}.csv", metrics_csv(rows))
    for fn in list(_AFTER_EPOCH):
        fn(state_path)
    DI.barrier()


def metrics_csv(rows: list[dict]) -> str:
    """Rows as CSV; the columns are every key of any row, in first-seen order (e.g. a peer's sparse epochs, then its
    fine-tuning epochs with a `phase` and other fields), blank where a row has none."""
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()
