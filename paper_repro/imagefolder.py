"""An ImageNet-style folder (DIR/train/<class>/<image>, DIR/val/<class>/<image>) for the trainers (docs/imagenet.md).

ImageNet does not fit in memory as CIFAR does, so a split holds file paths (`FileImages`) instead of a uint8
tensor, and `FolderBatches` decodes and augments them in DataLoader workers: RandomResizedCrop(224) + flip for
training, Resize(256) + CenterCrop(224) for evaluation, normalised with ImageNet's mean and std. It offers what
the trainers use of `data.Batches` (len, set_epoch, iteration, views, `split`); `data.Batches(split, ...)` on
such a split returns one, so the trainers need no change. Every crop is drawn from a generator seeded by (seed,
epoch, image, view), so an epoch's batches do not depend on the worker count or on resuming.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from .data import Batches, Dataset, DataNotFoundError, Split, default_data_dir

CROP, RESIZE = 224, 256
ENV_WORKERS = "PAPER_REPRO_WORKERS"  # DataLoader workers (default: one per core, at most 8)


class FileImages:
    """The `x` of a split: image paths, indexed like a tensor (a subset is a FileImages of fewer paths)."""

    lazy_images = True  # what data.Batches dispatches on

    def __init__(self, paths, device="cpu"):
        self.paths, self.device = np.asarray(paths), torch.device(device)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, idx):
        idx = idx.cpu().numpy() if isinstance(idx, torch.Tensor) else idx
        return FileImages(self.paths[idx], self.device)

    def to(self, device):
        return FileImages(self.paths, device)


def _check_folder(folder: Path, root: Path) -> None:
    if not folder.is_dir():
        raise DataNotFoundError(f"imagefolder: {folder} not found (expected {root}/train/<class>/<image> and "
                                f"{root}/val/<class>/<image>; pass --data-dir DIR)")


def _samples(folder: Path, classes: list[str] | None = None) -> tuple[list[str], list[str], list[int]]:
    """(classes, paths, labels) of one split; `classes` (the training split's) fixes the label of each name."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    try:
        found, _ = find_classes(str(folder))
        if classes is not None and found != classes:
            extra, missing = sorted(set(found) - set(classes)), sorted(set(classes) - set(found))
            raise ValueError(f"imagefolder: {folder} has other classes than the training split "
                             f"(extra: {extra[:3]}, missing: {missing[:3]})")
        classes = found
        pairs = make_dataset(str(folder), {c: i for i, c in enumerate(classes)}, IMG_EXTENSIONS)
    except FileNotFoundError as e:  # a class folder without images, or no class folder at all
        raise ValueError(f"imagefolder: {folder}: {str(e).splitlines()[0]}") from None
    return classes, [p for p, _ in pairs], [y for _, y in pairs]


def load_imagefolder(data_dir=None):
    """The dataset at `data_dir` (default: $PAPER_REPRO_DATA/imagenet or data/imagenet) as a data.Dataset whose
    splits hold paths. Not checked against a known copy (there is no md5 list to check ImageNet against): its
    results say dataset_official=False and carry a fingerprint of the file names and sizes."""
    root = Path(data_dir) if data_dir is not None else default_data_dir() / "imagenet"
    for part in ("train", "val"):
        _check_folder(root / part, root)
    classes, tr_paths, tr_y = _samples(root / "train")
    _, te_paths, te_y = _samples(root / "val", classes)
    h = hashlib.sha256()
    for p in tr_paths + te_paths:
        h.update(f"{os.path.relpath(p, root)}:{os.path.getsize(p)}\n".encode())
    return Dataset("imagefolder", Split(FileImages(tr_paths), torch.tensor(tr_y)),
                   Split(FileImages(te_paths), torch.tensor(te_y)), len(classes), False, h.hexdigest()[:16],
                   source=str(root), notes={"classes": len(classes), "known_copy": "not checked"})


def count_classes(data_dir=None) -> int:
    """Number of class folders in DIR/train (what the CLI passes as num_classes)."""
    root = Path(data_dir) if data_dir is not None else default_data_dir() / "imagenet"
    _check_folder(root / "train", root)
    return len(_samples(root / "train")[0])


def transform(train: bool):
    from torchvision import transforms as T

    if train:
        return T.Compose([T.RandomResizedCrop(CROP), T.RandomHorizontalFlip(), T.PILToTensor()])
    return T.Compose([T.Resize(RESIZE), T.CenterCrop(CROP), T.PILToTensor()])


class _Decode(torch.utils.data.Dataset):
    """Item (path index, crop seed) -> uint8 (3, 224, 224). The transforms draw from torch's global generator;
    fork_rng gives them their own seeded one and leaves the caller's stream (dropout) untouched."""

    def __init__(self, paths, train: bool):
        self.paths, self.tf = paths, transform(train)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, item):
        from PIL import Image

        i, seed = item
        with Image.open(self.paths[i]) as im:
            img = im.convert("RGB")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.tf(img)


def _workers() -> int:
    value = os.environ.get(ENV_WORKERS)
    if value is None:
        return min(8, os.cpu_count() or 1)
    if not value.isdigit():
        raise ValueError(f"{ENV_WORKERS}: must be an integer >= 0, got {value!r}")
    return int(value)


class FolderBatches(Batches):
    """`data.Batches` for a split of files: (normalised float images on the split's device, labels) batches.
    train=True: reshuffled per (seed, epoch), augmented; views=V > 1: V independent crops of each image."""

    def __init__(self, split, *args, **kwargs):
        super().__init__(split, *args, **kwargs)
        self._decode = _Decode(split.x.paths, self.train)

    def _items(self) -> list[list[tuple[int, int]]]:
        """Per batch, the (image, crop seed) items: view v of all the batch's images, then view v + 1."""
        n = len(self.split.y)
        if not self.train:
            order = torch.arange(n)
        else:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        base = (self.seed * 100_003 + self.epoch) * 1_000_003
        out = []
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.shard[1] > 1:  # this rank's slice of the global batch (torchrun, `data.Batches`)
                per = self.batch_size // self.shard[1]
                idx = idx[self.shard[0] * per:(self.shard[0] + 1) * per]
            idx = idx.tolist()
            out.append([(i, (base + i) * 17 + v) for v in range(self.views) for i in idx])
        return out

    def __iter__(self):
        batches = self._items()
        loader = torch.utils.data.DataLoader(self._decode, batch_sampler=batches, num_workers=_workers(),
                                             pin_memory=self.split.y.device.type == "cuda",
                                             persistent_workers=False)
        dev = self.split.y.device
        for items, x in zip(batches, loader):
            idx = torch.tensor([i for i, _ in items[:len(items) // self.views]], device=dev)
            xs = self._normalise(x.to(dev, non_blocking=True)).chunk(self.views)
            yield (xs[0] if self.views == 1 else list(xs)), self.split.y[idx]
