"""The campaign (main-table runs within a time budget): stops between epochs, resumes to the same numbers,
records finished runs where notebook 02 reads them."""
import json
from pathlib import Path

import pytest
import torch

import paper_repro.engine as E
from paper_repro.reproduction.campaign import carry_in, record_run, run_campaign
from paper_repro.reproduction.tables import recorded_runs

KW = dict(profile="smoke", device="cpu", method_epochs=3, progress=False, targets={"resnet20": "flops=0.4"},
          export=False, carry=None)


def test_out_of_time_counts_the_next_epoch():
    metrics = [dict(epoch_seconds=30.0)]
    assert not E.out_of_time(0.0, None, [], metrics, now=1e9)  # no budget: never
    assert not E.out_of_time(0.0, 100.0, [10.0], metrics, now=80.0)  # 80 + 10 <= 100: one more
    assert E.out_of_time(0.0, 100.0, [10.0, 25.0], metrics, now=80.0)  # the last epoch of the call counts
    assert E.out_of_time(0.0, 100.0, [], metrics, now=75.0)  # none yet in this call: the median recorded one
    assert not E.out_of_time(0.0, 100.0, [], [], now=99.0)  # nothing known: one epoch
    paused = [dict(epoch_seconds=s) for s in (20.0, 22.0, 2900.0)]  # the last one held a pause
    assert not E.out_of_time(0.0, 100.0, [], paused, now=70.0)  # the median (22), not the last nor the pause


def _one_epoch_per_call(t_call, budget_s, walls, metrics, now=None):
    """A budget that always has room for exactly one epoch (deterministic, unlike a clock)."""
    return budget_s is not None and len(walls) >= 1


def _students(rows):
    return torch.load(rows[0]["method_dir"] + "/state.pt", weights_only=False)["students"]


def _assert_one_epoch_per_call_ends_as(full, calls):
    """Smoke baseline: 2 epochs, then 3 method epochs, one per call; the end is bitwise the uninterrupted run's."""
    assert [c[0]["baseline_epochs"] for c in calls] == ["1/2", "2/2", "2/2", "2/2"]
    assert [c[0].get("method_epochs") for c in calls] == [None, "1/3", "2/3", "3/3"]
    for sa, sb in zip(_students(full), _students(calls[-1])):
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    assert calls[-1][0]["pruned_acc"] == full[0]["pruned_acc"]


def test_campaign_stops_resumes_and_records(tmp_path, monkeypatch):
    full = run_campaign(["resnet20"], record_to=tmp_path / "full_records", **KW)
    assert full[0]["method_epochs"] == "3/3" and "pruned_acc" in full[0]

    monkeypatch.setattr(E, "RUNS", tmp_path / "runs_split")
    monkeypatch.setattr(E, "out_of_time", _one_epoch_per_call)  # the one epoch loop: baseline and method
    rec = tmp_path / "records"
    calls = []
    while not calls or "pruned_acc" not in calls[-1][0]:
        calls.append(run_campaign(["resnet20"], budget_s=3600, record_to=rec, **KW))
        assert len(calls) <= 5
    _assert_one_epoch_per_call_ends_as(full, calls)

    table = recorded_runs(rec)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["network"], row["teacher_epochs"], row["method_epochs"]) == ("resnet20", 2, 3)
    assert row["teacher_epoch_seconds"] is not None and row["teacher_epoch_seconds"] > 0  # teacher found
    summary = json.loads((rec / row["record"] / "summary.json").read_text())
    assert summary["pruned_acc"] == full[0]["pruned_acc"]
    assert not list(rec.rglob("*.pt")) and not list(rec.rglob("*.pt2"))  # records only, no checkpoints


def test_campaign_bad_input(tmp_path):
    with pytest.raises(ValueError, match="archs: no target for \\['resnet20'\\]; valid: vgg_small"):
        run_campaign(["resnet20"], profile="smoke", record_to=None)
    with pytest.raises(ValueError, match="budget_s: must be a positive number"):
        run_campaign(["resnet56"], profile="smoke", budget_s=0, record_to=None)
    with pytest.raises(ValueError, match="kind: unknown value 'teacher'"):
        record_run(tmp_path, "teacher", tmp_path / "out")


def test_each_call_on_a_new_machine_resumes_from_the_repository(tmp_path, monkeypatch):
    """A GPU window is a new machine: runs/ is empty at every call. The teacher travels through teachers/<profile>/
    (resume.pt, then weights alone), the method run through carry/<run>/resume.pt; the campaign ends as an
    uninterrupted one, and a finished run leaves nothing in carry/."""
    import shutil

    import paper_repro.teachers as TC

    monkeypatch.setattr(TC, "COMMITTED_PROFILES", ("smoke",))  # smoke stands in for the paper profile
    monkeypatch.setattr(TC, "TEACHERS", tmp_path / "teachers")
    monkeypatch.setattr(E, "RUNS", tmp_path / "runs_full")
    full = run_campaign(["resnet20"], record_to=None, **KW)

    monkeypatch.setattr(E, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(E, "out_of_time", _one_epoch_per_call)
    shutil.rmtree(tmp_path / "teachers")
    carry, rec, calls = tmp_path / "carry", tmp_path / "records", []
    while not calls or "pruned_acc" not in calls[-1][0]:
        shutil.rmtree(tmp_path / "runs", ignore_errors=True)  # a new machine
        calls.append(run_campaign(["resnet20"], budget_s=3600, record_to=rec, **{**KW, "carry": carry}))
        assert len(calls) <= 6
        t = TC.teacher_dir("resnet20", "smoke")
        if calls[-1][0].get("method_epochs") not in (None, "3/3"):  # mid-method: its state is carried
            assert [p.parent.name for p in carry.glob("*/resume.pt")] == [Path(calls[-1][0]["method_dir"]).name]
            assert (t / "teacher.pt").exists() and not (t / "resume.pt").exists()
    _assert_one_epoch_per_call_ends_as(full, calls)
    assert not list(carry.rglob("*.pt"))  # finished: recorded, no longer carried
    assert "optimizer" not in torch.load(t / "teacher.pt", weights_only=False)  # a finished teacher: weights alone
    assert (rec / "baselines").is_dir() and len(list(rec.glob("*/summary.json"))) == 1


def test_carry_in_keeps_a_local_state_that_is_further_along(tmp_path, monkeypatch):
    from paper_repro.storage import save_checkpoint

    monkeypatch.setattr(E, "RUNS", tmp_path / "runs")
    carried = save_checkpoint(tmp_path / "carry" / "r" / "resume.pt", dict(config_key="k", epoch=2))
    assert carry_in(tmp_path / "carry") == ["r"]
    local = E.run_folder("prune", "r") / "state.pt"
    save_checkpoint(local, dict(config_key="k", epoch=3))
    assert carry_in(tmp_path / "carry") == [] and torch.load(local, weights_only=False)["epoch"] == 3
    save_checkpoint(carried, dict(config_key="k", epoch=4))
    assert carry_in(tmp_path / "carry") == ["r"] and torch.load(local, weights_only=False)["epoch"] == 4
