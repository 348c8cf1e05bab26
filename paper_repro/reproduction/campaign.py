"""The main table's runs in order, within a wall-clock budget per call: the paper profile on a GPU lent for short
sessions.

The full recipe is hours of GPU time (a teacher of 200 epochs, then 200 method epochs, per network); a lent GPU
comes in sessions of minutes. `run_campaign` trains what is left, network after network (baseline, then the
method to its target), stops between epochs before the budget is spent, and the next call resumes from the
checkpoints in runs/ (bitwise the same as an uninterrupted run on CPU; tests/test_campaign.py). Each finished
run's small files are copied to results/paper/runs/, where notebook 02 reads them (`tables.recorded_runs`).

Each GPU window is a new machine, so what a window leaves unfinished travels in the repository, one path per run,
overwritten by the next window:
- a teacher (paper profile) through teachers/paper/<arch>-s<seed>/ (teachers.py): resume.pt while it trains,
  then teacher.pt, its weights alone;
- a method run through results/paper/carry/<run folder>/resume.pt (`carry_out`), seeded into runs/ by the next
  call (`carry_in`) and removed once the run is finished and recorded.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from .. import teachers as T
from ..engine import run_folder
from ..method import prune_train
from ..paper import CARRY, PAPER_RUNS, PAPER_TARGETS
from ..storage import copy_if_further, write_bytes
from ..train import run_dir_for, train_baseline, train_teachers

ORDER = ("resnet56", "mobilenetv2", "vgg_small")  # resnet56 first: the cheapest complete row (issue 5)
# What a record keeps: everything but checkpoints and exports (MBs each, and binary).
RECORD_FILES = {"baselines": ("config.json", "metrics.csv"),
                "prune": ("config.json", "metrics.csv", "summary.json", "widths.json")}




def record_run(run_dir, kind: str, dest=PAPER_RUNS, name: str | None = None) -> Path:
    """Copy a finished run's small files unchanged to `dest` (baselines under dest/baselines/), in a folder named
    `name` (default: the run folder's)."""
    if kind not in RECORD_FILES:
        raise ValueError(f"kind: unknown value {kind!r}; valid: {', '.join(RECORD_FILES)}")
    run_dir = Path(run_dir)
    out = Path(dest) / ("baselines" if kind == "baselines" else "") / (name or run_dir.name)
    out.mkdir(parents=True, exist_ok=True)
    for name in RECORD_FILES[kind]:
        write_bytes(out / name, (run_dir / name).read_bytes())  # atomic: a reader never sees half a record
    return out


def carry_in(carry=CARRY) -> list[str]:
    """Seed runs/prune/<run>/state.pt from each carried state further along than the local one (on a new machine:
    all of them). Returns the runs seeded."""
    seeded = []
    for src in sorted(Path(carry).glob("*/resume.pt")):
        if copy_if_further(src, run_folder("prune", src.parent.name) / "state.pt"):
            seeded.append(src.parent.name)
    return seeded


def carry_out(run, carry=CARRY) -> Path | None:
    """After a call: an unfinished method run's state to carry/<run>/resume.pt (overwritten: one path per run);
    a finished run's carried state is removed (its record stays in results/paper/runs/). The path written, or None."""
    folder = Path(carry) / Path(run.run_dir).name
    if run.summary:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    state = Path(run.run_dir) / "state.pt"
    if not state.exists():
        return None
    return write_bytes(folder / "resume.pt", state.read_bytes())


def run_campaign(archs=ORDER, profile: str = "paper", budget_s: float | None = None, method_epochs: int | None = None,
                 seed: int = 0, device: str = "auto", compile=False, data_dir=None, download: bool = True,
                 record_to=PAPER_RUNS, progress: bool = True, targets=PAPER_TARGETS,
                 export: bool = True, carry=CARRY) -> list[dict]:
    """Baseline then method for each of `archs` (to its target in `targets`), until done or `budget_s` seconds
    are spent.

    `method_epochs`: the method's epochs (None: the recipe's, as many as the baseline's); fewer is a shortened
    recipe and gets its own run folder (the epochs are part of the cache key). `record_to`: where finished runs
    are recorded (None: nowhere). `export`: write the pruned network's .pt2 (prune_train). `carry`: where an
    unfinished method run's state travels to the next call on another machine (None: not carried); a profile
    with committed teachers (`teachers.COMMITTED_PROFILES`) trains its teacher through teachers/<profile>/.
    Returns one status row per network reached."""
    unknown = [a for a in archs if a not in targets]
    if unknown:
        raise ValueError(f"archs: no target for {unknown}; valid: {', '.join(targets)}")
    if budget_s is not None and not budget_s > 0:
        raise ValueError(f"budget_s: must be a positive number of seconds, got {budget_s!r}")
    t0 = time.perf_counter()

    def left():
        return None if budget_s is None else budget_s - (time.perf_counter() - t0)

    common = dict(device=device, data_dir=data_dir, download=download, progress=progress, compile=compile)
    status = []
    if carry is not None:
        carry_in(carry)
    for arch in archs:
        if T.is_committed_profile(profile):  # the teacher's state lives in teachers/<profile>/ between windows
            t = train_teachers([arch], profile, seed, budget_s=left(), **common)[0]
            if not t["status"].startswith("finished"):
                status.append(dict(arch=arch, baseline_epochs=f"{t.get('epochs_done', 0)}/{t.get('epochs', '?')}",
                                   baseline_dir=t["folder"]))
                break
        base = train_baseline(arch, profile, seed, time_budget_s=left(), **common)
        row = dict(arch=arch, baseline_epochs=f"{len(base.metrics)}/{base.config['epochs']}",
                   baseline_acc=base.test_acc, baseline_dir=str(base.run_dir))
        status.append(row)
        if len(base.metrics) < base.config["epochs"]:
            break
        if record_to is not None:  # under the run folder's name, where tables.recorded_runs looks for it
            record_run(base.run_dir, "baselines", record_to, name=run_dir_for(base.config).name)
        # The cached baseline just trained is the teacher (prune_train loads it; nothing is retrained).
        run = prune_train(arch, targets[arch], profile, seed, epochs=method_epochs, time_budget_s=left(),
                          export=export, **common)
        done = run.metrics[-1]["epoch"] if run.metrics else 0
        row.update(method_epochs=f"{done}/{run.config['epochs']}", method_dir=str(run.run_dir))
        if carry is not None:
            carry_out(run, carry)
        if not run.summary:
            break
        row.update(pruned_acc=run.summary["pruned_acc"], target_met=run.summary["target_met"])
        if record_to is not None:
            row["record"] = str(record_run(run.run_dir, "prune", record_to))
    return status
