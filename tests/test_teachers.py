"""Committed teachers: published, loaded and checked without training; rejected with one line naming the
retrain command; an interrupted `make teachers` resumes from the committed state alone."""
import json
import shutil

import pytest
import torch

import paper_repro.teachers as TC
import paper_repro.engine as E
import paper_repro.train as T
from paper_repro.config import paper_width_overrides
from paper_repro.method import prune_train
from paper_repro.runlock import RunLockedError, run_lock
from paper_repro.storage import CheckpointError, load_checkpoint, save_checkpoint

KW = dict(device="cpu", progress=False)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_published_teacher_is_loaded_not_trained(committed):
    rows = T.train_teachers(["resnet20"], "smoke", **KW)
    assert rows[0]["status"] == "finished"
    d = TC.teacher_dir("resnet20", "smoke")
    for f in ("teacher.pt", "config.json", "metrics.csv", "provenance.json"):
        assert (d / f).exists(), f
    assert not (d / "resume.pt").exists()
    assert "optimizer" not in load_checkpoint(d / "teacher.pt")  # weights only
    trained = T.train_baseline("resnet20", "smoke", **KW)
    for run_file in (committed / "runs").rglob("checkpoint.pt"):
        run_file.unlink()  # without the run folder's state, only the committed teacher can serve
    loaded = T.train_baseline("resnet20", "smoke", **KW)
    assert loaded.checkpoint == d / "teacher.pt" and loaded.test_acc == trained.test_acc
    for k, v in _weights(trained.model).items():
        assert torch.equal(v, loaded.model.state_dict()[k]), k


@pytest.mark.parametrize("field, value", [("config_key", "000000000000"), ("width", 0.5), ("arch", "resnet32"),
                                          ("dataset_fingerprint", "ffffffffffffffff")])
def test_mismatched_teacher_is_one_line_naming_the_retrain_command(committed, field, value):
    T.train_teachers(["resnet20"], "smoke", **KW)
    path = TC.teacher_dir("resnet20", "smoke") / "teacher.pt"
    ckpt = load_checkpoint(path)
    save_checkpoint(path, {**{k: v for k, v in ckpt.items() if k != "format"}, field: value})
    with pytest.raises(CheckpointError) as e:
        T.train_baseline("resnet20", "smoke", **KW)
    msg = str(e.value)
    assert "\n" not in msg and TC.RETRAIN_COMMAND in msg and str(value) in msg


def test_truncated_teacher_is_refused(committed):
    T.train_teachers(["resnet20"], "smoke", **KW)
    path = TC.teacher_dir("resnet20", "smoke") / "teacher.pt"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        T.train_baseline("resnet20", "smoke", **KW)


def test_reproduce_never_trains_a_missing_teacher(committed):
    with pytest.raises(CheckpointError, match=TC.RETRAIN_COMMAND):
        T.train_baseline("resnet20", "smoke", **KW)
    assert not list((committed / "runs").rglob("checkpoint.pt"))  # nothing was trained
    run = T.train_baseline("resnet20", "smoke", allow_training=True, **KW)  # what the `train` CLI does
    assert len(run.metrics) == run.config["epochs"]


def test_interrupted_teachers_resume_from_the_committed_state_alone(committed):
    whole = T.train_teachers(["resnet20"], "smoke", **KW)
    whole_model = T.train_baseline("resnet20", "smoke", **KW).model
    TC.clear_record(TC.teacher_dir("resnet20", "smoke"))  # as if never published (teacher.pt alone: refused)
    for f in (committed / "runs").rglob("checkpoint.pt"):
        f.unlink()
    # One epoch, then the budget is spent: resume.pt holds the state; a new clone has nothing else.
    cfg = T.resolve_baseline("resnet20", "smoke")
    T.train_baseline("resnet20", "smoke", allow_training=True, max_epochs_now=1, **KW)
    assert TC.publish("resnet20", "smoke", 0, T.run_dir_for(cfg) / "checkpoint.pt") == "in progress"
    assert (TC.teacher_dir("resnet20", "smoke") / "resume.pt").exists()
    for f in (committed / "runs").rglob("checkpoint.pt"):
        f.unlink()
    rows = T.train_teachers(["resnet20"], "smoke", **KW)
    assert rows[0]["status"] == "finished" and rows[0]["test_acc"] == whole[0]["test_acc"]
    resumed = T.train_baseline("resnet20", "smoke", **KW).model
    for k, v in _weights(whole_model).items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_teachers_refuse_a_profile_without_committed_teachers(committed):
    with pytest.raises(ValueError, match="profile"):
        T.train_teachers(["resnet20"], "paper", **KW)


def test_paper_width_teacher_has_its_own_folder_and_serves_its_width_only(committed):
    over = paper_width_overrides("resnet20", "smoke")  # width 0.5; the smoke profile's own is 0.25
    rows = T.train_teachers(["resnet20"], "smoke", paper_width=True, **KW)
    d = TC.teacher_dir("resnet20", "smoke", 0, over["width"])
    assert rows[0]["status"] == "finished" and d.name == "resnet20-w0.5-s0" and (d / "teacher.pt").exists()
    assert not TC.teacher_dir("resnet20", "smoke").exists()  # the profile's own teacher is another one
    for f in (committed / "runs").rglob("checkpoint.pt"):
        f.unlink()
    run = T.train_baseline("resnet20", "smoke", **over, **KW)
    assert run.checkpoint == d / "teacher.pt" and run.config["width"] == 0.5
    with pytest.raises(CheckpointError, match=TC.RETRAIN_COMMAND):  # the width-0.25 one was never trained
        T.train_baseline("resnet20", "smoke", **KW)
    with pytest.raises(ValueError, match="arch: .*no paper-width teacher"):
        paper_width_overrides("vgg_small", "smoke")


# -- the store keeps what it holds (issue 35, items 4 and 6) -------------------------------------------------------
def _files(d):
    return {f.name: f.read_bytes() for f in d.iterdir() if f.is_file()}


def test_a_refused_retrain_deletes_nothing(committed):
    """`make teachers RETRAIN=1` beside a lane training the same teacher: the run folder's lock is taken before
    anything is deleted; the refused call leaves the committed teacher and the local state as they were."""
    T.train_teachers(["resnet20"], "smoke", **KW)
    d, run_dir = TC.teacher_dir("resnet20", "smoke"), T.run_dir_for(T.resolve_baseline("resnet20", "smoke"))
    kept, local = _files(d), (run_dir / "checkpoint.pt").read_bytes()
    with run_lock(run_dir):  # the lane
        with pytest.raises(RunLockedError):
            T.train_teachers(["resnet20"], "smoke", retrain=True, **KW)
    assert _files(d) == kept and (run_dir / "checkpoint.pt").read_bytes() == local


def test_make_teachers_refuses_a_committed_teacher_it_cannot_read_and_never_retrains_over_it(committed):
    """A truncated teacher.pt, a teacher.pt missing beside its records, or malformed JSON: one error naming the
    file and `git checkout -- FILE`; nothing deleted, nothing trained. Only other settings retrain."""
    T.train_teachers(["resnet20"], "smoke", **KW)
    d = TC.teacher_dir("resnet20", "smoke")
    path, whole = d / "teacher.pt", (d / "teacher.pt").read_bytes()
    trained = E.epochs_run()
    path.write_bytes(whole[:1000])
    with pytest.raises(CheckpointError) as e:
        T.train_teachers(["resnet20"], "smoke", **KW)
    assert str(e.value).startswith(f"{path}: not a readable checkpoint") and f"git checkout -- {path}" in str(e.value)
    assert path.read_bytes() == whole[:1000]
    path.unlink()
    with pytest.raises(CheckpointError, match=f"{path}: missing beside the records of a finished teacher"):
        T.train_teachers(["resnet20"], "smoke", **KW)
    with pytest.raises(CheckpointError, match="git checkout -- "):
        T.train_baseline("resnet20", "smoke", **KW)  # nor taken for "never trained" by a reader
    path.write_bytes(whole)
    metrics = (d / "metrics.csv").read_bytes()
    (d / "metrics.csv").unlink()
    with pytest.raises(CheckpointError, match=f"{d / 'metrics.csv'}: missing from a finished teacher's records"):
        T.train_teachers(["resnet20"], "smoke", **KW)
    (d / "metrics.csv").write_bytes(metrics)
    (d / "provenance.json").write_text('{"test_acc": 0.5,}')
    with pytest.raises(CheckpointError, match=f"{d / 'provenance.json'}: not valid JSON .*git checkout"):
        T.train_teachers(["resnet20"], "smoke", **KW)
    assert E.epochs_run() == trained


def test_a_teacher_publish_stopped_half_way_is_not_finished_and_publishes_again(committed, monkeypatch,
                                                                               kill_writes_at):
    """teacher.pt, the finished marker, is written last: a publish killed before provenance.json leaves an
    unfinished teacher (resume.pt), and the next `make teachers` publishes it whole without training."""
    Killed = kill_writes_at(TC, "provenance.json")
    with pytest.raises(Killed):
        T.train_teachers(["resnet20"], "smoke", **KW)
    d = TC.teacher_dir("resnet20", "smoke")
    assert not (d / "teacher.pt").exists() and (d / "resume.pt").exists()
    monkeypatch.undo()
    monkeypatch.setattr(TC, "COMMITTED_PROFILES", ("smoke",))
    monkeypatch.setattr(TC, "TEACHERS", committed / "teachers")
    monkeypatch.setattr(E, "RUNS", committed / "runs")
    trained = E.epochs_run()
    assert T.train_teachers(["resnet20"], "smoke", **KW)[0]["status"] == "finished" and E.epochs_run() == trained
    assert (d / "teacher.pt").exists() and not (d / "resume.pt").exists()


def test_a_teacher_record_carries_digests_checked_on_load(committed):
    T.train_teachers(["resnet20"], "smoke", **KW)
    d = TC.teacher_dir("resnet20", "smoke")
    prov = (d / "provenance.json").read_bytes()
    edited = json.loads(prov)
    edited["test_acc"] = 0.99
    (d / "provenance.json").write_text(json.dumps(edited, indent=2, sort_keys=True) + "\n")
    with pytest.raises(CheckpointError, match=f"{d / 'provenance.json'}: not the file that was published"):
        T.train_baseline("resnet20", "smoke", **KW)
    with pytest.raises(CheckpointError, match="git checkout -- "):
        T.train_teachers(["resnet20"], "smoke", **KW)
    assert sorted(json.loads((d / "digests.json").read_text())["sha256"]) == \
        ["config.json", "metrics.csv", "provenance.json", "teacher.pt"]
    (d / "digests.json").unlink()  # a teacher published before digests: accepted as it is
    assert T.train_baseline("resnet20", "smoke", **KW).checkpoint == d / "teacher.pt"


def test_a_method_run_is_keyed_by_its_teachers_settings_not_its_path(tmp_path):
    """The same teacher handed in from two places, or as a loaded baseline, is one run (one key, one folder): a
    clone at another path, or a shared runs/ cache, serves it; its record names no absolute path."""
    base = T.train_baseline("resnet20", "smoke", **KW)
    elsewhere = tmp_path / "elsewhere" / "teacher.pt"
    elsewhere.parent.mkdir()
    shutil.copy(base.checkpoint, elsewhere)
    kw = dict(device="cpu", progress=False, export=False, epochs=1, students=1)
    a = prune_train("resnet20", "flops=0.4", "smoke", 0, teacher=str(base.checkpoint), **kw)
    trained = E.epochs_run()
    b = prune_train("resnet20", "flops=0.4", "smoke", 0, teacher=str(elsewhere), **kw)
    c = prune_train("resnet20", "flops=0.4", "smoke", 0, teacher=base, **kw)
    assert a.run_dir == b.run_dir == c.run_dir and E.epochs_run() == trained  # served, not trained again
    assert b.config["teacher_checkpoint"] == str(elsewhere)  # the caller still learns where it came from
    cfg = json.loads((a.run_dir / "config.json").read_text())
    assert "teacher_checkpoint" not in cfg  # outside the checkout: not named at all, never by an absolute path
