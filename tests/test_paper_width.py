"""The paper-width runs (issue 23) on the smoke stand-in: trained in calls that stop between epochs, their state
carried by the committed folder alone, their records checked against today's settings and data, and the controls
at the method's target FLOPs."""
import json
import re

import pytest
import torch

import paper_repro.engine as E
import paper_repro.teachers as TC
import paper_repro.train as T
from paper_repro.allocation import pruned_ratio
from paper_repro.counting import CostModel
from paper_repro.export import load_pruned
from paper_repro.models import build_model
from paper_repro.provenance import ROOT, cpu_model
from paper_repro.runlock import RunLockedError, run_lock
from paper_repro.reproduction import paper_width as P
from paper_repro.storage import CheckpointError, load_checkpoint
from paper_repro.studies import classic

# A string that names a file by an absolute path: POSIX ("/..."), home ("~/..."), Windows ("C:\\...", "\\\\host").
ABSOLUTE = re.compile(r"^(/|~/|[A-Za-z]:[\\/]|\\\\)")
BINARY_FIELDS = ("correct_bits",)  # per_image.json's base64 bits ("/" is one of its digits)


def absolute_paths(obj, where=""):
    """Every string of a JSON value that is an absolute path, with where it sits."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() if k not in BINARY_FIELDS for p in absolute_paths(v, f"{where}.{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in absolute_paths(v, f"{where}[{i}]")]
    return [f"{where}: {obj}"] if isinstance(obj, str) and ABSOLUTE.match(obj) else []


def json_paths(folder):
    """{file: [absolute paths]} of every JSON file under `folder` that holds one."""
    found = {}
    for f in sorted(folder.rglob("*.json")):
        hits = absolute_paths(json.loads(f.read_text()))
        if hits:
            found[str(f)] = hits
    return found

KW = dict(device="cpu", progress=False)


@pytest.fixture
def store(committed, monkeypatch):
    """`committed` (teachers/ and runs/ in tmp_path), and paper_width/ there too."""
    monkeypatch.setattr(P, "STORE", committed / "paper_width")
    return committed


def test_runs_wait_for_the_teacher_then_train_and_publish(store):
    rows = P.train_runs(["method-s0", "control-scratch"], "smoke", **KW)
    assert rows[0]["status"].startswith("waiting for the teacher")
    assert rows[1]["status"] == "finished"  # the labelled control needs no teacher
    assert P.train_runs(["teacher"], "smoke", **KW)[0]["status"] == "finished"  # `make teachers`'s job
    assert P.run_state(P.runs("smoke")["teacher"], "smoke") == "finished"
    assert P.peer_target("smoke") is None  # the peers aim at the ratio method-s0 lands at: they wait for it
    assert P.train_runs(["peer-tp"], "smoke", **KW)[0]["status"].startswith("waiting for method-s0")
    with pytest.raises(ValueError, match="train it first"):
        P.expected_key(P.runs("smoke")["peer-l1"], "smoke")
    rows = P.train_runs(None, "smoke", **KW)
    assert [r["status"] for r in rows] == ["finished (committed)", "finished", "finished", "finished (committed)",
                                           "finished", "finished", "finished", "finished"]
    for r in list(P.runs("smoke").values())[1:]:
        d = r.folder("smoke")
        assert (d / "summary.json").exists() and (d / "pruned_state.pt").exists() and not (d / P.RESUME).exists()
        assert json.loads((d / "config.json").read_text())["config_key"] == P.expected_key(r, "smoke"), r.name
    recs = {r["run"]: r for r in P.load_records("smoke")}
    assert all(r["state"] == "finished" for r in recs.values())
    assert recs["control-scratch"]["summary"]["epochs"] == 4  # the teacher's 2 epochs + the students' 2
    tp = recs["peer-tp"]["summary"]
    assert tp["finetune_epochs"] == 1 and tp["epochs"] == 1  # split at the method's first LR decay
    method = recs["method-s0"]["summary"]
    assert P.peer_target("smoke") == f"flops={method['flops_pruned']:.4f}"
    for name in ("peer-tp", "peer-l1"):  # the peers land at the method's ratio (within one point)
        assert abs(recs[name]["summary"]["flops_pruned"] - method["flops_pruned"]) < 0.01, name
    ft = recs["finetune"]["summary"]
    assert ft["acc_before_finetune"] == method["pruned_acc"]  # the method's own pruned network, measured again
    assert json_paths(store / "paper_width") == {}  # no record names a file by an absolute path (peer-tp's teacher)
    l1 = json.loads((P.runs("smoke")["peer-l1"].folder("smoke") / "config.json").read_text())
    assert sorted(l1["baseline"]) == sorted(classic.BASELINE_USED)  # what the arm used of its students' settings
    c = P.curves(list(recs.values()))  # notebook 02's figure: the label-free runs per epoch and student
    assert set(c["run"]) == {"method-s0", "method-s1", "control-distill"}
    assert len(c) == 3 * 2 * 2 and c["flops_pruned"].between(0, 1).all()  # 3 runs x 2 epochs x 2 students
    assert set(c[c["lr_decay"]]["epoch"]) == {1}  # a 2-epoch run's milestones, made distinct: 1 and 2


def test_a_peer_resumed_after_its_sparse_epochs_publishes_every_epoch(store):
    """A peer-tp run whose sparse epochs trained on another machine has no local metrics.csv (only its state is
    carried): publishing writes its metrics from the run, the sparse epochs and the fine-tuning ones."""
    T.train_teachers(["resnet20"], "smoke", paper_width=True, **KW)
    P.train_runs(["method-s0", "peer-tp"], "smoke", **KW)
    run = P.runs("smoke")["peer-tp"]
    d = run.folder("smoke")
    published = (d / "metrics.csv").read_text()
    for f in list(d.iterdir()):  # as if never published, and the local run folder without its metrics.csv
        f.unlink()
    (run.run_dir("smoke") / "metrics.csv").unlink()
    assert P.train_runs(["peer-tp"], "smoke", **KW)[0]["status"] == "finished"
    rows = (d / "metrics.csv").read_text()
    assert rows == published and len(rows.splitlines()) == 1 + 1 + 1  # header, 1 sparse + 1 fine-tuning epoch
    assert "phase" in rows.splitlines()[0]


def test_controls_sit_at_the_target_and_load_without_our_training_code(store):
    T.train_teachers(["resnet20"], "smoke", paper_width=True, **KW)
    P.train_runs(["control-distill", "control-scratch"], "smoke", **KW)
    widths = P.uniform_widths("smoke")
    cm = CostModel(build_model("resnet20", width=0.5))
    target = 0.5
    assert target <= pruned_ratio(cm, widths, "flops") < target + 0.01
    for name in ("control-distill", "control-scratch"):
        d = P.runs("smoke")[name].folder("smoke")
        s = json.loads((d / "summary.json").read_text())
        assert abs(s["flops_pruned"] - pruned_ratio(cm, widths, "flops")) < 0.01, name
        assert load_pruned(d).widths() == widths, name


def test_interrupted_run_resumes_from_the_committed_state_alone(store, monkeypatch):
    T.train_teachers(["resnet20"], "smoke", paper_width=True, **KW)
    heads = iter(["aaaaaaaaaaaa"] + ["bbbbbbbbbbbb"] * 99)  # a commit lands while the lane trains
    monkeypatch.setattr(P, "git_commit", lambda: next(heads))
    rows = P.train_runs(["method-s0"], "smoke", max_epochs_now=1, **KW)
    chunk = json.loads((P.runs("smoke")["method-s0"].folder("smoke") / P.CHUNKS).read_text())[0]
    assert chunk["commit"] == "aaaaaaaaaaaa"  # the code the call ran, not HEAD when it ended
    assert rows[0]["status"] == "epoch 1 of 2"
    run = P.runs("smoke")["method-s0"]
    assert P.run_state(run, "smoke") == "epoch 1 of 2"
    assert (run.folder("smoke") / P.RESUME / "state.pt").exists()
    for f in (store / "runs").rglob("state.pt"):
        f.unlink()  # a new machine: only the repository's state
    assert P.train_runs(["method-s0"], "smoke", **KW)[0]["status"] == "finished"
    split = json.loads((run.folder("smoke") / "summary.json").read_text())
    chunks = json.loads((run.folder("smoke") / P.CHUNKS).read_text())  # which epochs trained where, per call
    assert [c["epochs"] for c in chunks] == [[1, 1], [2, 2]] and all(c["device"].startswith("cpu:") for c in chunks)
    assert P.processors({"chunks": chunks}) == cpu_model()
    assert P.processors({"chunks": chunks[1:]}) == f"{cpu_model()} (epochs 1 unrecorded)"
    gap = [dict(chunks[0], epochs=[1, 2]), dict(chunks[0], epochs=[5, 6])]
    assert P.processors({"chunks": gap}) == f"{cpu_model()} (epochs 3-4 unrecorded)"
    assert P.processors({"summary": {"device": "cpu:2threads:AVX512:AMD EPYC"}}) == "AMD EPYC"  # no log: the last
    gpu = [chunks[0], dict(chunks[1], device="cuda:NVIDIA H100 80GB HBM3")]
    assert P.processors({"chunks": gpu}) == " and ".join(sorted([cpu_model(), "cuda:NVIDIA H100 80GB HBM3"]))
    P.train_runs(["method-s0"], "smoke", retrain=True, **KW)  # the same run, uninterrupted
    assert [c["epochs"] for c in json.loads((run.folder("smoke") / P.CHUNKS).read_text())] == [[1, 2]]
    whole = json.loads((run.folder("smoke") / "summary.json").read_text())
    for k in ("pruned_acc", "flops_pruned", "params_pruned", "pruned_acc_all"):
        assert split[k] == whole[k], k


def test_a_lane_starts_no_run_its_budget_cannot_hold(store):
    """A run that stopped for the budget ends the lane (the next run has no epoch of its own to estimate from, so the
    engine would start one); a run with no epoch yet is estimated from its finished siblings' epochs."""
    T.train_teachers(["resnet20"], "smoke", paper_width=True, **KW)
    P.train_runs(["method-s0"], "smoke", max_epochs_now=1, **KW)
    rows = P.train_runs(["method-s0", "control-scratch"], "smoke", budget_s=0.05, **KW)  # < one recorded epoch
    assert rows[0]["status"] == "epoch 1 of 2"
    assert rows[1]["status"] == "not reached (budget spent: method-s0 stopped for it)"
    assert not P.runs("smoke")["control-scratch"].run_dir("smoke").exists()
    assert P.first_epoch_estimate(P.runs("smoke")["method-s1"], "smoke") is None  # no finished sibling yet
    assert P.train_runs(["method-s0"], "smoke", **KW)[0]["status"] == "finished"
    s1 = P.runs("smoke")["method-s1"]
    m = P.pd.read_csv(P.runs("smoke")["method-s0"].folder("smoke") / "metrics.csv").drop_duplicates("epoch")
    assert P.first_epoch_estimate(s1, "smoke") == m["epoch_seconds"].median() > 0.05
    assert P.first_epoch_estimate(P.runs("smoke")["control-distill"], "smoke") is None  # another kind
    rows = P.train_runs(["method-s1", "control-scratch"], "smoke", budget_s=0.05, **KW)
    assert rows[0]["status"].startswith("not reached (budget spent: one epoch ≈")
    assert rows[1]["status"] == "not reached (budget spent: method-s1 stopped for it)"
    assert P.run_state(s1, "smoke") == "not started" and not (s1.run_dir("smoke") / "state.pt").exists()


def test_publish_only_copies_a_lanes_state_and_logs_it_once(store):
    """`--publish-only` beside a lane: the lane's state from runs/ to the store, and its epochs in chunks.json
    (this machine's processor; no device stamp, it did not train them), once: nothing new, nothing logged."""
    import shutil
    T.train_teachers(["resnet20"], "smoke", paper_width=True, **KW)
    P.train_runs(["method-s0"], "smoke", max_epochs_now=1, **KW)
    run = P.runs("smoke")["method-s0"]
    shutil.rmtree(run.folder("smoke"))  # as if the lane had not published yet
    assert P.train_runs(["method-s0"], "smoke", publish_only=True, **KW)[0]["status"] == "epoch 1 of 2"
    assert (run.folder("smoke") / P.RESUME / "state.pt").exists()
    P.train_runs(["method-s0"], "smoke", publish_only=True, **KW)
    chunks = json.loads((run.folder("smoke") / P.CHUNKS).read_text())
    assert [(c["epochs"], c["device"], c["processor"]) for c in chunks] == [([1, 1], None, cpu_model())]
    P.log_chunk(run, "smoke", 0, 2, "cpu:test", "trained")  # a lane ending after it: only the epochs not yet logged
    assert [c["epochs"] for c in json.loads((run.folder("smoke") / P.CHUNKS).read_text())] == [[1, 1], [2, 2]]
    shutil.rmtree(run.folder("smoke"))  # again, but now a lane holds the run folder: it will log its own epochs
    with run_lock(run.run_dir("smoke")):
        assert P.train_runs(["method-s0"], "smoke", publish_only=True, **KW)[0]["status"] == "epoch 1 of 2"
    assert (run.folder("smoke") / P.RESUME / "state.pt").exists() and not (run.folder("smoke") / P.CHUNKS).exists()


def test_record_of_other_settings_or_data_is_one_line_naming_the_retrain_command(store):
    T.train_teachers(["resnet20"], "smoke", paper_width=True, **KW)
    P.train_runs(["control-scratch"], "smoke", **KW)
    d = P.runs("smoke")["control-scratch"].folder("smoke")
    with pytest.raises(CheckpointError) as e:
        P.load_records("smoke", fingerprint="ffffffffffffffff")
    assert "\n" not in str(e.value) and P.RETRAIN_COMMAND in str(e.value)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "config_key": "000000000000"}))
    (d / "digests.json").unlink()  # a record published before digests (else the edit itself is refused, see below)
    with pytest.raises(CheckpointError) as e:
        P.load_records("smoke")
    assert "000000000000" in str(e.value) and P.RETRAIN_COMMAND in str(e.value)


def test_committed_state_of_other_settings_is_refused(store):
    T.train_teachers(["resnet20"], "smoke", paper_width=True, **KW)
    P.train_runs(["method-s0"], "smoke", max_epochs_now=1, **KW)
    run = P.runs("smoke")["method-s0"]
    carried = run.folder("smoke") / P.RESUME / "state.pt"
    torch.save({**load_checkpoint(carried), "config_key": "000000000000"}, carried)
    with pytest.raises(CheckpointError) as e:
        P.train_runs(["method-s0"], "smoke", **KW)
    assert P.RETRAIN_COMMAND in str(e.value)


def test_unknown_run_names_the_valid_ones():
    with pytest.raises(ValueError, match="runs: unknown run .method-s9.; valid: teacher, method-s0, control-distill"):
        P.train_runs(["method-s9"], "smoke")


def test_compile_reaches_the_method_and_the_labelled_control_only(store, monkeypatch):
    """A GPU window compiles the method's and the labelled control's step (`--compile`); the peers' and the
    fine-tuning test's trainers take no such setting and get none."""
    T.train_teachers(["resnet20"], "smoke", paper_width=True, **KW)
    monkeypatch.setattr(P, "peer_target", lambda profile: "flops=0.5")  # as if method-s0 had landed there
    monkeypatch.setattr(P, "_waits_for_a_run", lambda run, profile: None)  # and the fine-tuning test could start
    seen = {}
    for kind in P.TRAIN:
        monkeypatch.setitem(P.TRAIN, kind, lambda run, profile, teacher, left, common, m=None, k=kind:
                            seen.setdefault(k, common.get("compile", "absent")) and "stub")
    P.train_runs(["method-s0", "control-distill", "control-scratch", "peer-tp", "peer-l1", "finetune"], "smoke",
                 compile="reduce-overhead", **KW)
    assert seen == dict(method="reduce-overhead", control_distill="reduce-overhead",
                        control_scratch="reduce-overhead", peer_tp="absent", peer_l1="absent", finetune="absent")


def test_make_paper_width_lanes_hold_every_run_once():
    """`make paper-width` names its two lanes' runs in the Makefile: a run left out is never trained by it, one
    named twice would train in both lanes at once."""
    text = (P.ROOT / "Makefile").read_text()
    recipe = text[text.index("\npaper-width:"):text.index("\ntest:")]
    lanes = re.findall(r"paper-width --runs ([\w,-]+) \$\(PW_FLAGS\) &", recipe) + \
        re.findall(r"paper-width --runs ([\w,-]+) \$\(PW_FLAGS\); rc=", recipe)
    assert len(lanes) == 2, recipe
    named = [n for lane in lanes for n in lane.split(",")]
    assert sorted(named) == sorted(P.runs("cpu")), named
    lane_of = {n: i for i, lane in enumerate(lanes) for n in lane.split(",")}
    order = {n: lane.split(",").index(n) for lane in lanes for n in lane.split(",")}
    # finetune starts from method-s0's pruned network: same lane, after it
    assert lane_of["finetune"] == lane_of["method-s0"] and order["finetune"] > order["method-s0"]


def test_exact_landing_stops_at_the_target_where_tp_steps_overshoot(committed):
    """Torch-Pruning's global step removes every channel tied at its threshold: with many groups at exactly zero
    it overshoots; the exact cut stops within one channel of the target."""
    T.train_teachers(["resnet20"], "smoke", paper_width=True, **KW)
    from paper_repro.studies import peer

    teacher = T.train_baseline("resnet20", "smoke", allow_training=False, **KW, **P.study("smoke")["teacher"])
    model = teacher.model
    with torch.no_grad():  # half the inner channels dead, as after sparse training
        for b in list(model.blocks()):
            half = b.conv1.out_channels // 2
            b.conv1.weight[:half] = 0
            b.bn1.weight[:half] = 0
            b.bn1.bias[:half] = 0
            b.conv2.weight[:, :half] = 0
    cost = CostModel(build_model("resnet20", width=0.5))
    cfg = peer.resolve_peer("resnet20", "flops=0.2", "smoke", width=0.5, importance="magnitude")
    example = torch.randn(1, 3, 32, 32)
    import copy

    stepped, exact = copy.deepcopy(model), copy.deepcopy(model)
    peer.prune_to_target(stepped, peer.make_pruner(stepped, cfg, 0.0, example), cost,
                         peer.parse_target("flops=0.2"))
    peer.exact_cut(exact, peer.make_pruner(exact, cfg, 0.0, example), cost, peer.parse_target("flops=0.2"))
    f_stepped = peer.achieved(cost, stepped.widths())[1]
    f_exact = peer.achieved(cost, exact.widths())[1]
    assert 0.2 <= f_exact < 0.21 and f_stepped > f_exact + 0.05


def test_method_noise_names_every_processor_of_the_finished_seeds():
    """σ over the finished method seeds: each processor once (a run across two machines and one on a single
    machine: not 'A and A and B'), the per-seed values in the source, none before a seed has finished."""
    def rec(seed, acc, chunks=(), device="cpu:1threads:AVX512:AMD EPYC", state="finished"):
        return dict(run=f"method-s{seed}", kind="method", seed=seed, state=state, chunks=list(chunks),
                    summary=dict(pruned_acc=acc, test_images=10_000, device=device) if state == "finished" else None)
    both = [dict(processor="AMD EPYC", device="cpu:1threads:AVX512:AMD EPYC", epochs=[1, 7]),
            dict(processor="Intel(R) Xeon(R) Processor", device="cpu:1threads:AVX512:Intel(R) Xeon(R) Processor",
                 epochs=[8, 15])]
    control = dict(run="control-scratch", kind="control_scratch", seed=0, state="finished", chunks=[],
                   summary=dict(pruned_acc=0.5, test_images=10_000, device="cpu:1threads:AVX512:Other"))
    noise = P.method_noise([rec(0, 0.8907), rec(1, 0.8933, both), rec(2, None, state="epoch 3 of 15"), control])
    assert noise.source.startswith("seeds 0, 1 on AMD EPYC and Intel(R) Xeon(R) Processor (accuracy, %: 89.07, 89.33)")
    assert noise.values_points == pytest.approx([89.07, 89.33])
    assert P.method_noise([rec(0, None, state="not started")]) is None


# -- the store keeps what it holds (issue 35, items 4 and 6) -------------------------------------------------------
def test_committed_records_hold_no_absolute_path_and_load_under_their_keys():
    """Every committed JSON record under teachers/ and paper_width/: no absolute path (a clone elsewhere would read a
    stranger's file); every finished paper-width record carries the key today's settings give it (read, not
    retrained)."""
    assert {**json_paths(ROOT / "teachers"), **json_paths(ROOT / "paper_width")} == {}
    for row in P.load_records("cpu"):  # checks each finished record's key (and digests, where it has them)
        if row["state"] == "finished":
            assert row["config"]["config_key"] == P.expected_key(P.runs("cpu")[row["run"]], "cpu"), row["run"]


def test_a_refused_retrain_deletes_nothing(store):
    """`make paper-width ONLY=method-s0 RETRAIN=1` beside a lane training method-s0: the lock is taken before
    anything is deleted, so the refused call leaves the committed progress and the local state as they were."""
    T.train_teachers(["resnet20"], "smoke", paper_width=True, **KW)
    P.train_runs(["method-s0"], "smoke", max_epochs_now=1, **KW)
    run = P.runs("smoke")["method-s0"]
    kept = {f: f.read_bytes() for f in run.folder("smoke").rglob("*") if f.is_file()}
    local = (run.run_dir("smoke") / "state.pt").read_bytes()
    with run_lock(run.run_dir("smoke")):  # the lane
        with pytest.raises(RunLockedError):
            P.train_runs(["method-s0"], "smoke", retrain=True, **KW)
    assert {f: f.read_bytes() for f in run.folder("smoke").rglob("*") if f.is_file()} == kept
    assert (run.run_dir("smoke") / "state.pt").read_bytes() == local


def test_a_finished_run_without_its_summary_is_refused_not_retrained(store):
    P.train_runs(["control-scratch"], "smoke", **KW)
    d = P.runs("smoke")["control-scratch"].folder("smoke")
    (d / "summary.json").unlink()
    kept, trained = {f: f.read_bytes() for f in d.rglob("*") if f.is_file()}, E.epochs_run()
    with pytest.raises(CheckpointError) as e:
        P.train_runs(["control-scratch"], "smoke", **KW)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{d / 'summary.json'}: missing")
    assert f"git checkout -- {d / 'summary.json'}" in msg
    assert E.epochs_run() == trained and {f: f.read_bytes() for f in d.rglob("*") if f.is_file()} == kept
    with pytest.raises(CheckpointError, match="summary.json: missing"):
        P.load_records("smoke")  # a notebook does not read it as "not started" either


def test_a_finished_run_missing_a_record_is_refused_even_without_digests(store):
    P.train_runs(["control-scratch"], "smoke", **KW)
    d = P.runs("smoke")["control-scratch"].folder("smoke")
    (d / "digests.json").unlink(missing_ok=True)  # a record published before digests
    (d / "pruned_state.pt").unlink()
    with pytest.raises(CheckpointError) as e:
        P.train_runs(["control-scratch"], "smoke", **KW)
    assert str(e.value).startswith(f"{d / 'pruned_state.pt'}: missing from a finished run's records")
    assert f"git checkout -- {d / 'pruned_state.pt'}" in str(e.value)


def test_a_publish_stopped_half_way_is_not_finished_and_publishes_again(store, monkeypatch, kill_writes_at):
    """The finished marker (summary.json) is written last: a publish killed before provenance.json leaves an
    unfinished run (its state still in resume/), and the next call publishes it whole, with nothing retrained."""
    killed = kill_writes_at(P, "provenance.json")
    with pytest.raises(killed):
        P.train_runs(["control-scratch"], "smoke", **KW)
    run = P.runs("smoke")["control-scratch"]
    d = run.folder("smoke")
    assert not (d / "summary.json").exists() and (d / P.RESUME / "checkpoint.pt").exists()
    assert P.run_state(run, "smoke") == "epoch 4 of 4"
    monkeypatch.undo()
    monkeypatch.setattr(P, "STORE", store / "paper_width")
    trained = E.epochs_run()
    assert P.train_runs(["control-scratch"], "smoke", **KW)[0]["status"] == "finished"
    assert E.epochs_run() == trained and not (d / P.RESUME).exists()
    for f in ("config.json", "metrics.csv", "summary.json", "pruned_state.pt", "provenance.json", "digests.json"):
        assert (d / f).exists(), f


def test_records_carry_digests_checked_on_load_and_legacy_ones_are_accepted(store):
    """A hand-edited accuracy in summary.json, or a truncated pruned_state.pt, is one error naming the file and
    `git checkout`; a record without digests.json (published before them) loads as it is, said so."""
    P.train_runs(["control-scratch"], "smoke", **KW)
    d = P.runs("smoke")["control-scratch"].folder("smoke")
    summary, network = (d / "summary.json").read_bytes(), (d / "pruned_state.pt").read_bytes()
    edited = json.loads(summary)
    edited["pruned_acc"] += 0.73
    (d / "summary.json").write_text(json.dumps(edited, indent=2, sort_keys=True) + "\n")
    with pytest.raises(CheckpointError) as e:
        P.load_records("smoke")
    assert str(e.value).startswith(f"{d / 'summary.json'}: not the file that was published")
    assert "git checkout -- " in str(e.value) and "\n" not in str(e.value)
    (d / "summary.json").write_bytes(summary)
    assert {r["run"]: r for r in P.load_records("smoke")}["control-scratch"]["digests"] == "checked"
    (d / "pruned_state.pt").write_bytes(network[:len(network) // 2])
    with pytest.raises(CheckpointError, match=f"{d / 'pruned_state.pt'}: not the file that was published"):
        P.load_records("smoke")
    with pytest.raises(CheckpointError, match="pruned_state.pt: not the file"):
        P.train_runs(["control-scratch"], "smoke", **KW)  # refused before anything trains, not "finished"
    (d / "pruned_state.pt").write_bytes(network)
    (d / "digests.json").unlink()
    row = {r["run"]: r for r in P.load_records("smoke")}["control-scratch"]
    assert row["digests"].startswith("legacy") and row["summary"]["pruned_acc"] == json.loads(summary)["pruned_acc"]


def test_malformed_store_json_stops_the_call_before_training_naming_the_file(store):
    P.train_runs(["control-scratch"], "smoke", max_epochs_now=1, **KW)
    f = P.runs("smoke")["control-scratch"].folder("smoke") / P.CHUNKS
    f.write_text('[{"epochs": [1, 1],, }]')
    trained = E.epochs_run()
    with pytest.raises(CheckpointError) as e:
        P.train_runs(["control-scratch"], "smoke", **KW)
    assert str(e.value).startswith(f"{f}: not valid JSON (") and f"git checkout -- {f}" in str(e.value)
    assert E.epochs_run() == trained  # stopped before training, not after it
    with pytest.raises(CheckpointError, match="chunks.json: not valid JSON"):
        P.load_records("smoke")


def test_a_call_stopped_hard_keeps_its_epochs_in_the_store_and_in_chunks(store, monkeypatch):
    """The state reaches the store after every epoch, and chunks.json logs those epochs: a process killed in its
    third epoch leaves two in the repository; the next call resumes from them, in one entry per call."""
    class Killed(Exception):
        pass

    real, calls = T.timed_epoch, []

    def epoch(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise Killed
        return real(*a, **k)

    monkeypatch.setattr(T, "timed_epoch", epoch)
    with pytest.raises(Killed):
        P.train_runs(["control-scratch"], "smoke", **KW)
    run = P.runs("smoke")["control-scratch"]
    assert load_checkpoint(run.folder("smoke") / P.RESUME / "checkpoint.pt")["epoch"] == 2
    assert [c["epochs"] for c in json.loads((run.folder("smoke") / P.CHUNKS).read_text())] == [[1, 2]]
    monkeypatch.setattr(T, "timed_epoch", real)
    (run.run_dir("smoke") / "checkpoint.pt").unlink()  # another machine: the repository alone
    assert P.train_runs(["control-scratch"], "smoke", **KW)[0]["status"] == "finished"
    assert [c["epochs"] for c in json.loads((run.folder("smoke") / P.CHUNKS).read_text())] == [[1, 2], [3, 4]]


def test_a_run_whose_state_outgrows_the_limit_carries_at_the_end_of_a_call(store, monkeypatch):
    monkeypatch.setattr(P, "CARRY_EVERY_EPOCH_MAX_BYTES", 0)
    seen = []
    real = P._carry_out
    monkeypatch.setattr(P, "_carry_out", lambda run, profile: seen.append(run.name) or real(run, profile))
    P.train_runs(["control-scratch"], "smoke", max_epochs_now=2, **KW)
    assert seen == ["control-scratch"]  # once, when the call ended
    seen.clear()
    P.train_runs(["control-scratch"], "smoke", max_epochs_now=1, carry_every_epoch=True, **KW)
    assert seen == ["control-scratch"] * 2  # after its one epoch, and when the call ended (nothing new then)


def test_a_gap_in_chunks_is_flagged(store):
    assert P.chunk_gaps([], 5) is None  # no log at all: not a gap
    assert P.chunk_gaps([{"epochs": [1, 2]}, {"epochs": [5, 5]}], 7) == "3-4, 6-7"
    P.train_runs(["control-scratch"], "smoke", max_epochs_now=2, **KW)
    f = P.runs("smoke")["control-scratch"].folder("smoke") / P.CHUNKS
    log = json.loads(f.read_text())
    f.write_text(json.dumps([dict(log[0], epochs=[2, 2])]))  # epoch 1 reached the store unlogged
    row = P.train_runs(["control-scratch"], "smoke", max_epochs_now=1, **KW)[0]
    assert row["unlogged_epochs"] == "1" and row["status"] == "epoch 3 of 4"
