"""Every notebook links its neighbours and the index, states its runtime, and ends with its verdict."""
import json

import pandas as pd
import pytest

from paper_repro.reproduction import navigation as NAV
from paper_repro.reproduction import reading as RD
from paper_repro.reproduction.notebooks import notebook_paths


def _cells(name):
    return json.loads((NAV.NOTEBOOKS / f"{name}.ipynb").read_text())["cells"]


@pytest.mark.parametrize("name", NAV.notebook_names())
def test_each_notebook_opens_with_its_navigation_line(name):
    first = _cells(name)[0]
    assert first["cell_type"] == "markdown" and "".join(first["source"]) == NAV.nav_markdown(name)


@pytest.mark.parametrize("name", [n for n in NAV.notebook_names() if n != NAV.INDEX])
def test_each_notebook_states_its_runtime_and_ends_with_a_generated_verdict(name):
    code = [c for c in _cells(name) if c["cell_type"] == "code"]
    assert any(f'runtime_note("{name}", profile)' in "".join(c["source"]) for c in code)
    last = "".join(code[-1]["source"])
    assert "verdict" in code[-1]["metadata"].get("tags", []) and f'write_verdicts(' in last and f'"{name}"' in last


def test_the_index_runs_last():
    assert notebook_paths()[-1].stem == NAV.INDEX and notebook_paths()[0].stem != NAV.INDEX


def test_runtimes_keep_the_latest_cold_and_cached(monkeypatch, tmp_path):
    monkeypatch.setattr(NAV, "_runtimes_path", lambda profile: tmp_path / "rt.csv")
    assert "not measured yet" in NAV.runtime_text("02_method", "cpu")
    NAV.record_runtime("cpu", "02_method", 3000, True, "c1")
    NAV.record_runtime("cpu", "02_method", 12, False, "c1")
    NAV.record_runtime("cpu", "02_method", 2400, True, "c2")  # replaces the older cold one
    rows = NAV.read_runtimes("cpu")
    assert [(r["kind"], r["seconds"]) for r in rows] == [("cached", "12"), ("cold", "2400")]
    text = NAV.runtime_text("02_method", "cpu")
    assert "cold 40 min" in text and "cached 12 s" in text
    assert "| [02_method](02_method.ipynb) |" in NAV.index_markdown("cpu")


def test_runs_snapshot_sees_a_new_or_rewritten_file(tmp_path):
    before = NAV.runs_snapshot("cpu", tmp_path)
    run = tmp_path / "prune" / "resnet56-flops0.6-cpu-s0-abc"
    run.mkdir(parents=True)
    (run / "state.pt").write_bytes(b"x")
    after = NAV.runs_snapshot("cpu", tmp_path)
    assert after != before
    import os

    os.utime(run / "state.pt", ns=(1, 1))  # rewritten: a new mtime
    assert NAV.runs_snapshot("cpu", tmp_path) != after


def test_runs_snapshot_ignores_other_profiles_runs(tmp_path):
    """A `make test` beside a `make reproduce` writes smoke runs into the same runs/: not the cpu notebooks' work."""
    import json

    before = NAV.runs_snapshot("cpu", tmp_path)
    smoke = tmp_path / "prune" / "resnet56-flops0.6-smoke-s0-abc"
    smoke.mkdir(parents=True)
    (smoke / "state.pt").write_bytes(b"x")
    base = tmp_path / "baselines" / "resnet20-synthetic-s0-def"  # no profile in the name: its config says
    base.mkdir(parents=True)
    (base / "config.json").write_text(json.dumps({"profile": "smoke"}))
    assert NAV.runs_snapshot("cpu", tmp_path) == before
    assert len(NAV.runs_snapshot("smoke", tmp_path)) == 2
    (base / "config.json").write_text(json.dumps({"profile": "cpu"}))
    assert str(base / "config.json") in NAV.runs_snapshot("cpu", tmp_path)


def test_cold_time_counts_the_lane_seconds_of_a_notebooks_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(NAV, "_runtimes_path", lambda profile: tmp_path / "rt.csv")
    NAV.record_runtime("cpu", "03_ablation_losses", 1044 + 44, True, "c1", lane_seconds=1044)
    text = NAV.runtime_text("03_ablation_losses", "cpu")
    assert "cold 18 min" in text and "of which 17 min training its runs in the lanes" in text
    assert "| 18 min |" in NAV.index_markdown("cpu") and "**all**" not in NAV.index_markdown("cpu")
    NAV.record_runtime("cpu", NAV.TOTAL, 3561, True, "c1")
    table = [line for line in NAV.index_markdown("cpu").splitlines() if line.startswith("|")]
    assert table[-1].endswith("| 59 min | — |") and table[0].startswith("| notebook | what it answers | cold (c1, ")
    NAV.record_runtime("cpu", "02_method", 30, False, "c2")
    NAV.record_runtime("cpu", "04_ablation_students", 20, False, "c3")  # cached at two commits: each cell says its own
    assert "| 30 s (c2) |" in NAV.index_markdown("cpu") and "lane time" in NAV.index_markdown("cpu")


def test_reading_tables_show_percent_and_met_or_missed():
    df = pd.DataFrame([dict(arm="a", best_acc=0.91234, target="flops=0.60", target_met=False, flops_pruned=0.5972,
                            params_pruned=0.5, seconds_per_epoch=12.345, commit="abc"),
                       dict(arm="b", best_acc=float("nan"), target="params=0.93", target_met=True, flops_pruned=0.7,
                            params_pruned=0.94, seconds_per_epoch=1.0, commit="abc")])
    out = RD.for_reading(df, ["arm", "best_acc", "flops_pruned", "target_met", "seconds_per_epoch"])
    assert list(out.columns) == ["arm", "best_acc", "flops_pruned", "target_met", "seconds_per_epoch"]
    assert out.loc[0].tolist() == ["a", "91.23%", "59.72%", "missed (59.72%)", "12.3"]
    assert out.loc[1, "best_acc"] == "—" and out.loc[1, "target_met"] == "met"
    assert pd.get_option("display.max_columns") is None  # nothing hidden behind "..."


def test_an_executed_copy_links_its_neighbours_copies_and_its_source(tmp_path):
    import shutil

    import nbformat

    line = NAV.nav_markdown("02_method", "cpu", executed=True)
    assert "[03_ablation_losses](03_ablation_losses.ipynb)" in line and line.endswith("(../../02_method.ipynb)")
    copy = tmp_path / "02_method.ipynb"
    shutil.copy(NAV.NOTEBOOKS / "02_method.ipynb", copy)
    NAV.relink_executed(copy, "02_method", "cpu")
    assert nbformat.read(str(copy), as_version=4).cells[0].source == line


def test_an_executed_copy_rebases_every_other_relative_link(tmp_path):
    import nbformat

    md = "[spec](../docs/method.md#ista) · [next](03_ablation_losses.ipynb) · [web](https://x.org) · [top](#a)"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(md),
        nbformat.v4.new_code_cell("", outputs=[nbformat.v4.new_output(
            "display_data", data={"text/markdown": "![f](../figures/a.png)", "text/html": '<img src="../figures/a.png">'})]),
    ])
    path = tmp_path / "02_method.ipynb"
    nbformat.write(nb, str(path))
    NAV.relink_executed(path, "02_method", "cpu")
    cells = nbformat.read(str(path), as_version=4).cells
    assert cells[0].source == ("[spec](../../../docs/method.md#ista) · [next](03_ablation_losses.ipynb) · "
                               "[web](https://x.org) · [top](#a)")
    assert cells[1].outputs[0]["data"] == {"text/markdown": "![f](../../../figures/a.png)",
                                           "text/html": '<img src="../../../figures/a.png">'}
