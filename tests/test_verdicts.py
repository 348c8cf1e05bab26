"""The verdict rules: a difference inside the noise is never 'supported'."""
import math

import pytest
from hypothesis import given, strategies as st

from paper_repro.reproduction import verdicts as V


def test_clear_cases():
    assert V.judge(1.0, 0.0, ">", noise=0.1) == V.SUPPORTED
    assert V.judge(-1.0, 0.0, ">", noise=0.1) == V.CONTRADICTED
    assert V.judge(0.1, 0.0, ">", noise=0.1) == V.INCONCLUSIVE  # 0.1 ± 0.2 straddles 0
    assert V.judge(-0.5, -1.0, ">=", noise=0.2) == V.SUPPORTED  # "loses at most a point": -0.5 ± 0.4
    assert V.judge(0.5, 0.6, ">=", noise=0.0) == V.CONTRADICTED  # a deterministic ratio below its target
    assert V.judge(0.6, 0.6, ">=", noise=0.0) == V.SUPPORTED
    assert V.judge(None, 0.0, ">") == V.NOT_TESTABLE
    assert V.judge(float("nan"), 0.0, ">") == V.NOT_TESTABLE


@given(value=st.floats(-5, 5), threshold=st.floats(-5, 5), noise=st.floats(0.01, 3),
       direction=st.sampled_from(V.DIRECTIONS))
def test_within_noise_is_never_supported_nor_contradicted(value, threshold, noise, direction):
    v = V.judge(value, threshold, direction, noise)
    if abs(value - threshold) < V.K_SIGMA * noise:
        assert v == V.INCONCLUSIVE
    else:
        assert v in (V.SUPPORTED, V.CONTRADICTED)


def test_difference_noise_and_bad_input():
    assert V.difference_noise(1.0) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="direction"):
        V.judge(1.0, 0.0, "=")
    with pytest.raises(ValueError, match="noise"):
        V.judge(1.0, 0.0, ">", noise=-1)


def test_a_notebook_replaces_only_its_own_rows():
    a = V.verdict("x", "claim x", "paper", "Δ", 1.0, 0.0, ">", 0.1, "02_method")
    b = V.verdict("y", "claim y", "ablation", "Δ", 0.0, 0.0, ">", 0.1, "03_ablation_losses")
    table = V.merge_verdicts(None, "02_method", [a])
    table = V.merge_verdicts(table, "03_ablation_losses", [b])
    a2 = V.verdict("x", "claim x", "paper", "Δ", -1.0, 0.0, ">", 0.1, "02_method")
    table = V.merge_verdicts(table, "02_method", [a2])
    assert list(table["claim_id"]) == ["x", "y"] and table.set_index("claim_id").loc["x", "verdict"] == V.CONTRADICTED  # notebook order
    shown = V.verdict_table([a, b])
    assert list(shown["verdict"]) == [V.SUPPORTED, V.INCONCLUSIVE] and "± 0.20" in shown["measured"].iloc[0]


def test_verdicts_file_keeps_other_notebooks_rows_and_stamps(monkeypatch, tmp_path):
    import pandas as pd

    import paper_repro.reproduction.outputs as R

    monkeypatch.setattr(R, "ROOT", tmp_path)
    monkeypatch.setenv(R.ENV_OUTPUTS, "committed")
    stamp = dict(profile="cpu", dataset="cifar10", dataset_official=False, dataset_fingerprint="ab", seed=0,
                 device="cpu", commit="c1")
    V.write_verdicts([V.verdict("x", "claim x", "paper", "Δ", 1.0, 0.0, ">", 0.1, "02_method")], "02_method",
                     "cpu", stamp)
    V.write_verdicts([V.verdict("y", "claim y", "ablation", "Δ", 0.0, 0.0, ">", 0.1, "03_ablation_losses")],
                     "03_ablation_losses", "cpu", dict(stamp, commit="c2"))
    t = pd.read_csv(tmp_path / "results" / "verdicts.csv").set_index("claim_id")
    assert t.loc["x", "commit"] == "c1" and t.loc["y", "commit"] == "c2"
    assert t.loc["y", "verdict"] == V.INCONCLUSIVE
    # rows measured on committed runs carry their runs' stamp, the notebook's other rows its own
    V.write_verdicts([V.verdict("x", "claim x", "paper", "Δ", 1.0, 0.0, ">", 0.1, "02_method"),
                      V.verdict("w", "claim w", "paper", "Δ", 1.0, 0.0, ">", 0.1, "02_method")], "02_method",
                     "cpu", stamp, row_stamps={"w": dict(stamp, seed="0/1", device="AMD EPYC; Intel Xeon")})
    t = pd.read_csv(tmp_path / "results" / "verdicts.csv").set_index("claim_id")
    assert (t.loc["w", "device"], str(t.loc["w", "seed"])) == ("AMD EPYC; Intel Xeon", "0/1")
    assert (t.loc["x", "device"], str(t.loc["x", "seed"])) == ("cpu", "0")


def test_each_verdict_is_said_in_one_generated_sentence_with_its_interval():
    v = V.verdict("resnet56_accuracy_kept", "resnet56: almost no loss", "paper", "Δ accuracy vs teacher, points",
                  -4.98, -1.0, ">=", 0.11, "02_method", noise_source="seeds 0, 1, 2")
    assert V.interval(v) == pytest.approx((-5.20, -4.76))
    text = V.sentence(v, "cpu")
    assert text.startswith("At the cpu profile, Δ accuracy vs teacher, points is -4.98 ± 0.22 (interval -5.20 to "
                           "-4.76, ±2σ, σ from seeds 0, 1, 2); the claim needs >= -1: **contradicted**.")
    report = V.VerdictReport(V.verdict_table([v]), [text])
    assert "[-5.20, -4.76]" in report.table["interval"].iloc[0] and "<li>At the cpu profile" in report._repr_html_()
    missing = V.verdict("x", "claim x", "paper", "Δ", None, 0.0, ">", 0.0, "08_deployment")
    assert V.interval(missing) is None and "nothing measured" in V.sentence(missing, "cpu")
