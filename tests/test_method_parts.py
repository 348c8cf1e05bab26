"""The method's pieces against hand computations and closed forms."""
import math

import pytest
import torch
import torch.nn.functional as F

from paper_repro.allocation import allocate, parse_target, pruned_ratio
from paper_repro.counting import CostModel
from paper_repro.ista import group_prox_, penalty_scale, scaled_lambda
from paper_repro.losses import feature_loss, kd_loss, labelled_kd_loss, mutual_loss
from paper_repro.models import build_model
from paper_repro.sensitivity import channel_scores, smallest_mask


# ---- losses ---------------------------------------------------------------------------------------
def test_kd_loss_by_hand():
    zs, zt, t = torch.randn(5, 10), torch.randn(5, 10), 4.0
    pt, ps = torch.softmax(zt / t, 1), torch.softmax(zs / t, 1)
    hand = t * t * (pt * (pt.log() - ps.log())).sum(1).mean()
    assert torch.allclose(kd_loss(zs, zt, t), hand, atol=1e-6)
    assert torch.allclose(kd_loss(zs, zt, form="hard"), F.cross_entropy(zs, zt.argmax(1)))
    assert torch.allclose(kd_loss(zs, zt, form="mse"), ((zs - zt) ** 2).mean())
    assert kd_loss(zt, zt, t).abs() < 1e-6


def test_feature_loss_by_hand():
    a = {"x": torch.randn(2, 3, 4, 4), "y": torch.randn(2, 7)}
    b = {"x": torch.randn(2, 3, 4, 4), "y": torch.randn(2, 7)}
    hand = ((a["x"] - b["x"]) ** 2).mean() + ((a["y"] - b["y"]) ** 2).mean()
    assert torch.allclose(feature_loss(a, b), hand)


def test_mutual_loss_by_hand_and_stop_gradient():
    zi = torch.randn(4, 10, requires_grad=True)
    peers = [torch.randn(4, 10, requires_grad=True) for _ in range(2)]
    pi = torch.softmax(zi, 1)
    hand = sum((torch.softmax(z, 1) * (torch.log_softmax(z, 1) - pi.log())).sum(1).mean() for z in peers) / 2
    loss = mutual_loss(zi, peers, 1.0)
    assert torch.allclose(loss, hand, atol=1e-6)
    loss.backward()
    assert zi.grad is not None and all(p.grad is None for p in peers)
    assert mutual_loss(zi, [], 1.0).item() == 0.0  # N = 1


def test_labelled_kd_by_hand():
    zs, zt, y = torch.randn(6, 10), torch.randn(6, 10), torch.randint(0, 10, (6,))
    pt, ps = torch.softmax(zt / 2, 1), torch.softmax(zs / 2, 1)
    kl = (pt * (pt.log() - ps.log())).sum(1).mean()
    ce = F.cross_entropy(zs, y)
    assert torch.allclose(labelled_kd_loss(zs, zt, y), 0.7 * ce + 0.3 * 4 * kl, atol=1e-6)
    assert torch.allclose(labelled_kd_loss(zs, zt, y, scale_t2=False), 0.7 * ce + 0.3 * kl, atol=1e-6)


# ---- ISTA -----------------------------------------------------------------------------------------
def test_penalty_schedule():
    assert penalty_scale(9, 10) == 1.0 / (1.0 + math.exp(15 - 30))
    assert penalty_scale(0, 10) == pytest.approx(1 / (1 + math.exp(12)))
    assert penalty_scale(10, 10) == 1.0 and penalty_scale(0, 10, "constant") == 1.0
    assert scaled_lambda(0.01, 64, 0.1, 50_000) == pytest.approx(0.01)
    assert scaled_lambda(0.01, 128, 0.1, 50_000) == pytest.approx(0.02)


def test_group_prox_matches_closed_form():
    torch.manual_seed(0)
    m = build_model("resnet20", width=0.5)
    g = m.channel_groups()[3]
    g.producers[0].weight.data[2] *= 1e-3  # small enough to be zeroed by the threshold
    w_p, w_c = g.producers[0].weight.detach().clone(), g.consumers[0].weight.detach().clone()
    sel = torch.zeros(g.width, dtype=torch.bool)
    sel[[0, 2, 5]] = True
    theta = 0.05
    group_prox_(g, sel, theta)
    for c in range(g.width):
        np_, nc = w_p[c].norm(), w_c[:, c].norm()
        fp = max(0.0, 1 - theta / np_.item()) if sel[c] else 1.0
        fc = max(0.0, 1 - theta / nc.item()) if sel[c] else 1.0
        assert torch.allclose(g.producers[0].weight[c], w_p[c] * fp, atol=1e-7)
        assert torch.allclose(g.consumers[0].weight[:, c], w_c[:, c] * fc, atol=1e-7)
    assert g.producers[0].weight[2].abs().max() == 0  # ‖w‖ <= θ: exactly zero


# ---- Taylor ---------------------------------------------------------------------------------------
def test_taylor_score_is_the_first_order_loss_change():
    """Θ(c) = |Σ w·∂L/∂w| over the group predicts |ΔL| when the group is scaled by (1-ε), divided by ε."""
    torch.manual_seed(0)
    m = build_model("resnet20", width=0.25).double().eval()
    x, y = torch.randn(8, 3, 32, 32, dtype=torch.float64), torch.randint(0, 10, (8,))
    loss = F.cross_entropy(m(x), y)
    loss.backward()
    g = m.channel_groups()[1]
    theta = channel_scores(g, "taylor")
    eps = 1e-5
    with torch.no_grad():
        for c in range(g.width):
            f = torch.ones(g.width, dtype=torch.float64)
            f[c] = 1 - eps
            g.scale_channels_(f, f)
            delta = (F.cross_entropy(m(x), y) - loss).item() / eps
            g.scale_channels_(1 / f, 1 / f)
            assert abs(abs(delta) - theta[c].item()) <= 1e-3 * max(1e-3, theta[c].item()) + 1e-6


def test_smallest_mask():
    s = torch.tensor([3.0, 1.0, 2.0, 1.0, 5.0])
    assert smallest_mask(s, 2).tolist() == [False, True, False, True, False]
    assert smallest_mask(s, 0).sum() == 0


def test_other_criteria_shapes():
    g = build_model("mobilenetv2", width=0.25).channel_groups()[2]
    for crit in ("l1", "bn", "random"):
        assert channel_scores(g, crit, torch.Generator().manual_seed(0)).shape == (g.width,)
    with pytest.raises(ValueError, match="criterion: unknown value 'norm'.*taylor, l1, bn, random"):
        channel_scores(g, "norm")


# ---- allocation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch,spec", [("resnet56", "flops=0.6"), ("vgg_small", "params=0.93"),
                                       ("mobilenetv2", "flops=0.667"), ("resnet56", "params=0.3")])
def test_allocation_meets_target_within_one_channel(arch, spec):
    cm = CostModel(build_model(arch))
    tgt = parse_target(spec)
    gen = torch.Generator().manual_seed(0)
    full = cm.full()[0 if tgt.kind == "params" else 1]
    for trial in range(5):
        alive = cm.widths if trial == 0 else [int(torch.randint(max(1, c // 4), c + 1, (1,), generator=gen))
                                              for c in cm.widths]
        a = allocate(cm, alive, tgt)
        assert a.ratio >= tgt.ratio
        assert all(1 <= k <= c for k, c in zip(a.keep, cm.widths))
        idx = 0 if tgt.kind == "params" else 1
        base = cm.cost(a.keep)[idx]
        one_channel = max(cm.cost([k + (j == l) for j, k in enumerate(a.keep)])[idx] - base
                          for l in range(len(a.keep)))
        assert (a.ratio - tgt.ratio) * full <= one_channel


def test_allocation_is_uniform_when_all_alive():
    cm = CostModel(build_model("resnet56"))
    a = allocate(cm, cm.widths, parse_target("flops=0.6"))
    for stage in range(3):  # equal widths, equal alive counts: keep counts differ by at most one
        ks = a.keep[stage * 9:(stage + 1) * 9]
        assert max(ks) - min(ks) <= 1


def test_bad_targets():
    for bad in ("flops=1.2", "flops=0", "params=-0.1", "latency=0.5", "0.6"):
        with pytest.raises(ValueError, match="target"):
            parse_target(bad)
    cm = CostModel(build_model("resnet20"))
    with pytest.raises(ValueError, match="not reachable"):
        allocate(cm, cm.widths, parse_target("params=0.99"))


def test_the_finetune_study_continues_at_the_students_last_lr():
    """05's fine-tuning LR is the one the students ended at (a fixed 0.01 restarted, and broke, a cpu student)."""
    from paper_repro.method import resolve_method
    from paper_repro.studies.ablation import budget, last_epoch_lr

    cpu = resolve_method("resnet56", "flops=0.6", "cpu", 0, **budget("cpu"))
    assert cpu["epochs"] == 3 and cpu["baseline"]["lr"] == pytest.approx(5e-4)
    assert last_epoch_lr(cpu) == pytest.approx(5e-5)  # milestones at epochs 2 and 3: one decay within 3 epochs
    paper = resolve_method("resnet56", "flops=0.6", "paper", 0)
    assert last_epoch_lr(paper) == pytest.approx(1e-3)  # 200 epochs: both decays
