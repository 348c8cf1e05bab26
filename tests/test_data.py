import hashlib
import json
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
    ds = D.load_cifar("cifar10", tmp_path, download=False, allow_modified=True)  # a copy of one's own
    assert ds.train.x.shape == (100, 3, 32, 32) and ds.train.x.dtype == torch.uint8
    assert ds.test.y.shape == (20,)
    raw = pickle.load(open(folder / "data_batch_1", "rb"), encoding="bytes")
    assert torch.equal(ds.train.x[0].flatten(), torch.from_numpy(raw[b"data"][0]))  # R, G, B planes in order
    assert ds.official is False  # md5 differs from the official release
    again = D.load_cifar("cifar10", tmp_path, download=False, allow_modified=True)
    assert ds.stamp()["dataset_fingerprint"] == again.fingerprint


def _known(monkeypatch, tmp_path, folder, copy="test-copy"):
    """Record the files in `folder` as a known copy (a stand-in for the offline copy: same check, 2 kB of data)."""
    files = {f.name: {"md5": D._md5(f)} for f in folder.iterdir()}
    path = tmp_path / "known_copies.json"
    path.write_text(json.dumps({"copies": {copy: {"dataset": "cifar10", "files": files}}}))
    monkeypatch.setattr(D, "KNOWN_COPIES", path)


def test_a_flipped_byte_in_a_known_copy_is_refused_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv(D.ENV_ALLOW_MODIFIED, raising=False)
    folder = _write_fake_cifar10(tmp_path / "d")
    _known(monkeypatch, tmp_path, folder)
    known = D.load_cifar("cifar10", tmp_path / "d", download=False)  # a known copy: read without any flag
    assert known.notes["known_copy"] == "test-copy" and known.official is False
    raw = bytearray((folder / "data_batch_3").read_bytes())
    # One pixel, same size. numpy pickles the pixels as latin-1 text in UTF-8: an ASCII byte stays one byte.
    images = pickle.loads(bytes(raw), encoding="bytes")[b"data"].tobytes().decode("latin-1").encode()
    at = bytes(raw).find(images)
    at += next(i for i, b in enumerate(images) if b < 0x80)
    raw[at] ^= 0x01
    (folder / "data_batch_3").write_bytes(bytes(raw))
    with pytest.raises(D.UnknownDataError, match=r"data_batch_3: md5 \w+ differs from the test-copy copy\. .*"
                                                  r"--allow-modified-data.*PAPER_REPRO_ALLOW_MODIFIED_DATA=1"):
        D.load_cifar("cifar10", tmp_path / "d", download=False)
    mine = D.load_cifar("cifar10", tmp_path / "d", download=False, allow_modified=True)
    assert mine.official is False and mine.fingerprint != known.fingerprint
    assert (mine.train.x != known.train.x).sum() == 1  # the flipped byte was one pixel
    assert mine.notes["known_copy"].startswith("none")
    monkeypatch.setenv(D.ENV_ALLOW_MODIFIED, "1")  # what notebooks (and the CLI flag) use
    assert D.load_cifar("cifar10", tmp_path / "d", download=False).fingerprint == mine.fingerprint
    monkeypatch.setenv(D.ENV_ALLOW_MODIFIED, "yes")
    with pytest.raises(ValueError, match="PAPER_REPRO_ALLOW_MODIFIED_DATA: must be 1 .* or 0, got 'yes'"):
        D.load_cifar("cifar10", tmp_path / "d", download=False)


def test_an_unknown_copy_names_its_first_file(tmp_path, monkeypatch):
    monkeypatch.delenv(D.ENV_ALLOW_MODIFIED, raising=False)
    _write_fake_cifar10(tmp_path)
    with pytest.raises(D.UnknownDataError, match=r"data_batch_1: md5 \w+ matches no known copy of cifar10 "
                                                  r"\(and 5 more file\(s\)\)"):
        D.load_cifar("cifar10", tmp_path, download=False)


def test_a_truncated_batch_is_one_error_naming_the_file(tmp_path):
    folder = _write_fake_cifar10(tmp_path)
    raw = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"test_batch: not a readable CIFAR batch \((EOFError|UnpicklingError)"):
        D.load_cifar("cifar10", tmp_path, download=False, allow_modified=True)
    (folder / "test_batch").write_bytes(b"\x00garbage" + raw[9:])  # a damaged header
    with pytest.raises(ValueError, match="test_batch: not a readable CIFAR batch"):
        D.load_cifar("cifar10", tmp_path, download=False, allow_modified=True)


def test_known_copies_record_the_offline_copy_and_its_fingerprint():
    """The offline copy's md5s give the fingerprint its results are keyed on (0eb270ba7f3d306e)."""
    copies = D.known_copies("cifar10")
    assert set(copies) == {"official", "offline-jpeg-2026"}
    order = [f for f, _ in D._official_files("cifar10")]
    offline = copies["offline-jpeg-2026"]
    assert hashlib.sha256("".join(offline[f] for f in order).encode()).hexdigest()[:16] == "0eb270ba7f3d306e"
    assert all(offline[f] != copies["official"][f] for f in order)
    assert D.known_copies("cifar100").keys() == {"official"}


def test_the_project_data_is_a_known_copy():
    """data/ (or $PAPER_REPRO_DATA), when present, is one of the known copies: the check refuses no good copy."""
    folder = D.default_data_dir() / "cifar-10-batches-py"
    files = [f for f, _ in D._official_files("cifar10")]
    if not all((folder / f).exists() for f in files):
        pytest.skip(f"no CIFAR-10 in {folder}")
    copy, _, differ = D.identify_copy("cifar10", {f: D._md5(folder / f) for f in files})
    assert copy in ("official", "offline-jpeg-2026"), differ


def test_missing_data_offline_gives_the_three_ways(tmp_path, monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "__init__", offline)
    with pytest.raises(D.DataNotFoundError) as e:
        D.load_cifar("cifar10", tmp_path / "empty")
    msg = str(e.value)
    assert "download failed" in msg and D.ENV_DATA_DIR in msg and "prepare_cifar10.py" in msg
    assert "\n" not in msg  # printed as one `error:` line
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
