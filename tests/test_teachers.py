"""Committed teachers: published, loaded and checked without training; rejected with one line naming the
retrain command; an interrupted `make teachers` resumes from the committed state alone."""
import pytest
import torch

import paper_repro.teachers as TC
import paper_repro.engine as E
import paper_repro.train as T
from paper_repro.config import paper_width_overrides
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
    TC.teacher_dir("resnet20", "smoke").joinpath("teacher.pt").unlink()
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
