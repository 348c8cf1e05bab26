"""Every training run of notebooks 02-07 as one independent command, to fan the grid out over machines (docs/cli.md).

`python -m paper_repro arms --profile P` prints one `python -m paper_repro arm NAME --profile P` line per run, for a
SLURM array, submitit or GNU parallel. `arm NAME` makes exactly the call the notebook makes (same function, same
settings), so the run lands in the same cached folder under runs/ ($PAPER_REPRO_RUNS), and `make reproduce` on that
folder then trains none of them. Arms that are the same run in several notebooks (resnet56 with the method's
defaults appears in 03, 04, 06 and 07) are listed once. The teachers come first: `arms --teachers` prints their
`train` commands.

The arm settings have one home, the notebooks: their papermill `parameters` cells (and notebook 03's ARMS cell) are
read here, so a changed default changes its arms too. `reproduce --lanes` resolves the list once and hands each
`arm` process its Arm as JSON (`arm NAME --spec JSON`), which that process runs without building the list again.
"""
from __future__ import annotations

import ast
import copy
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..config import config_key, profile_settings
from ..engine import epochs_run
from ..method import prune_train, resolve_method
from ..paper import PAPER_TARGETS, SUBJECT
from ..provenance import ROOT
from ..studies import ablation, classic, peer
from ..studies.ablation import budget, shared_budget
from ..studies.peer import resolve_peer
from .noise import method_noise, noise_seeds

# The folder reproduction/notebooks.py runs (its NOTEBOOKS; imported from there would be a cycle: it imports lanes).
NOTEBOOKS = ROOT / "notebooks"


class _DictCalls(ast.NodeTransformer):
    """`dict(key=literal, ...)` -> `{"key": literal, ...}`: how notebook 03 writes its arms, a literal all the same."""

    def visit_Call(self, node):
        self.generic_visit(node)
        if (isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args
                and all(k.arg for k in node.keywords)):
            return ast.Dict(keys=[ast.Constant(k.arg) for k in node.keywords], values=[k.value for k in node.keywords])
        return node


def _literal(node: ast.expr):
    return ast.literal_eval(_DictCalls().visit(copy.deepcopy(node)))


def _assignments(source: str) -> tuple[dict, dict]:
    """A cell's top-level `name = value`s: ({name: value} of the literals, {name: source} of the others, computed
    only when the notebook runs, e.g. `profile = os.environ.get(...)`). A later assignment wins, as in Python."""
    literals, others = {}, {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign):
            continue
        for name in (t.id for t in node.targets if isinstance(t, ast.Name)):
            literals.pop(name, None)
            others.pop(name, None)
            try:
                literals[name] = _literal(node.value)
            except (ValueError, TypeError):  # ast.literal_eval's "not a literal" (TypeError: e.g. {[1]: 2})
                others[name] = ast.unparse(node.value)
    return literals, others


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


@lru_cache(maxsize=None)
def _code_cells(notebook_stem: str, folder: Path) -> list[tuple[bool, dict, dict]]:
    """Per code cell of notebooks/<stem>.ipynb: (tagged `parameters`, its literals, its other assignments); read
    once per process."""
    path = folder / f"{notebook_stem}.ipynb"
    cells = []
    for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        if cell["cell_type"] != "code":
            continue
        try:
            literals, others = _assignments("".join(cell["source"]))
        except SyntaxError as e:
            raise ValueError(f"{_where(path)}: cell {i} is not Python ({e.msg}, line {e.lineno})") from None
        cells.append(("parameters" in cell.get("metadata", {}).get("tags", []), literals, others))
    return cells


def _lookup(notebook_stem: str, folder: Path, cell: tuple[dict, dict], name: str, what: str):
    """`name`'s literal value in `cell` (its literals, its other assignments); else one error naming both."""
    literals, others = cell
    if name in literals:
        return copy.deepcopy(literals[name])  # the cached parse stays as the notebook has it
    where = _where(folder / f"{notebook_stem}.ipynb")
    if name in others:
        raise ValueError(f"{where}: {name!r} in {what} is not a literal ({name} = {others[name]}); the arms read "
                         "it with ast.literal_eval")
    raise ValueError(f"{where}: {what} assigns no {name!r} (the arms need it)")


def _parameters_cell(notebook_stem: str, folder: Path) -> tuple[dict, dict]:
    cell = next((c for c in _code_cells(notebook_stem, folder) if c[0]), None)
    if cell is None:
        raise ValueError(f"{_where(folder / f'{notebook_stem}.ipynb')}: no cell is tagged 'parameters'")
    return cell[1], cell[2]


def notebook_parameters(notebook_stem: str, folder: Path = NOTEBOOKS) -> dict:
    """The literal defaults of the notebook's papermill `parameters` cell, by name (its computed ones, e.g. the
    profile, are left out)."""
    return copy.deepcopy(_parameters_cell(notebook_stem, folder)[0])


def parameter(notebook_stem: str, name: str, folder: Path = NOTEBOOKS):
    """One default of the notebook's `parameters` cell; an error names the notebook and `name` when it is missing
    or not a literal."""
    return _lookup(notebook_stem, folder, _parameters_cell(notebook_stem, folder), name, "its parameters cell")


def notebook_constant(notebook_stem: str, name: str, folder: Path = NOTEBOOKS):
    """A literal the notebook assigns outside its parameters (03's ARMS): the value in the first code cell that
    assigns it."""
    cell = next(((c[1], c[2]) for c in _code_cells(notebook_stem, folder) if name in c[1] or name in c[2]), ({}, {}))
    return _lookup(notebook_stem, folder, cell, name, "its code")


def _slug(text: str) -> str:
    out = "".join(c if c.isascii() and c.isalnum() else "-" for c in text.lower())
    return "-".join(p for p in out.split("-") if p)


# What each kind's run call reads from its settings (besides the overrides it passes on); see `_call`.
KIND_SETTINGS = {"main": ("arch", "target", "students"), "noise": ("arch", "target", "seed"), "prune": (),
                 "classic": ("arm",), "peer": ()}
SPEC_KEYS = ("name", "notebook", "kind", "settings", "also")


@dataclass
class Arm:
    name: str  # NAME of `python -m paper_repro arm NAME`
    notebook: str
    kind: str  # main | noise | prune | classic | peer
    settings: dict  # what the run function receives besides profile, seed, device
    also: list[str] = field(default_factory=list)  # the same run under other notebooks' names
    resolved: dict = field(default_factory=dict)  # its settings resolved once (what its cache key hashes)

    def spec(self) -> dict:
        """The arm as JSON-able data for `arm NAME --spec` (`resolved` is left out: the run resolves it again).
        Checked to come back from JSON unchanged (a tuple would come back a list), so that the process given it
        makes this very call and lands in the same cached run."""
        spec = {"name": self.name, "notebook": self.notebook, "kind": self.kind, "settings": self.settings,
                "also": self.also}
        try:
            same = json.loads(json.dumps(spec, allow_nan=False)) == spec
        except (TypeError, ValueError):
            same = False
        if not same:
            raise ValueError(f"arm {self.name}: its settings do not survive JSON unchanged: {self.settings!r}")
        return spec


def arm_from_spec(spec) -> Arm:
    """The Arm of `Arm.spec()` (as `arm --spec` receives it), checked: one error naming the first wrong key."""
    if not isinstance(spec, dict):
        raise ValueError(f"arm spec: must be a JSON object with {', '.join(SPEC_KEYS)}, got {type(spec).__name__}")
    for key in SPEC_KEYS:
        if key not in spec:
            raise ValueError(f"arm spec: missing {key!r}")
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        raise ValueError(f"arm spec: unknown key {unknown[0]!r} (expected {', '.join(SPEC_KEYS)})")
    kinds = ", ".join(KIND_SETTINGS)
    for key, ok, expected in (("name", isinstance(spec["name"], str), "a string"),
                              ("notebook", isinstance(spec["notebook"], str), "a string"),
                              ("kind", spec["kind"] in KIND_SETTINGS, f"one of {kinds}"),
                              ("settings", isinstance(spec["settings"], dict), "an object"),
                              ("also", isinstance(spec["also"], list)
                               and all(isinstance(a, str) for a in spec["also"]), "a list of names")):
        if not ok:
            raise ValueError(f"arm spec: {key!r} must be {expected}, got {spec[key]!r}")
    missing = [k for k in KIND_SETTINGS[spec["kind"]] if k not in spec["settings"]]
    if missing:
        raise ValueError(f"arm spec: the settings of a {spec['kind']} arm need {missing[0]!r}")
    return Arm(spec["name"], spec["notebook"], spec["kind"], dict(spec["settings"]), list(spec["also"]))


def spec_from_json(text: str) -> dict:
    """`arm --spec`'s text, parsed (checked by `arm_from_spec`)."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"--spec: not JSON ({e})") from None


def _method_arms(profile: str) -> list[tuple[str, str, dict]]:
    """(name, notebook, overrides of ablation.run_arm) of 03, 04, 05 and 06/07's own arm."""
    students_03 = parameter("03_ablation_losses", "students")
    students_05 = parameter("05_ablation_sparsity", "students")
    out = [(f"03-{_slug(a)}", "03_ablation_losses", dict(students=students_03, **o))
           for a, o in notebook_constant("03_ablation_losses", "ARMS").items()]
    out += [(f"04-students-{n}", "04_ablation_students", dict(students=n))
            for n in parameter("04_ablation_students", "student_counts")]
    lam = resolve_method(SUBJECT["arch"], SUBJECT["target"], profile, 0, students=students_05,
                         **budget(profile))["lambda_max"]
    studies = {"criterion": [dict(criterion=c) for c in ("taylor", "l1", "bn", "random")],
               "selection": [dict(selection=s) for s in ("dynamic", "static", "fixed")],
               "penalty": [dict(penalty=p) for p in ("progressive", "constant")],
               "lambda_max": [dict(lambda_max=f * lam) for f in parameter("05_ablation_sparsity", "lambda_factors")]}
    for study, arms in studies.items():
        for o in arms:
            value = f"{o[study]:g}" if study == "lambda_max" else o[study]
            out.append((f"05-{study}-{value}", "05_ablation_sparsity", dict(students=students_05, **o)))
    out.append(("06-ours", "06_classic_baselines", {}))  # ablation.run_arm("ours", ...): the default N = 2
    out.append(("07-ours", "07_peer_torch_pruning",  # peer.ours_run
                dict(students=parameter("07_peer_torch_pruning", "students"))))
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

    students_02 = parameter("02_method", "students")
    for arch, target in PAPER_TARGETS.items():  # 02: prune_train(a, t, profile, seed, students=students)
        s = dict(arch=arch, target=target, students=students_02)
        add(f"02-main-{arch}", "02_method", "main", s,
            resolve_method(arch, target, profile, seed, students=students_02))
    for name, nb, over in _method_arms(profile):
        resolved = resolve_method(SUBJECT["arch"], SUBJECT["target"], profile, seed, **{**budget(profile), **over})
        add(name, nb, "prune", over, resolved)
    for arm in classic.ARMS:
        add(f"06-{arm}", "06_classic_baselines", "classic", dict(arm=arm), classic.resolve_classic(arm, profile, seed))
    # The notebooks' noise runs (noise.method_noise): the reference settings again with the other seeds, all
    # taught by the seed-0 teacher. 02: each network (config.NOISE's main_seeds); 03-07: the reference arms (N = 2
    # shared by 03, 04, 06, 07; its seeds).
    students_03 = parameter("03_ablation_losses", "students")
    students_05 = parameter("05_ablation_sparsity", "students")
    every = dict.fromkeys([*noise_seeds(profile, SUBJECT["arch"]),
                           *(n for a in PAPER_TARGETS for n in noise_seeds(profile, a, main=True))])
    for n in (x for x in every if x != seed):
        for arch, target in PAPER_TARGETS.items():
            if n not in noise_seeds(profile, arch, main=True):
                continue
            s = dict(arch=arch, target=target, seed=n, students=students_02)
            add(f"02-noise-{arch}-s{n}", "02_method", "noise", s,
                {"noise": True, **resolve_method(arch, target, profile, n, students=students_02)})
        if n not in noise_seeds(profile, SUBJECT["arch"]):
            continue
        for students in dict.fromkeys([students_03, students_05]):
            s = dict(arch=SUBJECT["arch"], target=SUBJECT["target"], seed=n, students=students, **budget(profile))
            add(f"ablation-noise-n{students}-s{n}", "03_ablation_losses" if students == students_03 else
                "05_ablation_sparsity", "noise", s, {"noise": True, **resolve_method(
                    SUBJECT["arch"], SUBJECT["target"], profile, n, students=students, **budget(profile))})
    tp = profile_settings("notebook", profile)  # 07's with_kd_arm and iterative_steps
    peers = [dict(importance=i, loss="ce") for i in parameter("07_peer_torch_pruning", "importances")]
    if tp["tp_kd_arm"]:
        peers.append(dict(importance="taylor", loss="kd"))
    for over in peers:
        s = dict(over, iterative_steps=tp["tp_iterative_steps"], **shared_budget(profile))
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


def find(name: str, profile: str, seed: int = 0) -> Arm:
    """Arm `name` of the list (built whole: a user's `arm NAME`)."""
    arms = all_arms(profile, seed)
    if name not in arms:
        raise ValueError(f"arm: unknown arm {name!r} on profile {profile}; list them with "
                         f"python -m paper_repro arms --profile {profile}")
    return arms[name]


def run(name: str, profile: str, seed: int = 0, device: str = "auto", spec: dict | None = None) -> dict:
    """Train (or load) arm `name` by the notebook's own call; returns a one-line status. `spec` (`Arm.spec()`, what
    `reproduce --lanes` passes): run exactly that arm, without building the list of every arm again."""
    epochs_before = epochs_run()
    if spec is None:
        a = find(name, profile, seed)
    else:
        a = arm_from_spec(spec)
        if a.name != name:  # the status line, and the row name of a prune arm, must be the arm that runs
            raise ValueError(f"arm: --spec is arm {a.name!r}, not {name!r}")
    done = _call(name, a, profile, seed, device)
    # trained: False when the run was read from runs/ (what `reproduce --lanes` counts as a notebook's cold time)
    return {"arm": name, "notebook": a.notebook, "also": a.also, "profile": profile, "seed": seed,
            "trained": epochs_run() > epochs_before, **done}


def _call(name: str, a: Arm, profile: str, seed: int, device: str) -> dict:
    """The notebook's call for arm `name` (`a`); its status fields."""
    s = a.settings
    if a.kind == "noise":  # one seed of noise.method_noise's call
        over = {k: v for k, v in s.items() if k not in ("arch", "target", "seed")}
        n = method_noise(s["arch"], s["target"], profile, (s["seed"],), device, **over)
        return {"acc_points": n.values_points[0]}
    if a.kind == "main":
        r = prune_train(s["arch"], s["target"], profile, seed, device=device, students=s["students"])
        return {"run_dir": str(r.run_dir), "pruned_acc": r.summary.get("pruned_acc")}
    if a.kind == "prune":
        row = ablation.run_arm(name, profile, seed, device, **s)
        return {"best_acc": row["best_acc"], "target_met": row["target_met"]}
    if a.kind == "classic":
        r = classic.run_classic(s["arm"], profile, seed, device, teacher_run=ablation.teacher(profile, seed, device))
        return {"run_dir": str(r.run_dir)}
    t = ablation.teacher(profile, seed, device)  # peer
    r = peer.peer_train(SUBJECT["arch"], SUBJECT["target"], profile, seed, device=device,
                        teacher=ablation.teacher_checkpoint(t), progress=False, **s)
    return {"run_dir": str(r.run_dir)}
