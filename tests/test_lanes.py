"""reproduce --lanes: every arm of `arms` runs exactly once, longest first, as its own single-thread process;
a failing arm stops the lanes with one line naming it."""
import subprocess

import pytest

import paper_repro.reproduction.lanes as L
from paper_repro.reproduction.arms import all_arms


@pytest.fixture
def no_teachers(monkeypatch):
    monkeypatch.setattr(L, "_teachers", lambda profile, seed: None)


def test_every_arm_once_longest_first(no_teachers, monkeypatch):
    monkeypatch.setattr(L.os, "cpu_count", lambda: 2)
    calls = []

    def run(cmd, env, **kw):
        calls.append((cmd, env["OMP_NUM_THREADS"]))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    report = L.fill_cache("cpu", lanes=2, run=run, log=lambda *a, **k: None)
    names = [c[c.index("arm") + 1] for c, _ in calls]
    assert sorted(a["arm"] for a in report.arms) == sorted(names) and report.seconds > 0
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


def test_each_arms_seconds_count_for_its_notebook_when_it_trained(no_teachers):
    """`arm` prints its status last; an arm read from the cache adds nothing to its notebook's cold time."""
    import json

    cached = {"03-kd-only"}

    def run(cmd, env, **kw):
        name = cmd[cmd.index("arm") + 1]
        return subprocess.CompletedProcess(cmd, 0, "some line\n" + json.dumps({"arm": name,
                                                                               "trained": name not in cached}), "")

    report = L.fill_cache("cpu", lanes=2, run=run, log=lambda *a, **k: None)
    by = {a["arm"]: a for a in report.arms}
    assert by["03-kd-only"]["trained"] is False and by["03-kd-mutual"]["trained"] is True
    assert by["03-kd-only"]["notebook"] == "03_ablation_losses" and report.trained
    ours_03 = [a for a in report.arms if a["notebook"] == "03_ablation_losses" and a["trained"]]
    assert report.notebook_seconds("03_ablation_losses") == pytest.approx(sum(a["seconds"] for a in ours_03))
    assert report.notebook_seconds("01_baselines") == 0


def test_arm_status_says_whether_it_trained(monkeypatch):
    """arms.run reports trained=False for a run read from runs/, True once a training epoch ran."""
    import paper_repro.reproduction.arms as A
    from paper_repro import engine

    class Fake:
        notebook, kind, also, settings = "06_classic_baselines", "classic", [], {"arm": "l1_uniform"}

    monkeypatch.setattr(A, "all_arms", lambda profile, seed: {"06-x": Fake})
    import paper_repro.studies.ablation as AB
    import paper_repro.studies.classic as C

    monkeypatch.setattr(AB, "teacher", lambda *a, **k: None)

    class R:
        run_dir = "r"

    def cached(*a, **k):
        return R

    def trains(*a, **k):
        for _ in engine.epoch_loop(0, 1, "x"):
            pass
        return R

    monkeypatch.setattr(C, "run_classic", cached)
    assert A.run("06-x", "cpu")["trained"] is False
    monkeypatch.setattr(C, "run_classic", trains)
    assert A.run("06-x", "cpu")["trained"] is True
