"""Classic baselines (L1-norm uniform/global, network slimming) and the granularity study."""
import math

import pytest
import torch
from torch import nn

import paper_repro.studies.classic as C
from paper_repro.studies.ablation import budget
import paper_repro.studies.granularity as G
from paper_repro import data as D
from paper_repro.counting import CostModel, count_macs
from paper_repro.surgery import logit_gap
from paper_repro.models import build_model
from paper_repro.surgery import mask_model, prune_model
from paper_repro.train import train_baseline

TARGET = 0.60


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _model(arch="resnet56", width=0.5, seed=0):
    """Random weights and non-trivial BN statistics (calibrated on one random batch), eval mode."""
    torch.manual_seed(seed)
    model = build_model(arch, 10, width=width)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.weight.copy_(0.5 + 0.5 * torch.rand_like(bn.weight))
                bn.bias.normal_(0, 0.2)
                bn.momentum = None
        model.train()(torch.randn(16, 3, 32, 32))
    return model.eval()


def _flops_pruned(model, dead):
    return 1 - count_macs(prune_model(model, dead)) / count_macs(model)


def test_uniform_l1_reaches_flops_target_with_one_fraction():
    model = _model()
    cm = CostModel(model)
    dead, info = C.uniform_masks(C.l1_scores(model), cm, f"flops={TARGET}")
    achieved = _flops_pruned(model, dead)  # measured on the physically cut network (fvcore), not the cost model
    assert achieved == pytest.approx(info["achieved"], abs=1e-9)
    assert TARGET <= achieved < TARGET + 0.05
    f = info["fraction"]
    for d in dead:  # the same fraction in every group, lowest-L1 channels first, never a whole group
        assert int(d.sum()) == min(len(d) - 1, int(f * len(d) + 1e-9))
    scores = C.l1_scores(model)
    for s, d in zip(scores, dead):
        if d.any() and (~d).any():
            assert s[d].max() <= s[~d].min()
    # the smallest such fraction: one step less misses the target
    smaller = [C.smallest_mask(s, max(0, int(d.sum()) - 1)) for s, d in zip(scores, dead)]
    assert _flops_pruned(model, smaller) < TARGET or all(int(d.sum()) == 0 for d in dead)


def test_global_threshold_reaches_target_and_keeps_every_layer():
    model = _model()
    cm = CostModel(model)
    norm = C.normalise(C.l1_scores(model), "mean")
    for s in norm:
        assert s.mean().item() == pytest.approx(1.0, rel=1e-5)
    dead, info = C.global_masks(norm, cm, f"flops={TARGET}")
    achieved = _flops_pruned(model, dead)
    assert TARGET <= achieved < TARGET + 0.02  # overshoot: less than a few channels' worth
    assert all((~d).any() for d in dead)
    removed = torch.cat([s[d] for s, d in zip(norm, dead)])
    kept = torch.cat([s[~d] for s, d in zip(norm, dead) if d.sum() < len(d) - 1])  # groups not at their floor
    assert removed.max() <= info["threshold"] + 1e-6 and kept.min() >= info["threshold"] - 1e-6


def test_unreachable_target_is_reported_not_raised():
    model = _model()
    cm = CostModel(model)
    for fn in (C.uniform_masks, C.global_masks):
        dead, info = fn(C.l1_scores(model), cm, "flops=0.995")
        assert info["achieved"] < 0.995
        assert all(int((~d).sum()) == 1 for d in dead)  # pruned as far as one channel per group allows


def test_pruned_model_computes_what_the_masked_model_computes():
    model = _model()
    dead, _ = C.global_masks(C.bn_scores(model), CostModel(model), f"flops={TARGET}")
    masked = mask_model(model, dead)
    pruned = prune_model(masked, dead)
    assert logit_gap(pruned, masked, torch.randn(8, 3, 32, 32)) < 1e-9
    assert pruned.widths() == [int((~d).sum()) for d in dead]


def _batches(n=128, seed=0):
    ds = D.make_synthetic(n, 64, seed=seed)
    mean, std = D.MEAN["synthetic"], D.STD["synthetic"]
    return (D.Batches(ds.train, 32, mean, std, train=True, seed=seed),
            D.Batches(ds.test, 64, mean, std, train=False))


def test_slimming_penalty_shrinks_gamma(tmp_path):
    train_b, test_b = _batches()
    cfg = dict(C.CLASSIC, config_key="t")
    init = build_model("resnet20", 10, width=0.25).state_dict()
    gamma = {}
    for lam in (0.0, 0.5):
        model = build_model("resnet20", 10, width=0.25)
        model.load_state_dict(init)
        m, _ = C.train_labels(model, train_b, test_b, 2, cfg, torch.device("cpu"), tmp_path / f"s{lam}.pt", 0,
                              "sparse", slim_lambda=lam)
        gamma[lam] = m[-1]["mean_abs_gamma"]
        assert gamma[lam] == pytest.approx(
            torch.cat([bn.weight.abs() for g in model.channel_groups() for bn in g.norms]).mean().item())
    # 8 steps x lr 0.01 x λ 0.5 = 0.04 of shrinkage at least (momentum only adds to it); init γ = 1
    assert gamma[0.5] < gamma[0.0] - 0.04


def test_train_labels_resumes_to_the_same_weights(tmp_path):
    train_b, test_b = _batches()
    cfg = dict(C.CLASSIC, config_key="t")
    dev = torch.device("cpu")
    init = build_model("resnet20", 10, width=0.25).state_dict()
    a, b, c = (build_model("resnet20", 10, width=0.25) for _ in range(3))
    for m in (a, b, c):
        m.load_state_dict(init)
    ma, _ = C.train_labels(a, train_b, test_b, 2, cfg, dev, tmp_path / "a.pt", 0, "finetune", slim_lambda=0.1)
    C.train_labels(b, train_b, test_b, 2, cfg, dev, tmp_path / "b.pt", 0, "finetune", slim_lambda=0.1, stop_after=1)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["epoch"] == 1
    mc, _ = C.train_labels(c, train_b, test_b, 2, cfg, dev, tmp_path / "b.pt", 0, "finetune", slim_lambda=0.1)
    assert [r["train_loss"] for r in mc] == [r["train_loss"] for r in ma]
    for (k, x), y in zip(a.state_dict().items(), c.state_dict().values()):
        assert torch.equal(x, y), k


@pytest.mark.parametrize("granularity", G.GRANULARITIES)
def test_granularity_zeroes_the_requested_fraction(granularity):
    model = _model()
    for s in (0.25, 0.6):
        pruned, dead = G.prune_granularity(model, granularity, s)
        for conv in G.population(pruned):
            w = conv.weight
            if granularity == "filter":
                continue
            units = {"fine": w.numel(), "vector": w.numel() // w.shape[3], "kernel": w.shape[0] * w.shape[1]}[granularity]
            size = w.numel() // units
            assert int((w == 0).sum()) == round(s * units) * size  # whole units, exactly round(s·units) of them
        if granularity == "filter":
            assert [int(d.sum()) for d in dead] == [min(g.width - 1, round(s * g.width)) for g in model.channel_groups()]
            # resnet56: each block's two convs lose the same fraction of channels
            assert G.weight_sparsity(pruned) == pytest.approx(s, abs=0.07)
        else:
            assert G.weight_sparsity(pruned) == pytest.approx(s, abs=1e-3)
        assert G.weight_sparsity(model) == 0.0  # the input model is left as it was


def test_only_filter_granularity_shrinks_dense_compute():
    model = _model()
    macs = count_macs(model)
    x = torch.randn(4, 3, 32, 32)
    rows = {g: G.granularity_row(model, g, 0.5, lambda m: 0.0, macs, example=x) for g in G.GRANULARITIES}
    assert rows["filter"]["shrinks_dense_compute"] and rows["filter"]["dense_flops_pruned"] > 0.4
    assert rows["filter"]["max_abs_logit_diff"] < 1e-9
    for g in ("fine", "vector", "kernel"):
        assert not rows[g]["shrinks_dense_compute"] and rows[g]["dense_flops_pruned"] == 0.0
        assert 0.45 < rows[g]["sparse_flops_pruned"] < 0.5  # the stem and the FC stay dense


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match=r"arm: .*l1_uniform, l1_global, slimming"):
        C.resolve_classic("l2", "smoke")
    with pytest.raises(ValueError, match=r"profile"):
        C.resolve_classic("slimming", "gpu")
    with pytest.raises(ValueError, match=r"granularity: .*fine, vector, kernel, filter"):
        G.prune_granularity(_model(width=0.25), "block", 0.5)
    with pytest.raises(ValueError, match=r"sparsity: .*\[0, 1\)"):
        G.prune_granularity(_model(width=0.25), "fine", 1.5)
    with pytest.raises(ValueError, match=r"normaliser: .*mean, max, none"):
        C.normalise([torch.ones(3)], "median")
    with pytest.raises(ValueError, match=r"unknown setting"):
        C.resolve_classic("slimming", "smoke", foo=1)
    with pytest.raises(ValueError, match=r"target"):
        C.resolve_classic("slimming", "smoke", target="flops=1.5")


def test_epoch_budget_is_split_for_slimming_and_equal_across_arms():
    for profile in ("smoke", "cpu"):
        cfgs = {a: C.resolve_classic(a, profile) for a in C.ARMS}
        assert len({c["epochs"] for c in cfgs.values()}) == 1
        for c in cfgs.values():
            assert c["sparse_epochs"] + c["finetune_epochs"] == c["epochs"]
    cpu = C.resolve_classic("slimming", "cpu")
    shared = budget("cpu")  # the method's ablation arms train on the same images for the same epochs
    assert (cpu["epochs"], cpu["train_subset"]) == (shared["epochs"], shared["train_subset"])
    assert (cpu["epochs"], cpu["sparse_epochs"], cpu["finetune_epochs"]) == (3, 1, 2)


def test_run_classic_end_to_end_cached_and_deterministic(monkeypatch, tmp_path):
    teacher = train_baseline("resnet56", "smoke", 0, device="cpu", progress=False, epochs=1, train_subset=64)
    rows = {}
    for arm in ("slimming", "l1_global"):
        run = C.run_classic(arm, "smoke", 0, "cpu", teacher_run=teacher, train_subset=64, epochs=2)
        rows[arm] = C.classic_row(run)
        assert run.summary["widths"] == run.model.widths()
    r = rows["slimming"]
    for arm, row in rows.items():  # the diagnostics after the cut: BN recalibration, predicted classes
        s = C.run_classic(arm, "smoke", 0, "cpu", teacher_run=teacher, train_subset=64, epochs=2).summary
        assert 0 <= row["acc_bn_recalibrated"] <= 1
        n_test = sum(s["test_class_counts"])
        assert sum(s["predicted_before_finetune"]) == sum(s["predicted_bn_recalibrated"]) == n_test > 0
    assert (r["sparse_epochs"], r["finetune_epochs"], r["epochs"], r["label_use"]) == (1, 1, 2, "labels")
    assert r["target_met"] and r["flops_pruned"] >= TARGET and r["max_abs_logit_diff"] < 1e-9
    # unreachable target: a row with target_met False, not an exception
    miss = C.classic_row(C.run_classic("l1_uniform", "smoke", 0, "cpu", teacher_run=teacher, train_subset=64,
                                       epochs=1, target="flops=0.995"))
    assert miss["target_met"] is False and miss["flops_pruned"] < 0.995
    # a rerun loads the finished run without training
    monkeypatch.setattr(C, "train_labels", lambda *a, **k: pytest.fail("retrained a cached run"))
    again = C.run_classic("slimming", "smoke", 0, "cpu", teacher_run=teacher, train_subset=64, epochs=2)
    assert C.classic_row(again) == r
    monkeypatch.undo()
    # same seed, fresh cache folder: the same numbers
    import paper_repro.engine as E
    monkeypatch.setattr(E, "RUNS", tmp_path / "other_runs")
    fresh = C.run_classic("slimming", "smoke", 0, "cpu", teacher_run=teacher, train_subset=64, epochs=2)
    assert fresh.summary["final_acc"] == r["final_acc"] and fresh.summary["widths"] == again.summary["widths"]
    assert fresh.summary["metrics"][-1]["train_loss"] == again.summary["metrics"][-1]["train_loss"]


def test_granularity_recalibration_gets_a_copy_and_keeps_the_zeros():
    """`recalibrate` runs on a copy of the pruned network: the reported test_acc is the un-recalibrated one,
    and the recalibrated network still has the zeros (only BN statistics change)."""
    from paper_repro.engine import recalibrate_bn_

    model = _model()
    macs = count_macs(model)
    batches = [(torch.randn(16, 3, 32, 32), None) for _ in range(2)]
    seen = []

    def recal(m):
        recalibrate_bn_(m, batches)
        seen.append(m)
        return m

    def acc(m):  # a stand-in accuracy that tells the networks apart: their BN running means
        return float(sum(b.running_mean.abs().sum() for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)))

    row = G.granularity_row(model, "kernel", 0.5, acc, macs, recalibrate=recal)
    pruned, _ = G.prune_granularity(model, "kernel", 0.5)
    assert row["test_acc"] == acc(pruned) != row["acc_bn_recalibrated"] == acc(seen[0])
    assert G.weight_sparsity(seen[0]) == pytest.approx(0.5, abs=1e-3)
    assert row["acc_bn_recalibrated"] == acc(seen[0])
    assert math.isnan(G.granularity_row(model, "fine", 0.3, acc, macs)["acc_bn_recalibrated"])  # not asked for
