"""Answers in sentences (issue 37): each notebook's verdict cell opens with a generated paragraph (verdicts.
answer_paragraph), and the index opens with the findings (findings.findings_markdown) and shows every verdict in
three collapsed parts; every number is read from the verdict rows."""
import pandas as pd
import pytest

from paper_repro.reproduction import findings as F
from paper_repro.reproduction import verdicts as V

PAIRED = ("paired on 10,000 test images; σ covers the test images and the spread of the seeds (images 0.22, seeds "
          "0.13); seed 0 (AMD EPYC): -0.51 ± 0.31, McNemar p 0.1; seed 1 (Intel(R) Xeon(R) Processor): -0.25 ± 0.30, "
          "McNemar p 0.4")


def rows():
    return [
        V.verdict("resnet20_w1_accuracy_kept", "resnet20 at the paper's width: almost no accuracy loss after pruning "
                  "with no fine-tuning (read: loses at most 1 point)", "paper, abstract",
                  "Δ accuracy vs teacher, points, mean over seeds 0, 1", -0.38, -1.0, ">=", 0.26, "02_method",
                  noise_source=PAIRED),
        V.verdict("resnet20_w1_beats_uniform_distilled", "resnet20 at the paper's width: pruning the teacher beats a "
                  "same-FLOPs network taught by the same label-free loss from random weights", "issue 23: a control",
                  "acc(method) − acc(control-distill), points, seed 0 (not finished: control-distill epoch 3 of 15)",
                  None, 0.0, ">", 0.0, "02_method", unfinished=True),
        V.verdict("resnet20_w1_flops_pruned", "resnet20 at the paper's width: 50% of the flops pruned",
                  "paper, abstract", "flops pruned, %", 49.2, 50.0, ">=", 0.0, "02_method"),
        V.verdict("features_add_to_kd", "Feature learning adds to KD", "paper, method", "acc(a) − acc(b), points",
                  1.78, 0.0, ">", 0.47, "03_ablation_losses", noise_source="seeds 0, 1, 2 on cpu (accuracy, %: 1, 2, 3)"
                  ", √2σ for a difference"),
        V.verdict("ours_vs_slimming", "Ours matches the classic pipeline slimming", "seed question",
                  "acc(ours) − acc(slimming), points", 8.61, -1.0, ">=", 0.47, "06_classic_baselines",
                  noise_source="seeds 0, 1, 2 on cpu"),
    ]


def test_the_seeds_a_value_rests_on_are_read_from_its_row():
    got = {v.claim_id: v for v in rows()}
    assert V.seeds_of(got["resnet20_w1_accuracy_kept"]) == [0, 1]
    from types import SimpleNamespace as NS

    assert V.seeds_of(NS(measured="acc(a) − acc(b), points", noise_source=PAIRED)) == [0, 1]  # its per-seed entries
    assert V.seeds_of(got["resnet20_w1_beats_uniform_distilled"]) == [0]
    assert V.seeds_of(got["features_add_to_kd"]) == [0] and V.noise_seeds(got["features_add_to_kd"]) == [0, 1, 2]
    assert V.seeds_words(got["features_add_to_kd"]) == "n = 1 seed; σ from 3"
    assert V.seeds_words(got["resnet20_w1_accuracy_kept"]) == "n = 2 seeds (0, 1)"
    assert V.spread_words(got["resnet20_w1_accuracy_kept"]) == "paired over the same test images and the seeds"
    assert V.value_words(got["resnet20_w1_accuracy_kept"]) == "-0.38 ± 0.52 points"
    assert V.value_words(got["resnet20_w1_flops_pruned"]) == "49.20%"
    assert V.value_words(got["resnet20_w1_beats_uniform_distilled"]) == "—"
    assert [V.row_kind(v) for v in rows()] == [V.CLAIM, V.QUESTION, V.CHECK, V.CLAIM, V.QUESTION]


def test_a_notebooks_answer_is_one_paragraph_of_its_rows():
    text = V.answer_paragraph(rows())
    assert text.startswith("The paper's claims tested here (2): 2 supported. ")  # -0.38 - 0.52 >= -1
    assert "almost no accuracy loss after pruning with no fine-tuning: -0.38 ± 0.52 points (supported)" in text
    assert "(read:" not in text
    assert "The questions around them (2): 1 not testable yet" in text
    assert "(acc(method) − acc(control-distill), points, seed 0 (not finished: control-distill epoch 3 of 15): not " \
           "testable yet)" in text
    assert "Checks of the runs, not claims of the paper (1): 1 missed. resnet20 at the paper's width: 50% of the " \
           "flops pruned: 49.20% (missed)." in text
    assert text.endswith("The ± is 2σ: paired over the same test images and the seeds (n = 2 seeds (0, 1)); σ over "
                         "seeds 0, 1, 2 (n = 1 seed; σ from 3).")
    assert V.answer_paragraph([]) == ""


def test_the_verdict_cell_shows_the_answer_first():
    report = V.VerdictReport(V.verdict_table(rows()), ["a sentence"], V.answer_paragraph(rows()))
    assert report._repr_html_().startswith("<p><b>In short.</b> The paper's claims tested here (2)")
    assert "<details><summary>Each verdict in a sentence</summary>" in report._repr_html_()
    assert report._repr_markdown_().startswith("**In short.** The paper's claims")


def test_the_index_shows_every_verdict_in_three_collapsed_parts():
    html = F.verdict_sections(rows())._repr_html_()
    assert html.count("<details>") == 3
    assert "<summary>The paper&#x27;s claims: 2 (2 supported)</summary>" in html
    assert "<summary>Checks of the runs (not claims of the paper): 1 (1 contradicted)</summary>" in html
    assert F.verdict_sections([])._repr_html_() == "<p>No verdicts yet.</p>"


def _write(folder, verdicts):
    table = pd.DataFrame([v.row() for v in verdicts])
    for k, value in dict(profile="smoke", dataset="synthetic", dataset_official=False, dataset_fingerprint="ab",
                         seed=0, device="cpu", commit="c0ffee").items():
        table[k] = value
    table.to_csv(folder / "verdicts.csv", index=False)


def test_the_index_opening_counts_claims_checks_and_questions_apart(tmp_path):
    assert "No verdict has been written at the smoke profile yet" in F.findings_markdown("smoke", tmp_path)
    _write(tmp_path, rows())
    text = F.findings_markdown("smoke", tmp_path)
    assert text.startswith("What this reproduction found (smoke profile; a modified synthetic copy (fingerprint ab), "
                           "not official CIFAR-10; results of commit c0ffee):")
    assert "**The paper's claims** (2: " in text and "method it names): 2 supported;" in text
    assert "**Checks of the runs (not claims of the paper):** 0 of 1 met; not met: ResNet-20 width 1.0: 49.20% of " \
           "the FLOPs pruned (target 50%, missed)." in text
    assert "**Questions around the claims**: at the paper's width, 1 (its same-FLOPs controls, peers and fine-tuning " \
           "test): 1 not testable yet" in text
    assert "the 1 other questions (notebooks 06: comparisons and seed questions): 1 supported" in text
    assert "**GPU evidence:** none" in text and "Time of" not in text  # no runtimes recorded here


@pytest.mark.parametrize("state, words", [("its width-1.0 teacher is training: `make teachers`",
                                           "**VGG-Small** at the paper's width: training; not testable yet (its "
                                           "width-1.0 teacher is training: `make teachers`). What exists, at the "
                                           "reduced budget (the smoke profile), says"),
                                          ("", "**VGG-Small**, not run at the paper's width on this profile")])
def test_a_headline_network_without_runs_at_the_papers_width_says_where_it_stands(tmp_path, state, words):
    _write(tmp_path, [V.verdict("vgg_small_accuracy_kept", "vgg_small: +0.1 points of accuracy after pruning with no "
                                "fine-tuning (read: loses at most 1 point)", "paper, abstract",
                                "Δ accuracy vs teacher, points", -41.96, -1.0, ">=", 0.5, "02_method",
                                noise_source="test-set sampling (one seed), a lower bound")])
    text = F.headline_sentence(F.read_rows(tmp_path), "vgg_small", tmp_path, "smoke", state)
    assert text.startswith(words)
    assert text.endswith("accuracy -41.96 ± 1.00 points against its teacher, **contradicted** (n = 1 seed; ±2σ: "
                         "test-set sampling error, a lower bound).")


def test_paper_width_rows_with_nothing_measured_yet_read_as_training(tmp_path):
    """A network whose paper-width runs have rows but no value yet (its teacher or runs still train)."""
    _write(tmp_path, [
        V.verdict("teacher_converged_vgg_small_w1", "The vgg_small teacher at the paper's width is trained (≥ 92% "
                  "test accuracy)", "issue 23", "test accuracy, % (all images) (still training)", None, 92.0, ">=",
                  0.0, "02_method", unfinished=True),
        V.verdict("vgg_small_accuracy_kept", "vgg_small: +0.1 points of accuracy after pruning with no fine-tuning",
                  "paper, abstract", "Δ accuracy vs teacher, points", -41.96, -1.0, ">=", 0.5, "02_method",
                  noise_source="test-set sampling (one seed), a lower bound")])
    text = F.headline_sentence(F.read_rows(tmp_path), "vgg_small", tmp_path, "cpu", "its teacher is training")
    assert text.startswith("**VGG-Small** at the paper's width: training; not testable yet (its teacher is training)")
    assert "accuracy -41.96 ± 1.00 points against its teacher, **contradicted**" in text
