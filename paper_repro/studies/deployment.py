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

from .. import data as D
from ..counting import count
from ..engine import prepare_data
from ..models import build_model
from ..paper import PAPER_RUNS
from ..export import export_onnx
from .latency import REPEATS, WARMUP, measure_latency, speedup_sd


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
                         speedup=dense_ms / pruned_ms,
                         speedup_sd=speedup_sd(d1["times_ms"] + d2["times_ms"], p1["times_ms"] + p2["times_ms"]),
                         flops_ratio=summary["macs_before"] / summary["macs_after"],
                         params_ratio=summary["params_before"] / summary["params_after"], threads=d1["threads"]))
    return rows


def scale_widths(widths, from_width: float, full_widths) -> list[int]:
    """Kept widths of a network trained at `from_width`, scaled to width 1.0: each kept count times 1/from_width,
    rounded, between 1 and the full network's width (`full_widths`, at 1.0). The per-layer shares the method
    chose are kept; the trained weights are not (latency does not depend on them)."""
    if not 0 < from_width <= 1:
        raise ValueError(f"from_width: must be in (0, 1], got {from_width!r}")
    if len(widths) != len(full_widths):
        raise ValueError(f"widths: expected {len(full_widths)} widths, got {len(widths)}")
    return [min(f, max(1, round(w / from_width))) for w, f in zip(widths, full_widths)]


def paper_run_widths(arch: str, runs_dir=None):
    """(widths, source) from a recorded paper-profile run of `arch` (results/paper/runs/<arch>-*/widths.json,
    width 1.0), or None when there is none."""
    found = sorted(Path(runs_dir or PAPER_RUNS).glob(f"{arch}-*/widths.json"))
    for path in found:
        w = json.loads(path.read_text())
        if w.get("arch") == arch and w.get("width") == 1.0:
            return w["widths"], f"paper-profile run {path.parent.name} (widths.json)"
    return None


def full_width_rows(arch: str, widths, source: str, summary_width: float, batch_sizes, device: str = "cpu",
                    num_classes: int = 10, warmup: int = WARMUP, repeats: int = REPEATS) -> list[dict]:
    """Latency at the paper's width (1.0): the dense network vs one with the pruned `widths` (already at width
    1.0), both freshly built (random weights). `source` says where the widths came from (a paper-profile run's
    widths.json, or a cpu run's scaled by `scale_widths`); `summary_width` is the width they were chosen at."""
    torch.manual_seed(0)
    dense = build_model(arch, num_classes, width=1.0).eval()
    pruned = build_model(arch, num_classes, width=1.0, widths=widths).eval()
    before, after = count(dense), count(pruned)
    summary = dict(macs_before=before["macs"], macs_after=after["macs"], params_before=before["params"],
                   params_after=after["params"])
    rows = latency_rows(arch, dense, pruned, summary, batch_sizes, device, warmup, repeats)
    return [dict(r, width=1.0, widths_source=source, chosen_at_width=summary_width) for r in rows]


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


def export_rows(arch: str, run, x: torch.Tensor, onnx_dir=None) -> list[dict]:
    """The run's pruned.pt2 and a fresh pruned.onnx vs its best pruned student, compared in fp32 on the CPU, the
    device the exported programs are made for. The ONNX file goes to `onnx_dir` (default: a temporary folder),
    never into the run folder: a finished run is read, not written (a read-only cache serves it)."""
    model = copy.deepcopy(run.pruned[run.summary["best_student"]]).cpu().float().eval()
    x = x.cpu().float().contiguous()
    with torch.no_grad():
        expected = model(x)
    pt2 = Path(run.run_dir) / "pruned.pt2"
    pt2_diff = pt2_diff_in_fresh_process(pt2, x, expected)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(onnx_dir or tmp) / f"{arch}-pruned.onnx"
        onnx_gap = onnx_diff(model, onnx, x, expected)
        onnx_bytes = onnx.stat().st_size
    scale = expected.abs().max().item()  # float rounding grows with the logits: read the diff against it
    return [dict(arch=arch, format="torch.export .pt2 (fresh process, no paper_repro)", max_abs_diff=pt2_diff,
                 logit_scale=scale, file_bytes=pt2.stat().st_size),
            dict(arch=arch, format="ONNX (onnxruntime, CPU)", max_abs_diff=onnx_gap, logit_scale=scale,
                 file_bytes=onnx_bytes)]
