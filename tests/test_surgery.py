"""Pruning surgery (docs/method.md §4): the pruned network computes what the masked one computes, on every
architecture, and it saves, reloads and exports (torch.export, ONNX) without the training code."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from paper_repro.models import MODELS, build_model
from paper_repro.storage import CheckpointError
from paper_repro.surgery import dead_masks, mask_model, prune_model
from paper_repro.export import export_onnx, load_pruned, save_pruned

WIDTH, NUM_CLASSES, TOL = 0.25, 10, 1e-4
# Random dead-channel patterns per arch: pattern 0 = all alive, 1 = all but one dead in every group, the rest
# mixed. Fewer for the slow nets, to keep this file within about a minute on 2 CPU cores.
N_PATTERNS = {"vgg_small": 4, "resnet110": 4, "mobilenetv2": 4, "resnet50": 4}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These nets are tiny: on a busy 2-core machine, 2 threads spend more time in OpenMP barriers than in
    the arithmetic (resnet110 forward measured 0.05 s with 1 thread, up to 3.5 s with 2)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _model(arch, seed=0, width=WIDTH, size=32):
    """Eval-mode model with non-trivial BN affine parameters and running statistics, so that a surgery that
    dropped or misaligned any BN entry would change the logits. The statistics are calibrated on a random
    batch first (then perturbed): arbitrary ones make a deep net's logits nearly independent of its input,
    and the comparisons below would test little."""
    torch.manual_seed(seed)
    model = build_model(arch, NUM_CLASSES, width=width)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(0.5 + 0.5 * torch.randn_like(bn.weight))
            bn.bias.normal_(0, 0.5)
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: after one batch, exactly its statistics
        model.train()(torch.randn(16, 3, size, size))
        for bn in bns:
            bn.running_mean.add_(0.2 * bn.running_var.sqrt() * torch.randn_like(bn.running_mean))
            bn.running_var.mul_(torch.empty_like(bn.running_var).uniform_(0.7, 1.4))
            bn.momentum = 0.1
    return model.eval()


def _pattern(model, k, gen):
    """Dead masks: k = 0 all alive; k = 1 all but one dead in every group; k = 2 all but one dead in one
    random group; otherwise a random fraction per group (some groups untouched). Never a whole group."""
    groups = model.channel_groups()
    one_left = {1: range(len(groups)), 2: [int(torch.randint(len(groups), (1,), generator=gen))]}.get(k, [])
    dead = []
    for i, g in enumerate(groups):
        if k == 0 or (k > 2 and torch.rand(1, generator=gen).item() < 0.25):
            d = torch.zeros(g.width, dtype=torch.bool)
        elif i in one_left:
            d = torch.ones(g.width, dtype=torch.bool)
        else:
            d = torch.rand(g.width, generator=gen) < torch.empty(1).uniform_(0.2, 0.8, generator=gen).item()
        if d.all():
            d[int(torch.randint(g.width, (1,), generator=gen))] = False
        dead.append(d)
    return dead


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


def _pruned(arch, seed=0):
    model = _model(arch, seed)
    dead = _pattern(model, 2, torch.Generator().manual_seed(seed))
    return prune_model(mask_model(model, dead), dead)


@pytest.mark.parametrize("arch", list(MODELS))
def test_pruned_equals_masked(arch):
    model = _model(arch)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 32, 32, generator=gen)
    for k in range(N_PATTERNS.get(arch, 8)):
        dead = _pattern(model, k, gen)
        masked = mask_model(model, dead)
        pruned = prune_model(masked, dead)
        assert type(pruned) is type(model) and not pruned.training
        with torch.no_grad():
            diff = (pruned(x) - masked(x)).abs().max().item()
        assert diff <= TOL, f"{arch} pattern {k}: max |pruned - masked| = {diff:.3g}"
        alive = [int((~d).sum()) for d in dead]
        assert [g.width for g in pruned.channel_groups()] == alive == pruned.widths()
        # The masked model's zeroed channels are exactly what dead_masks finds.
        assert all(torch.equal(a, b) for a, b in zip(dead_masks(masked), dead))
        if any(d.any() for d in dead):
            assert _n_params(pruned) < _n_params(masked)
        else:
            assert _n_params(pruned) == _n_params(masked)
        assert all(p.is_contiguous() for p in pruned.parameters())
        # Negative control: cutting the wrong channels must show up, so the tolerance has teeth. (Not on
        # pattern 1: with one channel per layer the ReLUs may leave nothing for the logits to depend on.)
        wrong = [d.roll(1) for d in dead]
        if k >= 2 and any(not torch.equal(w, d) for w, d in zip(wrong, dead)):
            with torch.no_grad():
                assert (prune_model(masked, wrong)(x) - masked(x)).abs().max().item() > 10 * TOL
        # The original model is untouched (surgery works on copies).
        assert [g.width for g in model.channel_groups()] == [len(d) for d in dead]


def test_resnet50_full_width_exact_in_float64():
    """ResNet-50 at its real widths (64x64 input to stay fast): in float64 the pruned network computes the masked
    one's logits to rounding, for random masks over all 32 groups."""
    model = _model("resnet50", width=1.0, size=64).double()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 64, 64, generator=gen, dtype=torch.float64)
    for k in (1, 3):
        dead = _pattern(model, k, gen)
        masked = mask_model(model, dead)
        pruned = prune_model(masked, dead)
        with torch.no_grad():
            out = masked(x)
            diff = (pruned(x) - out).abs().max().item()
        assert diff <= 1e-10 * max(1.0, out.abs().max().item()), f"pattern {k}: {diff:.3g}"
        assert pruned.widths() == [int((~d).sum()) for d in dead]
        assert _n_params(pruned) < _n_params(masked)


@pytest.mark.parametrize("arch", list(MODELS))
def test_dead_masks_recovers_zeroed_channels(arch):
    gen = torch.Generator().manual_seed(2)
    for k in (1, 2, 3):
        model = _model(arch, seed=k)
        dead = _pattern(model, k, gen)
        for g, d in zip(model.channel_groups(), dead):
            g.zero_channels(d)
        found = dead_masks(model)
        assert all(torch.equal(a, b) for a, b in zip(found, dead)), f"{arch} pattern {k}"
        # dead=None means "use dead_masks": same cut.
        assert prune_model(model).widths() == [int((~d).sum()) for d in dead]


def test_dead_masks_threshold_and_keeps_one():
    model = _model("resnet20")
    g = model.channel_groups()[0]
    with torch.no_grad():  # channel 0: producer gone, consumer slice tiny but not zero -> still below 1% of max
        g.producers[0].weight[0] = 0
        g.consumers[0].weight[:, 0] *= 1e-4
        g.producers[0].weight[1] = 0  # channel 1: producer gone, consumer intact -> alive (n_c sums both)
    d = dead_masks(model)[0]
    assert d[0] and not d[1] and int(d.sum()) == 1
    for grp in model.channel_groups():  # everything zero: the strongest (here: first) channel is kept
        grp.zero_channels(torch.ones(grp.width, dtype=torch.bool))
    assert all(int((~d).sum()) == 1 for d in dead_masks(model))
    with pytest.raises(ValueError, match="every channel"):
        prune_model(model, [torch.ones(grp.width, dtype=torch.bool) for grp in model.channel_groups()])


def test_channels_last_model():
    model = _model("mobilenetv2").to(memory_format=torch.channels_last)
    dead = _pattern(model, 2, torch.Generator().manual_seed(3))
    masked = mask_model(model, dead)
    pruned = prune_model(masked, dead)
    x = torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)
    with torch.no_grad():
        assert (pruned(x) - masked(x)).abs().max().item() <= TOL
    assert all(p.is_contiguous() for p in pruned.parameters())


@pytest.mark.parametrize("arch", list(MODELS))
def test_state_dict_round_trip(arch):
    pruned = _pruned(arch)
    rebuilt = build_model(arch, NUM_CLASSES, width=WIDTH, widths=pruned.widths())
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)
    rebuilt.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), pruned(x))


CHILD = textwrap.dedent("""
    import sys, torch
    for pt2, io in zip(sys.argv[1::2], sys.argv[2::2]):
        ref = torch.load(io, weights_only=True)
        m = torch.export.load(pt2).module()
        with torch.no_grad():
            y = m(ref["x"])
        diff = (y - ref["y"]).abs().max().item()
        assert diff <= 1e-4, (pt2, diff)
        print(pt2, "ok", diff)
    assert "paper_repro" not in sys.modules, "the .pt2 needed paper_repro"
""")


def test_save_load_and_pt2_runs_without_paper_repro(tmp_path):
    argv = []
    for arch in ("resnet20", "mobilenetv2"):
        pruned = _pruned(arch)
        out = tmp_path / arch
        x = torch.randn(3, 3, 32, 32)
        with torch.no_grad():
            y = pruned(x)
        # A batch of one as the example (as method.py passes): the .pt2 must still take a batch of 3.
        paths = save_pruned(pruned, arch, NUM_CLASSES, WIDTH, out, x[:1])
        assert sorted(p.name for p in out.iterdir()) == ["pruned.pt2", "pruned_state.pt", "widths.json"]
        assert json.loads(paths["widths"].read_text())["widths"] == pruned.widths()
        ckpt = torch.load(paths["state"], weights_only=True)
        assert (ckpt["arch"], ckpt["num_classes"], ckpt["width"], ckpt["widths"]) == (
            arch, NUM_CLASSES, WIDTH, pruned.widths())
        loaded = load_pruned(out)
        assert type(loaded) is type(pruned) and loaded.widths() == pruned.widths()
        with torch.no_grad():
            assert torch.equal(loaded(x), y)
        torch.save({"x": x, "y": y}, out / "io.pt")
        argv += [str(paths["pt2"]), str(out / "io.pt")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    res = subprocess.run([sys.executable, "-c", CHILD, *argv], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count(" ok ") == 2


def test_onnx_matches_in_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pruned = _pruned("resnet20")
    path = export_onnx(pruned, tmp_path / "pruned.onnx", torch.randn(1, 3, 32, 32))
    assert [p.name for p in tmp_path.iterdir()] == ["pruned.onnx"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 32, 32)
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        diff = (torch.from_numpy(y) - pruned(x)).abs().max().item()
    assert diff <= TOL, diff


def test_load_pruned_bad_file_never_says_delete(tmp_path):
    # The user's file: a wrong or missing one is named, with what to pass instead, and never "delete it".
    (tmp_path / "pruned_state.pt").write_bytes(b"not a checkpoint")
    for path in (tmp_path, tmp_path / "absent.pt"):
        with pytest.raises(CheckpointError) as e:
            load_pruned(path)
        assert "pruned_state.pt" in str(e.value) and "delete" not in str(e.value).lower()
