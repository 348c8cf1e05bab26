"""Fingerprint of the training paths on the smoke profile: per-epoch losses and accuracies, and sha256 hashes of
the final weights, as JSON. Run before and after a refactor that must change nothing, then diff the two files:

    OMP_NUM_THREADS=1 .venv/bin/python bench/bitwise_fingerprint.py build/bitwise_before.json
    ... refactor ...
    OMP_NUM_THREADS=1 .venv/bin/python bench/bitwise_fingerprint.py build/bitwise_after.json
    diff build/bitwise_before.json build/bitwise_after.json

(The "before" of issue 13: bench/results/bitwise_before.json, from commit d1efeb6 checked out on its own.)

Covers a baseline, the method interrupted after one epoch and resumed, a classic arm (slimming: sparse
training + fine-tuning), a Torch-Pruning arm and a one-network campaign. Everything trains into a temporary
runs/ folder (the project's cache is never touched). Wall-clock times, paths and the commit are left out: they
differ between any two runs.
"""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed one
VOLATILE = ("seconds", "per_second", "commit", "files", "_dir", "record", "teacher_checkpoint")


def weights_hash(model_or_state) -> str:
    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else model_or_state
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k]
        h.update(k.encode())
        if torch.is_tensor(v):
            h.update(str(v.dtype).encode() + str(tuple(v.shape)).encode())
            h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                     if v.numel() else b"")
        else:
            h.update(repr(v).encode())
    return h.hexdigest()


def stable(obj):
    """`obj` without the fields that differ between any two runs (times, paths, commit)."""
    if isinstance(obj, dict):
        return {k: stable(v) for k, v in obj.items() if not any(s in k for s in VOLATILE)}
    if isinstance(obj, (list, tuple)):
        return [stable(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return "nan"
    return obj


def use_runs(folder: Path) -> None:
    """Point the package's run cache at `folder` (as tests/conftest.py does), wherever this version keeps it."""
    import importlib

    for name in ("paper_repro.engine", "paper_repro.train"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "RUNS"):
            module.RUNS = folder


def study(name: str):
    """paper_repro.studies.<name>, or paper_repro.<name> in a version from before the studies subpackage."""
    import importlib

    try:
        return importlib.import_module(f"paper_repro.studies.{name}")
    except ImportError:
        return importlib.import_module(f"paper_repro.{name}")


def fingerprint(root: Path) -> dict:
    from paper_repro.reproduction.campaign import run_campaign
    from paper_repro.method import prune_train
    from paper_repro.train import train_baseline

    run_classic, peer_train = study("classic").run_classic, study("peer").peer_train
    shared_budget = study("ablation").shared_budget

    out = {}
    use_runs(root / "runs")
    torch.manual_seed(0)
    base = train_baseline("resnet20", "smoke", 0, device="cpu", progress=False)
    out["baseline"] = dict(metrics=stable(base.metrics), test_acc=base.test_acc, weights=weights_hash(base.model))

    kw = dict(profile="smoke", seed=0, device="cpu", progress=False, students=2, epochs=3, lambda_max=0.5)
    part = prune_train("resnet20", "flops=0.4", out=root / "prune", max_epochs_now=1, **kw)
    assert not part.summary
    run = prune_train("resnet20", "flops=0.4", out=root / "prune", **kw)
    out["method_resumed"] = dict(
        metrics=stable(run.metrics), scores_rows=len(run.scores),
        scores=hashlib.sha256(json.dumps(run.scores).encode()).hexdigest(), summary=stable(run.summary),
        students=[weights_hash(s) for s in run.students], pruned=[weights_hash(p) for p in run.pruned])

    t56 = train_baseline("resnet56", "smoke", 0, device="cpu", progress=False, epochs=1, train_subset=64)
    out["teacher_resnet56"] = dict(metrics=stable(t56.metrics), weights=weights_hash(t56.model))
    cl = run_classic("slimming", "smoke", 0, "cpu", teacher_run=t56, train_subset=64, epochs=2)
    out["classic_slimming"] = dict(summary=stable(cl.summary), weights=weights_hash(cl.model))

    peer = peer_train("resnet20", "flops=0.50", "smoke", 0, device="cpu", teacher=base.checkpoint,
                      out=root / "peer", progress=False, importance="taylor", iterative_steps=100,
                      **shared_budget("smoke"))
    out["peer_taylor"] = dict(metrics=stable(peer.metrics), summary=stable(peer.summary),
                              weights=weights_hash(peer.model))

    use_runs(root / "campaign_runs")
    rows = run_campaign(["resnet20"], profile="smoke", seed=1, device="cpu", method_epochs=2, progress=False,
                        targets={"resnet20": "flops=0.4"}, export=False, record_to=root / "records")
    method_dir = Path(rows[0]["method_dir"])
    state = torch.load(method_dir / "state.pt", weights_only=False)
    out["campaign"] = dict(rows=stable(rows), students=[weights_hash(s) for s in state["students"]],
                           summary=stable(json.loads((method_dir / "summary.json").read_text())))
    return out


if __name__ == "__main__":
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("build/bitwise_fingerprint.json")
    with tempfile.TemporaryDirectory() as tmp:
        result = fingerprint(Path(tmp))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(result, indent=1, sort_keys=True, default=str) + "\n")
    print(f"wrote {dest}")
