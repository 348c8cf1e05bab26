"""Run-to-run noise: how much a result moves when only the seed changes.

A verdict (verdicts.py) needs the noise σ of what it compares. We measure it by repeating one run with other
seeds: the same teacher (seed 0's, the committed one on the cpu profile), the same settings, only the students'
seed (data order, augmentation, their own views) changes. σ is the sample standard deviation over the seeds, in
accuracy points. [chosen] An ablation notebook measures σ on its reference arm only and applies it to every arm
(repeating every arm would multiply the cost by the number of seeds); the tables say so.

With a single seed there is no run-to-run σ; the fallback is the test set's own sampling error,
√(p(1-p)/n) for an accuracy p on n images, a lower bound of the true noise, labelled as such. [chosen] With two
seeds the standard deviation has one degree of freedom (two close values say little: in 5% of draws it is below
a sixteenth of the true σ), so σ is then at least that sampling error, and the source says when the floor applies.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from ..config import profile_settings
from ..method import prune_train
from ..train import train_baseline
from .verdicts import K_SIGMA


def noise_seeds(profile: str, arch: str | None = None, main: bool = False) -> tuple[int, ...]:
    """The profile's seeds for `arch` (config.NOISE; None: those of any network not named there): those of the
    ablations' reference arm, or with `main` those of notebook 02's main-table rows."""
    return tuple(profile_settings("noise", profile, arch)["main_seeds" if main else "seeds"])


@dataclass
class Noise:
    """σ of an accuracy (points), with what it was measured from."""
    sd_points: float
    source: str  # "seeds 0, 1, 2" or "test-set sampling (one seed)"
    values_points: list[float] = field(default_factory=list)

    @property
    def spread(self) -> float:
        """Half-width of the interval a verdict rests on: K_SIGMA·σ, in points."""
        return K_SIGMA * self.sd_points

    @property
    def spread_label(self) -> str:
        """A legend entry: short (the source, with its per-seed values, is long; `describe` and tables carry it)."""
        return f"±{K_SIGMA:g}σ run-to-run noise"

    def describe(self) -> str:
        return f"σ = {self.sd_points:.2f} pts ({self.source})"


def sampling_sd_points(acc: float, n_images: int) -> float:
    """Binomial standard error of an accuracy measured on `n_images` test images, in points."""
    if not n_images or n_images <= 0:
        raise ValueError(f"n_images: must be a positive number of test images, got {n_images!r}")
    return 100.0 * math.sqrt(max(acc * (1.0 - acc), 0.0) / n_images)


FLOOR_BELOW_SEEDS = 3  # [chosen] fewer seeds than this (but two or more): σ is at least the test-set sampling error


def from_values(accs: list[float], seeds, n_images: int, device: str | None = None) -> Noise:
    """Noise from the accuracies (fractions) of one setting run with `seeds`; one value: sampling error; two
    values: their standard deviation, at least the sampling error at their mean (the module docstring). The source
    states the per-seed values (so that a reader can recompute σ) and, given `device`, the processor they all ran
    on: seeds on one processor do not cover the drift to another (docs/verdicts.md)."""
    pts = [100.0 * a for a in accs]
    if len(pts) >= 2:
        where = f" on {device}" if device else ""
        values = ", ".join(f"{p:.2f}" for p in pts)
        source = f"seeds {', '.join(str(s) for s in seeds)}{where} (accuracy, %: {values})"
        sd = statistics.stdev(pts)
        if len(pts) < FLOOR_BELOW_SEEDS:
            floor = sampling_sd_points(statistics.fmean(accs), n_images)
            if floor > sd:
                source += (f"; their σ {sd:.2f} is below the test-set sampling error, so σ = {floor:.2f} "
                           f"(fewer than {FLOOR_BELOW_SEEDS} seeds)")
                sd = floor
        return Noise(sd, source, pts)
    return Noise(sampling_sd_points(accs[0], n_images), "test-set sampling (one seed), a lower bound", pts)


def method_noise(arch: str, target: str, profile: str, seeds=None, device: str = "auto", first=None,
                 metric: str = "pruned_acc", main: bool = False, **overrides) -> Noise:
    """σ of `metric` (a summary field, an accuracy) of prune_train(arch, target, profile, seed, **overrides) over
    `seeds` (default: the profile's, `main`: those of 02's main-table rows, `noise_seeds`). Every seed is taught by one teacher: `first`'s (a MethodRun the caller
    already has, reused for its own seed), else the profile's seed-0 baseline. Runs are cached like any other,
    so only the seeds not run before cost anything."""
    seeds = tuple(noise_seeds(profile, arch, main) if seeds is None else seeds)
    if not seeds:
        raise ValueError("seeds: at least one seed")
    have = {} if first is None else {first.config["seed"]: first}
    teacher = None if first is None else first.config.get("teacher_checkpoint")
    if teacher is None:
        teacher_seed = 0 if first is None else first.config["seed"]
        teacher = str(train_baseline(arch, profile, teacher_seed, device=device, progress=False).checkpoint)
    runs = [have.get(s) or prune_train(arch, target, profile, s, device=device, teacher=teacher, progress=False,
                                       export=False, **overrides) for s in seeds]
    return from_values([r.summary[metric] for r in runs], seeds, runs[0].summary.get("test_images") or 0,
                       runs[0].summary.get("device"))
