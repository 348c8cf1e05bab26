"""CIFAR-10/100 from the standard python batches, held as uint8 tensors on the training device.

Every split is one tensor; augmentation (pad-4 random crop + horizontal flip) is done batched on the
device from a generator seeded by (seed, epoch), so an epoch's batches are the same whether a run
started fresh or resumed. The files are fingerprinted (md5 of each batch against the official release)
so that every result row says whether it was measured on the official CIFAR or on a modified copy.

Only known copies are read: the official release, or one listed in known_copies.json (the offline copy of the
project machines). Any other copy, a damaged file included, is refused naming the file that differs, unless
the user asks to run on their own modified copy (`allow_modified`, $PAPER_REPRO_ALLOW_MODIFIED_DATA=1, or the
CLI's --allow-modified-data); its results carry its own fingerprint and dataset_official=False.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

DATASETS = ("cifar10", "cifar100", "synthetic", "imagefolder")  # imagefolder: an ImageNet-style folder (imagefolder.py)
MEAN = {"cifar10": (0.4914, 0.4824, 0.4467), "cifar100": (0.5071, 0.4865, 0.4409), "synthetic": (0.5, 0.5, 0.5),
        "imagefolder": (0.485, 0.456, 0.406)}
STD = {"cifar10": (0.2471, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762), "synthetic": (0.25, 0.25, 0.25),
       "imagefolder": (0.229, 0.224, 0.225)}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "synthetic": 10}
ENV_DATA_DIR = "PAPER_REPRO_DATA"
ENV_ALLOW_MODIFIED = "PAPER_REPRO_ALLOW_MODIFIED_DATA"
KNOWN_COPIES = Path(__file__).with_name("known_copies.json")
_FOLDER = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


class DataNotFoundError(RuntimeError):
    pass


class UnknownDataError(ValueError):
    """The data folder is no known copy (damaged, or modified) and modified copies were not allowed."""


@dataclass
class Split:
    x: torch.Tensor  # uint8 (N, 3, 32, 32)
    y: torch.Tensor  # int64 (N,)


@dataclass
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int
    official: bool  # True only when every batch file has the official md5
    fingerprint: str  # short hash of the per-file md5s (or of the generator settings for synthetic)
    source: str = ""
    notes: dict = field(default_factory=dict)

    def to(self, device) -> "Dataset":
        self.train = Split(self.train.x.to(device), self.train.y.to(device))
        self.test = Split(self.test.x.to(device), self.test.y.to(device))
        return self

    def stamp(self) -> dict:
        return {"dataset": self.name, "dataset_official": self.official, "dataset_fingerprint": self.fingerprint}


def default_data_dir() -> Path:
    """$PAPER_REPRO_DATA, else data/ at the project root (not the working directory: notebooks run in notebooks/)."""
    return Path(os.environ.get(ENV_DATA_DIR, Path(__file__).resolve().parent.parent / "data"))


def check_dataset(name: str) -> str:
    if name not in DATASETS:
        raise ValueError(f"dataset: unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return name


def _official_files(name: str) -> list[tuple[str, str]]:
    """(file name, md5) of the official release, as torchvision records them."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    return [(f, md5) for f, md5 in cls.train_list + cls.test_list]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def known_copies(name: str) -> dict[str, dict[str, str]]:
    """{copy: {file: md5}} of every known copy of `name`: "official" (torchvision's md5s) and known_copies.json's."""
    copies = {"official": dict(_official_files(name))}
    for copy, c in json.loads(KNOWN_COPIES.read_text())["copies"].items():
        if c["dataset"] == name:
            copies[copy] = {f: v["md5"] for f, v in c["files"].items()}
    return copies


def identify_copy(name: str, md5s: dict[str, str]) -> tuple[str | None, str, list[str]]:
    """(the known copy whose md5s these are, or None; the closest known copy; the files that differ from it)."""
    diffs = {copy: [f for f, m in md5s.items() if ref.get(f) != m] for copy, ref in known_copies(name).items()}
    closest = min(diffs, key=lambda c: len(diffs[c]))
    return (closest if not diffs[closest] else None), closest, diffs[closest]


def modified_data_allowed(allow: bool | None = None) -> bool:
    """`allow` when given, else $PAPER_REPRO_ALLOW_MODIFIED_DATA (1: yes; 0 or unset: no)."""
    if allow is not None:
        return bool(allow)
    value = os.environ.get(ENV_ALLOW_MODIFIED, "0").strip()
    if value not in ("0", "1", ""):
        raise ValueError(f"{ENV_ALLOW_MODIFIED}: must be 1 (run on a modified copy) or 0, got {value!r}")
    return value == "1"


def _missing_message(name: str, root: Path, reason: str) -> str:
    """One line (the CLI prints it as `error: ...`): what is missing, then the three ways to get it."""
    folder = root / _FOLDER[name]
    tv = "CIFAR10" if name == "cifar10" else "CIFAR100"
    return (f"{name}: no data in {folder} ({reason}). Get it: with internet, rerun with download allowed (the "
            f"default) or torchvision.datasets.{tv}('{root}', download=True); or set {ENV_DATA_DIR} to a folder "
            f"holding {_FOLDER[name]}; or, offline on the project machines, python ../shared/data/prepare_cifar10.py "
            "data/ (a partly JPEG re-encoded copy, stamped dataset_official=False)")


def _unknown_message(name: str, folder: Path, md5s: dict, closest: str, differ: list[str]) -> str:
    first = f"{folder / differ[0]}: md5 {md5s[differ[0]]}"
    more = f" (and {len(differ) - 1} more file(s))" if len(differ) > 1 else ""
    if len(differ) < len(md5s):  # the other files are those of a known copy: these were damaged or changed
        what = f"{first} differs from the {closest} copy{more}"
    else:
        what = f"{first} matches no known copy of {name}{more}"
    again = "python ../shared/data/prepare_cifar10.py data/, or download it" if name == "cifar10" else "download it"
    return (f"{what}. Get a clean copy ({again}), or, to run on your own modified copy anyway, pass "
            f"--allow-modified-data or set {ENV_ALLOW_MODIFIED}=1")


def _download(name: str, root: Path) -> None:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    try:
        cls(str(root), train=True, download=True)
    except Exception as e:  # URLError, socket errors, DNS failures: all mean "no network"
        raise DataNotFoundError(_missing_message(name, root, f"download failed: {type(e).__name__}: {e}")) from None


def _read_batch(path: Path, label_key: bytes):
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(d[label_key], dtype=np.int64)
    except OSError:
        raise
    except Exception as e:  # truncated (EOFError), damaged header (UnpicklingError), wrong content (KeyError, ...)
        why = (str(e).strip().splitlines() or [""])[0][:120]
        raise ValueError(f"{path}: not a readable CIFAR batch ({type(e).__name__}: {why}); prepare the data "
                         "again (see docs/reproducibility.md, 'Data')") from None
    if len(x) != len(y):
        raise ValueError(f"{path}: {len(x)} images but {len(y)} labels")
    return x, y


def load_cifar(name: str = "cifar10", data_dir: str | os.PathLike | None = None, download: bool = True,
               allow_modified: bool | None = None) -> Dataset:
    """Read the python batches from `data_dir` (default $PAPER_REPRO_DATA or ./data).

    A copy that matches no known copy raises UnknownDataError naming the first file that differs, unless
    `allow_modified` (default: $PAPER_REPRO_ALLOW_MODIFIED_DATA=1)."""
    check_dataset(name)
    if name == "synthetic":
        return make_synthetic()
    if name == "imagefolder":  # files read batch by batch, not held in memory: imagefolder.py
        raise ValueError("name: load_cifar reads cifar10, cifar100 and synthetic; load an image folder with "
                         "datasets.load_dataset('imagefolder', DIR)")
    allowed = modified_data_allowed(allow_modified)
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = root / _FOLDER[name]
    files = _official_files(name)
    if not all((folder / f).exists() for f, _ in files):
        if not download:
            raise DataNotFoundError(_missing_message(name, root, "files missing and download=False"))
        _download(name, root)
    md5s = [_md5(folder / f) for f, _ in files]
    official = all(m == ref for m, (_, ref) in zip(md5s, files))
    by_file = {f: m for (f, _), m in zip(files, md5s)}
    copy, closest, differ = identify_copy(name, by_file)
    if copy is None and not allowed:
        raise UnknownDataError(_unknown_message(name, folder, by_file, closest, differ))
    label_key = b"labels" if name == "cifar10" else b"fine_labels"
    parts = [_read_batch(folder / f, label_key) for f, _ in files]
    n_train = len(files) - 1
    xtr = np.concatenate([p[0] for p in parts[:n_train]])
    ytr = np.concatenate([p[1] for p in parts[:n_train]])
    xte, yte = parts[-1]
    fp = hashlib.sha256("".join(md5s).encode()).hexdigest()[:16]
    return Dataset(name, Split(torch.from_numpy(xtr), torch.from_numpy(ytr)),
                   Split(torch.from_numpy(xte.copy()), torch.from_numpy(yte.copy())),
                   NUM_CLASSES[name], official, fp, source=str(folder), notes={"known_copy": copy or "none (modified)"})


def make_synthetic(n_train: int = 2048, n_test: int = 512, num_classes: int = 10, seed: int = 0) -> Dataset:
    """CIFAR-shaped images with learnable class structure, for the smoke profile and tests only.

    Each class has a smooth random colour template; an image is its class template, shifted by a few
    pixels, plus noise. Never used for a reported number (official=False, name 'synthetic')."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(num_classes, 3, 4, 4, generator=g)
    templates = torch.nn.functional.interpolate(low, size=(40, 40), mode="bilinear", align_corners=False)

    def split(n):
        y = torch.randint(0, num_classes, (n,), generator=g)
        dx, dy = torch.randint(0, 9, (2, n), generator=g)
        rows = (dy[:, None] + torch.arange(32))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(32))[:, None, None, :]
        base = templates[y][torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
        img = 128 + 60 * base + 40 * torch.randn(n, 3, 32, 32, generator=g)
        return Split(img.clamp(0, 255).to(torch.uint8), y)

    tr, te = split(n_train), split(n_test)
    fp = hashlib.sha256(f"synthetic-{n_train}-{n_test}-{num_classes}-{seed}".encode()).hexdigest()[:16]
    return Dataset("synthetic", tr, te, num_classes, False, fp, source="generated")


def subset(split: Split, n: int | None, seed: int) -> Split:
    """A class-balanced-in-expectation random subset of n images (all when n is None or >= N)."""
    if n is None or n >= len(split.y):
        return split
    idx = torch.randperm(len(split.y), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    idx = idx.to(split.y.device)
    return Split(split.x[idx], split.y[idx])


def heldout(split: Split, n_used: int | None, n: int, seed: int) -> tuple[Split, bool]:
    """n images of `split` outside `subset(split, n_used, seed)` (the next ones of the same permutation), and
    True; when the subset leaves fewer than n images out (e.g. all are used), n of the used ones and False."""
    total = len(split.y)
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    used = total if n_used is None else min(n_used, total)
    outside = used + n <= total
    idx = (perm[used:used + n] if outside else perm[:n]).sort().values.to(split.y.device)
    return Split(split.x[idx], split.y[idx]), outside


class Batches:
    """Iterate a split held on the device in (normalised float images, labels) batches.

    train=True: reshuffle and augment, from a generator seeded by (seed, epoch). Randomness is drawn on
    the CPU, so the same seed gives the same batches on every device. views=V > 1 yields, per batch, a
    list of V independently cropped and flipped views of the same images (view 0 is the views=1 batch).
    shard=(r, K), for rank r of K processes (torchrun): every rank draws the same permutation and augmentation,
    and yields slice r of K contiguous slices of each global batch (batch_size / K images; K must divide it).
    A split of image files (the imagefolder dataset) takes `imagefolder.FolderBatches` (`datasets.batches` picks)."""

    def __init__(self, split: Split, batch_size: int, mean, std, train: bool, seed: int = 0,
                 drop_last: bool | None = None, channels_last: bool = False, views: int = 1,
                 shard: tuple[int, int] = (0, 1)):
        if getattr(split.x, "lazy_images", False) and type(self) is Batches:
            raise ValueError("split: holds image files, which Batches cannot crop on the device; batch it with "
                             "datasets.batches (imagefolder.FolderBatches)")
        self.split, self.batch_size, self.train, self.seed = split, batch_size, train, seed
        rank, world = shard
        if world > 1 and (not train or batch_size % world or not 0 <= rank < world):
            raise ValueError(f"batch_size: a global batch of {batch_size} cannot be split over {world} processes; "
                             "use a batch size that the number of processes divides (training batches only)")
        self.shard = (rank, world)
        self.drop_last = train if drop_last is None else drop_last
        if not (isinstance(views, int) and views >= 1) or (views > 1 and not train):
            raise ValueError(f"views: must be an integer >= 1 (and 1 for evaluation), got {views!r}")
        self.views = views
        dev = split.x.device
        self.mean = torch.tensor(mean, device=dev).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=dev).view(1, 3, 1, 1) * 255
        self.channels_last = channels_last
        self.epoch = 0

    def __len__(self):
        n = len(self.split.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int):
        self.epoch = epoch
        return self

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __iter__(self):
        n, dev = len(self.split.y), self.split.x.device
        if not self.train:
            for i in range(0, n, self.batch_size):
                yield self._normalise(self.split.x[i:i + self.batch_size]), self.split.y[i:i + self.batch_size]
            return
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(n, generator=g)
        shifts = [torch.randint(0, 9, (2, n), generator=g)]
        flips = [torch.rand(n, generator=g) < 0.5]
        for _ in range(self.views - 1):  # drawn after view 0's: views=1 batches are unchanged by this option
            shifts.append(torch.randint(0, 9, (2, n), generator=g))
            flips.append(torch.rand(n, generator=g) < 0.5)
        perm = perm.to(dev)
        shifts, flips = [s.to(dev) for s in shifts], [f.to(dev) for f in flips]
        ar = torch.arange(32, device=dev)
        for b in range(len(self)):
            sel = perm[b * self.batch_size:(b + 1) * self.batch_size]
            if self.shard[1] > 1:  # this rank's slice of the global batch
                per = self.batch_size // self.shard[1]
                sel = sel[self.shard[0] * per:(self.shard[0] + 1) * per]
            xs = [self._normalise(augment(self.split.x[sel], s[0, sel], s[1, sel], f[sel], ar))
                  for s, f in zip(shifts, flips)]
            yield (xs[0] if self.views == 1 else xs), self.split.y[sel]


def augment(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, flip: torch.Tensor, ar=None) -> torch.Tensor:
    """Batched pad-4 random crop (zero padding) + horizontal flip, by one gather. x: uint8 (B,3,32,32)."""
    ar = torch.arange(32, device=x.device) if ar is None else ar
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    rows = (dy[:, None] + ar)[:, None, :, None]
    cols = dx[:, None] + ar
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    b = torch.arange(x.shape[0], device=x.device)[:, None, None, None]
    c = torch.arange(3, device=x.device)[None, :, None, None]
    return padded[b, c, rows, cols]
