"""The main table's blocks: the paper's reported row, ours at the paper's width (the committed paper-width run, once
finished), ours at the profile's reduced budget; and what reads the table keeps them apart."""
from types import SimpleNamespace

import pytest

import paper_repro.reproduction.headlines as H
from paper_repro.reproduction.findings import _arch_budget
from paper_repro.reproduction.tables import BLOCKS, accuracy_vs_flops, main_table, paper_width_table


def summary(acc, width_note, **kw):
    return dict(dict(profile="cpu", baseline_acc=0.90, pruned_acc=acc, pruned_acc_mean=acc - 0.01, params_pruned=0.5,
                     flops_pruned=0.6012, flops_pruned_dpfps=0.6050, target="flops=0.6", target_met=True, students=2,
                     epochs=3, selection_rule="teacher_agreement", finetune_epochs=0, device=width_note), **kw)


def config(width, images):
    return dict(arch="resnet56", baseline=dict(width=width, train_subset=images))


REDUCED = SimpleNamespace(summary=summary(0.85, "cpu:1threads:AVX512:Intel"), config=config(0.5, 10_000))
AT_WIDTH = dict(run="method-s0", kind="method", state="finished", summary=summary(0.89, "cpu:1threads:AVX512:AMD",
                                                                                   epochs=15),
                config=config(1.0, None))


def test_the_paper_width_run_sits_beside_the_paper_and_the_reduced_rows_after():
    t = main_table({"resnet56": REDUCED}, paper_width=[AT_WIDTH])
    assert list(t["block"]) == list(BLOCKS)  # reported, paper's width, reduced: in that order
    wide, narrow = t.iloc[1], t.iloc[2]
    assert (wide["width"], wide["epochs"], wide["train_images"], wide["delta_acc"]) == (1.0, 15, "all", "-1.00")
    assert (narrow["width"], narrow["train_images"]) == (0.5, "10000")
    assert wide["device"].endswith("AMD") and narrow["device"].endswith("Intel") and t.iloc[0]["device"] is None
    # before the paper-width run has finished: the table is the reported and reduced rows only
    assert list(main_table({"resnet56": REDUCED})["block"]) == [BLOCKS[0], BLOCKS[2]]


def test_readers_keep_the_blocks_apart(tmp_path):
    main_table({"resnet56": REDUCED}, paper_width=[AT_WIDTH]).to_csv(tmp_path / "main_table.csv", index=False)
    values = H.snapshot(tmp_path)["values"]
    assert values[("selected student's accuracy, %", "resnet56_w1")] == 89.0  # its verdicts' name (claims)
    assert values[("selected student's accuracy, %", "resnet56")] == 85.0
    words = _arch_budget(tmp_path, "resnet56", False)  # the README's words about the profile's own budget
    assert words.startswith("width 0.5, ") and "15" not in words
    assert _arch_budget(tmp_path, "resnet56", True).startswith("width 1.0, 15 of the paper's 200 student epochs")
    points = accuracy_vs_flops(tmp_path)
    kinds = set(points[points["kind"].str.startswith("ours")]["kind"])
    assert kinds == {"ours, all training images, width 1", "ours, 10,000 training images, width 0.5"}


def test_a_main_table_written_before_blocks_still_reads(tmp_path):
    """Committed tables from before the `block` column: every row of ours is the profile's own."""
    old = main_table({"resnet56": REDUCED}).drop(columns=["block"])
    old.to_csv(tmp_path / "main_table.csv", index=False)
    assert ("FLOPs pruned, %", "resnet56") in H.snapshot(tmp_path)["values"]
    assert _arch_budget(tmp_path, "resnet56", False).startswith("width 0.5") and not _arch_budget(tmp_path,
                                                                                                    "resnet56", True)


def test_the_paper_width_table_names_each_finished_runs_training_images():
    """A method run's summary names no training images: its settings do (the students' budget, issue 23)."""
    scratch = dict(run="control-scratch", kind="control_scratch", seed=0, state="finished",
                   summary=dict(pruned_acc=0.88, train_images="all", epochs=75), config=dict(train_subset=None))
    waiting = dict(run="peer-l1", kind="peer_l1", seed=0, state="not started")
    at_50k = dict(AT_WIDTH, seed=0, config=config(1.0, 50_000))
    t = paper_width_table([at_50k, scratch, waiting], 0.90)
    assert list(t["train_images"]) == ["50000", "all", None]
    assert list(t["delta_acc"].fillna(0)) == [-1.0, -2.0, 0]
    l1 = dict(waiting, state="finished", summary=dict(final_acc=0.8836, acc_before_finetune=0.1251, epochs=15))
    assert paper_width_table([l1], 0.90)["acc"].tolist() == [0.8836]  # classic's field: after its fine-tuning
    with pytest.raises(ValueError, match="peer-l1: its summary has no 'final_acc'"):
        paper_width_table([dict(l1, summary=dict(pruned_acc=0.88))], 0.90)


def test_every_committed_paper_width_run_that_finished_has_its_accuracy_in_the_table():
    """The committed records themselves (paper_width/cpu/), read as notebook 02 reads them: a finished run whose
    accuracy the table cannot find would make its verdict "not testable"."""
    from paper_repro.reproduction import paper_width

    table = paper_width_table(paper_width.load_records("cpu"), None)
    done = table[table["state"] == "finished"]
    assert len(done) and done["acc"].between(0.1, 1.0).all(), done[["run", "acc"]]


def test_the_paper_width_rows_carry_their_paired_comparisons_and_caveats():
    """Each committed run's Δ has its paired SE, and `method_minus` reads the method against it in its own row (the
    fine-tuning test against the seed it continues), equal to the verdicts' paired values; the caveats name the
    copy, the literature, the epochs and the seeds from the data (issue 37 item 4)."""
    from paper_repro.paired import combine_seeds, paired_difference
    from paper_repro.reproduction import paper_width
    from paper_repro.reproduction.tables import paper_width_caveats

    records = paper_width.load_records("cpu")
    per_image = paper_width.load_study_per_image("cpu")
    table = paper_width_table(records, per_image["teacher"].accuracy, per_image).set_index("run")
    scratch = combine_seeds({0: (per_image["method-s0"], per_image["control-scratch"]),
                             1: (per_image["method-s1"], per_image["control-scratch"])})
    assert table.loc["control-scratch", "method_minus"] == f"{scratch.points:+.2f} ± {scratch.se_points:.2f}"
    ft = paired_difference(per_image["method-s0"], per_image["finetune"])
    assert table.loc["finetune", "method_minus"] == f"{ft.points:+.2f} ± {ft.se_points:.2f}"
    assert table.loc["method-s0", "delta_se"] == round(
        paired_difference(per_image["method-s0"], per_image["teacher"]).se_points, 2)
    words = paper_width_caveats(table.reset_index(), 0.8958, "resnet56", False, 200)
    assert "89.58%" in words and "not official CIFAR-10" in words and "DPFPS's 200" in words
    assert "Method seeds finished: 0, 1 of 0, 1, 2." in words and "93.26-93.81%" in words
