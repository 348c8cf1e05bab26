"""`reproduce`: a failing notebook is one line naming it and its cell; no temporary copy is left behind."""
import json
import os

import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

import paper_repro.reproduction.notebooks as R
from paper_repro.storage import process_start_time


def _notebook(path):
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["x = 1"], "metadata": {},
                                           "outputs": [], "execution_count": None}],
                                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


@pytest.fixture
def notebooks(tmp_path, monkeypatch):
    """notebooks/ with 01_ok and 02_fails, papermill replaced by a stand-in that writes the output as it goes
    and fails in 02's third cell."""
    nb = tmp_path / "notebooks"
    nb.mkdir()
    for name in ("01_ok", "02_fails"):
        _notebook(nb / f"{name}.ipynb")
    monkeypatch.setattr(R, "NOTEBOOKS", nb)
    monkeypatch.setattr(R, "ROOT", tmp_path)
    monkeypatch.setattr(R, "write_index", lambda profile: None)
    for var in ("PAPER_REPRO_PROFILE", "PAPER_REPRO_NOTEBOOK"):  # run_notebooks sets them; restored after
        monkeypatch.setenv(var, os.environ.get(var, ""))

    def execute(src, out, **kw):
        with open(out, "w") as f:
            f.write("{}")  # papermill writes the output notebook cell by cell
        if "02_fails" in src:
            raise PapermillExecutionError(cell_index=2, exec_count=3, source="1 / 0", ename="ZeroDivisionError",
                                          evalue="division by zero", traceback=["Traceback ...", "1 / 0"])

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return nb / "executed" / "smoke"


def test_a_failing_notebook_is_one_line_and_leaves_no_temporary(notebooks, capsys):
    from paper_repro.__main__ import main

    notebooks.mkdir(parents=True)
    old = process_start_time() - 600
    stale, foreign = notebooks / ".05_old.ipynb.tmp.ipynb", notebooks / "mine.tmp.ipynb"
    for p in (stale, foreign):
        p.write_text("{}")
        os.utime(p, (old, old))
    assert main(["reproduce", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: notebooks/02_fails.ipynb: cell 3 (index 2) failed: ZeroDivisionError: "
                                "division by zero (the traceback: rerun with --debug)"]
    assert sorted(p.name for p in notebooks.iterdir()) == [".lock", "01_ok.ipynb", "mine.tmp.ipynb"]
    with pytest.raises(R.NotebookError) as e:
        main(["reproduce", "--profile", "smoke", "--debug"])
    assert isinstance(e.value.__cause__, PapermillExecutionError)
    assert not (notebooks / ".02_fails.ipynb.tmp.ipynb").exists()


def test_one_reproduce_per_profile_at_a_time(notebooks):
    from paper_repro.runlock import RunLockedError, run_lock

    with run_lock(notebooks):
        with pytest.raises(RunLockedError, match=f"{notebooks}: another process \\(pid {os.getpid()}\\)"):
            R.run_notebooks("smoke", ["01_ok"])
    R.run_notebooks("smoke", ["01_ok"])
    assert (notebooks / "01_ok.ipynb").exists()


def test_the_end_report_compares_headlines_against_the_noise(tmp_path):
    import pandas as pd

    from paper_repro.reproduction import headlines as H

    def write(folder, acc, flops, sigma):
        folder.mkdir(exist_ok=True)
        pd.DataFrame([dict(arch="resnet56", test_acc=0.9)]).to_csv(folder / "baselines.csv", index=False)
        pd.DataFrame([dict(network="resnet56", source="paper, reported", pruned_acc_best=None, params_pruned_pct=53.6,
                           flops_pruned_pct=60.3),
                      dict(network="resnet56", source="ours (cpu profile)", pruned_acc_best=acc, params_pruned_pct=55.0,
                           flops_pruned_pct=flops)]).to_csv(folder / "main_table.csv", index=False)
        pd.DataFrame([dict(claim_id="resnet56_accuracy_kept", noise=sigma, noise_source="seeds 0, 1, 2")]).to_csv(
            folder / "verdicts.csv", index=False)
        return H.snapshot(folder)

    before = write(tmp_path / "a", 0.880, 60.1, 0.3)
    assert H.compare(before, before)["status"].eq("identical").all()
    moved = H.compare(before, write(tmp_path / "b", 0.885, 60.4, 0.3)).set_index("number")["status"]
    assert moved["selected student's accuracy, %"] == "within noise"  # 0.5 ≤ 2 × 0.3
    assert moved["FLOPs pruned, %"] == "differs (exact quantity)" and moved["teacher test accuracy, %"] == "identical"
    far = H.compare(before, write(tmp_path / "c", 0.870, 60.1, 0.3)).set_index("number")["status"]
    assert far["selected student's accuracy, %"] == "outside noise"  # 1.0 > 0.6
    assert "1 outside noise" in H.report(before, write(tmp_path / "d", 0.870, 60.1, 0.3))
    assert H.report(H.snapshot(tmp_path / "empty"), before) == ""


def test_a_changed_committed_record_reruns_its_notebook(tmp_path, monkeypatch):
    """A notebook's inputs include the committed records it reads: a run finishing (or a record edited) without any
    code change must not be skipped as "inputs unchanged" (issue 35)."""
    from paper_repro.reproduction import notebooks as NB

    monkeypatch.setattr(NB, "ROOT", tmp_path)
    nb = tmp_path / "02_x.ipynb"
    nb.write_text('{"cells": [{"cell_type": "code", "source": ["1 + 1"]}]}')
    record = tmp_path / "paper_width" / "cpu" / "method-s0" / "summary.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"pruned_acc": 0.8907}')
    before = NB.inputs_hash(nb, "cpu")
    assert NB.inputs_hash(nb, "cpu") == before
    record.write_text('{"pruned_acc": 0.9907}')
    assert NB.inputs_hash(nb, "cpu") != before
    (tmp_path / "teachers" / "cpu" / "x-s0").mkdir(parents=True)
    (tmp_path / "teachers" / "cpu" / "x-s0" / "resume.pt").write_bytes(b"state")
    assert NB.inputs_hash(nb, "cpu") != before
