"""`make reproduce`: run every numbered notebook with papermill, skipping those whose inputs did not change.

A notebook's inputs are its code cells, the package sources, the committed records it reads (`committed_records`)
and the profile; their hash is kept in build/stamps/<profile>/. The executed copy goes to notebooks/executed/<profile>/ for reading; trained
models are cached separately (runs/), so a rerun after a code change retrains only what changed.

It says where it is: "notebook k of n" with the time the notebooks still to run took in the last recorded run
(progress.py), after the lanes' "arm k of n" (lanes.py). The time of a whole `reproduce` is recorded just before
the index runs, so that the index, the README's summary and results/notebook_runtimes.csv state the same one; only
a run in which every notebook ran records it (a run that skipped some measured less than a `make reproduce`).

One `reproduce` per profile at a time (the executed folder is locked, see runlock.py). A notebook that fails
stops the run with one line naming it, its cell and the error; its half-executed copy is removed, as is one
that an earlier, killed run left behind."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import papermill as pm
from jupyter_client.manager import KernelManager
from papermill.exceptions import PapermillExecutionError

from ..config import ENV_PROFILE, check_profile
from ..engine import ENV_PROGRESS
from ..provenance import ROOT, git_commit
from ..runlock import run_lock
from ..storage import write_text
from . import headlines
from .index import write_index, write_readme_summary
from .lanes import fill_cache
from .navigation import (INDEX, TOTAL, read_runtimes, record_runtime, relink_executed, reproduce_times,
                         runs_snapshot)
from .outputs import ENV_NOTEBOOK, ENV_OUTPUTS, committed_dirs
from .progress import notebook_estimates, notebook_line, notebooks_left

NOTEBOOKS = ROOT / "notebooks"


class NotebookError(RuntimeError):
    pass


class LocalKernelManager(KernelManager):
    """A kernel reached through local (IPC) sockets, not TCP ports: nothing listens on the network, and ipykernel
    has no reason to warn, for every notebook, that it "is running over TCP without encryption"."""

    def __init__(self, **kwargs):
        super().__init__(**{"transport": "ipc", **kwargs})


def failure_line(nb: Path, e) -> str:
    """One line for a papermill PapermillExecutionError: the notebook, the failing cell, the exception."""
    first = (str(e.evalue).strip().splitlines() or [""])[0]
    return (f"notebooks/{nb.name}: cell {e.exec_count} (index {e.cell_index}) failed: {e.ename}: {first} "
            f"(the traceback: rerun with --debug)")


def notebook_paths(names=None) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    # The index (00) summarises what the others wrote (verdicts, runtimes): it runs last.
    paths = [p for p in paths if p.stem != INDEX] + [p for p in paths if p.stem == INDEX]
    if names:
        valid = {p.stem: p for p in paths}
        bad = [n for n in names if Path(n).stem not in valid]
        if bad:
            raise ValueError(f"notebooks: unknown {bad}; valid: {', '.join(valid)}")
        paths = [valid[Path(n).stem] for n in names]
    return paths


def committed_records(profile: str) -> list[Path]:
    """The committed runs the notebooks read (teachers, the paper-width study, the GPU runs' records): a notebook whose
    records changed (a run finished, a chunk landed) reruns even when its code did not."""
    folders = (ROOT / "teachers" / profile, ROOT / "paper_width" / profile, ROOT / "results" / "paper" / "runs")
    return sorted(f for d in folders if d.is_dir() for f in d.rglob("*") if f.is_file())


def inputs_hash(nb_path: Path, profile: str) -> str:
    h = hashlib.sha256(profile.encode())
    cells = json.loads(nb_path.read_text())["cells"]
    for c in cells:
        if c["cell_type"] == "code":
            h.update("".join(c["source"]).encode())
    for src in sorted((ROOT / "paper_repro").rglob("*.py")) + committed_records(profile):
        h.update(src.relative_to(ROOT).as_posix().encode())
        h.update(src.read_bytes())
    if nb_path.stem == INDEX:  # its inputs are the other notebooks' outputs, and the time of the whole run
        res = committed_dirs(profile)[0]
        for name in ("verdicts.csv", "outputs.json"):
            h.update((res / name).read_bytes() if (res / name).exists() else b"")
        for _, row in sorted(reproduce_times(read_runtimes(profile)).items()):
            h.update(json.dumps(row, sort_keys=True).encode())
    return h.hexdigest()


def run_notebooks(profile: str = "cpu", names=None, force: bool = False, lanes: int = 1) -> None:
    """`lanes` > 1: first train every arm of notebooks 02-07 in that many parallel processes (lanes.py)."""
    check_profile(profile)
    out_dir = NOTEBOOKS / "executed" / profile
    paths = notebook_paths(names)
    before = headlines.snapshot(committed_dirs(profile)[0])
    t_all = time.perf_counter()
    with run_lock(out_dir):  # also removes the temporary copies a killed run left there
        if lanes > 1 and not names:
            print(f"[reproduce] training every arm of notebooks 02-07 in {lanes} lanes", flush=True)
            lane_report = fill_cache(profile, lanes)
            record_runtime(profile, f"arms in {lanes} lanes", lane_report.seconds, lane_report.trained, git_commit())
            print(f"[reproduce] arms: done in {lane_report.seconds:.0f} s", flush=True)
        else:
            lane_report = None

        def whole_run(trained: bool) -> None:  # just before the index: the time of all of `make reproduce`
            if not names:  # (without the venv and data setup), which the index and the README then state
                record_runtime(profile, TOTAL, time.perf_counter() - t_all,
                               trained or bool(lane_report and lane_report.trained), git_commit())

        _run(paths, profile, out_dir, force, lane_report, before_index=whole_run)
    write_index(profile)
    write_readme_summary(profile)  # results/ changed, even on a partial run: the README's block is made from them
    text = headlines.report(before, headlines.snapshot(committed_dirs(profile)[0]))
    if text:  # how far this machine's numbers are from the committed ones, against the measured noise
        print(text, end="", flush=True)
        write_text(ROOT / "build" / profile / "reproduce_report.txt", text)


def _run(paths, profile, out_dir, force, lane_report=None, before_index=None) -> bool:
    """Run each notebook; its cold time also counts the lane seconds of the runs it owns (`lane_report`). True when
    a notebook trained something. `before_index(trained)` is called before the index when every notebook before it
    ran (none was skipped)."""
    stamp_dir = ROOT / "build" / "stamps" / profile
    any_trained, skipped = False, False
    estimates = notebook_estimates([p.stem for p in paths], read_runtimes(profile))
    for k, nb in enumerate(paths, 1):
        if nb.stem == INDEX and before_index is not None and not skipped:
            before_index(any_trained)
        digest = inputs_hash(nb, profile)
        stamp = stamp_dir / f"{nb.stem}.sha256"
        out = out_dir / nb.name
        if not force and out.exists() and stamp.exists() and stamp.read_text() == digest:
            print(notebook_line(k, len(paths), nb.name, "inputs unchanged, skipped"), flush=True)
            skipped = True
            continue
        left = notebooks_left(estimates, [p.stem for p in paths[k - 1:]])
        print(notebook_line(k, len(paths), nb.name, f"running with profile={profile}", left), flush=True)
        t0 = time.perf_counter()
        os.environ[ENV_PROFILE] = profile
        os.environ[ENV_NOTEBOOK] = f"notebooks/{nb.name}"
        os.environ[ENV_OUTPUTS] = "committed"
        os.environ[ENV_PROGRESS] = "0"  # the executed copies carry no progress bars (stderr renders like errors)
        tmp = out.with_name(f".{out.name}.tmp.ipynb")  # an interrupted run never leaves a half-executed copy
        before = runs_snapshot(profile)
        try:
            pm.execute_notebook(str(nb), str(tmp), parameters={"profile": profile}, kernel_name="python3",
                                cwd=str(NOTEBOOKS), progress_bar=False,
                                kernel_manager_class=LocalKernelManager)
            relink_executed(tmp, nb.stem, profile)
            os.replace(tmp, out)
        except PapermillExecutionError as e:
            raise NotebookError(failure_line(nb, e)) from e
        finally:
            tmp.unlink(missing_ok=True)
        write_text(stamp, digest)
        seconds = time.perf_counter() - t0
        lane_s = lane_report.notebook_seconds(nb.stem) if lane_report else 0.0
        trained = runs_snapshot(profile) != before or lane_s > 0
        any_trained |= trained
        record_runtime(profile, nb.stem, seconds + lane_s, trained, git_commit(), lane_seconds=lane_s)
        lanes_note = f", + {lane_s:.0f} s of its runs in the lanes" if lane_s else ""
        print(notebook_line(k, len(paths), nb.name, f"done in {seconds:.0f} s ({'cold' if trained else 'cached'}"
                                                   f"{lanes_note})"), flush=True)
    return any_trained
