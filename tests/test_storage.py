"""Writes: modes of any other tool, failures that name the file, no temporary file left behind; checkpoint
messages whose remedy fits whose file it is."""
import os
import random
import subprocess
import sys
import time

import pytest
import torch

from paper_repro import storage as S


@pytest.fixture
def umask():
    """Set the umask for one test, then restore it."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def test_files_follow_the_umask(tmp_path, umask):
    for mask, mode in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        umask(mask)
        assert S.current_umask() == mask
        j = S.write_json(tmp_path / f"{mask:o}.json", {"a": 1})
        c = S.save_checkpoint(tmp_path / f"{mask:o}.pt", {"a": torch.zeros(2)})
        assert (j.stat().st_mode & 0o777, c.stat().st_mode & 0o777) == (mode, mode)


def test_a_failed_write_names_the_file_and_leaves_no_temporary(tmp_path):
    def fail(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match=f"{tmp_path / 'x.pt'}: cannot write \\(No space left on device\\)"):
        S.atomic_write(tmp_path / "x.pt", fail)
    assert list(tmp_path.iterdir()) == []
    blocked = tmp_path / "file"
    blocked.write_text("a file, not a folder")
    with pytest.raises(OSError, match=f"{blocked / 'run' / 'config.json'}: cannot write"):
        S.write_json(blocked / "run" / "config.json", {})


def test_a_file_size_limit_is_one_error_naming_the_checkpoint(tmp_path):
    """ulimit -f: torch.save reports an opaque 'unexpected pos'; the error names the file, no temporary is left."""
    import resource

    code = ("import sys, torch; from paper_repro.storage import save_checkpoint\n"
            "try:\n    save_checkpoint(sys.argv[1], {'w': torch.zeros(100_000)})\n"
            "except OSError as e:\n    print(e)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "big.pt")], capture_output=True, text=True,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000)))
    assert r.stdout.strip() == (f"{tmp_path / 'big.pt'}: cannot write (the file was cut short: disk full, "
                                "or a file-size limit?)"), r.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    old = S.process_start_time() - 600
    own_stale = [".checkpoint.pt.ab_12xyz.tmp", ".pruned.4242.tmp.pt2", ".01_baselines.ipynb.tmp.ipynb"]
    kept = ["notes.tmp", ".checkpoint.pt.tmp", "checkpoint.pt", ".hidden.ab_12xyz.tmpx"]
    for name in own_stale + kept:
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (old, old))
    (tmp_path / ".metrics.csv.young123.tmp").write_bytes(b"x")  # newer than this process: maybe being written
    removed = S.remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted(own_stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept + [".metrics.csv.young123.tmp"])


def test_process_start_is_before_now_and_after_boot():
    assert time.time() - 3600 * 24 * 365 < S.process_start_time() <= time.time()


def test_checkpoint_remedies_fit_the_file(tmp_path):
    run_file = tmp_path / "state.pt"
    for seed in range(20):  # random bytes fail the legacy unpickler in many ways (IndexError, KeyError, ...)
        run_file.write_bytes(random.Random(seed).randbytes(3000))
        with pytest.raises(S.CheckpointError) as e:
            S.load_checkpoint(run_file)
        msg = str(e.value)
        assert "not a PyTorch checkpoint" in msg and "Delete it" in msg and "weights_only" not in msg, (seed, msg)
    given = tmp_path / "teacher.pt"
    S.save_checkpoint(given, {"arch": "resnet32"})
    with pytest.raises(S.CheckpointError, match="arch='resnet32' but 'resnet20' was expected") as e:
        S.load_checkpoint(given, expect={"arch": "resnet20"}, remedy=S.TEACHER_REMEDY)
    assert "Delete" not in str(e.value) and "rm " not in str(e.value) and "--teacher" in str(e.value)
    with pytest.raises(S.CheckpointError, match=f"{tmp_path / 'missing.pt'}: not found\\.") as e:
        S.load_checkpoint(tmp_path / "missing.pt", remedy=S.TEACHER_REMEDY)
    assert "Delete" not in str(e.value)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(given.read_bytes()[:200])
    with pytest.raises(S.CheckpointError, match="a damaged or truncated PyTorch file"):
        S.load_checkpoint(cut)


def test_store_json_is_read_by_one_reader_that_names_the_file_and_its_remedy(tmp_path):
    f = tmp_path / "summary.json"
    f.write_text('{"pruned_acc": 0.9,}')
    with pytest.raises(S.CheckpointError) as e:
        S.read_json(f)
    assert str(e.value).startswith(f"{f}: not valid JSON (") and "line 1 column" in str(e.value)
    assert f"git checkout -- {f}" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(S.CheckpointError, match="not found. Delete it"):
        S.read_json(tmp_path / "absent.json", "Delete it.")
    f.write_bytes(S.json_bytes({"b": 1, "a": [1.5]}))
    assert S.read_json(f) == {"a": [1.5], "b": 1} and f.read_text() == S.json_bytes({"a": [1.5], "b": 1}).decode()


def test_digests_are_checked_and_a_record_without_them_is_legacy(tmp_path):
    assert S.check_digests(tmp_path).startswith("legacy")
    S.write_json(tmp_path / "summary.json", {"acc": 0.5})
    data = S.checkpoint_bytes({"w": torch.arange(4)})
    S.write_bytes(tmp_path / "net.pt", data)
    S.write_digests(tmp_path, {"summary.json": S.sha256_file(tmp_path / "summary.json"),
                               "net.pt": S.sha256_bytes(data)})
    assert S.check_digests(tmp_path) == "checked"
    assert torch.equal(S.load_checkpoint(tmp_path / "net.pt")["w"], torch.arange(4))  # checkpoint_bytes: a checkpoint
    (tmp_path / "net.pt").write_bytes(data[:-10])
    with pytest.raises(S.CheckpointError, match=f"{tmp_path / 'net.pt'}: not the file that was published"):
        S.check_digests(tmp_path)
    (tmp_path / "net.pt").unlink()
    with pytest.raises(S.CheckpointError, match="net.pt: missing from a published record"):
        S.check_digests(tmp_path)


def test_a_record_names_a_file_relative_to_the_checkout_or_not_at_all(tmp_path):
    assert S.repo_path(S.ROOT / "teachers" / "cpu" / "x" / "teacher.pt") == "teachers/cpu/x/teacher.pt"
    assert S.repo_path(tmp_path / "teacher.pt") is None
