"""The ImageNet-style data path (docs/imagenet.md) on a tiny generated folder: layout, errors, augmentation,
determinism, and a baseline trained through it."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from paper_repro import data as D
from paper_repro import datasets
from paper_repro.imagefolder import FolderBatches, count_classes, load_imagefolder, transform

CLASSES = ("cat", "dog", "eel")


def write_folder(root, per_class=(4, 2), size=(48, 40)):
    """root/{train,val}/<class>/<i>.png: random RGB images, a few per class."""
    rng = np.random.default_rng(0)
    for part, n in zip(("train", "val"), per_class):
        for c in CLASSES:
            (root / part / c).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(img).save(root / part / c / f"{i}.png")
    return root


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPER_REPRO_WORKERS", "0")
    return write_folder(tmp_path / "imnet")


def _batches(ds, **kw):
    args = dict(batch_size=4, mean=D.MEAN["imagefolder"], std=D.STD["imagefolder"], train=True, seed=1)
    return datasets.batches(ds.train, **{**args, **kw})


def test_reads_the_layout_and_the_trainers_batches_dispatch(folder):
    ds = datasets.load_dataset("imagefolder", folder)  # the trainers' entry point
    assert (ds.num_classes, len(ds.train.y), len(ds.test.y)) == (3, 12, 6) and count_classes(folder) == 3
    assert ds.stamp()["dataset_official"] is False and ds.fingerprint == load_imagefolder(folder).fingerprint
    b = _batches(ds)
    assert isinstance(b, FolderBatches) and len(b) == 3
    with pytest.raises(ValueError, match="split: .*datasets.batches"):  # plain Batches cannot crop files
        D.Batches(ds.train, 4, D.MEAN["imagefolder"], D.STD["imagefolder"], train=True)
    with pytest.raises(ValueError, match="datasets.load_dataset"):
        D.load_cifar("imagefolder", folder)
    x, y = next(iter(b))
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.float32 and y.shape == (4,)
    sub = D.subset(ds.train, 5, seed=0)  # what train_subset does
    assert len(sub.x) == len(sub.y) == 5


def test_augmentation_is_seeded_per_epoch_and_eval_is_resize_center_crop(folder, monkeypatch):
    ds = load_imagefolder(folder)
    b = _batches(ds)
    e0 = [x for x, _ in b.set_epoch(0)]
    assert all(torch.equal(a, c) for a, c in zip(e0, [x for x, _ in b.set_epoch(0)]))
    monkeypatch.setenv("PAPER_REPRO_WORKERS", "1")  # decoding in a worker gives the same crops
    assert all(torch.equal(a, c) for a, c in zip(e0, [x for x, _ in b.set_epoch(0)]))
    assert not torch.equal(e0[0], next(iter(b.set_epoch(1)))[0])
    ev = datasets.batches(ds.test, 6, D.MEAN["imagefolder"], D.STD["imagefolder"], train=False)
    x, y = next(iter(ev))
    ref = transform(False)(Image.open(ds.test.x.paths[0]).convert("RGB")).float()
    mean, std = torch.tensor(D.MEAN["imagefolder"]).view(3, 1, 1), torch.tensor(D.STD["imagefolder"]).view(3, 1, 1)
    assert torch.allclose(x[0], (ref - 255 * mean) / (255 * std), atol=1e-5) and y.tolist() == [0, 0, 1, 1, 2, 2]
    two = _batches(ds, views=2)
    xs, _ = next(iter(two))
    assert len(xs) == 2 and not torch.equal(xs[0], xs[1])


def test_missing_or_inconsistent_folders_are_one_clear_error(tmp_path, folder):
    with pytest.raises(D.DataNotFoundError, match=r"nope/train not found"):
        load_imagefolder(tmp_path / "nope")
    (folder / "val" / "fox").mkdir()
    with pytest.raises(ValueError, match="other classes than the training split"):
        load_imagefolder(folder)
    r = subprocess.run([sys.executable, "-m", "paper_repro", "train", "resnet20", "--dataset", "imagefolder",
                        "--data-dir", str(tmp_path / "nope")], capture_output=True, text=True)
    assert r.returncode == 2 and "nope/train not found" in r.stderr and "Traceback" not in r.stderr


def test_a_baseline_trains_on_the_folder(folder):
    from paper_repro.train import train_baseline

    run = train_baseline("resnet20", "smoke", data_dir=folder, progress=False, dataset="imagefolder",
                         num_classes=3, batch_size=4, epochs=1, channels_last=False)
    assert run.config["dataset"] == "imagefolder" and len(run.metrics) == 1
    assert run.metrics[0]["curve_images"] == 6 and 0 <= run.test_acc <= 1


def test_the_method_runs_on_the_folder_from_a_folder_teacher(folder, tmp_path):
    """prune_train through FolderBatches: two students on their own crops, removal exact (float64 logit gap)."""
    from paper_repro.method import prune_train
    from paper_repro.train import train_baseline

    data = dict(dataset="imagefolder", num_classes=3, batch_size=4, channels_last=False)
    base = train_baseline("resnet20", "smoke", data_dir=folder, progress=False, epochs=1, **data)
    run = prune_train("resnet20", "flops=0.3", "smoke", data_dir=folder, teacher=base.checkpoint, progress=False,
                      out=tmp_path / "run", export=False, epochs=1, lambda_max=0.5, select_images=4, **data)
    s = run.summary
    assert s["dataset"] == "imagefolder" and s["test_images"] == 6 and s["max_abs_logit_diff"] <= 1e-9
    assert s["students"] == 2 and s["macs_after"] <= s["macs_before"]
