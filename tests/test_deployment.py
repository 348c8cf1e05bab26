"""What notebook 08 builds on: latency rows, the fresh-process .pt2 check, the accuracy-vs-FLOPs points."""
import time

import pandas as pd
import pytest
import torch
from torch import nn

from paper_repro.studies.deployment import latency_rows, pt2_diff_in_fresh_process
from paper_repro.models import build_model
from paper_repro.surgery import prune_model
from paper_repro.export import save_pruned
from paper_repro.reproduction.tables import accuracy_vs_flops, reference_rows


class Sleeper(nn.Module):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


def test_latency_rows_ratios_and_speedup():
    summary = dict(macs_before=300, macs_after=100, params_before=1000, params_after=250)
    rows = latency_rows("net", Sleeper(0.03), Sleeper(0.01), summary, [1, 8], warmup=1, repeats=3)
    assert [r["batch_size"] for r in rows] == [1, 8]
    for r in rows:
        assert (r["flops_ratio"], r["params_ratio"]) == (3.0, 4.0)
        assert r["speedup"] == pytest.approx(r["dense_ms"] / r["pruned_ms"])
        assert 1.5 < r["speedup"] < 3.5  # 30 ms vs 10 ms of sleep, plus scheduling noise
        assert r["threads"] == torch.get_num_threads()


class SlowingDown(nn.Module):
    """A machine that gets slower with every call (10 ms, then 1 ms more per call), shared by all copies."""
    calls = [0]

    def forward(self, x):
        time.sleep(0.010 + 0.001 * self.calls[0])
        self.calls[0] += 1
        return x


def test_latency_rows_cancel_a_drifting_machine():
    # Two identical models: timed dense-then-pruned, the drift alone would read as a 0.74x "speed-up".
    SlowingDown.calls[0] = 0
    (row,) = latency_rows("net", SlowingDown(), SlowingDown(), dict(macs_before=1, macs_after=1, params_before=1,
                                                                    params_after=1), [1], warmup=0, repeats=4)
    assert SlowingDown.calls[0] == 16
    assert row["speedup"] == pytest.approx(1, abs=0.12)


def test_pt2_runs_in_a_fresh_process(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet20", 10, width=0.25).eval()
    dead = [torch.arange(g.width) % 2 == 1 for g in model.channel_groups()]  # every other channel
    pruned = prune_model(model, dead).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        y = pruned(x)
    paths = save_pruned(pruned, "resnet20", 10, 0.25, tmp_path, x[:1])
    assert pt2_diff_in_fresh_process(paths["pt2"], x, y) <= 1e-4
    # The reported number is a real comparison: wrong expectations show up in it.
    assert pt2_diff_in_fresh_process(paths["pt2"], x, y + 1) == pytest.approx(1, abs=1e-4)


def test_accuracy_vs_flops_reads_ours_and_published(tmp_path):
    pd.DataFrame([dict(network="resnet56", source="paper row", baseline_acc=None, pruned_acc_best=None,
                       delta_acc="almost no loss", flops_pruned_pct=60.33),
                  dict(network="resnet56", source="ours", baseline_acc=0.90, pruned_acc_best=0.885,
                       delta_acc="-1.50", flops_pruned_pct=61.2)]).to_csv(tmp_path / "main_table.csv", index=False)
    pd.DataFrame([dict(arch="resnet56", speedup=2.0)]).to_csv(tmp_path / "deployment_latency.csv", index=False)
    pts = accuracy_vs_flops(tmp_path)
    ours = pts[pts.kind == "ours"]
    assert len(ours) == 1 and ours.iloc[0]["delta_acc_pts"] == pytest.approx(-1.5)
    assert ours.iloc[0]["flops_pruned_pct"] == 61.2 and ours.iloc[0]["source"] == "ours (main_table)"
    published = pts[pts.kind == "published"]
    ref = reference_rows("cifar10")
    numeric = pd.to_numeric(ref["delta_acc"], errors="coerce").notna() \
        & pd.to_numeric(ref["flops_reduction_pct"], errors="coerce").notna()
    assert len(published) == int(numeric.sum()) > 0
    assert "vgg_small" in set(published.network)  # the paper's own +0.1 at 70%
    assert not published.delta_acc_pts.isna().any()
    # A table stamped with its profile says which budget each of our points comes from.
    pd.DataFrame([dict(network="resnet56", baseline_acc=0.86, pruned_acc_best=0.85, flops_pruned_pct=34.1,
                       profile="paper")]).to_csv(tmp_path / "gpu_runs.csv", index=False)
    kinds = set(accuracy_vs_flops(tmp_path).kind)
    assert {"ours", "ours, paper profile", "published"} <= kinds
    # ... and with its training images, the budget.
    pd.DataFrame([dict(network="vgg_small", baseline_acc=0.86, pruned_acc_best=0.5, flops_pruned_pct=70.0,
                       profile="cpu", train_images=10000)]).to_csv(tmp_path / "main_table.csv", index=False)
    assert "ours, cpu profile, 10,000 training images" in set(accuracy_vs_flops(tmp_path).kind)


def test_accuracy_vs_flops_adds_the_other_methods_but_not_our_ablation_rows(tmp_path):
    pd.DataFrame([dict(arm="l1_uniform", final_acc=0.30, baseline_acc=0.40, flops_pruned=0.61, profile="cpu",
                       train_images=3000),
                  dict(arm="ours (label-free, no fine-tuning)", final_acc=0.35, baseline_acc=0.40, flops_pruned=0.6,
                       profile="cpu")]).to_csv(tmp_path / "classic_baselines.csv", index=False)
    pd.DataFrame([dict(arm="tp_taylor", best_acc=0.25, baseline_acc=0.40, flops_pruned=0.62, profile="cpu")]).to_csv(
        tmp_path / "peer_torch_pruning.csv", index=False)
    pts = accuracy_vs_flops(tmp_path)
    mine = pts[pts.kind != "published"]
    assert sorted(mine.source) == ["l1_uniform (classic_baselines)", "tp_taylor (peer_torch_pruning)"]
    l1 = mine[mine.source.str.startswith("l1")].iloc[0]
    assert l1.delta_acc_pts == pytest.approx(-10) and l1.flops_pruned_pct == pytest.approx(61)
    assert l1.kind == "classic pipeline (labels, fine-tuned), cpu profile, 3,000 training images"
    tp = mine[mine.source.str.startswith("tp")].iloc[0]
    assert tp.kind == "Torch-Pruning (labels), cpu profile"  # no train_images recorded: none said


def test_scaled_widths_keep_the_shares_within_the_full_network():
    from paper_repro.studies.deployment import scale_widths

    assert scale_widths([2, 8, 1], 0.25, [16, 32, 16]) == [8, 32, 4]
    assert scale_widths([5, 9], 0.5, [8, 16]) == [8, 16]  # capped at the full width
    with pytest.raises(ValueError, match="from_width"):
        scale_widths([1], 0.0, [4])


def test_full_width_rows_time_dense_and_pruned_at_width_one():
    from paper_repro.studies.deployment import full_width_rows
    from paper_repro.models import build_model

    full = build_model("resnet20", width=1.0).widths()
    rows = full_width_rows("resnet20", [max(1, w // 2) for w in full], "test", 0.5, [1], "cpu", warmup=0, repeats=2)
    assert rows[0]["width"] == 1.0 and rows[0]["flops_ratio"] > 1.5 and rows[0]["widths_source"] == "test"
