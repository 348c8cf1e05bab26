"""The stamp every table and figure carries: profile, dataset (official or not), seed, device, commit."""
from __future__ import annotations

import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """Short HEAD sha, with '+dirty' when a tracked file of the package or a source notebook differs from it.

    Untracked files do not count (the executed copies `make reproduce` is writing, a helper script), and the
    glob pathspec keeps `notebooks/*.ipynb` from matching notebooks/executed/."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "paper_repro",
                                ":(glob)notebooks/*.ipynb"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    """The processor's model name (/proc/cpuinfo), or platform.processor() where there is no such file."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown"


NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPU flags of hardware bf16 arithmetic (AMD Zen 4+, Intel SPR+)


def cpu_flags() -> set[str]:
    """The processor's feature flags (/proc/cpuinfo), empty where there is no such file."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16_cpu() -> bool:
    """Whether this processor computes bf16 in hardware. Read from its flags, never assumed: without them
    PyTorch emulates bf16 on the CPU, several times slower than fp32."""
    return bool(cpu_flags() & set(NATIVE_BF16_FLAGS))


def device_name(device) -> str:
    """Where a number was computed. On the CPU: threads, the instruction set PyTorch's kernels use and the
    processor, e.g. 'cpu:2threads:AVX2:AMD EPYC'. oneDNN picks kernels by instruction set, so results are
    bitwise equal only on the same processor kind and thread count; across processors, within noise."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.get_num_threads()}threads:{torch.backends.cpu.get_cpu_capability()}:{cpu_model()}"


def processor_of(device: str) -> str:
    """'AMD EPYC' from a `device_name` stamp 'cpu:2threads:AVX512:AMD EPYC'; a GPU's stamp stays whole."""
    return device.split(":", 3)[3] if device.startswith("cpu:") and device.count(":") >= 3 else device


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device: must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    return torch.device(device)


def stamp(profile: str, dataset_stamp: dict, seed: int, device: str) -> dict:
    s = {"profile": profile, **dataset_stamp, "seed": seed, "device": device, "commit": git_commit()}
    # Values read back from a DataFrame are numpy scalars; as plain Python values they survive JSON (a numpy
    # False written with default=str became the string "False", which reads as true).
    return {k: v.item() if hasattr(v, "item") else v for k, v in s.items()}


def stamp_line(s: dict) -> str:
    official = "official" if str(s.get("dataset_official")) == "True" else "NOT official (modified copy)"
    if s.get("dataset") == "synthetic":
        official = "synthetic, not a real dataset"
    return (f"profile={s.get('profile')} | data={s.get('dataset')} ({official}, fp {s.get('dataset_fingerprint')}) | "
            f"seed={s.get('seed')} | device={s.get('device')} | commit={s.get('commit')}")
