"""Every training run of notebooks 02-07 as one independent command, to fan the grid out over machines (docs/cli.md).

`python -m paper_repro arms --profile P` prints one `python -m paper_repro arm NAME --profile P` line per run, for a
SLURM array, submitit or GNU parallel. `arm NAME` makes exactly the call the notebook makes (same function, same
settings), so the run lands in the same cached folder under runs/ ($PAPER_REPRO_RUNS), and `make reproduce` on that
folder then trains none of them. Arms that are the same run in several notebooks (resnet56 with the method's
defaults appears in 03, 04, 06 and 07) are listed once. The teachers come first: `arms --teachers` prints their
`train` commands.

The arm settings below are the notebooks' own parameter defaults; tests/test_arms.py checks them against the
notebooks' source.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import config_key
from ..engine import epochs_run
from ..method import prune_train, resolve_method
from ..paper import PAPER_TARGETS, SUBJECT
from ..studies import ablation, classic, peer
from ..studies.ablation import budget, shared_budget
from ..studies.peer import resolve_peer
from .noise import method_noise, noise_seeds

# Notebook parameters (defaults of their papermill cells).
STUDENTS_03 = 2
ARMS_03 = {
    "KD only": dict(feature_weight=0.0, mutual_weight=0.0),
    "KD + features": dict(mutual_weight=0.0),
    "KD + mutual": dict(feature_weight=0.0),
    "KD + features + mutual (ours)": dict(),
    "ours + labels (CE)": dict(labels="on", ce_weight=1.0),
    "labelled KD (blog: α=0.7, τ=2)": dict(labels="on", ce_weight=0.7, kd_weight=0.3, kd_temperature=2.0,
                                           feature_weight=0.0, mutual_weight=0.0),
}
STUDENT_COUNTS_04 = [1, 2, 3, 4]
STUDENTS_05, LAMBDA_FACTORS_05 = 1, [0.25, 0.5, 1.0, 2.0]
STUDENTS_07, IMPORTANCES_07 = 2, ["magnitude", "taylor"]


def _slug(text: str) -> str:
    out = "".join(c if c.isascii() and c.isalnum() else "-" for c in text.lower())
    return "-".join(p for p in out.split("-") if p)


@dataclass
class Arm:
    name: str  # NAME of `python -m paper_repro arm NAME`
    notebook: str
    kind: str  # prune | classic | peer
    settings: dict  # what the run function receives besides profile, seed, device
    also: list[str] = field(default_factory=list)  # the same run under other notebooks' names
    resolved: dict = field(default_factory=dict)  # its settings resolved once (what its cache key hashes)


def _method_arms(profile: str) -> list[tuple[str, str, dict]]:
    """(name, notebook, overrides of ablation.run_arm) of 03, 04, 05 and 06/07's own arm."""
    out = [(f"03-{_slug(a)}", "03_ablation_losses", dict(students=STUDENTS_03, **o)) for a, o in ARMS_03.items()]
    out += [(f"04-students-{n}", "04_ablation_students", dict(students=n)) for n in STUDENT_COUNTS_04]
    lam = resolve_method(SUBJECT["arch"], SUBJECT["target"], profile, 0, students=STUDENTS_05,
                         **budget(profile))["lambda_max"]
    studies = {"criterion": [dict(criterion=c) for c in ("taylor", "l1", "bn", "random")],
               "selection": [dict(selection=s) for s in ("dynamic", "static", "fixed")],
               "penalty": [dict(penalty=p) for p in ("progressive", "constant")],
               "lambda_max": [dict(lambda_max=f * lam) for f in LAMBDA_FACTORS_05]}
    for study, arms in studies.items():
        for o in arms:
            value = f"{o[study]:g}" if study == "lambda_max" else o[study]
            out.append((f"05-{study}-{value}", "05_ablation_sparsity", dict(students=STUDENTS_05, **o)))
    out.append(("06-ours", "06_classic_baselines", {}))  # ablation.run_arm("ours", ...): the default N = 2
    out.append(("07-ours", "07_peer_torch_pruning", dict(students=STUDENTS_07)))  # peer.ours_run
    return out


def all_arms(profile: str, seed: int = 0) -> dict[str, Arm]:
    """Every distinct run of notebooks 02-07 on `profile`, by name, in notebook order."""
    arms, seen = {}, {}

    def add(name, notebook, kind, settings, resolved):
        key = config_key({"kind": kind, **resolved}, exclude=())  # runs with equal settings are one run
        if key in seen:
            arms[seen[key]].also.append(name)
        else:
            seen[key] = name
            arms[name] = Arm(name, notebook, kind, settings, resolved=resolved)

    for arch, target in PAPER_TARGETS.items():  # 02: prune_train(a, t, profile, seed, students=2)
        s = dict(arch=arch, target=target, students=2)
        add(f"02-main-{arch}", "02_method", "main", s, resolve_method(arch, target, profile, seed, students=2))
    for name, nb, over in _method_arms(profile):
        resolved = resolve_method(SUBJECT["arch"], SUBJECT["target"], profile, seed, **{**budget(profile), **over})
        add(name, nb, "prune", over, resolved)
    for arm in classic.ARMS:
        add(f"06-{arm}", "06_classic_baselines", "classic", dict(arm=arm), classic.resolve_classic(arm, profile, seed))
    # The notebooks' noise runs (noise.method_noise): the reference settings again with the other seeds, all
    # taught by the seed-0 teacher. 02: each network; 03-07: the reference arms (N = 2 shared by 03, 04, 06, 07).
    every = dict.fromkeys(n for a in [SUBJECT["arch"], *PAPER_TARGETS] for n in noise_seeds(profile, a))
    for n in (x for x in every if x != seed):
        for arch, target in PAPER_TARGETS.items():
            if n not in noise_seeds(profile, arch):
                continue
            s = dict(arch=arch, target=target, seed=n, students=2)
            add(f"02-noise-{arch}-s{n}", "02_method", "noise", s,
                {"noise": True, **resolve_method(arch, target, profile, n, students=2)})
        if n not in noise_seeds(profile, SUBJECT["arch"]):
            continue
        for students in dict.fromkeys([STUDENTS_03, STUDENTS_05]):
            s = dict(arch=SUBJECT["arch"], target=SUBJECT["target"], seed=n, students=students, **budget(profile))
            add(f"ablation-noise-n{students}-s{n}", "03_ablation_losses" if students == STUDENTS_03 else
                "05_ablation_sparsity", "noise", s, {"noise": True, **resolve_method(
                    SUBJECT["arch"], SUBJECT["target"], profile, n, students=students, **budget(profile))})
    peers = [dict(importance=i, loss="ce") for i in IMPORTANCES_07]
    if profile == "smoke":  # the notebook's with_kd_arm
        peers.append(dict(importance="taylor", loss="kd"))
    for over in peers:
        s = dict(over, iterative_steps=100 if profile == "smoke" else 400, **shared_budget(profile))
        add(f"07-tp-{over['importance']}-{over['loss']}", "07_peer_torch_pruning", "peer", s,
            resolve_peer(SUBJECT["arch"], SUBJECT["target"], profile, seed, **s))
    return arms


def teacher_archs() -> list[str]:
    return list(dict.fromkeys([SUBJECT["arch"], *PAPER_TARGETS]))


def commands(profile: str, seed: int = 0, teachers: bool = False) -> list[str]:
    tail = f"--profile {profile}" + (f" --seed {seed}" if seed else "")
    if teachers:
        return [f"python -m paper_repro train {a} {tail}" for a in teacher_archs()]
    return [f"python -m paper_repro arm {name} {tail}" for name in all_arms(profile, seed)]


def run(name: str, profile: str, seed: int = 0, device: str = "auto") -> dict:
    """Train (or load) arm `name` by the notebook's own call; returns a one-line status."""
    epochs_before = epochs_run()
    arms = all_arms(profile, seed)
    if name not in arms:
        raise ValueError(f"arm: unknown arm {name!r} on profile {profile}; list them with "
                         f"python -m paper_repro arms --profile {profile}")
    a, s = arms[name], arms[name].settings
    if a.kind == "noise":  # one seed of noise.method_noise's call
        over = {k: v for k, v in s.items() if k not in ("arch", "target", "seed")}
        n = method_noise(s["arch"], s["target"], profile, (s["seed"],), device, **over)
        done = {"acc_points": n.values_points[0]}
    elif a.kind == "main":
        r = prune_train(s["arch"], s["target"], profile, seed, device=device, students=s["students"])
        done = {"run_dir": str(r.run_dir), "pruned_acc": r.summary.get("pruned_acc")}
    elif a.kind == "prune":
        row = ablation.run_arm(name, profile, seed, device, **s)
        done = {"best_acc": row["best_acc"], "target_met": row["target_met"]}
    elif a.kind == "classic":
        r = classic.run_classic(s["arm"], profile, seed, device, teacher_run=ablation.teacher(profile, seed, device))
        done = {"run_dir": str(r.run_dir)}
    else:
        t = ablation.teacher(profile, seed, device)
        r = peer.peer_train(SUBJECT["arch"], SUBJECT["target"], profile, seed, device=device,
                            teacher=ablation.teacher_checkpoint(t), progress=False, **s)
        done = {"run_dir": str(r.run_dir)}
    # trained: False when the run was read from runs/ (what `reproduce --lanes` counts as a notebook's cold time)
    return {"arm": name, "notebook": a.notebook, "also": a.also, "profile": profile, "seed": seed,
            "trained": epochs_run() > epochs_before, **done}
