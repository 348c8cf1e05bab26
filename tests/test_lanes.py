"""reproduce --lanes: every arm of `arms` runs exactly once, longest first, as its own single-thread process;
a failing arm stops the lanes with one line naming it."""
import subprocess

import pytest

import paper_repro.lanes as L
from paper_repro.arms import all_arms


@pytest.fixture
def no_teachers(monkeypatch):
    monkeypatch.setattr(L, "_teachers", lambda profile, seed: None)


def test_every_arm_once_longest_first(no_teachers, monkeypatch):
    monkeypatch.setattr(L.os, "cpu_count", lambda: 2)
    calls = []

    def run(cmd, env, **kw):
        calls.append((cmd, env["OMP_NUM_THREADS"]))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    L.fill_cache("cpu", lanes=2, run=run, log=lambda *a, **k: None)
    names = [c[c.index("arm") + 1] for c, _ in calls]
    assert sorted(names) == sorted(all_arms("cpu"))  # each once
    assert all(c[c.index("--threads") + 1] == "1" and t == "1" for c, t in calls)  # 2 cores, 2 lanes
    cost = {n: L.arm_cost(a, "cpu") for n, a in all_arms("cpu").items()}
    assert names[0] == "02-main-mobilenetv2" and cost[names[0]] == max(cost.values())
    assert cost["03-kd-only"] > cost["05-criterion-l1"]  # 2 students cost more than 1


def test_a_failing_arm_is_one_line(no_teachers):
    def run(cmd, env, **kw):
        bad = "04-students-3" in cmd
        return subprocess.CompletedProcess(cmd, 2 if bad else 0, "", "error: boom\n" if bad else "")

    with pytest.raises(L.LaneError, match=r"arm 04-students-3 failed \(exit 2\): error: boom; rerun it alone"):
        L.fill_cache("cpu", lanes=2, run=run, log=lambda *a, **k: None)


def test_lanes_must_be_positive(no_teachers):
    with pytest.raises(ValueError, match="lanes: must be an integer >= 1"):
        L.fill_cache("cpu", lanes=0)
