"""One writer per run folder; a finished run is read without the lock and without writing; a resume cleans up
what a killed writer left."""
import json
import os
import subprocess
import sys

import pytest

import paper_repro.method as M
import paper_repro.engine as E
import paper_repro.train as T
from paper_repro import runlock
from paper_repro.config import resolve_baseline
from paper_repro.storage import process_start_time

KW = dict(profile="smoke", seed=0, device="cpu", progress=False)

# The CLI in a child process, with runs/ in the test's folder (argv: runs folder, then the CLI's arguments).
CLI = ("import pathlib, sys; import paper_repro.engine as E; E.RUNS = pathlib.Path(sys.argv[1]); "
       "from paper_repro.__main__ import main; sys.exit(main(sys.argv[2:]))")
# A real prune run that stops in its first training step, holding its run folder, until it is killed
# (argv: runs folder, run folder). It says "holding" once it is there.
PAUSED_PRUNE = """
import pathlib, sys
import paper_repro.method as M, paper_repro.engine as E
E.RUNS = pathlib.Path(sys.argv[1])
def paused(*args, **kwargs):
    print("holding", flush=True)
    sys.stdin.readline()  # never answered: the test kills this process
M.distill_step = paused
M.prune_train("resnet20", "flops=0.5", "smoke", device="cpu", out=sys.argv[2], epochs=1, progress=False)
"""


def _snapshot(folder):
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir()}


def test_a_second_writer_is_refused_naming_the_folder_and_the_holder(tmp_path):
    with runlock.run_lock(tmp_path / "run"):
        assert (tmp_path / "run" / ".lock").read_text().strip() == str(os.getpid())
        holder = f"{tmp_path / 'run'}: another process \\(pid {os.getpid()}\\)"
        with pytest.raises(runlock.RunLockedError, match=holder):
            with runlock.run_lock(tmp_path / "run"):
                pass
    with runlock.run_lock(tmp_path / "run"):  # released: the next writer gets it
        pass


def test_is_locked_says_whether_a_writer_holds_the_folder_and_takes_nothing(tmp_path):
    assert not runlock.is_locked(tmp_path / "run")  # no folder yet
    with runlock.run_lock(tmp_path / "run"):
        assert runlock.is_locked(tmp_path / "run")
        assert runlock.is_locked(tmp_path / "run")  # asking twice changes nothing
    assert not runlock.is_locked(tmp_path / "run")  # a lock file left behind is no lock
    with runlock.run_lock(tmp_path / "run"):  # and asking took nothing from the next writer
        pass


def test_two_identical_trainings_do_not_both_train(tmp_path):
    rdir = T.run_dir_for(resolve_baseline("resnet20", "smoke", 0))
    with runlock.run_lock(rdir):  # another writer is training this run
        with pytest.raises(runlock.RunLockedError, match=f"{rdir}: another process"):
            T.train_baseline("resnet20", **KW)
    assert not (rdir / "checkpoint.pt").exists()
    assert len(T.train_baseline("resnet20", **KW).metrics) == 2


def test_concurrent_prune_runs_on_one_folder_end_with_one_run_and_one_error(tmp_path):
    """The probe of issue 16: prune flops=0.5 and flops=0.3 on one --out folder, at the same time."""
    runs, out = tmp_path / "runs", tmp_path / "D"
    first = subprocess.Popen([sys.executable, "-c", PAUSED_PRUNE, str(runs), str(out)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "holding", first.stderr.read()[-2000:]
        args = ["prune", "--arch", "resnet20", "--target", "flops=0.3", "--profile", "smoke", "--epochs", "1",
                "--device", "cpu", "--out", str(out)]
        second = subprocess.run([sys.executable, "-c", CLI, str(runs), *args], capture_output=True, text=True)
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert [line for line in second.stderr.splitlines() if "error" in line] == [  # beside the progress bars
            f"error: {out}: another process (pid {first.pid}) is writing to this folder. Wait for it to end, or "
            "stop it and run again: the run resumes."]
    finally:
        first.kill()  # ended by its id, like kill -9 <pid>
        first.wait()
    assert (out / ".lock").read_text().strip() == str(first.pid)  # left behind by the killed writer ...
    again = subprocess.run([sys.executable, "-c", CLI, str(runs), *args], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]  # ... and it does not block the next one
    config, summary = (json.loads((out / f).read_text()) for f in ("config.json", "summary.json"))
    assert config["target"] == summary["target"] == json.loads(again.stdout.splitlines()[-1])["target"]


def test_a_finished_run_is_read_without_the_lock_and_without_writing(tmp_path, monkeypatch):
    base = T.train_baseline("resnet20", **KW)
    prune = M.prune_train("resnet20", "flops=0.3", out=tmp_path / "p", epochs=1, **KW)

    def no(*args, **kwargs):
        raise AssertionError("a finished run wrote or locked")

    for name in ("write_json", "write_text", "save_checkpoint", "lock_run_folder"):
        for module in (T, M, E):  # wherever the training paths write from
            if hasattr(module, name):
                monkeypatch.setattr(module, name, no)
    monkeypatch.setattr(M, "save_pruned", no)
    with runlock.run_lock(base.run_dir), runlock.run_lock(prune.run_dir):  # held by a writer elsewhere
        before = _snapshot(base.run_dir), _snapshot(prune.run_dir)
        again = T.train_baseline("resnet20", **KW)
        served = M.prune_train("resnet20", "flops=0.3", out=tmp_path / "p", epochs=1, **KW)
        assert (_snapshot(base.run_dir), _snapshot(prune.run_dir)) == before
    assert again.metrics == base.metrics and again.test_acc == base.test_acc
    assert served.summary == json.loads((tmp_path / "p" / "summary.json").read_text())
    assert served.summary["pruned_acc"] == prune.summary["pruned_acc"] and len(served.pruned) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_serves_a_finished_run(tmp_path):
    base = T.train_baseline("resnet20", **KW)
    M.prune_train("resnet20", "flops=0.3", out=tmp_path / "p", epochs=1, **KW)
    folders = [base.run_dir, base.run_dir.parent, tmp_path / "p"]
    for f in folders:
        f.chmod(0o555)
    try:
        assert T.train_baseline("resnet20", **KW).metrics == base.metrics
        assert M.prune_train("resnet20", "flops=0.3", out=tmp_path / "p", epochs=1, **KW).summary
        with pytest.raises(OSError, match="cannot write"):  # an unfinished run in it cannot start
            T.train_baseline("resnet20", epochs=3, **KW)
    finally:
        for f in folders:
            f.chmod(0o755)


def test_an_unwritable_run_folder_is_one_error_naming_it(tmp_path):
    blocked = tmp_path / "runs"
    blocked.write_text("a file where runs/ should be")
    r = subprocess.run([sys.executable, "-c", CLI, str(blocked), "train", "resnet20", "--profile", "smoke",
                        "--device", "cpu"], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"error: {blocked / 'baselines'}/resnet20-synthetic-s0-") \
        and "cannot write this run folder (Not a directory)" in r.stderr


def test_a_resume_removes_the_temporaries_a_killed_write_left_and_only_those():
    part = T.train_baseline("resnet20", max_epochs_now=1, **KW)
    old = process_start_time() - 600
    stale = part.run_dir / ".checkpoint.pt.k1lled_0.tmp"  # as a kill during save_checkpoint leaves it
    foreign = part.run_dir / "notes.tmp"
    for p in (stale, foreign):
        p.write_bytes(b"x" * 1000)
        os.utime(p, (old, old))
    done = T.train_baseline("resnet20", **KW)
    assert len(done.metrics) == 2 and not stale.exists() and foreign.exists()


def test_a_run_folder_resumes_only_its_own_state_and_writes_settings_then_summary(tmp_path):
    """engine.RunFolder, what the four training loops share: the state file of another run (other key) is refused
    naming the file, an extra expectation (the baseline's data fingerprint) is checked too, config.json holds the
    settings, their key and what was measured, and the summary is {} until written."""
    from paper_repro.storage import CheckpointError

    run = E.RunFolder(tmp_path / "run", "k1", {"arch": "resnet20", "epochs": 3},
                      {"arch": "resnet20", "config_key": "k1"})
    assert run.summary() == {} and run.epochs_done() == 0 and run.resume(lambda s: None) is None
    runlock.holds_run_locks(run.lock)()  # creates the folder; the lock goes when the decorated call ends
    assert (run.path / runlock.LOCK_NAME).exists()
    run.write_settings(dataset="cifar10")
    assert json.loads((run.path / "config.json").read_text()) == {"arch": "resnet20", "epochs": 3, "config_key": "k1",
                                                                  "dataset": "cifar10"}
    run.save_epoch(dict(run.identity, epoch=1, dataset_fingerprint="f1"), metrics=[{"epoch": 1, "loss": 0.5}])
    assert run.epochs_done() == 1 and (run.path / "metrics.csv").exists()
    restored = []
    assert run.resume(restored.append, dataset_fingerprint="f1")["epoch"] == 1 and len(restored) == 1
    with pytest.raises(CheckpointError, match="state.pt"):
        run.resume(restored.append, dataset_fingerprint="f2")
    other = E.RunFolder(run.path, "k2", {}, {"arch": "resnet20", "config_key": "k2"})
    with pytest.raises(CheckpointError, match="state.pt"):
        other.resume(restored.append)
    run.write_summary({"acc": 0.9})
    assert run.summary() == {"acc": 0.9} and len(restored) == 1
