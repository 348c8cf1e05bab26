"""torchrun on CPUs (gloo, 2 processes): the baseline trained by 2 processes at a global batch B is the baseline
trained by one process at batch B, up to floating-point rounding, and so is the method (docs/distributed.md)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import paper_repro.distributed as DI
import paper_repro.train as T
from paper_repro.data import Batches, make_synthetic

TIMEOUT_S = 240  # a launch takes ~20 s on a quiet 2-core machine
ARM_TIMEOUT_S = 900  # a smoke arm of notebook 06/07 on resnet56: a few minutes on 2 cores



STEPS = Path(__file__).with_name("ddp_steps.py")
METHOD = Path(__file__).with_name("ddp_method.py")


def launch(cmd, runs=None, timeout_s=TIMEOUT_S):
    """Run `cmd` (stdout, stderr): it and what it starts are one process group of ours (a new session), stopped
    by its id whatever happens."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PAPER_REPRO_PROGRESS": "0"}
    if runs is not None:
        env["PAPER_REPRO_RUNS"] = str(runs)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout_s)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)  # the group we started (start_new_session): launcher and workers
            p.wait()
    assert p.returncode == 0, err[-3000:]
    return out, err


def torchrun(args, runs, nproc=2, timeout_s=TIMEOUT_S):
    """`torchrun --standalone --nproc_per_node=nproc -m paper_repro ARGS` writing into `runs`: rank 0's JSON line."""
    out, _ = launch([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                     "-m", "paper_repro", *args], runs, timeout_s)
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert len(lines) == 1, out  # one answer: rank 0's
    return lines[0]


def test_shards_cut_every_global_batch_into_contiguous_slices():
    split = make_synthetic(n_train=64, n_test=8).train
    kw = dict(batch_size=16, mean=(0.5,) * 3, std=(0.25,) * 3, train=True, seed=3)
    whole = list(Batches(split, **kw).set_epoch(2))
    parts = [list(Batches(split, **kw, shard=(r, 2)).set_epoch(2)) for r in range(2)]
    for b, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([parts[0][b][0], parts[1][b][0]]), x)
        assert torch.equal(torch.cat([parts[0][b][1], parts[1][b][1]]), y)
    with pytest.raises(ValueError, match="batch_size"):
        Batches(split, **{**kw, "batch_size": 15}, shard=(0, 2))


def test_one_process_is_not_distributed():
    assert not DI.launched() and not DI.active() and DI.is_main() and DI.shard() == (0, 1)
    m = torch.nn.Linear(2, 2)
    assert DI.wrap(m, torch.device("cpu")) is m and DI.from_main(7) == 7
    assert DI.sum_over_ranks(torch.ones(()), 3) == (torch.ones(()), 3)


def test_two_processes_are_one_in_float64(tmp_path, capsys):
    """The engine's pieces (shards, DistributedDataParallel, synced BatchNorm, train_epoch) in float64: 8 SGD
    steps by 2 gloo processes at global batch 32 are those of one process at batch 32, to rounding."""
    launch([sys.executable, str(STEPS), str(tmp_path / "one.pt")])
    launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(STEPS),
            str(tmp_path / "two.pt")])
    one, two = (torch.load(tmp_path / f"{k}.pt", weights_only=False) for k in ("one", "two"))
    assert (one["world"], two["world"], one["n"], two["n"]) == (1, 2, 128, 128)
    loss = max(abs(a - b) for a, b in zip(one["losses"], two["losses"]))
    weights = max((one["model"][k] - two["model"][k]).abs().max().item() for k in one["model"]
                  if one["model"][k].is_floating_point())
    with capsys.disabled():
        print(f"\nfloat64, 2 processes vs 1, max abs diffs: losses {loss:.3g}, weights {weights:.3g}")
    assert loss < 1e-6 and weights < 1e-9  # measured: 0 and ~1.5e-13


def test_method_two_processes_are_one_in_float64(tmp_path, capsys):
    """The method (2 students, Taylor scores from the averaged gradients, selection, prox, allocation) in float64:
    2 gloo processes at global batch 32 select the same channels at every epoch and end at the same widths as one
    process; every rank's selection is also checked equal to the others' at every epoch (`distributed.check_same`,
    inside `Method.end_epoch`)."""
    launch([sys.executable, str(METHOD), str(tmp_path / "one.pt")])
    launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(METHOD),
            str(tmp_path / "two.pt")])
    one, two = (torch.load(tmp_path / f"{k}.pt", weights_only=False) for k in ("one", "two"))
    assert (one["world"], two["world"]) == (1, 2)
    for epoch_one, epoch_two in zip(one["selected"], two["selected"]):  # per epoch, per student, per layer
        assert all(torch.equal(a, b) for sa, sb in zip(epoch_one, epoch_two) for a, b in zip(sa, sb))
    assert one["alive"] == two["alive"] and one["alive"][0] != [4, 4, 4, 8, 8, 8, 16, 16, 16]  # it did prune
    assert [r["alive_widths"] for r in one["rows"]] == [r["alive_widths"] for r in two["rows"]]
    scores = max((a - b).abs().max().item() for a, b in zip(one["scores"], two["scores"]))
    weights = max((sa[k] - sb[k]).abs().max().item() for sa, sb in zip(one["students"], two["students"]) for k in sa
                  if sa[k].is_floating_point())
    losses = max(abs(ra[k] - rb[k]) for ra, rb in zip(one["rows"], two["rows"]) for k in ra if k.startswith("loss_"))
    with capsys.disabled():
        print(f"\nmethod, float64, 2 processes vs 1, max abs diffs: Taylor scores {scores:.3g}, weights "
              f"{weights:.3g}, loss terms {losses:.3g}; selected sets and widths equal")
    # measured: scores 2.3e-10 (largest score 1e-2), weights 5.4e-10, losses 2.4e-7 (the loss terms are float32)
    assert scores < 1e-8 and weights < 1e-8 and losses < 1e-5


def diffs(metrics_a, weights_a, metrics_b, weights_b) -> dict:
    """Max abs differences of the per-epoch losses and accuracies and of the final weights."""
    out = {k: max(abs(a[k] - b[k]) for a, b in zip(metrics_a, metrics_b))
           for k in ("train_loss", "test_loss", "train_acc", "test_acc")}
    out["weights"] = max((weights_a[k].float() - weights_b[k].float()).abs().max().item() for k in weights_b)
    return out


def test_two_processes_match_one_and_resume(tmp_path, monkeypatch, capsys):
    """2 gloo processes, interrupted after one epoch and resumed under torchrun, against one process.

    "Within floating-point tolerance" is measured, not guessed: at initialisation these small networks' float32
    gradients carry relative errors near 1e-3 (BatchNorm's backward over 65,536 values per channel; the float64
    gradient is the reference), whatever computes them, and 16 SGD steps at lr 0.1 amplify them. So the yardstick
    is what float32 alone changes in one process: the same run in the other memory layout (channels_last off),
    mathematically the same computation. 2 processes must stay within a small multiple of that."""
    args = ["train", "resnet20", "--profile", "smoke", "--device", "cpu"]
    part = torchrun(args + ["--max-epochs-now", "1"], tmp_path / "ddp")
    assert part["epochs_done"] == 1
    two = torchrun(args, tmp_path / "ddp")  # resumes from rank 0's checkpoint
    assert two["epochs_done"] == 2
    ckpt = torch.load(os.path.join(two["run_dir"], "checkpoint.pt"), weights_only=False)
    assert sorted(p.name for p in (tmp_path / "ddp" / "baselines").iterdir()) == [os.path.basename(two["run_dir"])]

    one = T.train_baseline("resnet20", "smoke", 0, device="cpu", progress=False)
    layout = T.train_baseline("resnet20", "smoke", 0, device="cpu", progress=False, channels_last=False)
    assert len(ckpt["metrics"]) == len(one.metrics) == 2
    ref = one.model.state_dict()
    got = diffs(ckpt["metrics"], ckpt["model"], one.metrics, ref)
    floor = diffs(layout.metrics, layout.model.state_dict(), one.metrics, ref)
    with capsys.disabled():
        print(f"\n2 processes vs 1, max abs diffs: {got}\n1 process, other layout vs 1: {floor}")
    for key in got:
        assert got[key] <= 4 * floor[key] + 1e-5, (key, got, floor)

    # the method under torchrun, on the teacher just trained (cached in the same runs/ folder)
    pruned = torchrun(["prune", "--arch", "resnet20", "--target", "flops=0.4", "--profile", "smoke", "--device",
                       "cpu", "--epochs", "1"], tmp_path / "ddp")
    # exact up to float64 rounding: the gap was 0 on an Intel Xeon, 3.6e-12 on an AMD EPYC
    assert pruned["max_abs_logit_diff"] < 1e-9 and pruned["params_after"] <= pruned["params_before"]
    assert (Path(pruned["run_dir"]) / "summary.json").exists()


def test_classic_and_peer_arms_under_torchrun(tmp_path, monkeypatch, capsys):
    """`arm` under torchrun: network slimming (labelled sparse training, global γ threshold, cut) and a
    Torch-Pruning arm (TP's group penalty on the averaged gradients, Taylor ranking, TP's own pruning) run on 2
    gloo processes, rank 0 answering and writing alone. Slimming against one process from the same teacher:
    the same cut, the sparse-training loss equal to float32 rounding (measured: 3.6e-7 apart)."""
    import shutil

    import paper_repro.engine as E
    from paper_repro.studies import classic
    from paper_repro.studies.ablation import SUBJECT

    ddp, one_runs = tmp_path / "ddp", tmp_path / "one"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process (OMP_NUM_THREADS=1)
    try:
        monkeypatch.setattr(E, "RUNS", ddp)  # the arms' teacher, trained here in one process (train's own test
        T.train_baseline(SUBJECT["arch"], "smoke", 0, device="cpu", progress=False)  # covers it under torchrun)
        slim = torchrun(["arm", "06-slimming", "--profile", "smoke", "--device", "cpu"], ddp, timeout_s=ARM_TIMEOUT_S)
        peer = torchrun(["arm", "07-tp-taylor-ce", "--profile", "smoke", "--device", "cpu"], ddp,
                        timeout_s=ARM_TIMEOUT_S)
        shutil.copytree(ddp / "baselines", one_runs / "baselines")  # the same teacher
        monkeypatch.setattr(E, "RUNS", one_runs)
        one = classic.run_classic("slimming", "smoke", 0, device="cpu").summary
    finally:
        torch.set_num_threads(threads)
    two = json.loads((Path(slim["run_dir"]) / "summary.json").read_text())
    tp = json.loads((Path(peer["run_dir"]) / "summary.json").read_text())
    assert tp["target_met"] and tp["max_abs_logit_diff_rebuilt"] == 0.0 and tp["channels_cut"] > 0
    assert two["target_met"] and two["max_abs_logit_diff"] < 1e-4 and two["sparse_epochs"] >= 1
    for run in (slim, peer):  # the pruned network loads without the training code, its state dict unprefixed
        state = torch.load(Path(run["run_dir"]) / "pruned_state.pt", weights_only=False)["state_dict"]
        assert not any(k.startswith("module.") for k in state)
    assert one["widths"] == two["widths"]
    loss = max(abs(a["train_loss"] - b["train_loss"]) for a, b in zip(one["metrics"], two["metrics"]))
    with capsys.disabled():
        print(f"\nslimming, 2 processes vs 1: same widths, train loss max abs diff {loss:.3g}")
    assert len(one["metrics"]) == len(two["metrics"]) and loss < 1e-4


def test_other_commands_refuse_torchrun(monkeypatch, capsys):
    """Under torchrun only `train`, `prune` and `arm` run: the loops over many runs (teachers, campaign,
    reproduce...) stop at once rather than run K copies of each."""
    from paper_repro.__main__ import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["teachers", "--archs", "resnet20"]) == 2
    assert "teachers: runs in one process only" in capsys.readouterr().err
