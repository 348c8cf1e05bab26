"""`make reproduce` says where it is: "arm k of n" with the time left while the lanes train (each arm's share of its
notebook's recorded lane seconds, rescaled by what the arms measure here), then "notebook k of n"."""
import subprocess

import pytest

import paper_repro.reproduction.lanes as L
from paper_repro.reproduction import progress as P


def test_the_lines_say_which_arm_or_notebook_of_how_many_and_the_time_left():
    assert P.arm_line(3, 30, 2, "02-main-resnet56", True, 431.2, 1440) == \
        "[reproduce] arm 3 of 30 (lane 2): 02-main-resnet56 trained in 431 s; about 24 min left"
    assert P.arm_line(1, 2, 1, "x", False, 3, None) == "[reproduce] arm 1 of 2 (lane 1): x cached in 3 s; " \
                                                        "time left: not known yet"
    assert P.notebook_line(3, 9, "02_method.ipynb", "running with profile=cpu", 365) == \
        "[reproduce] notebook 3 of 9: 02_method.ipynb running with profile=cpu; about 6 min left for the notebooks"
    assert P.notebook_line(9, 9, "00_index.ipynb", "done in 4 s (cached)") == \
        "[reproduce] notebook 9 of 9: 00_index.ipynb done in 4 s (cached)"
    assert P.eta_words(-5) == "about 0 s left"


RUNTIMES = [dict(notebook="02_method", kind="cold", seconds="1361", lane_seconds="1341"),
            dict(notebook="02_method", kind="cached", seconds="19", lane_seconds="0"),
            dict(notebook="03_ablation_losses", kind="cold", seconds="1058", lane_seconds="1000"),
            dict(notebook="08_deployment", kind="cached", seconds="138", lane_seconds="0")]


def test_each_arm_gets_its_share_of_its_notebooks_recorded_lane_seconds():
    costs = {"a": 1.0, "b": 3.0, "c": 2.0, "d": 2.0}
    owners = {"a": "02_method", "b": "02_method", "c": "03_ablation_losses", "d": "04_ablation_students"}
    est = P.arm_estimates(costs, owners, RUNTIMES)
    assert est["a"] == pytest.approx(1341 / 4) and est["b"] == pytest.approx(3 * 1341 / 4)
    assert est["c"] == pytest.approx(1000)
    assert est["d"] == pytest.approx(2 * (1341 + 1000) / 6)  # no record: the others' seconds per unit of cost
    assert set(P.arm_estimates(costs, owners, []).values()) == {None}
    nb = P.notebook_estimates(["02_method", "03_ablation_losses", "08_deployment", "00_index"], RUNTIMES)
    assert nb == {"02_method": 19, "03_ablation_losses": 58, "08_deployment": 138, "00_index": None}
    assert P.notebooks_left(nb, ["03_ablation_losses", "08_deployment", "00_index"]) == 196
    assert P.notebooks_left(nb, ["00_index"]) is None


def test_the_time_left_is_the_work_left_over_the_lanes_rescaled_by_what_the_arms_measured():
    now = [0.0]
    costs = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}
    prog = P.ArmProgress(costs, {n: 100.0 for n in costs}, lanes=2, clock=lambda: now[0])
    assert prog.left() == pytest.approx(200) and "about 3 min left" in prog.start_line()
    prog.start("a"), prog.start("b")
    now[0] = 150.0
    assert prog.finish("a", 150.0, True) == 1  # this machine takes 1.5x the recorded time
    prog.start("c")
    # b: 150 expected, 150 elapsed -> 0; c: 150, just started; d: 150 queued -> 300 s of work over 2 lanes
    assert prog.left() == pytest.approx(150)
    prog.finish("b", 150.0, True), prog.finish("c", 10.0, False)  # a cached arm does not rescale the rest
    assert prog.expected("d") == pytest.approx(150) and prog.left() == pytest.approx(75)


def test_without_a_record_the_first_trained_arms_set_the_rate():
    prog = P.ArmProgress({"a": 1.0, "b": 2.0}, {"a": None, "b": None}, lanes=1, clock=lambda: 0.0)
    assert prog.left() is None and "the time left shows once an arm has trained" in prog.start_line()
    prog.finish("a", 60.0, True)
    assert prog.left() == pytest.approx(120)


def test_the_lanes_print_arm_k_of_n_with_the_time_left(monkeypatch):
    monkeypatch.setattr(L, "_teachers", lambda profile, seed: None)
    lines = []

    def run(cmd, env, **kw):
        return subprocess.CompletedProcess(cmd, 0, "", "")

    report = L.fill_cache("cpu", lanes=2, run=run, log=lambda line, **k: lines.append(line), runtimes=[])
    n = len(report.arms)
    assert lines[0] == f"[reproduce] {n} arms to train in 2 lanes; no recorded run to estimate from: the time left " \
                       "shows once an arm has trained"
    done = lines[1:]
    assert len(done) == n and all(f" of {n} (lane " in line for line in done)
    assert sorted(int(line.split()[2]) for line in done) == list(range(1, n + 1))
    assert done[-1].endswith("about 0 s left")
