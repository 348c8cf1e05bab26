"""The ablation grid as independent commands (paper_repro/arms.py): the listing matches the notebooks, one printed
command trains an arm into a shared runs/ folder ($PAPER_REPRO_RUNS), and the notebook's own call then loads it."""
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


def _assigned(src: str, name: str):
    """The value a notebook assigns to `name` (a literal, or dict(...) calls) in its first assignment."""
    import ast

    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return eval(compile(ast.Expression(node.value), name, "eval"), {"dict": dict})
    raise AssertionError(f"{name} not assigned")


def test_the_arm_settings_are_the_notebooks_own():
    assert _assigned(_code("03_ablation_losses"), "ARMS") == arms.ARMS_03
    assert _assigned(_code("03_ablation_losses"), "students") == arms.STUDENTS_03
    assert _assigned(_code("04_ablation_students"), "student_counts") == arms.STUDENT_COUNTS_04
    src = _code("05_ablation_sparsity")
    assert (_assigned(src, "students"), _assigned(src, "lambda_factors")) == (arms.STUDENTS_05, arms.LAMBDA_FACTORS_05)
    src = _code("07_peer_torch_pruning")
    assert (_assigned(src, "students"), _assigned(src, "importances")) == (arms.STUDENTS_07, arms.IMPORTANCES_07)
    for call in ("ablation.run_arms(ARMS", "ablation.run_arms(arms", "classic.run_classic(arm",
                 "peer.ours_run(profile", "prune_train(a, t, profile, seed"):
        assert any(call in _code(nb) for nb in ("02_method", "03_ablation_losses", "04_ablation_students",
                                                "06_classic_baselines", "07_peer_torch_pruning")), call


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_the_listing_has_one_line_per_distinct_run(profile):
    lines = arms.commands(profile)
    names = [line.split()[4] for line in lines]
    assert all(line == f"python -m paper_repro arm {n} --profile {profile}" for line, n in zip(lines, names))
    # 26 runs, + the KD peer arm on smoke, + the noise runs: (3 networks + the N = 2 and N = 1 reference arms) for
    # each seed of config.NOISE but 0; on the paper profile (no reduced budget) the N = 2 reference arm is the main
    # resnet56 run, listed once
    from paper_repro.reproduction.noise import noise_seeds

    extra = (5 if profile == "smoke" else 4) * (len(noise_seeds(profile)) - 1)
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
