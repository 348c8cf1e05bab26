"""Every dataset by name: the one entry point through which the trainers load data and batch it.

cifar10, cifar100 and synthetic come from data.py (whole splits held as uint8 tensors on the device); imagefolder
from imagefolder.py (an ImageNet-style folder, decoded batch by batch). Both build on data.py's Split, Dataset
and Batches; only this module knows both."""
from __future__ import annotations

from . import data as D
from .imagefolder import FolderBatches, load_imagefolder


def load_dataset(name: str = "cifar10", data_dir=None, download: bool = True,
                 allow_modified: bool | None = None) -> D.Dataset:
    """The dataset `name` (data.DATASETS) from `data_dir`: `data.load_cifar`, or `load_imagefolder` for an
    image folder (never downloaded, never checked against a known copy)."""
    D.check_dataset(name)
    if name == "imagefolder":
        return load_imagefolder(data_dir)
    return D.load_cifar(name, data_dir, download, allow_modified)


def batches(split: D.Split, *args, **kwargs) -> D.Batches:
    """`data.Batches` over `split`, or `imagefolder.FolderBatches` when the split holds image files."""
    cls = FolderBatches if getattr(split.x, "lazy_images", False) else D.Batches
    return cls(split, *args, **kwargs)
