"""The README's summary block is generated from results/ (verdicts, runtimes), never typed: the committed README
holds exactly what the committed results generate, and only `make reproduce` of the committed profile writes it."""
import pandas as pd
import pytest

from paper_repro.reproduction import index as R
from paper_repro.reproduction.navigation import TOTAL


def _verdict(claim_id, notebook, value, noise, verdict):
    return dict(claim_id=claim_id, claim=f"claim {claim_id}", source="paper, abstract", measured="Δ accuracy, points",
                value=value, threshold=-1, direction=">=", noise=noise, verdict=verdict, notebook=notebook,
                figure="f", noise_source="seeds 0, 1, 2", profile="cpu", dataset="cifar10", dataset_official=False,
                dataset_fingerprint="0eb270ba7f3d306e", seed=0, device="cpu", commit="abc123")


@pytest.fixture
def results(tmp_path):
    pd.DataFrame([_verdict("a", "02_method", -4.98, 0.11, "contradicted"),
                  _verdict("resnet56_flops_pruned", "02_method", 60.07, 0.0, "supported"),
                  _verdict("b", "03_ablation_losses", 0.7, 0.9, "inconclusive (within noise)"),
                  _verdict("c", "05_ablation_sparsity", 1.8, 0.4, "supported"),
                  _verdict("d", "05_ablation_sparsity", 6.7, 0.4, "supported")]).to_csv(tmp_path / "verdicts.csv",
                                                                                         index=False)
    pd.DataFrame([dict(notebook=TOTAL, kind="cold", seconds=3561, lane_seconds=0, when="2026-12-02",
                       commit="abc123")]).to_csv(tmp_path / "notebook_runtimes.csv", index=False)
    return tmp_path


def test_summary_shows_headline_verdicts_counts_the_others_and_the_time(results):
    text = R.readme_summary(results)
    assert "| claim a | Δ accuracy, points: -4.98 ± 0.22 | **contradicted** |" in text
    assert "claim c" not in text  # an ablation row is counted, not listed
    assert "The 3 other questions (notebooks 03, 05" in text and "2 supported" in text and "1 inconclusive (within noise)" in text
    assert "not official CIFAR-10" in text and "commit abc123" in text
    assert "cold 59 min (2026-12-02, commit abc123)" in text
    assert "[the executed index](notebooks/executed/cpu/00_index.ipynb)" in text
    claims, checks = text.split("Checks of the runs themselves")
    assert "claim resnet56_flops_pruned" in checks and "claim resnet56_flops_pruned" not in claims  # a target reached
    assert "| met |" in checks and "1 of the 1 checks" in claims and "the paper's 1 headline claims (1 of accuracy kept)" in claims
    assert "**GPU evidence:** none" in text  # no paper_recipe_gpu_runs.csv in these results


def test_the_block_between_the_markers_is_replaced_and_nothing_else():
    text = f"intro\n{R.SUMMARY_BEGIN} (generated) -->\nold numbers\n{R.SUMMARY_END}\nafter\n"
    out = R.replace_block(text, "new\nlines")
    assert out == f"intro\n{R.SUMMARY_BEGIN} (generated) -->\nnew\nlines\n{R.SUMMARY_END}\nafter\n"
    assert R.replace_block(out, "new\nlines") == out  # idempotent
    with pytest.raises(ValueError, match="README: the markers"):
        R.replace_block("no markers here", "x")


def test_only_the_committed_profile_writes_the_readme(results, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"{R.SUMMARY_BEGIN} -->\n{R.SUMMARY_END}\n")
    assert R.write_readme_summary("smoke", readme) is None and readme.read_text().count("\n") == 2


def test_the_committed_readme_holds_what_the_committed_results_generate():
    """A number typed into the block by hand (or results regenerated without it) fails here."""
    text = R.README.read_text()
    begin = text.index("\n", text.index(R.SUMMARY_BEGIN)) + 1
    assert text[begin:text.index(R.SUMMARY_END)].rstrip("\n") == R.readme_summary(R.committed_dirs("cpu")[0])


def test_levels_are_unsigned_and_differences_signed():
    from types import SimpleNamespace as NS

    assert R.shown_value(NS(value=84.99, noise=0, measured="test accuracy, % (all images)")) == "84.99"
    assert R.shown_value(NS(value=1.8, noise=0.45, measured="acc(a) − acc(b), points")) == "+1.80 ± 0.90"
    assert R.shown_value(NS(value=float("nan"), noise=0, measured="x")) == "—"


def test_paper_width_rows_come_first_and_apart_from_the_reduced_budget(results):
    """The runs that can speak to the paper (ids `<arch>_w1...`) get their own paragraph and table, ahead of the
    reduced budget's; they are neither counted among its claims and checks nor among the other questions."""
    v = pd.read_csv(results / "verdicts.csv")
    wide = [_verdict("resnet56_w1_accuracy_kept", "02_method", -0.51, 0.31, "inconclusive (within noise)"),
            _verdict("resnet56_w1_flops_pruned", "02_method", 59.90, 0.0, "contradicted"),
            _verdict("teacher_converged_resnet56_w1", "02_method", 89.58, 0.0, "contradicted"),
            dict(_verdict("resnet56_w1_beats_uniform_scratch", "02_method", 1.2, 0.4, "supported"),
                 source="issue 23: a control no peer reports")]
    pd.concat([v, pd.DataFrame(wide)]).to_csv(results / "verdicts.csv", index=False)
    pd.DataFrame([dict(network="resnet56", source="ours (cpu profile, paper's width)", block="ours, paper's width",
                       width=1.0, epochs=15, train_images=50000),
                  dict(network="resnet56", source="ours (cpu profile)", block="ours, reduced budget", width=0.5,
                       epochs=3, train_images=10000)]).to_csv(results / "main_table.csv", index=False)
    text = R.readme_summary(results)
    wide_part, reduced = text.split("**At the reduced budget** (")
    assert "**At the paper's width** (networks at width 1.0 (resnet56); students trained 15 epochs on 50,000" in wide_part
    assert "come out 1 inconclusive (within noise); 0 of the 2 checks of its runs are met" in wide_part
    assert "| claim resnet56_w1_beats_uniform_scratch |" in wide_part and "| claim a |" not in wide_part
    assert reduced.startswith("networks at width 0.5 (resnet56); students trained 3 epochs on 10,000")
    assert "the paper's 1 headline claims (1 of accuracy kept) come out 1 contradicted; 1 of the 1 checks" in reduced
    assert "The 3 other questions" in reduced and "resnet56_w1" not in reduced  # its checks are in its own block
    assert "| claim resnet56_w1_flops_pruned | Δ accuracy, points: +59.90 | missed |" in wide_part.split("Its checks")[1]
    assert R.is_paper_width("resnet56_w1_accuracy_kept") and not R.is_paper_width("resnet56_w10_x")


def test_the_claim_count_says_which_of_the_papers_numbers_the_rows_test():
    rows = pd.DataFrame({"claim_id": ["vgg_small_accuracy_kept", "vgg_small_other_ratio_as_paper",
                                      "resnet56_accuracy_kept"]})
    assert R._claim_words(rows) == "claims (2 of accuracy kept, 1 of the other pruned ratio it reports)"
    assert R._claim_words(rows.iloc[:1]) == "claims (1 of accuracy kept)"
    assert [R._width(w) for w in (0.25, 0.5, 1, 1.0)] == ["0.25", "0.5", "1.0", "1.0"]
