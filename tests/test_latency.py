"""Latency measurement (paper_repro.studies.latency): the numbers mean what they say, and bad input is refused."""
import time

import pytest
import torch
from torch import nn

from paper_repro.studies.latency import measure_latency

FIELDS = {"median_ms", "p10_ms", "p90_ms", "batch_size", "device", "threads", "warmup", "repeats", "times_ms"}
CALLS = []  # (model id, training flag) of every Sleeper call; module level, so a deepcopy shares it


class Sleeper(nn.Module):
    """Takes a known time per call; the first `slow_calls` calls take `slow_s` instead (a cold start)."""

    def __init__(self, seconds=0.01, slow_calls=0, slow_s=0.3):
        super().__init__()
        self.seconds, self.slow_calls, self.slow_s, self.calls = seconds, slow_calls, slow_s, 0

    def forward(self, x):
        self.calls += 1
        CALLS.append((id(self), self.training))
        time.sleep(self.slow_s if self.calls <= self.slow_calls else self.seconds)
        return x


def test_fields_and_ordering():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 32 * 32, 10))
    r = measure_latency(model, batch_size=4, warmup=1, repeats=7)
    assert set(r) == FIELDS
    assert 0 < r["p10_ms"] <= r["median_ms"] <= r["p90_ms"]
    assert (r["batch_size"], r["warmup"], r["repeats"]) == (4, 1, 7)
    assert r["threads"] == torch.get_num_threads() and r["device"].startswith("cpu")
    assert len(r["times_ms"]) == 7 and min(r["times_ms"]) <= r["median_ms"] <= max(r["times_ms"])


def test_a_speedup_sigma_is_seeded_and_grows_with_the_spread_of_the_calls():
    from paper_repro.studies.latency import speedup_sd

    tight, loose = [10.0, 10.1, 9.9] * 10, [5.0, 15.0, 10.0] * 10
    assert speedup_sd(tight, tight) == speedup_sd(tight, tight) < speedup_sd(loose, tight)
    assert speedup_sd([10.0] * 30, [5.0] * 30) == 0.0


def test_sleeping_model_is_measured_at_its_sleep():
    r = measure_latency(Sleeper(0.01), batch_size=1, warmup=1, repeats=5)
    assert r["median_ms"] >= 10 and r["p10_ms"] >= 10
    assert r["median_ms"] < 200  # generous for a busy machine, but a unit slip (s vs ms) would fail


def test_warmup_excluded_and_eval_copy():
    # Two slow first calls: with warmup=2 none of them is timed, so even the p90 stays near 10 ms.
    model = Sleeper(0.01, slow_calls=2, slow_s=0.3).train()
    CALLS.clear()
    r = measure_latency(model, batch_size=2, warmup=2, repeats=5)
    assert r["p90_ms"] < 150
    # A copy ran every call (2 warm-up + 5 timed), in eval mode; the caller's model is untouched.
    assert len(CALLS) == 7 and all(who != id(model) and not training for who, training in CALLS)
    assert model.training and model.calls == 0
    # Without warm-up the slow calls are timed and show up in the spread.
    cold = measure_latency(Sleeper(0.01, slow_calls=2, slow_s=0.3), batch_size=2, warmup=0, repeats=5)
    assert cold["p90_ms"] >= 250


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), r"batch_size: must be an integer >= 1, got 0"),
    (dict(batch_size=2.0), r"batch_size: must be an integer >= 1, got 2.0"),
    (dict(batch_size=1, repeats=0), r"repeats: must be an integer >= 1, got 0"),
    (dict(batch_size=1, warmup=-1), r"warmup: must be an integer >= 0, got -1"),
    (dict(batch_size=1, device="tpu"), r"device: must be 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
    (dict(batch_size=1, device="cuda:x"), r"device: must be 'cpu', 'cuda' or 'cuda:N', got 'cuda:x'"),
])
def test_bad_input_names_parameter_and_allowed_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        measure_latency(Sleeper(0), **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_gpu_is_refused():
    with pytest.raises(ValueError, match="device: 'cuda' asked for but CUDA is not available"):
        measure_latency(Sleeper(0), 1, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_waits_for_the_kernels():
    # A large matmul chain queued asynchronously: without the synchronisation the call returns in µs.
    class MatmulChain(nn.Module):
        def forward(self, x):
            a = torch.randn(4096, 4096, device=x.device)
            for _ in range(20):
                a = a @ a / 64
            return a

    r = measure_latency(MatmulChain(), 1, device="cuda", warmup=2, repeats=5)
    assert r["median_ms"] > 1 and r["device"].startswith("cuda:")
