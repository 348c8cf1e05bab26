import pickle
import urllib.error

import numpy as np
import pytest
import torch

from paper_repro import data as D


def _write_fake_cifar10(root, n=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
    return folder


def test_reads_python_batches_and_flags_unofficial(tmp_path):
    folder = _write_fake_cifar10(tmp_path)
    ds = D.load_cifar("cifar10", tmp_path, download=False)
    assert ds.train.x.shape == (100, 3, 32, 32) and ds.train.x.dtype == torch.uint8
    assert ds.test.y.shape == (20,)
    raw = pickle.load(open(folder / "data_batch_1", "rb"), encoding="bytes")
    assert torch.equal(ds.train.x[0].flatten(), torch.from_numpy(raw[b"data"][0]))  # R, G, B planes in order
    assert ds.official is False  # md5 differs from the official release
    assert ds.stamp()["dataset_fingerprint"] == D.load_cifar("cifar10", tmp_path, download=False).fingerprint


def test_missing_data_offline_gives_the_three_ways(tmp_path, monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "__init__", offline)
    with pytest.raises(D.DataNotFoundError) as e:
        D.load_cifar("cifar10", tmp_path / "empty")
    msg = str(e.value)
    assert "download failed" in msg and D.ENV_DATA_DIR in msg and "prepare_cifar10.py" in msg
    with pytest.raises(D.DataNotFoundError, match="download=False"):
        D.load_cifar("cifar10", tmp_path / "empty", download=False)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="dataset: unknown dataset 'cifar11'.*cifar10, cifar100, synthetic"):
        D.load_cifar("cifar11")


def test_augment_matches_reference_crop_and_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 32, 32), generator=g, dtype=torch.uint8)
    dx, dy = torch.randint(0, 9, (2, 6), generator=g)
    flip = torch.tensor([True, False, True, False, True, False])
    out = D.augment(x, dx, dy, flip)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(6):
        ref = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        assert torch.equal(out[i], ref.flip(-1) if flip[i] else ref)


def test_batches_are_seeded_per_epoch():
    ds = D.make_synthetic(n_train=256, n_test=64)
    mk = lambda: D.Batches(ds.train, 64, D.MEAN["synthetic"], D.STD["synthetic"], train=True, seed=3)
    a = [y for _, y in mk().set_epoch(2)]
    b = [y for _, y in mk().set_epoch(2)]
    c = [y for _, y in mk().set_epoch(3)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not all(torch.equal(p, q) for p, q in zip(a, c))


def test_synthetic_is_deterministic_and_learnable_shaped():
    a, b = D.make_synthetic(seed=1), D.make_synthetic(seed=1)
    assert torch.equal(a.train.x, b.train.x) and a.official is False
    assert a.train.x.shape[1:] == (3, 32, 32) and int(a.train.y.max()) == 9


def test_views_are_independent_crops_of_the_same_images():
    ds = D.make_synthetic(n_train=256, n_test=64)
    one = D.Batches(ds.train, 64, D.MEAN["synthetic"], D.STD["synthetic"], train=True, seed=3).set_epoch(1)
    three = D.Batches(ds.train, 64, D.MEAN["synthetic"], D.STD["synthetic"], train=True, seed=3, views=3).set_epoch(1)
    for (x, y), (xs, ys) in zip(one, three):
        assert torch.equal(y, ys) and len(xs) == 3
        assert torch.equal(x, xs[0])  # view 0 is the single-view batch
        assert not torch.equal(xs[1], xs[2])
    with pytest.raises(ValueError, match="views"):
        D.Batches(ds.test, 64, D.MEAN["synthetic"], D.STD["synthetic"], train=False, views=2)
