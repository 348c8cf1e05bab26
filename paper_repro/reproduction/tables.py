"""Tables that put our runs beside the published numbers (references/reference_numbers.csv, with sources)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..paired import combine_seeds, paired_difference
from ..paper import PAPER_RUNS, SUBJECT
from ..provenance import ROOT
from ..train import run_dir_for
from .paper_width import ACC_FIELD, processors

REFERENCES = ROOT / "references" / "reference_numbers.csv"


def reference_rows(dataset: str = "cifar10", network: str | None = None, method_contains: str | None = None):
    """Published rows, as recorded with their sources (never typed into a notebook)."""
    ref = pd.read_csv(REFERENCES, dtype=str)
    ref = ref[ref["dataset"] == dataset]
    if network is not None:
        ref = ref[ref["network"] == network]
    if method_contains is not None:
        ref = ref[ref["method"].str.contains(method_contains, regex=False)]
    return ref


def _pct(x):
    return None if x is None else round(100 * float(x), 2)


# How the reported student was chosen (method.select_student), in words for the table.
SELECTION_WORDS = {"teacher_agreement": "most teacher agreement, no labels"}


# The main table's blocks: the paper's reported rows, ours at the paper's width (the committed runs of
# reproduction/paper_width.py: comparable with the paper's row), ours at the profile's reduced budget.
BLOCKS = ("paper, reported", "ours, paper's width", "ours, reduced budget")


def main_table(runs: dict, paper_width: list[dict] = ()) -> pd.DataFrame:
    """For each network (`runs`: arch -> method.MethodRun): the paper's reported row and, where the paper-width study
    has a finished method run (`paper_width`: paper_width.load_records rows), ours at the paper's width; then ours
    at the profile's budget, one block of reduced-budget rows after the others. Each row of ours: the selected
    student's accuracy and the mean over students, the network's width (1.0: the paper's), the students' epochs and
    training images, and the device that trained it."""
    at_width = {r["config"]["arch"]: r for r in paper_width}
    rows, reduced = [], []
    for arch, run in runs.items():
        for _, r in reference_rows("cifar10", arch, "paper (this method)").iterrows():
            rows.append(dict(network=arch, block=BLOCKS[0], source=f"paper, reported ({r['source']})", width=1.0,
                             baseline_acc=None, pruned_acc_best=None, pruned_acc_mean=None, delta_acc=r["delta_acc"],
                             params_pruned_pct=r["params_reduction_pct"], flops_pruned_pct=r["flops_reduction_pct"],
                             flops_pruned_dpfps_pct=None, target=None, target_met=None, students=None, epochs=None,
                             train_images=None, selection=None, fine_tuned=r["fine_tuned"], device=None))
        if arch in at_width:
            r = at_width[arch]
            rows.append(_ours_row(arch, BLOCKS[1], f"ours ({r['run']}, committed run, paper_width/)", r["summary"],
                                  r["config"]))
        reduced.append(_ours_row(arch, BLOCKS[2], f"ours ({run.summary['profile']} profile)", run.summary,
                                 run.config))
    return pd.DataFrame(rows + reduced)


def _ours_row(arch: str, block: str, source: str, s: dict, cfg: dict) -> dict:
    """A main-table row of ours from a method run's summary and resolved settings."""
    return dict(network=arch, block=block, source=source, width=cfg["baseline"]["width"],
                baseline_acc=round(s["baseline_acc"], 4),
                pruned_acc_best=round(s["pruned_acc"], 4), pruned_acc_mean=round(s["pruned_acc_mean"], 4),
                delta_acc=f"{100 * (s['pruned_acc'] - s['baseline_acc']):+.2f}",
                params_pruned_pct=_pct(s["params_pruned"]), flops_pruned_pct=_pct(s["flops_pruned"]),
                flops_pruned_dpfps_pct=_pct(s["flops_pruned_dpfps"]), target=s["target"],
                target_met=s["target_met"], students=s["students"], epochs=s["epochs"],
                train_images=str(cfg["baseline"]["train_subset"] or "all"),  # not 10000.0
                selection=SELECTION_WORDS.get(s.get("selection_rule"), s.get("selection_rule")),
                fine_tuned="no" if not s["finetune_epochs"] else f"{s['finetune_epochs']} epochs",
                device=s.get("device"))


def _teacher_run_name(method_cfg: dict) -> str:
    """The run folder name of a method run's teacher: the given checkpoint's folder, else the cached baseline of
    its `baseline` settings (the folder train_baseline used)."""
    if method_cfg.get("teacher_checkpoint"):
        return Path(method_cfg["teacher_checkpoint"]).parent.name
    return run_dir_for(method_cfg["baseline"]).name


def recorded_runs(folder=PAPER_RUNS) -> pd.DataFrame:
    """One row per recorded method run (summary.json + config.json + its teacher's metrics.csv), e.g. the
    paper-recipe runs made on a GPU. Values are read from the run's own files, never typed."""
    rows = []
    for summary_path in sorted(Path(folder).glob("*/summary.json")):
        s = json.loads(summary_path.read_text())
        cfg = json.loads((summary_path.parent / "config.json").read_text())
        metrics = pd.read_csv(summary_path.parent / "metrics.csv")
        base = cfg["baseline"]
        teacher_dir = Path(folder) / "baselines" / _teacher_run_name(cfg)
        teacher_metrics = teacher_dir / "metrics.csv"
        teacher_epoch_s = (round(float(pd.read_csv(teacher_metrics)["epoch_seconds"].median()), 1)
                           if teacher_metrics.is_file() else None)
        rows.append(dict(
            network=s["arch"], target=s["target"], target_met=s["target_met"],
            teacher_epochs=(cfg.get("teacher_config") or base)["epochs"],
            method_epochs=s["epochs"], students=s["students"],
            student_views=cfg.get("student_views", "shared (before the option existed)"),
            baseline_acc=s["baseline_acc"], pruned_acc_best=s["pruned_acc"], pruned_acc_mean=s["pruned_acc_mean"],
            delta_acc=f"{100 * (s['pruned_acc'] - s['baseline_acc']):+.2f}",
            params_pruned_pct=_pct(s["params_pruned"]), flops_pruned_pct=_pct(s["flops_pruned"]),
            teacher_epoch_seconds=teacher_epoch_s, method_epoch_seconds=round(float(metrics["epoch_seconds"].median()), 1),
            batch_size=base["batch_size"], train_images=base["train_subset"] or "all", profile=s["profile"],
            dataset=s["dataset"], dataset_official=s["dataset_official"], dataset_fingerprint=s["dataset_fingerprint"],
            seed=s["seed"], device=s["device"], commit=s["commit"], record=summary_path.parent.name))
    return pd.DataFrame(rows)


OUR_COLUMNS = ("network", "flops_pruned_pct", "pruned_acc_best")
# Comparison tables of notebooks 06-07 (one network, the ablation subject): their arms are other methods, each a
# point of its own; the column that holds an arm's final accuracy; rows of our own method in them are skipped
# (they are variants of ours, on the ablation budget).
OTHER_METHODS = {"classic_baselines": ("classic pipeline (labels, fine-tuned)", "final_acc"),
                 "peer_torch_pruning": ("Torch-Pruning (labels)", "best_acc")}


def budget_kind(method: str, row) -> str:
    """'<method>, <profile> profile, <n> training images, width <w>': a point's method and budget, so that points of
    different budgets (the main table's 10,000 images, the ablation arms' 3,000) are never read as one series.
    Only what the row records is said."""
    parts = [method]
    profile, images = row.get("profile"), row.get("train_images")
    if isinstance(profile, str) and profile:
        parts.append(f"{profile} profile")
    if images is not None and not (isinstance(images, float) and math.isnan(images)):
        number = pd.to_numeric(images, errors="coerce")
        parts.append(f"{int(number):,} training images" if pd.notna(number) else f"{images} training images")
    width = pd.to_numeric(row.get("width"), errors="coerce")
    if pd.notna(width):  # the paper's network (1.0) or a narrowed one: never one series
        parts.append(f"width {float(width):g}")
    epochs = row.get("method_epochs")
    if epochs is not None and pd.notna(epochs):
        parts.append(f"{int(epochs)} method epochs")
    if str(row.get("target_met")) == "False":  # a run that stopped short of its target is no row of the method
        parts.append("target missed")
    return ", ".join(parts)


def accuracy_vs_flops(results_dir) -> pd.DataFrame:
    """Δ accuracy (pruned − baseline, in points) against FLOPs pruned (%), one row per network and source.

    Ours: every <results_dir>/*.csv with the columns network, flops_pruned_pct and pruned_acc_best (e.g.
    main_table.csv), rows with a measured accuracy only, kind "ours, <profile> profile". Published: the CIFAR-10 rows of
    references/reference_numbers.csv whose FLOPs reduction and Δ accuracy are both numbers. Each side's Δ is
    against its own baseline: the budgets and data differ, so absolute accuracies are not comparable. `device`:
    where our row was trained (None for published rows), for the figure's stamp."""

    rows = []
    for name, (kind, acc_col) in OTHER_METHODS.items():
        path = Path(results_dir) / f"{name}.csv"
        if not path.is_file():
            continue
        t = pd.read_csv(path)
        for _, r in t[~t["arm"].str.startswith("ours")].dropna(subset=[acc_col, "flops_pruned"]).iterrows():
            rows.append(dict(network=SUBJECT["arch"], flops_pruned_pct=100 * float(r["flops_pruned"]),
                             delta_acc_pts=100 * (r[acc_col] - r["baseline_acc"]), kind=budget_kind(kind, r),
                             source=f"{r['arm']} ({name})", device=r.get("device")))
    for path in sorted(Path(results_dir).glob("*.csv")):
        t = pd.read_csv(path)
        if not set(OUR_COLUMNS) <= set(t.columns) or not ({"baseline_acc", "delta_acc"} & set(t.columns)):
            continue
        t = t.dropna(subset=["pruned_acc_best", "flops_pruned_pct"])
        # From the unrounded accuracies (fractions) where the table has them; its delta_acc is rounded.
        delta = (100 * (t["pruned_acc_best"] - t["baseline_acc"]) if "baseline_acc" in t.columns
                 else pd.to_numeric(t["delta_acc"], errors="coerce"))
        for (_, r), d in zip(t.iterrows(), delta):
            # Our tables hold runs of different budgets (the cpu profile, shortened paper-recipe runs on a GPU):
            # the kind says which, so a reader never takes one for the other.
            rows.append(dict(network=r["network"], flops_pruned_pct=float(r["flops_pruned_pct"]), delta_acc_pts=d,
                             kind=budget_kind("ours", r), source=f"ours ({path.stem})", device=r.get("device")))
    ref = reference_rows("cifar10")
    for _, r in ref.iterrows():
        x, y = pd.to_numeric(r["flops_reduction_pct"], errors="coerce"), pd.to_numeric(r["delta_acc"], errors="coerce")
        if pd.notna(x) and pd.notna(y):
            rows.append(dict(network=r["network"], flops_pruned_pct=float(x), delta_acc_pts=float(y),
                             kind="published", source=r["method"], device=None))
    return pd.DataFrame(rows, columns=["network", "flops_pruned_pct", "delta_acc_pts", "kind", "source",
                                       "device"]).dropna(
        subset=["delta_acc_pts"]).reset_index(drop=True)


# What each paper-width run is (reproduction/paper_width.py), in words for the table.
PAPER_WIDTH_WORDS = {
    "method": "ours: students copied from the teacher, label-free, no fine-tuning",
    "control_distill": "same-FLOPs network (uniform widths) from random weights, the same label-free loss and teacher",
    "control_scratch": "same-FLOPs network (uniform widths) from random weights, labels, the teacher's + students' "
                       "epochs",
    "peer_tp": "Torch-Pruning, its recipe: sparse training with labels, global cut, fine-tuning with labels",
    "peer_l1": "L1-norm pruning of the teacher (global), fine-tuning with labels",
    "finetune": "ours (first seed) + fine-tuning with labels",
}


# The summary field that holds a paper-width run's test accuracy on every test image, where it is not `pruned_acc`
# (classic.run_classic, the L1 peer's code: `final_acc`, after its fine-tuning).
PAPER_WIDTH_ACC = ACC_FIELD  # one map, kept where the records are read (paper_width.py)


def paper_width_table(records: list[dict], teacher_acc: float | None, per_image: dict | None = None) -> pd.DataFrame:
    """One row per paper-width run (`paper_width.load_records`): what it is, its state, and for a finished one its
    accuracy on every test image, Δ against the paper-width teacher (`teacher_acc`; None while it trains), the
    pruned ratios and what it cost; `device` is the summary's (where it finished), `processors` every processor its
    epochs trained on (`paper_width.processors`). Unfinished runs keep their row, with their state and nothing
    measured. `per_image` ({run: correctness on every test image}, "teacher" included;
    `paper_width.load_study_per_image`): each finished run's Δ also gets its paired standard error (`delta_se`), and
    `method_minus`: the method (mean over its finished seeds; the fine-tuning test: the seed it continues) against
    this run, image by image (± its SE), so a tie or a gap is read in the run's own row."""
    rows = []
    for r in records:
        s = r.get("summary") or {}
        acc = s.get(PAPER_WIDTH_ACC.get(r["kind"], "pruned_acc"))
        if s and acc is None:
            raise ValueError(f"{r['run']}: its summary has no {PAPER_WIDTH_ACC.get(r['kind'], 'pruned_acc')!r} "
                             f"(kind {r['kind']!r}; fields: {', '.join(sorted(s))})")
        delta = None if acc is None or teacher_acc is None else round(100 * (acc - teacher_acc), 2)
        epochs = s.get("epochs")
        ft = s.get("finetune_epochs") or (epochs if r["kind"] in ("peer_l1", "finetune") else 0)
        rows.append(dict(run=r["run"], what=PAPER_WIDTH_WORDS[r["kind"]], state=r["state"], seed=r["seed"],
                         labels="none" if r["kind"] in ("method", "control_distill") else "labels",
                         epochs=epochs, finetune_epochs=ft if s else None, train_images=_train_images(r),
                         target=s.get("target"), teacher_acc=teacher_acc, acc=acc, delta_acc=delta,
                         test_images=s.get("test_images"),
                         params_pruned=s.get("params_pruned"), flops_pruned=s.get("flops_pruned"),
                         target_met=s.get("target_met"), train_hours=None if not s else round(
                             s.get("train_seconds", float("nan")) / 3600, 2), device=s.get("device"),
                         processors=processors(r)))
    table = pd.DataFrame(rows)
    for col in ("epochs", "finetune_epochs"):  # counts: 15, not 15.0 beside a row that has none yet
        table[col] = table[col].astype("Int64")
    if per_image:
        _paired_columns(table, per_image)
    return table


def _paired_columns(table: pd.DataFrame, per_image: dict) -> None:
    """`delta_se` (points: the paired SE of Δ against the teacher) and `method_minus` ("+0.08 ± 0.28": the method's
    finished seeds against this run, mean of the paired differences ± its SE, paper_repro.paired) in place."""
    methods = {int(s): r for r, k, s in zip(table["run"], table["state"], table["seed"]) if r.startswith("method-")
               and r in per_image and k == "finished"}
    se, versus = [], []
    for run, seed in zip(table["run"], table["seed"]):
        d = paired_difference(per_image[run], per_image["teacher"]) if run in per_image and "teacher" in per_image \
            else None
        se.append(None if d is None else round(d.se_points, 2))
        # the fine-tuning test continues one seed's pruned network: it is compared with that seed alone
        against = {int(seed): methods[int(seed)]} if run == "finetune" and int(seed) in methods else methods
        if run in per_image and against and not run.startswith("method-"):
            c = combine_seeds({s: (per_image[m], per_image[run]) for s, m in against.items()})
            versus.append(f"{c.points:+.2f} ± {c.se_points:.2f}")
        else:
            versus.append(None)
    table.insert(table.columns.get_loc("delta_acc") + 1, "delta_se", se)
    table.insert(table.columns.get_loc("delta_se") + 1, "method_minus", versus)


# The main table's columns that fit a notebook's width (the CSV keeps every one: source, the mean over students, the
# training images, the selection rule, fine-tuning, the device).
MAIN_TABLE_SHOWN = ["network", "block", "width", "baseline_acc", "pruned_acc_best", "delta_acc", "params_pruned_pct",
                    "flops_pruned_pct", "target", "target_met", "epochs"]

# The columns a reader of the paper-width table needs (the CSV keeps every one; the Markdown and the notebook show
# these, and the notes say what the others hold in common).
PAPER_WIDTH_SHOWN = ["run", "what", "state", "seed", "labels", "epochs", "finetune_epochs", "acc", "delta_acc",
                     "delta_se", "method_minus", "flops_pruned", "params_pruned", "train_hours", "processors"]


def runs_stamp(table: pd.DataFrame, base: dict) -> dict:
    """The stamp of what was measured on committed runs (rows of `paper_width_table`): the seeds and the devices of
    its finished runs, which trained elsewhere, in place of the reading notebook's own (`base` keeps the rest)."""
    done = table[table["state"] == "finished"]
    return {**base, "seed": "/".join(str(int(s)) for s in sorted(set(done["seed"]))),
            "device": "; ".join(sorted(set(done["device"].astype(str))))}


def paper_width_caveats(table: pd.DataFrame, teacher_acc: float | None, arch: str, dataset_official: bool,
                        paper_epochs: int) -> str:
    """What a reader must know beside the paper-width rows, every number from the table, the references file or the
    settings: the teacher against published baselines of the network on official CIFAR-10, the copy, the students'
    epochs against the paper's, and how many seeds the method has."""
    ref = pd.read_csv(REFERENCES)
    base = pd.to_numeric(ref[(ref["dataset"] == "cifar10") & (ref["network"] == arch)]["base_acc"], errors="coerce")
    base = base.dropna()
    done = table[table["state"] == "finished"]
    seeds = sorted(int(s) for r, s in zip(done["run"], done["seed"]) if r.startswith("method-"))
    planned = sorted(int(s) for r, s in zip(table["run"], table["seed"]) if r.startswith("method-"))
    epochs = sorted({int(e) for r, e in zip(done["run"], done["epochs"]) if r.startswith("method-")})
    out = []
    if teacher_acc is not None:
        out.append(f"The teacher scores {teacher_acc:.2%} on all test images of "
                   + ("official CIFAR-10" if dataset_official else "this offline, partly JPEG re-encoded copy (not "
                      "official CIFAR-10; a published recipe loses about 3 points on it, docs/reproducibility.md)")
                   + (f"; published {arch} baselines on official CIFAR-10 are {base.min():.2f}-{base.max():.2f}% "
                      f"({len(base)} rows of references/reference_numbers.csv)" if len(base) else "") + ".")
    if epochs:
        out.append(f"The method's students train {', '.join(map(str, epochs))} epochs; the paper follows DPFPS's "
                   f"{paper_epochs}.")
    out.append(f"Method seeds finished: {', '.join(map(str, seeds)) or 'none'} of {', '.join(map(str, planned))}.")
    out.append("delta_acc: points against the teacher; delta_se: its paired standard error on the same test images; "
               "method_minus: the method (mean over its finished seeds; for the fine-tuning test, the seed it continues) "
               "minus this run, paired image by image, ± its SE (0 within two SEs: a tie).")
    return " ".join(out)


def _train_images(record: dict) -> str | None:
    """The training images of a finished paper-width run: its summary's, else its settings' (a method run's summary
    names none; its config's baseline does), as the main table writes them ("all" or a count)."""
    s, cfg = record.get("summary") or {}, record.get("config") or {}
    if "train_images" in s:
        return str(s["train_images"])
    return str(cfg.get("baseline", cfg).get("train_subset") or "all") if s and cfg else None
