"""Torch-Pruning peer arm (paper_repro.studies.peer): target reached, counts agree or differ by what they count,
cached and resumable, bad input refused."""
import json

import pytest
import torch

import paper_repro.engine as E
import paper_repro.train as T
from paper_repro.studies import peer
from paper_repro.studies.ablation import shared_budget
from paper_repro.counting import count, count_row
from paper_repro.models import build_model


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """Smoke baselines of resnet56 and resnet20, trained once for the module into a temporary runs/."""
    root = tmp_path_factory.mktemp("peer")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(E, "RUNS", root / "runs")
        ckpts = {a: T.train_baseline(a, "smoke", 0, device="cpu", progress=False).run_dir / "checkpoint.pt"
                 for a in ("resnet56", "resnet20")}
    return root, ckpts


@pytest.fixture(scope="module")
def r56(teachers):
    root, ckpts = teachers
    out = root / "r56_magnitude"
    run = peer.peer_train("resnet56", "flops=0.60", "smoke", 0, device="cpu", teacher=ckpts["resnet56"], out=out,
                          progress=False, importance="magnitude", iterative_steps=100, **shared_budget("smoke"))
    return run, out, ckpts["resnet56"]


def test_reaches_flops_target_with_a_real_smaller_network(r56):
    run, out, _ = r56
    s = run.summary
    assert s["target_met"] is True
    assert s["flops_pruned"] >= 0.60 and s["flops_pruned"] < 0.63  # 1% steps: no large overshoot
    assert s["flops_pruned"] == pytest.approx(s["flops_pruned_analytic"], abs=1e-12)
    assert s["epochs"] == 1 and s["train_images"] == 256 and s["finetune_epochs"] == 0
    full = build_model("resnet56", 10, width=0.25)
    assert len(run.model.widths()) == len(full.widths())
    assert all(1 <= w <= f for w, f in zip(run.model.widths(), full.widths()))
    assert sum(run.model.widths()) < sum(full.widths())
    assert count(run.model)["params"] < count(full)["params"]
    # a plain CifarResNet: rebuilt from (widths, state_dict) it computes the same logits
    assert s["max_abs_logit_diff_rebuilt"] < 1e-9
    assert run.model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert 0.0 <= s["pruned_acc"] <= 1.0
    row = peer.peer_row("TP magnitude", run)
    assert row["label_use"] == "labels" and row["target_met"] is True and row["seconds_per_epoch"] > 0
    for f in ("config.json", "metrics.csv", "state.pt", "pruned_state.pt", "summary.json"):
        assert (out / f).exists()


def test_cached_run_is_loaded_not_retrained(r56):
    run, out, ckpt = r56
    before = (out / "state.pt").stat().st_mtime_ns
    again = peer.peer_train("resnet56", "flops=0.60", "smoke", 0, device="cpu", teacher=ckpt, out=out,
                            progress=False, importance="magnitude", iterative_steps=100, **shared_budget("smoke"))
    assert again.loaded is True
    assert (out / "state.pt").stat().st_mtime_ns == before
    assert again.summary == json.loads((out / "summary.json").read_text())
    assert again.model.widths() == run.model.widths()
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(again.model.eval()(x), run.model.eval()(x), atol=1e-5)


def test_counts_agree_on_params_and_differ_on_macs_by_bn_pool_bias(r56):
    run = r56[0]
    row = count_row("tp", run.model)
    assert row["params_diff"] == 0
    assert row["macs_analytic"] == row["macs_ours"]
    assert row["macs_diff"] > 0 and row["unexplained"] == 0
    # TP's extra: 2 ops per BatchNorm output element, 1 per pooled input element, the fc bias
    m = run.model
    widths = m.widths()
    assert row["tp_bn"] == 2 * _bn_elements(m)
    assert row["tp_pool"] == m.fc.in_features * 8 * 8
    assert row["tp_bias"] == 10
    assert len(widths) == 27


def _bn_elements(model):
    sizes = []
    hooks = [b.register_forward_hook(lambda m, i, o: sizes.append(o[0].numel()))
             for b in model.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    return sum(sizes)


def test_missed_target_is_reported_not_raised(teachers):
    root, ckpts = teachers
    run = peer.peer_train("resnet20", "flops=0.60", "smoke", 0, device="cpu", teacher=ckpts["resnet20"],
                          out=root / "r20_capped", progress=False, importance="magnitude", iterative_steps=50,
                          max_pruning_ratio=0.2, **shared_budget("smoke"))
    assert run.summary["target_met"] is False
    assert run.summary["flops_pruned"] < 0.60
    assert peer.peer_row("capped", run)["target_met"] is False


def test_resumed_run_equals_uninterrupted(teachers):
    root, ckpts = teachers
    kw = dict(device="cpu", teacher=ckpts["resnet20"], progress=False, importance="taylor", iterative_steps=100,
              epochs=2, train_subset=128)
    whole = peer.peer_train("resnet20", "flops=0.50", "smoke", 0, out=root / "whole", **kw)
    part = peer.peer_train("resnet20", "flops=0.50", "smoke", 0, out=root / "split", max_epochs_now=1, **kw)
    assert part.summary == {} and len(part.metrics) == 1
    split = peer.peer_train("resnet20", "flops=0.50", "smoke", 0, out=root / "split", **kw)
    assert split.summary["widths"] == whole.summary["widths"]
    assert split.summary["pruned_acc"] == whole.summary["pruned_acc"]
    assert [m["train_loss"] for m in split.metrics] == [m["train_loss"] for m in whole.metrics]
    assert whole.summary["target_met"] is True


def test_reg_scaling_keeps_the_recipe_shrinkage():
    b = dict(lr=0.05, lr_milestones=[0.5, 0.75], lr_gamma=0.1)
    # a 3-epoch budget of 62 steps per epoch at 0.05, 0.05, 0.005 (milestones 2 and 3: distinct, so the last
    # epoch runs at lr/10; rounding alone put both at epoch 2 and ran it at lr/100)
    ours = 62 * (0.05 + 0.05 + 0.005)
    recipe = 390 * (60 * 0.01 + 20 * 0.001 + 20 * 0.0001) * 5e-4
    assert peer.scaled_reg(5e-4, b, 3, 62) == pytest.approx(recipe / ours)
    assert peer.lr_sum(0.1, 4, [2, 3], 0.1, 10) == pytest.approx(10 * (0.1 + 0.1 + 0.01 + 0.001))


@pytest.mark.parametrize("kw, name", [
    (dict(importance="l1"), "importance"), (dict(loss="mse"), "loss"), (dict(reg=-1.0), "reg"),
    (dict(iterative_steps=0), "iterative_steps"), (dict(max_pruning_ratio=1.5), "max_pruning_ratio"),
    (dict(epochs=0), "epochs"), (dict(reg_scaling="yes"), "reg_scaling"), (dict(taylor_batches=1.5), "taylor_batches"),
])
def test_bad_settings_name_the_parameter(kw, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        peer.resolve_peer("resnet56", "flops=0.60", "smoke", 0, **kw)


def test_bad_arch_profile_target_and_unknown_setting():
    with pytest.raises(ValueError, match="arch: .*resnet56"):
        peer.resolve_peer("vgg_small", "flops=0.60", "smoke")
    with pytest.raises(ValueError, match="profile"):
        peer.resolve_peer("resnet56", "flops=0.60", "tiny")
    with pytest.raises(ValueError, match="unknown setting"):
        peer.resolve_peer("resnet56", "flops=0.60", "smoke", students=2)
    with pytest.raises(ValueError, match="^target:"):
        peer.resolve_peer("resnet56", "flops=1.5", "smoke")
    # unreachable (one channel per group still leaves the stem, conv2s and fc): refused before any training
    with pytest.raises(ValueError, match="^target: .*not reachable"):
        peer.peer_train("resnet56", "flops=0.99", "smoke", 0, device="cpu", teacher="/nonexistent.pt",
                        progress=False)
