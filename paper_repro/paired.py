"""Paired statistics: two networks scored on the same test images, compared image by image.

Every network of a profile is scored on the same test images, so the test-set sampling error of a difference of
two accuracies is not √2 times that of one accuracy: the images both get right (or both get wrong) cancel. What is
left is the per-image difference d_i = correct_a(i) − correct_b(i) ∈ {−1, 0, 1}, whose mean is the difference of
the accuracies and whose standard error is sd(d)/√n (`paired_difference`). McNemar's test asks the same question
from the two discordant counts (`mcnemar`), and a bootstrap over images checks the standard error without the
normal approximation (`paired_bootstrap`).

Several seeds of one network (each compared with the same other network) are combined by `combine_seeds`: the mean
of the per-seed differences, with a standard error that covers the sampling of the test images and the
seed-to-seed spread (its docstring says exactly how). It covers nothing else: not the processor a seed did not
train on, another training budget, another copy of the data, or the official CIFAR-10 (docs/verdicts.md).

Per-image correctness is stored beside the network it belongs to (PER_IMAGE, `write_per_image`): one bit per test
image, packed (np.packbits) and base64-encoded in a JSON record that also names the data (its fingerprint), the
test subset (`data.subset`'s arguments) and the network file (its sha256). `read_per_image` refuses a record of
other data or another length, naming the file.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import data as D
from .engine import autocast, prepare_data
from .provenance import device_name, git_commit
from .storage import write_json

PER_IMAGE = "per_image.json"
FORMAT = "paper_repro.per_image/1"
BOOTSTRAP_SAMPLES = 2000  # [chosen] resamples of the images: the SE it gives is good to a few percent


class PerImageError(ValueError):
    """A per-image record that does not belong to the images it is compared on (other data, another length)."""


# -- per-image correctness --------------------------------------------------------------------------------------------
@torch.no_grad()
def correct_per_image(model: torch.nn.Module, batches: D.Batches) -> np.ndarray:
    """Whether `model` classifies each image of `batches` (in split order) correctly: a bool vector. Eval mode and
    engine.evaluate's autocast (none on the CPU: plain fp32; bf16 on a GPU), so that the count of True reproduces
    the accuracy a run recorded on that kind of device."""
    was = model.training
    model.eval()
    hits = []
    for x, y in batches:
        with autocast(x.device):
            hits.append((model(x).float().argmax(1) == y).cpu())
    model.train(was)
    return torch.cat(hits).numpy().astype(bool)


def scored_split(cfg: dict, device="cpu", data_dir=None, download: bool = False):
    """(dataset, test split, its definition) of a run's settings `cfg` (a baseline's, or a method run's `baseline`),
    through the trainers' own path (engine.prepare_data): the same images in the same order. The definition is what
    prepare_data passes `data.subset`: n (None: every test image, in file order) and, for a subset only, its seed."""
    ds, _, test = prepare_data(cfg, device, data_dir, download)
    n = cfg["test_subset"]
    return ds, test, dict(split="test", n=n) if n is None else dict(split="test", n=n, seed=cfg["seed"] + 2)


def pack_bits(correct: np.ndarray) -> str:
    """A bool vector as text: np.packbits (first image in the high bit of the first byte), then base64."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode("ascii")


def unpack_bits(text: str, n: int) -> np.ndarray:
    """`pack_bits`'s inverse for `n` images (the padding bits of the last byte are dropped)."""
    raw = base64.b64decode(text)
    if len(raw) != (n + 7) // 8:
        raise ValueError(f"{len(raw)} bytes of bits, {n} images need {(n + 7) // 8}")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=n).astype(bool)


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_per_image(path, correct: np.ndarray, dataset_stamp: dict, test_subset: dict, network, device) -> dict:
    """Write the per-image record (atomically, storage.write_json) and return it. `dataset_stamp`:
    `Dataset.stamp()`; `test_subset`: `scored_split`'s definition; `network`: the file the model was loaded from
    (its name relative to the record's folder and its sha256 are kept, so that a network retrained after it is
    seen as stale)."""
    correct = np.asarray(correct, dtype=bool)
    network = Path(network)
    record = dict(format=FORMAT, **dataset_stamp, test_subset=test_subset, n_images=int(correct.size),
                  correct=int(correct.sum()), accuracy=float(correct.mean()), correct_bits=pack_bits(correct),
                  network=network.name, network_sha256=file_sha256(network),
                  evaluated=dict(device=device_name(device), torch=torch.__version__,
                                 commit=git_commit()))
    write_json(path, record)
    return record


@dataclass(frozen=True)
class PerImage:
    """One network's correctness on each test image, with what it was measured on."""
    correct: np.ndarray  # bool, one per image, in split order
    dataset_fingerprint: str
    test_subset: dict
    record: dict  # the whole JSON record (network, its sha256, where it was evaluated)
    path: Path

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())


def read_per_image(path, fingerprint: str | None = None, n_images: int | None = None,
                   test_subset: dict | None = None) -> PerImage:
    """The record at `path`, checked: its format, its bits against its own count, and against the caller's data
    (`fingerprint`), number of images and test subset where given. A mismatch is a PerImageError naming the file."""
    path = Path(path)
    if not path.exists():
        raise PerImageError(f"{path}: no per-image record")
    r = json.loads(path.read_text())
    if r.get("format") != FORMAT:
        raise PerImageError(f"{path}: format {r.get('format')!r}, expected {FORMAT!r}")
    n = int(r["n_images"])
    if n_images is not None and n != n_images:
        raise PerImageError(f"{path}: {n} images, the comparison is on {n_images}")
    if fingerprint is not None and r.get("dataset_fingerprint") != fingerprint:
        raise PerImageError(f"{path}: measured on data {r.get('dataset_fingerprint')}, this data is {fingerprint}")
    if test_subset is not None and r.get("test_subset") != test_subset:
        raise PerImageError(f"{path}: test subset {r.get('test_subset')}, the comparison is on {test_subset}")
    try:
        correct = unpack_bits(r["correct_bits"], n)
    except ValueError as e:
        raise PerImageError(f"{path}: {e}") from None
    if int(correct.sum()) != int(r["correct"]):  # cut or altered bits
        raise PerImageError(f"{path}: its bits count {int(correct.sum())} correct images, the record says "
                            f"{r['correct']}")
    return PerImage(correct, r["dataset_fingerprint"], r["test_subset"], r, path)


# -- one pair ---------------------------------------------------------------------------------------------------------
def _vectors(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = (np.asarray(getattr(v, "correct", v), dtype=bool) for v in (a, b))
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"a, b: two correctness vectors of the same images (at least 2), got shapes {a.shape} "
                         f"and {b.shape}")
    return a, b


def _p_exact(only_a: int, only_b: int) -> float:
    """McNemar's exact test: two-sided binomial p of the discordant counts under p = 1/2 (exact integers)."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2 ** m)


@dataclass(frozen=True)
class PairedDifference:
    """acc(a) − acc(b) on the same images, in points, with its paired standard error and McNemar's test."""
    points: float
    se_points: float  # sd(d)/√n over the per-image differences d_i (sample sd, n − 1)
    n_images: int
    only_a: int  # images a classifies correctly and b does not
    only_b: int

    @property
    def p_mcnemar(self) -> float:
        """McNemar's exact p (two-sided binomial on the discordant images)."""
        return _p_exact(self.only_a, self.only_b)

    @property
    def p_mcnemar_chi2(self) -> float:
        """McNemar's χ² p with the continuity correction (1 degree of freedom); 1 with no discordant image."""
        m = self.only_a + self.only_b
        if m == 0:
            return 1.0
        chi2 = (abs(self.only_a - self.only_b) - 1) ** 2 / m if self.only_a != self.only_b else 0.0
        return math.erfc(math.sqrt(chi2 / 2))

    def describe(self) -> str:
        return f"{self.points:+.2f} ± {self.se_points:.2f}"


def paired_difference(a, b) -> PairedDifference:
    """acc(a) − acc(b) from two correctness vectors (or PerImage records) of the same images."""
    d = _diffs(a, b)
    return PairedDifference(100.0 * float(d.mean()), 100.0 * float(d.std(ddof=1)) / math.sqrt(d.size), int(d.size),
                            int((d > 0).sum()), int((d < 0).sum()))


def paired_bootstrap(diffs, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict:
    """A bootstrap over images of the mean difference (points). `diffs`: per-image differences, one row per seed
    (shape (seeds, n) or (n,)); an image is resampled with all its rows, so the seeds stay paired. Drawing n images
    with replacement is a multinomial draw over the distinct per-image rows, done that way (fast, the same
    distribution). Returns the mean, the bootstrap SE and the 2.5-97.5% percentile interval."""
    d = np.atleast_2d(np.asarray(diffs, dtype=float))
    rows, counts = np.unique(d.T, axis=0, return_counts=True)  # the distinct per-image rows and how often
    draws = np.random.default_rng(seed).multinomial(d.shape[1], counts / counts.sum(), size=samples)
    means = 100.0 * draws @ rows.mean(axis=1) / d.shape[1]
    lo, hi = np.percentile(means, [2.5, 97.5])
    return dict(points=100.0 * float(d.mean()), se_points=float(means.std(ddof=1)), low=float(lo), high=float(hi),
                samples=samples, seed=seed)


# -- several seeds ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedCombined:
    """The mean over seeds of the per-seed paired differences, and its standard error (`combine_seeds`)."""
    points: float
    se_points: float  # √(image_se² + seed_se²)
    image_se_points: float  # the images' part: SE over images of the per-image mean difference over seeds
    seed_se_points: float  # the seeds' part: their spread beyond their per-image disagreement, / √seeds
    per_seed: dict  # seed -> PairedDifference

    def describe(self) -> str:
        return f"{self.points:+.2f} ± {self.se_points:.2f}"


def _diffs(a, b) -> np.ndarray:
    a, b = _vectors(a, b)
    return a.astype(np.int8) - b.astype(np.int8)


def combine_seeds(pairs: dict) -> SeedCombined:
    """Combine {seed: (a, b)} (a's network of that seed against b, all on the same images) into the mean of the
    per-seed paired differences D_k, with a standard error that covers two sources, added in quadrature:

    - the images (the test set is one sample of images): the SE over images of the per-image mean difference
      d̄_i = mean_k d_ik. It keeps the seeds' correlation through the shared images, and it already holds the
      seeds' disagreement image by image (a seed that errs on other images than another);
    - the seeds (another seed trains another network): the variance of the D_k over seeds beyond what that
      per-image disagreement explains (the residual mean square of the seeds × images table over n), over the
      number of seeds; 0 when the seeds differ no more than their per-image disagreement predicts.

    That is the standard error of a grand mean in a two-way random-effects layout (seeds × images, one
    observation per cell). With one seed it is the paired SE; with two, the seeds' part rests on one degree of
    freedom. It covers nothing else: not a processor none of the seeds trained on, another budget, other data."""
    if not pairs:
        raise ValueError("pairs: at least one seed")
    per_seed = {s: paired_difference(a, b) for s, (a, b) in pairs.items()}
    d = np.stack([_diffs(a, b) for a, b in pairs.values()]).astype(float)  # seeds × images
    k, n = d.shape
    per_image, per_seed_mean = d.mean(axis=0), d.mean(axis=1)
    image_var = per_image.var(ddof=1) / n
    seed_var = 0.0
    if k > 1:
        residual = d - per_seed_mean[:, None] - per_image[None, :] + d.mean()
        disagreement = (residual ** 2).sum() / ((k - 1) * (n - 1))
        seed_var = max(0.0, per_seed_mean.var(ddof=1) - disagreement / n) / k
    return SeedCombined(100.0 * float(per_seed_mean.mean()), 100.0 * math.sqrt(image_var + seed_var),
                        100.0 * math.sqrt(image_var), 100.0 * math.sqrt(seed_var), per_seed)
