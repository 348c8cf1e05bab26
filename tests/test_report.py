"""Where tables and figures go: `reproduce` writes the committed folders, a notebook run by hand writes build/."""
import json

import pandas as pd

import paper_repro.reproduction.outputs as R
from paper_repro.provenance import ROOT

STAMP = dict(profile="cpu", dataset="cifar10", dataset_official=False, dataset_fingerprint="ab", seed=0,
             device="cpu", commit="x")


def test_interactive_runs_write_under_build(monkeypatch, tmp_path):
    monkeypatch.delenv(R.ENV_OUTPUTS, raising=False)
    res, fig = R.output_dirs("cpu")
    assert res == ROOT / "build" / "interactive" / "cpu" / "results" and fig.parent == res.parent
    assert R.output_dirs("paper")[0] == ROOT / "build" / "interactive" / "paper" / "results"
    monkeypatch.setenv(R.ENV_OUTPUTS, "committed")
    assert R.output_dirs("cpu") == (ROOT / "results", ROOT / "figures")
    assert R.output_dirs("paper") == (ROOT / "results" / "paper", ROOT / "figures" / "paper")


def test_smoke_never_writes_committed_folders(monkeypatch):
    monkeypatch.setenv(R.ENV_OUTPUTS, "committed")
    assert R.output_dirs("smoke")[0] == ROOT / "build" / "smoke" / "results"


def test_an_interactive_table_leaves_the_committed_one_alone(monkeypatch, tmp_path):
    """Redirect ROOT-based folders into tmp_path, then write a table without `reproduce`'s setting."""
    monkeypatch.delenv(R.ENV_OUTPUTS, raising=False)
    monkeypatch.setattr(R, "ROOT", tmp_path)
    committed = tmp_path / "results" / "t.csv"
    committed.parent.mkdir(parents=True)
    committed.write_text("kept\n")
    out = R.write_table(pd.DataFrame([dict(a=1)]), "t", "cpu", STAMP)
    assert out == tmp_path / "build" / "interactive" / "cpu" / "results" / "t.csv"
    assert committed.read_text() == "kept\n"


def test_figures_are_vector_and_300_dpi_and_at_most_7_inches(monkeypatch, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(R, "ROOT", tmp_path)
    R.figure_style()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot([0, 1], [0, 1], marker=R.MARKERS[0])
    png = R.save_figure(fig, "f", "cpu", STAMP)
    assert png.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"
    from PIL import Image

    dpi = Image.open(png).info["dpi"]
    assert round(dpi[0]) == R.PNG_DPI
    assert matplotlib.rcParams["xtick.labelsize"] >= 7 and matplotlib.rcParams["legend.fontsize"] >= 7
    wide, _ = plt.subplots(figsize=(10, 3))
    try:
        R.save_figure(wide, "g", "cpu", STAMP)
        raise AssertionError("a 10-inch figure was accepted")
    except ValueError as e:
        assert "at most 7" in str(e)
    plt.close("all")


def test_published_rows_carry_no_stamp_of_ours(monkeypatch, tmp_path):
    monkeypatch.setattr(R, "ROOT", tmp_path)
    monkeypatch.setenv(R.ENV_OUTPUTS, "committed")
    df = pd.DataFrame([dict(source="paper, reported", acc=None), dict(source="ours", acc=0.9)])
    out = R.write_table(df, "main", "cpu", STAMP, published=df["source"].str.startswith("paper"))
    back = pd.read_csv(out)
    assert back["profile"].isna().tolist() == [True, False] and back.loc[1, "device"] == "cpu"


def test_the_markdown_states_a_shared_stamp_once_and_keeps_what_varies(monkeypatch, tmp_path):
    monkeypatch.setattr(R, "ROOT", tmp_path)
    monkeypatch.setenv(R.ENV_OUTPUTS, "committed")
    df = pd.DataFrame([dict(arm="a", best_acc=0.91234, note=None, device="cpu:1threads", seed=0.0),
                       dict(arm="b", best_acc=float("nan"), note="nan", device="cpu:2threads", seed=0.0)])
    out = R.write_table(df, "t", "cpu", {**STAMP, "device": "cpu:2threads"})
    md = out.with_suffix(".md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| arm"))
    assert header == "| arm | best_acc | note | device |"  # constant stamp columns gone, the varying one kept
    assert "device=varies by row" in md[2] and f"profile={STAMP['profile']}" in md[2] and "seed=0 |" in md[2]
    assert "| a | 91.23% | — | cpu:1threads |" in md and "| b | — | — | cpu:2threads |" in md
    back = pd.read_csv(out)
    assert {"profile", "commit", "device"} <= set(back.columns)  # the CSV keeps every provenance column
    indexed = json.loads(R.manifest_path("cpu").read_text())["t.csv"]["stamp"]
    assert indexed["device"] == "varies by row" and indexed["seed"] == 0  # the results index says what the header says
