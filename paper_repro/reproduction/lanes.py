"""`make reproduce`'s first step: train every run of notebooks 02-07 in parallel lanes, then let the notebooks read them.

A CPU with 2 cores trains two single-thread processes 1.3x faster than one process with two threads (measured on
the cpu teachers, docs/profiles.md): a training step of these small networks does not keep two threads busy. So
`reproduce --lanes 2` first runs each arm of `python -m paper_repro arms` (the notebooks' own calls, see arms.py)
as its own `arm NAME --threads 1` process, two at a time, longest first so that the lanes end together. The arm list
is built once, here: each process is handed its arm (`--spec`, arms.Arm.spec) rather than building the list again.
The notebooks then find every run in runs/ and only load, measure and plot. `--lanes 1` skips this step: each
notebook trains its runs itself, with every core.

It says where it is: first how many arms there are and the time the last recorded run suggests, then for each
finished arm "arm k of n" with the time left (progress.py: each arm's share of its notebook's recorded lane seconds,
rescaled by what the arms measured here).

A lane that fails stops the step with one line naming the arm and its last error line; the runs already
finished stay cached (the next `reproduce` resumes from them). The teachers come first, in this process: two
lanes must never train the same teacher at once.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from ..method import resolve_method
from ..paper import SUBJECT
from ..studies.ablation import budget
from ..train import train_baseline
from .arms import Arm, all_arms, teacher_archs
from .navigation import read_runtimes
from .progress import ArmProgress, arm_estimates, arm_line

# Relative cost of one training image for one network (forward + backward at the cpu widths), from the cpu
# s/epoch of the committed teachers; only the order of the queue depends on it.
ARCH_COST = {"mobilenetv2": 3.0, "resnet56": 1.0, "vgg_small": 0.35}


class LaneError(RuntimeError):
    pass


@dataclass
class LaneReport:
    """What `fill_cache` did: its wall seconds, and per arm its seconds in a lane and whether it trained."""
    seconds: float
    arms: list[dict] = field(default_factory=list)  # {arm, notebook, seconds, trained}, in order of completion

    @property
    def trained(self) -> bool:
        return any(a["trained"] for a in self.arms)

    def notebook_seconds(self, notebook: str) -> float:
        """Lane seconds of the arms that trained for `notebook` (a run shared by notebooks counts for the first)."""
        return sum(a["seconds"] for a in self.arms if a["trained"] and a["notebook"] == notebook)


def _arm_status(stdout: str | None) -> dict:
    """The JSON line `arm` prints last ({} when there is none, e.g. a test's stand-in)."""
    lines = [ln for ln in (stdout or "").splitlines() if ln.strip()]
    try:
        return json.loads(lines[-1]) if lines else {}
    except ValueError:
        return {}


def arm_cost(arm, profile: str) -> float:
    """Estimated training work of one arm (arbitrary units): images x epochs x networks trained at once."""
    s = arm.settings
    arch = s.get("arch", SUBJECT["arch"])
    if arm.kind in ("main", "noise", "prune"):
        cfg = arm.resolved or resolve_method(  # resolved once by all_arms; a hand-made Arm is resolved here
            arch, s.get("target", SUBJECT["target"]), profile, s.get("seed", 0),
            **{**(budget(profile) if arm.kind == "prune" else {}),
               **{k: v for k, v in s.items() if k not in ("arch", "target", "seed")}})
        images = cfg["baseline"]["train_subset"] or 50000
        return ARCH_COST.get(arch, 1.0) * images * cfg["epochs"] * (cfg["students"] + 1)
    # classic and peer arms: one network, the ablation budget, plus fine-tuning
    b = budget(profile)
    return ARCH_COST.get(arch, 1.0) * (b.get("train_subset") or 50000) * (b.get("epochs") or 1) * 2


def queue(profile: str, seed: int = 0, arms: dict[str, Arm] | None = None) -> list[str]:
    """Every arm's name (of `arms`, default all_arms), longest first (ties: notebook order)."""
    arms = all_arms(profile, seed) if arms is None else arms
    return sorted(arms, key=lambda n: -arm_cost(arms[n], profile))


def arm_command(arm: Arm, profile: str, seed: int, threads: int) -> list[str]:
    """`arm NAME`, given the arm resolved here (--spec): the process runs it without building every arm again."""
    cmd = [sys.executable, "-m", "paper_repro", "arm", arm.name, "--profile", profile, "--threads", str(threads),
           "--spec", json.dumps(arm.spec())]
    return cmd + (["--seed", str(seed)] if seed else [])


def _teachers(profile: str, seed: int) -> None:
    """Load (committed or cached) or train each teacher the arms need, one at a time, before any lane starts."""
    for arch in teacher_archs():
        train_baseline(arch, profile, seed, progress=False)


def fill_cache(profile: str, lanes: int = 2, seed: int = 0, run=subprocess.run, log=print,
               runtimes: list[dict] | None = None) -> LaneReport:
    """Run every arm in `lanes` processes of `os.cpu_count() // lanes` threads; returns the wall seconds and each
    arm's seconds (an arm whose status does not say it only read its cache counts as trained). `runtimes`: the
    recorded run times the progress lines estimate from (default: the profile's notebook_runtimes.csv)."""
    if not (isinstance(lanes, int) and lanes >= 1):
        raise ValueError(f"lanes: must be an integer >= 1, got {lanes!r}")
    t0 = time.perf_counter()
    _teachers(profile, seed)
    arms = all_arms(profile, seed)
    names = queue(profile, seed, arms)
    report = LaneReport(0.0)
    threads = max(1, (os.cpu_count() or 1) // lanes)
    cmds = {n: arm_command(arms[n], profile, seed, threads) for n in names}  # a bad spec fails here, not in a lane
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PAPER_REPRO_PROGRESS": "0"}
    lock, failures = threading.Lock(), []
    costs = {n: arm_cost(arms[n], profile) for n in names}
    rows = read_runtimes(profile) if runtimes is None else runtimes
    progress = ArmProgress(costs, arm_estimates(costs, {n: arms[n].notebook for n in names}, rows), lanes)
    log(progress.start_line(), flush=True)

    def lane(i: int) -> None:
        while True:
            with lock:
                if failures or not names:
                    return
                name = names.pop(0)
                progress.start(name)
            t = time.perf_counter()
            p = run(cmds[name], env=env, capture_output=True, text=True)
            if p.returncode != 0:
                last = ([ln for ln in (p.stderr or "").splitlines() if ln.strip()] or ["(no output)"])[-1]
                with lock:
                    failures.append(f"arm {name} failed (exit {p.returncode}): {last}; rerun it alone with "
                                    f"python -m paper_repro arm {name} --profile {profile}")
                return
            seconds, status = time.perf_counter() - t, _arm_status(p.stdout)
            trained = bool(status.get("trained", True))
            with lock:
                report.arms.append(dict(arm=name, notebook=arms[name].notebook, seconds=seconds, trained=trained))
                k = progress.finish(name, seconds, trained)
                line = arm_line(k, progress.total, i + 1, name, trained, seconds, progress.left())
            log(line, flush=True)

    workers = [threading.Thread(target=lane, args=(i,)) for i in range(lanes)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failures:
        raise LaneError(failures[0])
    report.seconds = time.perf_counter() - t0
    return report
