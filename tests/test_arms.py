"""The ablation grid as independent commands (paper_repro/arms.py): the settings are read from the notebooks, one
printed command trains an arm into a shared runs/ folder ($PAPER_REPRO_RUNS), and the notebook's own call then loads
it; `reproduce --lanes` hands each `arm` process its arm (--spec), which makes the call the arm's name makes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from paper_repro.reproduction import arms

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _code(name: str) -> str:
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def test_the_arm_settings_are_read_from_the_notebooks():
    """arms.py has no copy of the notebooks' defaults: it reads their parameters cells (03: its ARMS cell)."""
    p = {nb: arms.notebook_parameters(nb) for nb in ("02_method", "03_ablation_losses", "04_ablation_students",
                                                     "05_ablation_sparsity", "07_peer_torch_pruning")}
    assert "profile" not in p["02_method"]  # computed when the notebook runs ($PAPER_REPRO_PROFILE): not a literal
    for nb in ("02_method", "03_ablation_losses", "05_ablation_sparsity", "07_peer_torch_pruning"):
        assert type(p[nb]["students"]) is int and p[nb]["students"] >= 1, nb
    counts = p["04_ablation_students"]["student_counts"]
    assert counts and all(type(n) is int and n >= 1 for n in counts)
    factors = p["05_ablation_sparsity"]["lambda_factors"]
    assert factors and all(isinstance(f, float) and f > 0 for f in factors)
    importances = p["07_peer_torch_pruning"]["importances"]
    assert importances and all(isinstance(i, str) for i in importances)
    losses = arms.notebook_constant("03_ablation_losses", "ARMS")
    assert len(losses) >= 2 and all(isinstance(a, str) and isinstance(o, dict) for a, o in losses.items())
    assert all(isinstance(k, str) for o in losses.values() for k in o) and {} in losses.values()  # ours: no change
    counts.append(counts[-1] + 1)  # a copy: a caller does not change the cached parse
    assert arms.parameter("04_ablation_students", "student_counts") == counts[:-1]
    for call in ("ablation.run_arms(ARMS", "ablation.run_arms(arms", "classic.run_classic(arm",
                 "peer.ours_run(profile", "prune_train(a, t, profile, seed"):
        assert any(call in _code(nb) for nb in ("02_method", "03_ablation_losses", "04_ablation_students",
                                                "06_classic_baselines", "07_peer_torch_pruning")), call


def _plant(folder: Path, stem: str, params: str, *code: str, tag: bool = True) -> None:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# planted"]},
             {"cell_type": "code", "metadata": {"tags": ["parameters"] if tag else []}, "source": [params]},
             *({"cell_type": "code", "metadata": {}, "source": [c]} for c in code)]
    (folder / f"{stem}.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                                      "nbformat_minor": 5}))


def test_a_parameter_that_is_missing_or_not_a_literal_is_one_error_naming_it(tmp_path):
    _plant(tmp_path, "09_planted", "import os\nprofile = os.environ.get('P', 'cpu')\nstudents = int('2')\nseed = 0",
           "ARMS = {'a': dict(x=1.0)}\nLOSSES = {'b': dict(y=f())}")
    assert arms.notebook_parameters("09_planted", tmp_path) == {"seed": 0}
    assert arms.notebook_constant("09_planted", "ARMS", tmp_path) == {"a": {"x": 1.0}}  # dict(...) of literals
    with pytest.raises(ValueError, match=r"09_planted\.ipynb: 'students' in its parameters cell is not a literal "
                                         r"\(students = int\('2'\)\)"):
        arms.parameter("09_planted", "students", tmp_path)
    with pytest.raises(ValueError, match=r"09_planted\.ipynb: its parameters cell assigns no 'importances'"):
        arms.parameter("09_planted", "importances", tmp_path)
    with pytest.raises(ValueError, match=r"09_planted\.ipynb: 'LOSSES' in its code is not a literal"):
        arms.notebook_constant("09_planted", "LOSSES", tmp_path)
    _plant(tmp_path, "10_untagged", "students = 2", tag=False)
    with pytest.raises(ValueError, match=r"10_untagged\.ipynb: no cell is tagged 'parameters'"):
        arms.parameter("10_untagged", "students", tmp_path)


# The smoke arm list (name: notebook, kind, also) as it was while arms.py copied the notebooks' defaults; reading
# them from the notebooks changed none of it. Update it with the notebooks when their arms change on purpose.
SMOKE_ARMS = {
    "02-main-vgg_small": ("02_method", "main", []), "02-main-resnet56": ("02_method", "main", []),
    "02-main-mobilenetv2": ("02_method", "main", []),
    "03-kd-only": ("03_ablation_losses", "prune", []), "03-kd-features": ("03_ablation_losses", "prune", []),
    "03-kd-mutual": ("03_ablation_losses", "prune", []),
    "03-kd-features-mutual-ours": ("03_ablation_losses", "prune", ["04-students-2", "06-ours", "07-ours"]),
    "03-ours-labels-ce": ("03_ablation_losses", "prune", []),
    "03-labelled-kd-blog-0-7-2": ("03_ablation_losses", "prune", []),
    "04-students-1": ("04_ablation_students", "prune", ["05-criterion-taylor", "05-selection-dynamic",
                                                        "05-penalty-progressive", "05-lambda_max-0.3"]),
    "04-students-3": ("04_ablation_students", "prune", []), "04-students-4": ("04_ablation_students", "prune", []),
    **{f"05-{a}": ("05_ablation_sparsity", "prune", []) for a in (
        "criterion-l1", "criterion-bn", "criterion-random", "selection-static", "selection-fixed", "penalty-constant",
        "lambda_max-0.075", "lambda_max-0.15", "lambda_max-0.6")},
    **{f"06-{a}": ("06_classic_baselines", "classic", []) for a in ("l1_uniform", "l1_global", "slimming")},
    **{f"02-noise-{a}-s1": ("02_method", "noise", []) for a in ("vgg_small", "resnet56", "mobilenetv2")},
    "ablation-noise-n2-s1": ("03_ablation_losses", "noise", []),
    "ablation-noise-n1-s1": ("05_ablation_sparsity", "noise", []),
    **{f"07-tp-{a}": ("07_peer_torch_pruning", "peer", []) for a in ("magnitude-ce", "taylor-ce", "taylor-kd")},
}


def test_the_smoke_arms_are_those_of_the_copied_settings():
    got = arms.all_arms("smoke")
    assert list(got) == list(SMOKE_ARMS)  # notebook order too: lanes break cost ties by it
    assert {n: (a.notebook, a.kind, a.also) for n, a in got.items()} == SMOKE_ARMS


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_the_listing_has_one_line_per_distinct_run(profile):
    lines = arms.commands(profile)
    names = [line.split()[4] for line in lines]
    assert all(line == f"python -m paper_repro arm {n} --profile {profile}" for line, n in zip(lines, names))
    # 26 runs, + the KD peer arm on smoke, + the noise runs: 3 networks for each of config.NOISE's main_seeds but
    # 0, the N = 2 and N = 1 reference arms for each of its seeds but 0; on the paper profile (no reduced budget)
    # the N = 2 reference arm is the main resnet56 run, listed once
    from paper_repro.reproduction.noise import noise_seeds

    extra = 3 * (len(noise_seeds(profile, main=True)) - 1) + (2 if profile == "smoke" else 1) * (
        len(noise_seeds(profile)) - 1)
    assert len(set(names)) == len(names) == (27 if profile == "smoke" else 26) + extra
    assert {n[:2] for n in names} == {"02", "03", "04", "05", "06", "07", "ab"}
    assert {n for n in names if "noise" in n} >= {"02-noise-resnet56-s1", "ablation-noise-n1-s1"}
    assert all("method_noise(" in _code(nb) for nb in ("02_method", "03_ablation_losses", "04_ablation_students",
                                                         "05_ablation_sparsity", "06_classic_baselines",
                                                         "07_peer_torch_pruning"))
    a = arms.all_arms(profile)
    assert sorted(a["03-kd-features-mutual-ours"].also) == ["04-students-2", "06-ours", "07-ours"]
    assert arms.commands(profile, teachers=True)[0] == f"python -m paper_repro train resnet56 --profile {profile}"
    r = subprocess.run([sys.executable, "-m", "paper_repro", "arms", "--profile", profile], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout.splitlines() == lines


def test_cpu_main_rows_run_one_seed_and_the_ablations_three():
    """config.NOISE on cpu: 02's reduced-budget rows have no noise runs (the hour of make reproduce), the ablations'
    reference arms keep seeds 1 and 2."""
    names = set(arms.all_arms("cpu"))
    assert not {n for n in names if n.startswith("02-noise")}
    assert {f"ablation-noise-n{k}-s{s}" for k in (1, 2) for s in (1, 2)} <= names
    assert len(names) == 30


def test_an_arm_run_by_its_command_is_then_read_by_the_notebook_call(tmp_path, monkeypatch):
    import paper_repro.engine as T
    import paper_repro.method as M
    import paper_repro.train as TB
    from paper_repro.studies import ablation

    line = next(c for c in arms.commands("smoke") if " 04-students-1 " in c)
    env = dict(os.environ, PAPER_REPRO_RUNS=str(T.RUNS), OMP_NUM_THREADS="1")  # T.RUNS: this test's tmp runs/
    r = subprocess.run([sys.executable, *line.split()[1:]], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    done = json.loads(r.stdout.strip().splitlines()[-1])
    assert done["arm"] == "04-students-1" and "05-criterion-taylor" in done["also"]
    assert any((T.RUNS / "prune").iterdir())

    def no_training(*a, **k):
        raise AssertionError("retrained")

    monkeypatch.setattr(M, "distill_step", no_training)
    monkeypatch.setattr(TB, "timed_epoch", no_training)
    # Notebook 04's call, then notebook 05's reference arm: the same run, from the cache.
    row = ablation.run_arms({"N = 1": dict(students=1)}, "smoke", 0, "auto").iloc[0]
    assert row["best_acc"] == done["best_acc"]
    again = ablation.run_arm("criterion=taylor", "smoke", 0, "auto", students=1, criterion="taylor")
    assert again["best_acc"] == done["best_acc"]


# One arm of each kind; 05-lambda_max-0.075: a computed float, which must reach the run bit for bit.
ONE_OF_EACH_KIND = ["02-main-vgg_small", "05-lambda_max-0.075", "ablation-noise-n1-s1", "06-slimming",
                    "07-tp-taylor-kd"]


@pytest.fixture
def recorded_calls(monkeypatch):
    """The run functions `arm` calls, replaced by stand-ins that record their arguments (repr: 1 vs 1.0 and a tuple
    vs a list differ) and train nothing."""
    from types import SimpleNamespace

    from paper_repro.studies import ablation, classic, peer

    calls = []

    def record(fn, result):
        def stand_in(*a, **k):
            calls.append(repr((fn, a, sorted(k.items()))))
            return result
        return stand_in

    run = SimpleNamespace(run_dir="r", summary={"pruned_acc": 0.5})
    monkeypatch.setattr(arms, "prune_train", record("prune_train", run))
    monkeypatch.setattr(arms, "method_noise", record("method_noise", SimpleNamespace(values_points=[0.5])))
    monkeypatch.setattr(ablation, "run_arm", record("run_arm", {"best_acc": 0.5, "target_met": True}))
    monkeypatch.setattr(classic, "run_classic", record("run_classic", run))
    monkeypatch.setattr(peer, "peer_train", record("peer_train", run))
    monkeypatch.setattr(ablation, "teacher", record("teacher", SimpleNamespace(checkpoint="teacher.pt")))
    return calls


def _cli(argv, capsys, monkeypatch) -> tuple[int, str, str]:
    import paper_repro.__main__ as CLI

    monkeypatch.setattr(CLI, "_set_threads", lambda n: None)  # --threads 1 would stay on for this test process
    rc = CLI.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_lane_runs_its_arm_spec_without_the_list_and_makes_the_same_call(recorded_calls, capsys, monkeypatch):
    import paper_repro.reproduction.lanes as L

    monkeypatch.setattr(L, "_teachers", lambda profile, seed: None)
    commands = {}

    def lane_run(cmd, env, **kw):
        commands[cmd[cmd.index("arm") + 1]] = cmd[cmd.index("arm"):]
        return subprocess.CompletedProcess(cmd, 0, "", "")

    L.fill_cache("smoke", lanes=1, run=lane_run, log=lambda *a, **k: None)
    assert all("--spec" in c for c in commands.values())
    by_name = {}
    for name in ONE_OF_EACH_KIND:  # a user's `arm NAME`: the list is built to find it
        rc, out, err = _cli(["arm", name, "--profile", "smoke"], capsys, monkeypatch)
        assert rc == 0, err
        by_name[name] = (out, recorded_calls[:])
        recorded_calls.clear()

    def no_list(*a, **k):
        raise AssertionError("all_arms called")

    monkeypatch.setattr(arms, "all_arms", no_list)
    for name in ONE_OF_EACH_KIND:  # the lane's command: the arm handed over
        rc, out, err = _cli(commands[name], capsys, monkeypatch)
        assert rc == 0, err
        assert (out, recorded_calls) == by_name[name], name  # same call(s), same status line
        recorded_calls.clear()
    assert {json.loads(by_name[n][0])["arm"] for n in ONE_OF_EACH_KIND} == set(ONE_OF_EACH_KIND)
    assert {c.split("'")[1] for n in ONE_OF_EACH_KIND for c in by_name[n][1]} == {
        "prune_train", "run_arm", "method_noise", "teacher", "run_classic", "peer_train"}  # each kind's call ran


def test_a_wrong_spec_is_one_error_naming_the_key(recorded_calls, capsys, monkeypatch):
    good = arms.all_arms("smoke")["06-slimming"].spec()
    monkeypatch.setattr(arms, "all_arms", lambda *a, **k: pytest.fail("all_arms called"))
    for spec, message in (({**good, "kind": "nope"}, "arm spec: 'kind' must be one of main, noise, prune, classic, "
                                                     "peer, got 'nope'"),
                          ({k: v for k, v in good.items() if k != "settings"}, "arm spec: missing 'settings'"),
                          ({**good, "settings": {}}, "arm spec: the settings of a classic arm need 'arm'"),
                          ({**good, "extra": 1}, "arm spec: unknown key 'extra'"),
                          ({**good, "also": "07-ours"}, "arm spec: 'also' must be a list of names")):
        rc, out, err = _cli(["arm", "06-slimming", "--profile", "smoke", "--spec", json.dumps(spec)], capsys,
                            monkeypatch)
        assert (rc, out) == (2, "") and err.startswith(f"error: {message}"), err
    for argv, message in ((["arm", "06-l1_global", "--spec", json.dumps(good)],
                           "arm: --spec is arm '06-slimming', not '06-l1_global'"),
                          (["arm", "06-slimming", "--spec", "{"], "--spec: not JSON")):
        rc, out, err = _cli(argv, capsys, monkeypatch)
        assert rc == 2 and err.startswith(f"error: {message}"), err
    assert recorded_calls == []
    with pytest.raises(ValueError, match="arm x: its settings do not survive JSON unchanged"):
        arms.Arm("x", "07_peer_torch_pruning", "peer", {"steps": (1, 2)}).spec()  # a tuple would come back a list


def test_an_unknown_arm_name_is_still_one_error(capsys, monkeypatch):
    rc, out, err = _cli(["arm", "nope", "--profile", "smoke"], capsys, monkeypatch)
    assert rc == 2 and err.startswith("error: arm: unknown arm 'nope' on profile smoke; list them with python -m "
                                      "paper_repro arms --profile smoke"), err
