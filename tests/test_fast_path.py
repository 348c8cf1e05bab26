"""The vectorised sparsity step (all layers of all students at once) against the per-layer loop it replaced:
same scores, same expected-sparse sets (ties by index), same weights after the prox, on every architecture."""
import pytest
import torch

from paper_repro.ista import group_prox_
from paper_repro.config import EXECUTION
from paper_repro.method import METHOD, resolve_method, sparsify_step
from paper_repro.models import MODELS, build_model
from paper_repro.models.groups import FlatGroups
from paper_repro.sensitivity import channel_scores, smallest_mask


def reference_step(groups, m_sparse, theta, criterion, selection, selected, generator):
    """The per-layer sparsify_step as it was: score, select and prox one layer at a time."""
    first = None
    for i, gs in enumerate(groups):
        if selection == "dynamic" or selected[i] is None:
            sc = [channel_scores(g, criterion, generator) for g in gs]
            selected[i] = [smallest_mask(v, m) for v, m in zip(sc, m_sparse[i])]
            if i == 0:
                first = sc
        for g, sel in zip(gs, selected[i]):
            group_prox_(g, sel, theta)
    return first


def students(arch, seed, n=2):
    """n students with random weights and gradients; some channels tie (zero gradient, equal scores) and
    some are tiny (the prox zeroes them)."""
    torch.manual_seed(seed)
    nets = [build_model(arch, width=0.25) for _ in range(n)]
    for net in nets:
        for p in net.parameters():
            p.grad = torch.randn_like(p)
        for g in net.channel_groups():
            for q in g.producers + g.consumers:
                q.weight.grad[:2] = 0  # producer rows 0-1 / consumer rows: ties at score 0 in some layers
            g.producers[0].weight.data[-1] *= 1e-4
    return nets


# Taylor (the method's criterion) on every architecture; the ablation criteria on one of each family.
CASES = [(a, "taylor") for a in sorted(MODELS)] + \
    [(a, c) for a in ("resnet20", "vgg_small", "mobilenetv2") for c in ("l1", "bn", "random")]


@pytest.mark.parametrize("arch,criterion", CASES)
def test_vectorised_step_equals_per_layer_loop(arch, criterion):
    for selection in ("dynamic", "static"):
        a, b = students(arch, 1), students(arch, 1)
        ga, gb = [s.channel_groups() for s in a], [s.channel_groups() for s in b]
        m = [[(k * 7 + i) % g.width + (k % 3 == 0) * g.width for k, g in enumerate(gs)] for i, gs in enumerate(ga)]
        m = [[min(v, g.width) for v, g in zip(ms, gs)] for ms, gs in zip(m, ga)]  # 0 .. C, both ends included
        sel_a, sel_b = [None, None], [None, None]
        gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        flat = FlatGroups(gb)
        for step in range(3):
            theta = 0.02 * (step + 1)
            ra = reference_step(ga, m, theta, criterion, selection, sel_a, gen_a)
            rb = sparsify_step(flat, m, theta, criterion, selection, sel_b, gen_b)
            assert (ra is None) == (rb is None)
            if ra is not None:
                assert all(torch.equal(x, y) for x, y in zip(ra, rb))
            for xs, ys in zip(sel_a, sel_b):
                assert all(torch.equal(x, y) for x, y in zip(xs, ys))
            for p, q in zip([p for s in a for p in s.parameters()], [q for s in b for q in s.parameters()]):
                assert torch.equal(p, q), (arch, criterion, selection, step)
        assert gen_a.get_state().equal(gen_b.get_state())


def test_plain_group_lists_are_accepted():
    a, b = students("resnet20", 2), students("resnet20", 2)
    m = [[1] * len(s.channel_groups()) for s in a]
    ref = reference_step([s.channel_groups() for s in a], m, 0.1, "taylor", "dynamic", [None] * 2, None)
    got = sparsify_step([s.channel_groups() for s in b], m, 0.1, "taylor", "dynamic", [None] * 2, None)
    assert all(torch.equal(x, y) for x, y in zip(ref, got))


def test_flat_groups_refuses_an_order_it_cannot_reproduce():
    gs = build_model("vgg_small", width=0.25).channel_groups()
    FlatGroups([gs])  # forward chain: fine
    with pytest.raises(ValueError, match="earlier-or-same group consumes"):
        FlatGroups([gs[::-1]])
    with pytest.raises(ValueError, match="2 counts for"):
        FlatGroups([gs]).limit([[1, 1]])


def test_compile_setting():
    assert EXECUTION["compile"] is False and "compile" not in METHOD  # an execution setting, not the method's
    assert resolve_method("resnet20", "flops=0.5", "smoke")["compile"] is False
    assert resolve_method("resnet20", "flops=0.5", "smoke", compile="reduce-overhead")["compile"] == "reduce-overhead"
    with pytest.raises(ValueError, match="compile: unknown value 'fast'"):
        resolve_method("resnet20", "flops=0.5", "smoke", compile="fast")
    # An execution setting: it does not change the numbers' cache key.
    from paper_repro.config import config_key
    c0 = resolve_method("resnet20", "flops=0.5", "smoke")
    c1 = resolve_method("resnet20", "flops=0.5", "smoke", compile="default")
    assert config_key(c0, exclude=("profile", "compile")) == config_key(c1, exclude=("profile", "compile"))
