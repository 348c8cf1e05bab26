"""Honest latency: the spread of many timed forward passes of a warmed-up, eval-mode copy of a model.

Each call is timed on its own (a GPU is synchronised before and after it, so queued kernels are never
credited to the wrong call); warm-up calls (allocator, oneDNN/cuDNN kernel choice) are not timed. The
median and the 10th/90th percentiles are reported, not a mean that one stall can move. fp32, no autocast.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from ..provenance import device_name

# Defaults [chosen]: a few untimed calls settle the allocator and kernel choice; 30 timed ones give stable
# percentiles for these small CIFAR networks in a few seconds on 2 CPU cores.
WARMUP = 5
REPEATS = 30
INPUT_SIZE = (3, 32, 32)  # one CIFAR image, normalised floats
SEED = 0  # the input batch's values (they do not change the timing, only reproducibility)
# One memory layout for every model timed: a trained teacher is channels_last while surgery leaves NCHW
# tensors, and mixing them would time the layout conversion, not the pruning.
CHANNELS_LAST = False


def _check_device(device) -> torch.device:
    text = str(device)
    if text != "cpu" and text != "cuda" and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise ValueError(f"device: must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} asked for but CUDA is not available here; use 'cpu'")
    return torch.device(text)


def _check_count(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")


def measure_latency(model: nn.Module, batch_size: int, device="cpu", warmup: int = WARMUP, repeats: int = REPEATS,
                    input_size=INPUT_SIZE, channels_last: bool = CHANNELS_LAST) -> dict:
    """Milliseconds per batch of `batch_size` images: median, p10, p90 over `repeats` timed calls.

    The model is copied (the caller's keeps its device, mode and layout) into one layout, NCHW unless
    `channels_last`. The thread count is torch.get_num_threads(), unchanged while timing and recorded."""
    _check_count("batch_size", batch_size, 1)
    _check_count("repeats", repeats, 1)
    _check_count("warmup", warmup, 0)
    dev = _check_device(device)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    m = copy.deepcopy(model).to(dev, memory_format=layout).eval()
    x = torch.randn(batch_size, *input_size, generator=torch.Generator().manual_seed(SEED))
    x = x.to(dev).contiguous(memory_format=layout)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    threads = torch.get_num_threads()
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            m(x)
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            m(x)
            sync()
            times.append(1000 * (time.perf_counter() - t0))
    p10, median, p90 = np.percentile(times, [10, 50, 90]).tolist()
    return dict(median_ms=median, p10_ms=p10, p90_ms=p90, batch_size=batch_size, device=device_name(dev),
                threads=threads, warmup=warmup, repeats=repeats, times_ms=times)


BOOTSTRAP = 1000  # [chosen] resamples behind a speed-up's σ


def speedup_sd(dense_ms, pruned_ms, resamples: int = BOOTSTRAP, seed: int = SEED) -> float:
    """σ of median(dense) / median(pruned) from the timed calls themselves: the standard deviation over
    `resamples` bootstrap resamples of each list (seeded: the same timings give the same σ). It covers the
    sampling of these calls on this machine, not another machine's speed."""
    rng = np.random.default_rng(seed)
    d, p = np.asarray(dense_ms), np.asarray(pruned_ms)
    ratios = [np.median(rng.choice(d, len(d))) / np.median(rng.choice(p, len(p))) for _ in range(resamples)]
    return float(np.std(ratios, ddof=1))
