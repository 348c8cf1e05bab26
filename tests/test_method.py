"""The method end to end on the smoke profile: label-free, resumable, exact removal, clear errors."""
import json

import pytest
import torch

import paper_repro.method as M
import paper_repro.train as T
from paper_repro.storage import CheckpointError

KW = dict(profile="smoke", seed=0, device="cpu", progress=False, students=2)


def _states(run):
    return [{k: v.clone() for k, v in s.state_dict().items()} for s in run.students]


def test_end_to_end_removal_is_exact_and_files_exist(tmp_path):
    r = M.prune_train("resnet20", "flops=0.5", out=tmp_path / "run", lambda_max=0.5, **KW)
    s = r.summary
    for k in ("arch", "dataset_official", "baseline_acc", "pruned_acc", "params_before", "params_after",
              "macs_before", "macs_after", "max_abs_logit_diff"):
        assert k in s
    assert s["max_abs_logit_diff"] <= 1e-4
    assert s["params_after"] < s["params_before"] and s["macs_after"] < s["macs_before"]
    for f in ("config.json", "metrics.csv", "scores.csv", "student_masked.pt", "pruned.pt2", "pruned_state.pt",
              "summary.json", "widths.json"):
        assert (tmp_path / "run" / f).exists(), f
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["arch"] == "resnet20"
    assert {m["student"] for m in r.metrics} == {0, 1}


def test_labels_are_never_read(tmp_path, monkeypatch):
    """Replacing every training label by garbage changes nothing when labels are off."""
    a = M.prune_train("resnet20", "flops=0.3", out=tmp_path / "a", **KW)

    real = M.prepare_data

    def garbage_labels(*args, **kw):
        ds, train, test = real(*args, **kw)
        train = type(train)(train.x, torch.randint(0, 10, train.y.shape, generator=torch.Generator().manual_seed(5)))
        return ds, train, test

    monkeypatch.setattr(M, "prepare_data", garbage_labels)
    b = M.prune_train("resnet20", "flops=0.3", out=tmp_path / "b", **KW)
    for sa, sb in zip(_states(a), _states(b)):
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    c = M.prune_train("resnet20", "flops=0.3", out=tmp_path / "c", labels="on", **KW)  # the ablation does read them
    assert any(not torch.equal(p, q) for p, q in zip(_states(a)[0].values(), _states(c)[0].values()))


def test_interrupted_method_resumes_to_the_same_students(tmp_path):
    full = M.prune_train("resnet20", "flops=0.4", out=tmp_path / "full", epochs=3, **KW)
    part = M.prune_train("resnet20", "flops=0.4", out=tmp_path / "part", epochs=3, max_epochs_now=1, **KW)
    assert not part.summary
    resumed = M.prune_train("resnet20", "flops=0.4", out=tmp_path / "part", epochs=3, **KW)
    for sa, sb in zip(_states(full), _states(resumed)):
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    assert resumed.summary["pruned_acc"] == full.summary["pruned_acc"]


def test_bad_input_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"target: ratio must be in \(0, 1\)"):
        M.prune_train("resnet20", "flops=1.5", out=tmp_path / "x", **KW)
    with pytest.raises(ValueError, match="not reachable"):
        M.prune_train("resnet20", "params=0.999", out=tmp_path / "x", **KW)
    with pytest.raises(ValueError, match="criterion: unknown value 'norm'"):
        M.prune_train("resnet20", "flops=0.5", out=tmp_path / "x", criterion="norm", **KW)
    with pytest.raises(ValueError, match="selection: unknown value"):
        M.prune_train("resnet20", "flops=0.5", out=tmp_path / "x", selection="sometimes", **KW)
    other = T.train_baseline("resnet32", "smoke", seed=0, device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="arch='resnet32' but 'resnet20' was expected"):
        M.prune_train("resnet20", "flops=0.5", out=tmp_path / "x", teacher=other.run_dir / "checkpoint.pt", **KW)
    assert not (tmp_path / "x").exists()  # nothing started


@pytest.mark.parametrize("arch,target", [("vgg_small", "params=0.5"), ("mobilenetv2", "flops=0.3")])
def test_other_architectures_run(tmp_path, arch, target):
    from paper_repro.surgery import dead_masks, mask_model

    # lr 0.01: at the smoke recipe's 0.1 (and 0.05) one epoch from a 2-epoch VGG teacher on synthetic data blows the
    # students up (logits of 1e12 to inf, depending on the thread count's rounding), and exactness means nothing
    # there. The check is then against the size of the logits, which float64 rounding scales with.
    r = M.prune_train(arch, target, out=tmp_path / arch, epochs=1, lambda_max=0.5, lr=0.01, **KW)
    x = torch.randn(8, 3, 32, 32, dtype=torch.float64)
    for s, pruned in zip(r.students, r.pruned):
        masked = mask_model(s, dead_masks(s, r.config["alive_threshold"])).cpu().double().eval()
        with torch.no_grad():
            scale = masked(x).abs().max().item()
        assert M.logit_gap(pruned, masked, x) <= 1e-9 * max(1.0, scale)


def test_students_get_their_own_views_and_so_differ(tmp_path):
    """Exact copies fed one batch stay identical (mutual term 0); own crops + flips break the tie."""
    own = M.prune_train("resnet20", "flops=0.3", out=tmp_path / "own", **KW)
    a, b = _states(own)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert all(m["loss_mutual"] > 0 for m in own.metrics)
    shared = M.prune_train("resnet20", "flops=0.3", out=tmp_path / "shared", student_views="shared", **KW)
    a, b = _states(shared)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="student_views: unknown value 'mixed'"):
        M.prune_train("resnet20", "flops=0.3", out=tmp_path / "x", student_views="mixed", **KW)


def test_given_teacher_is_recorded_beside_the_training_settings(tmp_path):
    """A teacher trained with other settings (here 1 epoch instead of the profile's 2) is used as given, and
    config.json keeps both: what the students trained with and what the teacher was."""
    short = T.train_baseline("resnet20", "smoke", seed=0, device="cpu", progress=False, epochs=1)
    r = M.prune_train("resnet20", "flops=0.3", out=tmp_path / "run", epochs=1,
                      teacher=short.run_dir / "checkpoint.pt", **KW)
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["teacher_config"]["epochs"] == 1 and cfg["baseline"]["epochs"] == 2
    assert r.config["teacher_checkpoint"] == str(short.run_dir / "checkpoint.pt")  # the caller learns where it was
    assert "teacher_checkpoint" not in cfg  # the record: only relative to the checkout (this runs/ lies outside it)
    assert r.summary["baseline_acc"] == short.test_acc


def test_fixed_selection_keeps_its_first_sets_and_resumes(tmp_path):
    """`fixed`: the expected-sparse sets of the first step hold for the whole run, also across a resume;
    only channels of those sets can be driven to zero."""
    kw = dict(KW, students=1, selection="fixed", lambda_max=2.0, epochs=3)
    full = M.prune_train("resnet20", "flops=0.4", out=tmp_path / "full", **kw)
    M.prune_train("resnet20", "flops=0.4", out=tmp_path / "part", max_epochs_now=1, **kw)
    resumed = M.prune_train("resnet20", "flops=0.4", out=tmp_path / "part", **kw)
    for sa, sb in zip(_states(full), _states(resumed)):
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    assert {r["epoch"] for r in full.scores} == {1}  # scored once, at the first step
    chosen = {(r["layer"], r["channel"]) for r in full.scores if r["selected"]}
    groups = full.students[0].channel_groups()
    dead = {(l, c) for l, g in enumerate(groups) for c in torch.nonzero(~g.alive(0.01)).flatten().tolist()}
    assert dead and dead <= chosen


def test_reported_student_is_chosen_without_test_labels(tmp_path):
    """The reported student is the one that agrees most with the teacher on held-out training images, among
    those that meet the target; the summary keeps every student's test accuracy and their mean, and target_met is
    judged on that student."""
    per = [dict(select_teacher_agreement=0.5, acc_pruned=0.9), dict(select_teacher_agreement=0.7, acc_pruned=0.1),
           dict(select_teacher_agreement=0.7, acc_pruned=0.2)]
    assert M.select_student(per) == 1  # highest agreement, ties to the lower index, test accuracy ignored
    with pytest.raises(ValueError, match="select"):
        M.select_student(per, "test_acc")
    # a student short of the target is passed over when another meets it (its size, not a label, says so)
    assert M.select_student(per, met=[True, False, True]) == 2
    assert M.select_student(per, met=[False, False, False]) == 1  # none meets it: agreement alone
    r = M.prune_train("resnet20", "flops=0.3", out=tmp_path / "run", epochs=1, **KW)
    s = r.summary
    agree = [p["select_teacher_agreement"] for p in s["per_student"]]
    met = [p["flops_pruned"] >= 0.3 - 1e-9 for p in s["per_student"]]
    met = met if any(met) else [True] * len(met)
    assert s["best_student"] == max(range(len(agree)), key=lambda i: (met[i], agree[i], -i))
    assert s["selection_rule"] == "teacher_agreement" and s["select_images_heldout"] is True
    assert s["pruned_acc"] == s["per_student"][s["best_student"]]["acc_pruned"]
    assert s["pruned_acc_all"] == [p["acc_pruned"] for p in s["per_student"]]
    assert s["pruned_acc_mean"] == pytest.approx(sum(s["pruned_acc_all"]) / len(s["pruned_acc_all"]))


def test_heldout_images_are_outside_the_training_subset():
    from paper_repro import data as D

    x = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 3, 32, 32).contiguous()
    split = D.Split(x, torch.arange(100))
    used = set(D.subset(split, 60, seed=3).y.tolist())
    held, outside = D.heldout(split, 60, 30, seed=3)
    assert outside and len(held.y) == 30 and not used & set(held.y.tolist())
    held, outside = D.heldout(split, None, 30, seed=3)  # every image trains: drawn from them, and said so
    assert not outside and len(held.y) == 30


def test_measures_turned_off_skip_their_evaluations_and_left_on_keep_every_key(tmp_path):
    """method.MEASURES: off (the ablation arms), no per-epoch curve and no accuracy of the unpruned students, the
    pruned ones still measured; left on, absent from the settings, so every earlier run keeps its cache key."""
    on = M.resolve_method("resnet20", "flops=0.5", "smoke", 0, measure_curve=True)
    assert not set(M.MEASURES) & set(on)
    assert M.run_key(on) == M.run_key(M.resolve_method("resnet20", "flops=0.5", "smoke", 0))
    with pytest.raises(ValueError, match="measure_curve: must be True or False"):
        M.resolve_method("resnet20", "flops=0.5", "smoke", 0, measure_curve="no")
    r = M.prune_train("resnet20", "flops=0.5", out=tmp_path / "run", lambda_max=0.5, measure_curve=False,
                      measure_trained=False, **KW)
    assert r.config["measure_curve"] is False and r.config["measure_trained"] is False
    assert all(m["curve_acc"] is None and m["curve_images"] == 0 for m in r.metrics)
    per = r.summary["per_student"]
    assert all(p["acc_trained"] is None and 0 <= p["acc_pruned"] <= 1 for p in per)
