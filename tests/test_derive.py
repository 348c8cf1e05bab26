"""Channel groups derived from the traced graph (paper_repro/models/derive.py, docs/own_network.md): equal to the
hand-written ones, refused with one clear error where the walk cannot follow, and enough to prune a torchvision
network end to end."""
import pytest
import torch
from torch import nn

from paper_repro.models import build_model
from paper_repro.models.derive import DerivedNet, derive_channel_groups
from paper_repro.export import load_pruned
from paper_repro.surgery import mask_model, prune_model


def _key(groups):
    return [(tuple(map(id, g.producers)), tuple(map(id, g.norms)), tuple(map(id, g.consumers)), g.repeat)
            for g in groups]


@pytest.mark.parametrize("arch", ["vgg_small", "vgg_small_lq", "resnet56", "mobilenetv2"])
def test_derived_groups_equal_the_hand_written(arch):
    m = build_model(arch)
    assert _key(derive_channel_groups(m, torch.randn(2, 3, 32, 32))) == _key(m.channel_groups())


def test_resnet50_derives_its_stem_too_and_surgery_on_it_is_exact():
    """The stem's channels meet no residual add (block 1's shortcut is a projection): a valid group the hand-written
    list (each bottleneck's two inner widths, as DPFPS prunes) leaves out. Everything else is equal."""
    m = build_model("resnet50", width=0.25)
    derived = derive_channel_groups(m, torch.randn(2, 3, 64, 64))
    assert derived[0].producers == [m.conv1] and derived[0].norms == [m.bn1]
    assert derived[0].consumers == [m.layer1[0].conv1, m.layer1[0].downsample[0]]
    assert _key(derived[1:]) == _key(m.channel_groups())
    net = DerivedNet(m, resolution=64)  # the derived groups, stem included, in float64
    with torch.no_grad():
        for bn in net.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_var.uniform_(0.5, 2)
                bn.running_mean.normal_()
    net = net.double().eval()
    gen = torch.Generator().manual_seed(0)
    dead = [torch.rand(w, generator=gen) < 0.5 for w in net.widths()]
    for d in dead:
        d[0] = False
    masked = mask_model(net, dead)
    pruned = prune_model(masked, dead)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        assert (pruned(x) - masked(x)).abs().max().item() < 1e-10
    assert pruned.widths() == [int((~d).sum()) for d in dead] and pruned.net.conv1.out_channels < 16


class _Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=2)

    def forward(self, x):
        return self.b(self.a(x).relu()).mean((2, 3))


class _Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return self.b(self.b(self.a(x).relu()).relu()).mean((2, 3))


class _Reshape(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        y = self.a(x).relu()
        return y.view(y.shape[0], 2, 4, -1).sum(1)  # a channel shuffle / grouping


class _LayerNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.n, self.b = nn.Conv2d(3, 8, 1), nn.LayerNorm([8, 4, 4]), nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return self.b(self.n(self.a(x)).relu())


class _Cat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(3, 8, 1), nn.Conv2d(16, 4, 1)
        self.d = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.d(self.c(torch.cat([self.a(x).relu(), self.b(x).relu()], 1)).relu())


@pytest.mark.parametrize("net,message", [
    (_Grouped, r"grouped convolution \(groups=2, not depthwise\) at graph node 'b'"),
    (_Shared, "module b is called twice"),
    (_Reshape, "a reshape other than a flatten"),
    (_LayerNorm, "layer kind LayerNorm is not supported"),
])
def test_what_the_walk_cannot_follow_is_one_clear_error(net, message):
    with pytest.raises(ValueError, match=message) as e:
        derive_channel_groups(net(), torch.randn(2, 3, 4, 4))
    assert "write channel_groups() by hand" in str(e.value)


def test_a_concatenation_pins_its_inputs():
    m = _Cat()
    assert [g.producers for g in derive_channel_groups(m, torch.randn(2, 3, 4, 4))] == [[m.c]]


def test_a_torchvision_resnet18_prunes_end_to_end_on_smoke(tmp_path):
    """Nobody wrote groups for it: baseline, method, removal, reload, with exact surgery (float64 logit gap)."""
    from paper_repro.method import prune_train

    run = prune_train("tv_resnet18", "flops=0.5", "smoke", device="cpu", out=tmp_path / "run", progress=False,
                      export=False, lambda_max=0.5)  # strong enough to cut channels in 2 smoke epochs
    s = run.summary
    assert s["max_abs_logit_diff"] <= 1e-9 and s["params_after"] < s["params_before"]
    assert len(s["per_student"][0]["widths"]) == 8
    back = load_pruned(tmp_path / "run")
    assert back.widths() == s["per_student"][s["best_student"]]["widths"]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(back(x), run.pruned[s["best_student"]].cpu().eval()(x), atol=1e-5)
