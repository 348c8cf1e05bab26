import pytest
import torch

import paper_repro.engine as E
import paper_repro.train as T
from paper_repro.storage import CheckpointError


def _run(**kw):
    return T.train_baseline("resnet20", "smoke", seed=0, device="cpu", progress=False, **kw)


def test_smoke_training_learns_and_is_deterministic(tmp_path, monkeypatch):
    a = _run()
    assert len(a.metrics) == 2 and (a.run_dir / "metrics.csv").exists() and (a.run_dir / "config.json").exists()
    assert a.metrics[-1]["train_loss"] < a.metrics[0]["train_loss"]
    monkeypatch.setattr(E, "RUNS", tmp_path / "other")  # a fresh run, not the cache
    b = _run()
    assert [m["train_loss"] for m in a.metrics] == [m["train_loss"] for m in b.metrics]
    assert a.test_acc == b.test_acc


def test_cached_run_is_not_retrained():
    a = _run()
    mtime = (a.run_dir / "checkpoint.pt").stat().st_mtime_ns
    b = _run()
    assert (b.run_dir / "checkpoint.pt").stat().st_mtime_ns == mtime and b.metrics == a.metrics


def test_interrupted_run_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    full = _run(epochs=3)
    monkeypatch.setattr(E, "RUNS", tmp_path / "resumed")
    part = _run(epochs=3, max_epochs_now=1)
    assert len(part.metrics) == 1
    resumed = _run(epochs=3)
    assert [m["train_loss"] for m in resumed.metrics] == [m["train_loss"] for m in full.metrics]
    assert resumed.test_acc == full.test_acc
    for p, q in zip(resumed.model.state_dict().values(), full.model.state_dict().values()):
        assert torch.equal(p, q)


def test_corrupt_checkpoint_is_an_error_naming_the_file():
    a = _run()
    ckpt = a.run_dir / "checkpoint.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=f"{ckpt}.*Delete it"):
        _run()


def test_mismatched_checkpoint_is_an_error():
    a = _run()
    other = T.train_baseline("resnet32", "smoke", seed=0, device="cpu", progress=False)
    (a.run_dir / "checkpoint.pt").write_bytes((other.run_dir / "checkpoint.pt").read_bytes())
    with pytest.raises(CheckpointError, match="arch='resnet32' but 'resnet20' was expected"):
        _run()


def test_bad_profile_and_settings():
    with pytest.raises(ValueError, match="profile: unknown profile 'gpu'.*smoke, cpu, paper"):
        T.train_baseline("resnet20", "gpu")
    with pytest.raises(ValueError, match="unknown setting"):
        T.train_baseline("resnet20", "smoke", epochz=3)


def test_lr_never_decays_before_the_first_step():
    """A 1-epoch run must train at the configured lr (a milestone rounded to 0 would divide it by 10)."""
    from paper_repro.config import resolve_baseline
    from paper_repro.models import build_model
    from paper_repro.engine import make_optimizer

    cfg = resolve_baseline("resnet20", "smoke", epochs=1)
    opt, _ = make_optimizer(build_model("resnet20", width=0.25), cfg, steps_per_epoch=4)
    assert opt.param_groups[0]["lr"] == cfg["lr"]


def test_recalibrate_bn_recomputes_the_running_statistics():
    """One pass, momentum None: the running mean is the plain average of the batch means (the same batch size
    each), the running variance that of the unbiased batch variances; momentum is restored, eval mode after."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    model[1].running_mean.fill_(5.0)  # stale statistics, as after a cut
    batches = [(torch.randn(8, 3, 4, 4) * (i + 1), None) for i in range(3)]
    E.recalibrate_bn_(model, batches)
    with torch.no_grad():
        outs = [model[0](x) for x, _ in batches]
    mean = torch.stack([o.mean((0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.transpose(0, 1).reshape(4, -1).var(1) for o in outs]).mean(0)
    assert torch.allclose(model[1].running_mean, mean, atol=1e-5)
    assert torch.allclose(model[1].running_var, var, rtol=1e-4)
    assert model[1].momentum == 0.1 and not model.training
    E.recalibrate_bn_(model, batches, max_batches=1)  # only the first batch now
    assert torch.allclose(model[1].running_mean, outs[0].mean((0, 2, 3)), atol=1e-5)


def test_predicted_counts_cover_the_split():
    from paper_repro import data as D

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    x = torch.randint(0, 255, (50, 3, 32, 32), dtype=torch.uint8)
    b = D.Batches(D.Split(x, torch.zeros(50, dtype=torch.long)), 16, D.MEAN["cifar10"], D.STD["cifar10"], train=False)
    counts = E.predicted_counts(model, b, 10)
    assert len(counts) == 10 and sum(counts) == 50
    with torch.no_grad():
        ref = torch.bincount(model(torch.cat([xb for xb, _ in b])).argmax(1), minlength=10).tolist()
    assert counts == ref


def test_lr_milestones_are_distinct_and_increasing():
    """Rounding alone put both decays of a 3-epoch run on epoch 2 (lr/100 in the last epoch)."""
    from paper_repro.engine import milestone_epochs

    assert milestone_epochs([0.5, 0.75], 3) == [2, 3]
    assert milestone_epochs([0.5, 0.75], 200) == [100, 150]
    assert milestone_epochs([0.5, 0.75], 1) == [1, 2]
    for epochs in range(1, 60):
        ms = milestone_epochs([0.5, 0.75], epochs)
        assert ms[0] >= 1 and ms[0] < ms[1]
    m = torch.nn.Linear(2, 2)
    opt, sched = E.make_optimizer(m, dict(lr=0.05, momentum=0.9, weight_decay=0.0, lr_milestones=[0.5, 0.75],
                                          lr_gamma=0.1, epochs=3), steps_per_epoch=10)
    lrs = []
    for _ in range(3):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.05, 0.05, 0.005])


def test_warmup_cosine_is_stepped_per_update():
    """cosine: linear warm-up to the peak over warmup_epochs, then a half cosine to ~0 at the last step."""
    m = torch.nn.Linear(2, 2)
    cfg = dict(lr=0.2, momentum=0.9, nesterov=True, weight_decay=0.0, lr_schedule="cosine", warmup_epochs=1,
               lr_milestones=[0.5, 0.75], lr_gamma=0.1, epochs=4)
    opt, sched = E.make_optimizer(m, cfg, steps_per_epoch=10)
    assert isinstance(sched, E.PerStepLR) and opt.param_groups[0]["nesterov"]
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.02) and lrs[9] == pytest.approx(0.2)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 0.002
