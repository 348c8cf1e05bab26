"""The README's summary block is generated from results/ (verdicts, the main table, runtimes), never typed: the
committed README holds exactly what the committed results generate, and only `make reproduce` of the committed
profile writes it. Its first screen: one sentence per headline network of the paper (verdict, seeds, ±2σ), the two
commands with what each costs; then the claims-to-evidence table, the checks and the other questions counted."""
import pandas as pd
import pytest

from paper_repro.reproduction import findings as F
from paper_repro.reproduction import index as R
from paper_repro.reproduction.navigation import TOTAL
from paper_repro.reproduction.tables import BLOCKS

STATES = {"vgg_small": "its width-1.0 teacher is training: `make teachers`",
          "mobilenetv2": "its width-1.0 teacher is training: `make teachers`"}


def _verdict(claim_id, notebook, value, noise, verdict, **kw):
    return dict(dict(claim_id=claim_id, claim=f"claim {claim_id}", source="paper, abstract",
                     measured="Δ accuracy vs teacher, points", value=value, threshold=-1, direction=">=", noise=noise,
                     verdict=verdict, notebook=notebook, figure="f", noise_source="test-set sampling (one seed), a "
                     "lower bound", profile="cpu", dataset="cifar10", dataset_official=False,
                     dataset_fingerprint="0eb270ba7f3d306e", seed=0, device="cpu", commit="abc123"), **kw)


PAIRED = ("paired on 10,000 test images; σ covers the test images and the spread of the seeds (images 0.22, seeds "
          "0.13); seed 0 (AMD EPYC): -0.51 ± 0.31, McNemar p 0.1; seed 1 (Intel): -0.25 ± 0.30, McNemar p 0.4")


@pytest.fixture
def results(tmp_path):
    pd.DataFrame([
        _verdict("vgg_small_params_pruned", "02_method", 93.08, 0.0, "supported", measured="params pruned, %",
                 threshold=93, noise_source="exact"),
        _verdict("vgg_small_accuracy_kept", "02_method", -41.96, 0.5, "contradicted"),
        _verdict("resnet56_accuracy_kept", "02_method", -4.98, 0.11, "contradicted"),
        _verdict("resnet56_flops_pruned", "02_method", 60.07, 0.0, "supported", measured="flops pruned, %",
                 threshold=60, noise_source="exact"),
        _verdict("resnet56_w1_accuracy_kept", "02_method", -0.38, 0.26, "inconclusive (within noise)",
                 claim="resnet56 at the paper's width: almost no accuracy loss after pruning with no fine-tuning "
                 "(read: loses at most 1 point)",
                 measured="Δ accuracy vs teacher, points, mean over seeds 0, 1", noise_source=PAIRED, figure=""),
        _verdict("resnet56_w1_other_ratio_as_paper", "02_method", 0.93, 0.0, "supported",
                 measured="|params pruned − 53.61%|, points; ours 52.68%", threshold=1, direction="<=",
                 noise_source="exact", figure=""),
        _verdict("resnet56_w1_beats_uniform_scratch", "02_method", -0.05, 0.3, "inconclusive (within noise)",
                 source="issue 23: a control no peer reports", measured="acc(method) − acc(control-scratch), points, "
                 "mean over seeds 0, 1", noise_source=PAIRED, figure="", threshold=0, direction=">"),
        _verdict("teacher_converged_resnet56_w1", "02_method", 89.58, 0.0, "contradicted",
                 source="issue 23: the paper-width teacher", measured="test accuracy, % (all images)",
                 threshold=92.5, noise_source="exact", figure=""),
        _verdict("mobilenetv2_speedup_cpu_width", "08_deployment", 2.37, 0.03, "contradicted", threshold=3,
                 measured="measured speed-up, CPU, batch 64, cpu width", noise_source="bootstrap of the timed calls"),
        _verdict("features_add_to_kd", "03_ablation_losses", 1.78, 0.94, "inconclusive (within noise)",
                 source="paper, method (feature term)", measured="acc(a) − acc(b), points",
                 noise_source="seeds 0, 1, 2 on cpu", figure="ablation_losses", threshold=0, direction=">"),
        _verdict("c", "06_classic_baselines", 1.8, 0.4, "supported", source="seed question"),
        _verdict("d", "07_peer_torch_pruning", 6.7, 0.4, "supported", source="peer baseline"),
    ]).to_csv(tmp_path / "verdicts.csv", index=False)
    pd.DataFrame([dict(network="resnet56", source="ours (cpu profile, paper's width)", block=BLOCKS[1], width=1.0,
                       epochs=15, train_images=50000),
                  dict(network="vgg_small", source="ours (cpu profile)", block=BLOCKS[2], width=0.25, epochs=3,
                       train_images=10000)]).to_csv(tmp_path / "main_table.csv", index=False)
    for name in ("main_table", "paper_width", "ablation_losses", "deployment_latency"):
        (tmp_path / f"{name}.md").write_text("x\n")
    pd.DataFrame([dict(notebook=TOTAL, kind="cold", seconds=3561, lane_seconds=0, when="2026-12-02", commit="abc123"),
                  dict(notebook=TOTAL, kind="cached", seconds=739, lane_seconds=0, when="2026-12-03",
                       commit="def456")]).to_csv(tmp_path / "notebook_runtimes.csv", index=False)
    return tmp_path


def test_the_first_screen_says_what_was_found_per_network_and_the_two_commands_with_their_cost(results):
    text = R.readme_summary(results, STATES)
    first = text[:text.index("### ")]
    vgg, resnet, mobile = (first[first.index(f"- **{n}**"):] for n in ("VGG-Small", "ResNet-56", "MobileNetV2"))
    assert vgg.startswith("- **VGG-Small** at the paper's width: training; not testable yet (its width-1.0 teacher")
    flat = " ".join(vgg.split())
    assert "What exists, at the reduced budget (width 0.25, 3 of the paper's 200 student epochs" in flat
    flat = " ".join(resnet.split())
    assert "at the paper's width (width 1.0, 15 of the paper's 200 student epochs, 50,000 training images)" in flat
    assert ("accuracy -0.38 ± 0.52 points against its teacher, **inconclusive** (n = 2 seeds; ±2σ: paired over the "
            "same test images and the seeds)") in flat
    assert "params pruned 52.68% against the paper's 53.61% (**supported**" in flat
    assert "its teacher at 89.58% (goal 92.5%, missed)" in flat
    assert "2.37 ± 0.06× (CPU, batch 64, cpu width) **contradicted**" in " ".join(mobile.split())
    assert "make reproduce   #" in first and "make test        #" in first
    assert "took cold 59 min (2026-12-02), cached 12 min (2026-12-03)" in " ".join(first.split())
    assert "not official CIFAR-10" in " ".join(first.split()) and "commit abc123" in first
    assert "[the executed index](notebooks/executed/cpu/00_index.ipynb)" in first


def test_the_evidence_table_lists_the_claims_with_verdict_spread_seeds_and_where(results):
    text = R.readme_summary(results, STATES)
    table = text[text.index("### "):]
    assert "|ResNet-56: almost no accuracy loss, no fine-tuning|inconclusive|-0.38 ± 0.52|2|" \
           "[02][02] [paper_width][paper_width]|" in table
    assert "|ResNet-56: beats a same-FLOPs network trained from scratch with labels|inconclusive|" in table
    assert "|claim features_add_to_kd|inconclusive|+1.78 ± 1.88|1 (σ:3)|" \
           "[03][03] [ablation_losses][ablation_losses]|" in table
    assert table.index("At the paper's width") < table.index("At the reduced budget") < table.index("speed-up")
    assert "[02]: notebooks/executed/cpu/02_method.ipynb" in table and "[paper_width]: results/paper_width.md" in table
    assert "claim c|" not in table and "claim d|" not in table  # questions are counted, not listed
    assert "The 2 other questions (notebooks 06, 07" in " ".join(table.split())
    assert "Checks of the runs (not claims of the paper): 2 of 3 met; not met: the ResNet-56 width 1.0 teacher at " \
           "89.58% (goal 92.5%, missed)." in " ".join(table.split())
    assert "**GPU evidence:** none" in text  # no paper_recipe_gpu_runs.csv in these results


def test_a_network_not_planned_at_the_papers_width_says_so(results):
    rows = F.read_rows(results)
    text = F.headline_sentence(rows, "vgg_small", results, "cpu", state="")
    assert text.startswith("**VGG-Small**, not run at the paper's width on this profile; at the reduced budget")
    assert "**contradicted** (n = 1 seed; ±2σ: test-set sampling error, a lower bound)" in text


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
    assert R.is_paper_width("resnet56_w1_accuracy_kept") and not R.is_paper_width("resnet56_w10_x")
