import pytest
import torch

from paper_repro.counting import CostModel, count
from paper_repro.models import MODELS, build_model

# Exact values with 10 classes (issue 2; docs/method.md §5).
EXPECTED = {
    "vgg_small": (14_986_698, 313_463_808),
    "vgg_small_lq": (4_660_106, 607_600_640),
    "resnet20": (269_722, 40_551_040),
    "resnet56": (853_018, 125_485_696),
    "resnet110": (1_727_962, 252_887_680),
    "mobilenetv2": (2_236_682, 265_691_648),
}
GROUPS = {"vgg_small": 13, "vgg_small_lq": 6, "resnet20": 9, "resnet32": 15, "resnet56": 27, "resnet110": 54,
          "mobilenetv2": 17, "resnet50": 32, "tv_resnet18": 8}


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_exact_counts(arch):
    m = build_model(arch)
    c = count(m)
    assert (c["params"], c["macs"]) == EXPECTED[arch]
    assert CostModel(m).full() == EXPECTED[arch]


@pytest.mark.parametrize("arch", list(MODELS))
def test_groups_and_forward(arch):
    m = build_model(arch, num_classes=100, width=0.25).eval()
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    groups = m.channel_groups()
    assert len(groups) == GROUPS[arch]
    for g in groups:
        assert all(r.shape[0] == g.width for r in g.producer_rows() + g.consumer_cols())
        assert all(bn.num_features == g.width for bn in g.norms)


@pytest.mark.parametrize("arch", list(MODELS))
def test_widths_rebuild_and_cost_model(arch):
    """A network rebuilt from random per-group widths counts exactly what the analytic model predicts."""
    g = torch.Generator().manual_seed(1)
    full = build_model(arch, width=0.5)
    cm = CostModel(full)
    for _ in range(2):
        widths = [int(torch.randint(1, w + 1, (1,), generator=g)) for w in full.widths()]
        small = build_model(arch, width=0.5, widths=widths)
        assert small.widths() == widths
        c = count(small)
        assert cm.cost(widths) == (c["params"], c["macs"])


def test_resnet50_counts_at_imagenet_size_and_loads_torchvision_weights():
    """The ImageNet convention (docs/imagenet.md): 1000 classes at 224x224; torchvision's layout, name for name."""
    import torchvision

    m = build_model("resnet50", 1000)
    assert count(m) == {"params": 25_557_032, "macs": 4_089_184_256}
    assert CostModel(m).full() == (25_557_032, 4_089_184_256)
    tv = torchvision.models.resnet50().state_dict()
    assert {k: v.shape for k, v in m.state_dict().items()} == {k: v.shape for k, v in tv.items()}
    m.load_state_dict(tv)
    x = torch.randn(1, 3, 64, 64)
    tvm = torchvision.models.resnet50().eval()
    tvm.load_state_dict(tv)
    with torch.no_grad():
        assert torch.allclose(m.eval()(x), tvm(x), atol=1e-5)


def test_unknown_arch_lists_valid_names():
    with pytest.raises(ValueError, match="arch: unknown architecture 'resnet57'.*resnet56.*mobilenetv2"):
        build_model("resnet57")


def test_bad_widths_length():
    with pytest.raises(ValueError, match="widths"):
        build_model("resnet20", widths=[4, 4])
