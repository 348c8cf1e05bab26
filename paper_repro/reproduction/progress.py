"""Where `make reproduce` is: "arm k of n" and the time left while the lanes train, then "notebook k of n".

The estimates come from the last recorded run, results/notebook_runtimes.csv (navigation.read_runtimes):
- an arm: its notebook's cold row holds the lane seconds of the arms that notebook owns (lanes.LaneReport); each
  arm gets the share of them its relative cost gives it (lanes.arm_cost). An arm of a notebook with no record
  gets the mean seconds per unit of cost of those with one. Once arms have trained here, their measured seconds
  against their estimates rescale the rest (this machine may be faster or slower than the one that recorded them);
  with nothing recorded at all, the arms that finished set the rate.
- a notebook: its own seconds in the last run, without the lane seconds of its runs (they trained before it).
The time left of the lanes is the work still to do divided by the number of lanes (they run in parallel).
"""
from __future__ import annotations

import time
from collections import defaultdict

from .navigation import human_duration

PREFIX = "[reproduce]"


def eta_words(seconds: float | None, what: str = "") -> str:
    """'about 24 min left' ('... for the notebooks' with `what`), 'time left: not known yet' without an estimate."""
    if seconds is None:
        return "time left: not known yet"
    return f"about {human_duration(max(seconds, 0.0))} left" + (f" {what}" if what else "")


def arm_line(k: int, n: int, lane: int, name: str, trained: bool, seconds: float, left: float | None) -> str:
    """'[reproduce] arm 3 of 30 (lane 2): 02-main-resnet56 trained in 431 s; about 24 min left'."""
    return (f"{PREFIX} arm {k} of {n} (lane {lane}): {name} {'trained' if trained else 'cached'} in {seconds:.0f} s; "
            + eta_words(left))


def notebook_line(k: int, n: int, name: str, what: str, left: float | None = None) -> str:
    """'[reproduce] notebook 3 of 9: 02_method.ipynb running with profile=cpu; about 6 min left for the notebooks'
    (no estimate: the line ends after `what`)."""
    line = f"{PREFIX} notebook {k} of {n}: {name} {what}"
    return line + (f"; {eta_words(left, 'for the notebooks')}" if left is not None else "")


def arm_estimates(costs: dict[str, float], owners: dict[str, str], rows: list[dict]) -> dict[str, float | None]:
    """{arm: seconds it is expected to take in a lane}: its share, by `costs`, of the lane seconds its notebook
    (`owners`) recorded in its last cold run (`rows`: notebook_runtimes.csv); arms of a notebook without a record
    get the mean seconds per unit of cost of the others, None when no notebook has a record."""
    lane = {r["notebook"]: float(r.get("lane_seconds") or 0) for r in rows if r.get("kind") == "cold"}
    per_notebook = defaultdict(float)
    for name, cost in costs.items():
        per_notebook[owners[name]] += cost
    out = {}
    for name, cost in costs.items():
        recorded, total = lane.get(owners[name], 0.0), per_notebook[owners[name]]
        out[name] = recorded * cost / total if recorded > 0 and total > 0 else None
    known = [n for n, s in out.items() if s is not None]
    if known and len(known) < len(out):
        rate = sum(out[n] for n in known) / sum(costs[n] for n in known)
        out = {n: (rate * costs[n] if s is None else s) for n, s in out.items()}
    return out


def notebook_estimates(names: list[str], rows: list[dict]) -> dict[str, float | None]:
    """{notebook: its own seconds} in the last recorded run, without the lane seconds of its runs: the cached row,
    else the cold row less its lane seconds; None when neither was recorded."""
    got = {(r["notebook"], r["kind"]): r for r in rows}
    out = {}
    for name in names:
        cached, cold = got.get((name, "cached")), got.get((name, "cold"))
        if cached:
            out[name] = float(cached["seconds"])
        elif cold:
            out[name] = float(cold["seconds"]) - float(cold.get("lane_seconds") or 0)
        else:
            out[name] = None
    return out


def notebooks_left(estimates: dict[str, float | None], names: list[str]) -> float | None:
    """Seconds the notebooks `names` (those still to run) are expected to take; None when none has a record."""
    known = [estimates.get(n) for n in names if estimates.get(n) is not None]
    return sum(known) if known else None


class ArmProgress:
    """The lanes' progress: which arms finished, how long each took, and the time left (module docstring)."""

    def __init__(self, costs: dict[str, float], estimates: dict[str, float | None], lanes: int,
                 clock=time.perf_counter):
        self.costs, self.estimates, self.lanes, self.clock = dict(costs), dict(estimates), max(1, lanes), clock
        self.running: dict[str, float] = {}  # arm: when it started
        self.finished: dict[str, tuple[float, bool]] = {}  # arm: (seconds, trained)

    @property
    def total(self) -> int:
        return len(self.costs)

    def start(self, name: str) -> None:
        self.running[name] = self.clock()

    def finish(self, name: str, seconds: float, trained: bool) -> int:
        """Record a finished arm; returns how many have finished (k of `total`)."""
        self.running.pop(name, None)
        self.finished[name] = (float(seconds), bool(trained))
        return len(self.finished)

    def _trained(self):
        return [(n, s) for n, (s, trained) in self.finished.items() if trained]

    def expected(self, name: str) -> float | None:
        """Seconds `name` is expected to take, rescaled by what the arms that trained here measured."""
        trained = self._trained()
        est = self.estimates.get(name)
        if est is not None:
            pairs = [(s, self.estimates[n]) for n, s in trained if self.estimates.get(n)]
            ratio = sum(s for s, _ in pairs) / sum(e for _, e in pairs) if pairs else 1.0
            return est * ratio
        cost = sum(self.costs[n] for n, _ in trained)
        return None if not cost else self.costs[name] * sum(s for _, s in trained) / cost

    def left(self) -> float | None:
        """Seconds until the last lane ends: the work not done yet over the lanes; None while it cannot be told."""
        now, work = self.clock(), 0.0
        for name in self.costs:
            if name in self.finished:
                continue
            e = self.expected(name)
            if e is None:
                return None
            work += max(e - (now - self.running[name]), 0.0) if name in self.running else e
        return work / self.lanes

    def start_line(self) -> str:
        est = self.left()
        basis = ("by the last recorded run (results/notebook_runtimes.csv)" if est is not None else
                 "no recorded run to estimate from: the time left shows once an arm has trained")
        return (f"{PREFIX} {self.total} arms to train in {self.lanes} lane{'s' if self.lanes > 1 else ''}; "
                + (f"{eta_words(est)} {basis}" if est is not None else basis))
