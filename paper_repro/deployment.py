"""Deploying a pruned run: measured speed of the dense teacher vs the pruned network, and the exported
programs (torch.export `.pt2` in a fresh process without paper_repro, ONNX in onnxruntime) checked against
the pruned nn.Module on held test images. Used by notebooks/08_deployment.ipynb."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import torch

from . import data as D
from .latency import REPEATS, WARMUP, measure_latency
from .surgery import export_onnx
from .train import prepare_data


def held_batch(config: dict, n: int = 64) -> torch.Tensor:
    """The first `n` normalised test images of a run's data (CPU, NCHW), from its resolved config."""
    b = config["baseline"]
    _, _, test = prepare_data(b, "cpu")
    x, _ = next(iter(D.Batches(test, n, D.MEAN[b["dataset"]], D.STD[b["dataset"]], train=False)))
    return x


def latency_rows(arch: str, dense, pruned, summary: dict, batch_sizes, device: str = "cpu",
                 warmup: int = WARMUP, repeats: int = REPEATS) -> list[dict]:
    """One row per batch size: ms per batch of the dense and pruned model, the measured speed-up and the
    ratios that counting predicts (MACs and params, before / after, from the run's summary).

    Each model is measured twice, in dense-pruned-pruned-dense order, and its two medians are averaged:
    a drift of the machine's speed across the measurements (clock, another process, a cold first run)
    then weighs on both models alike instead of on whichever was timed first."""
    rows = []
    for bs in batch_sizes:
        d1, p1, p2, d2 = (measure_latency(m, bs, device, warmup=warmup, repeats=repeats)
                          for m in (dense, pruned, pruned, dense))
        dense_ms, pruned_ms = (d1["median_ms"] + d2["median_ms"]) / 2, (p1["median_ms"] + p2["median_ms"]) / 2
        rows.append(dict(arch=arch, batch_size=bs, device=d1["device"], dense_ms=dense_ms, pruned_ms=pruned_ms,
                         speedup=dense_ms / pruned_ms, flops_ratio=summary["macs_before"] / summary["macs_after"],
                         params_ratio=summary["params_before"] / summary["params_after"], threads=d1["threads"]))
    return rows


# Run in a new interpreter: what a user without this package has. It fails if loading or running the
# program pulls paper_repro in (e.g. a pickled reference to one of our classes).
_PT2_CHILD = textwrap.dedent("""
    import json, sys, torch
    io = torch.load(sys.argv[2], weights_only=True)
    model = torch.export.load(sys.argv[1]).module()
    with torch.no_grad():
        y = model(io["x"])
    assert "paper_repro" not in sys.modules, "the .pt2 needed paper_repro"
    print(json.dumps({"max_abs_diff": (y - io["y"]).abs().max().item()}))
""")


def pt2_diff_in_fresh_process(pt2, x: torch.Tensor, expected: torch.Tensor, timeout: int = 300) -> float:
    """max |logits of `pt2` on x − expected|, loaded and run in a new Python that never imports paper_repro."""
    with tempfile.TemporaryDirectory() as tmp:
        io_path = Path(tmp) / "io.pt"
        torch.save({"x": x.cpu(), "y": expected.cpu()}, io_path)
        env = dict(os.environ, OMP_NUM_THREADS="1")  # one small batch: more threads only wait on each other
        env.pop("PYTHONPATH", None)
        res = subprocess.run([sys.executable, "-c", _PT2_CHILD, str(pt2), str(io_path)], cwd=tmp, env=env,
                             capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{pt2}: the exported program failed in a fresh process:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])["max_abs_diff"]


def onnx_diff(model: torch.nn.Module, path, x: torch.Tensor, expected: torch.Tensor) -> float:
    """Export `model` to ONNX at `path` (free batch size) and return max |onnxruntime logits − expected|."""
    import onnxruntime as ort

    export_onnx(model, path, x[:1])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    return (torch.from_numpy(y) - expected).abs().max().item()


def export_rows(arch: str, run, x: torch.Tensor) -> list[dict]:
    """The run's pruned.pt2 and a fresh pruned.onnx (both in its run folder) vs its best pruned student,
    compared in fp32 on the CPU, the device the exported programs are made for."""
    model = copy.deepcopy(run.pruned[run.summary["best_student"]]).cpu().float().eval()
    x = x.cpu().float().contiguous()
    with torch.no_grad():
        expected = model(x)
    pt2, onnx = Path(run.run_dir) / "pruned.pt2", Path(run.run_dir) / "pruned.onnx"
    pt2_diff = pt2_diff_in_fresh_process(pt2, x, expected)
    onnx_gap = onnx_diff(model, onnx, x, expected)
    scale = expected.abs().max().item()  # float rounding grows with the logits: read the diff against it
    return [dict(arch=arch, format="torch.export .pt2 (fresh process, no paper_repro)", max_abs_diff=pt2_diff,
                 logit_scale=scale, file_bytes=pt2.stat().st_size),
            dict(arch=arch, format="ONNX (onnxruntime, CPU)", max_abs_diff=onnx_gap, logit_scale=scale,
                 file_bytes=onnx.stat().st_size)]
