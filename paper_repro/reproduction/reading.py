"""Tables for reading in a notebook: the result columns only, in percent, and nothing hidden behind `...`.

The CSVs in results/ keep every column (provenance included); these are the views the notebooks show.
"""
from __future__ import annotations

import math

import pandas as pd

from ..ista import scaled_lambda

# Columns holding a fraction in [0, 1] that a reader wants in percent.
FRACTION_COLUMNS = ("baseline_acc", "best_acc", "mean_acc", "test_acc", "final_acc", "acc_before_finetune",
                    "acc_bn_recalibrated", "params_pruned", "flops_pruned", "pruned_acc", "pruned_acc_best",
                    "pruned_acc_mean", "acc_trained", "acc_pruned", "trained_acc", "sparsity", "curve_acc",
                    "dense_flops_pruned", "sparse_flops_pruned", "pruned_acc_all_mean", "acc", "teacher_acc",
                    "pruned_after_first_epoch")


def show_all() -> None:
    """Never abbreviate a table with `...` (pandas' default hides columns past 20 and long cells)."""
    pd.set_option("display.max_columns", None)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", None)  # a claim or a note is read whole


def percent(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{100 * float(x):.{digits}f}%"


def target_status(target: str | None, met, params_pruned=None, flops_pruned=None) -> str:
    """"met", or "missed (59.72%)" with the ratio reached of the target's kind ("flops=0.60" → FLOPs pruned)."""
    if target is None or (isinstance(target, float) and math.isnan(target)) or met is None:
        return "—"
    if bool(met):
        return "met"
    kind = str(target).split("=")[0]
    reached = {"params": params_pruned, "flops": flops_pruned}.get(kind)
    return f"missed ({percent(reached)})" if reached is not None else "missed"


def for_reading(df: pd.DataFrame, columns: list[str], rename: dict | None = None) -> pd.DataFrame:
    """`columns` of `df` (those present, in that order), fractions as percent strings, `target_met` as
    met / missed (x%), seconds rounded; the index hidden behind the first column."""
    show_all()
    out = pd.DataFrame(index=df.index)
    for c in columns:
        if c == "target_met" and "target_met" in df:
            out["target_met"] = [target_status(t, m, p, f) for t, m, p, f in zip(
                df.get("target", [None] * len(df)), df["target_met"], df.get("params_pruned", [None] * len(df)),
                df.get("flops_pruned", [None] * len(df)))]
        elif c not in df:
            continue
        elif c in FRACTION_COLUMNS:
            out[c] = df[c].map(percent)
        elif "seconds" in c:
            out[c] = df[c].map(lambda v: "—" if v is None or v != v else f"{float(v):.1f}")
        else:
            out[c] = df[c]
    return out.rename(columns=rename or {}).reset_index(drop=True)


# The settings a recipe sentence names, in reading order, with their words. Anything else is in the table above it.
RECIPE_WORDS = (("train_subset", "training images"), ("test_subset", "test images"), ("width", "width"),
                ("epochs", "epochs"), ("batch_size", "batch"), ("lr", "lr"), ("lr_schedule", "schedule"),
                ("warmup_epochs", "warm-up epochs"), ("momentum", "momentum"), ("nesterov", "Nesterov"),
                ("weight_decay", "weight decay"))


def _value(key: str, v) -> str:
    if key in ("train_subset", "test_subset"):
        return "all" if v is None else f"{int(v):,}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def recipe_text(cfgs: dict[str, dict], what: str = "teacher") -> str:
    """One sentence of a recipe from resolved settings {arch: cfg}: a value shared by every network once, else
    per network. The notebooks' prose names a profile's values through this, never by hand."""
    parts = []
    for key, words in RECIPE_WORDS:
        values = {arch: _value(key, c.get(key)) for arch, c in cfgs.items() if key in c}
        if not values:
            continue
        if len(set(values.values())) == 1:
            parts.append(f"{words} {next(iter(values.values()))}")
        else:
            parts.append(f"{words} " + ", ".join(f"{v} ({a})" for a, v in values.items()))
    profile = next(iter(cfgs.values()))["profile"]
    return f"**The {profile} profile's {what} recipe** (from the settings above): " + "; ".join(parts) + "."


def method_text(cfgs: dict[str, dict]) -> str:
    """The method's profile values in words (from `method.resolve_method` settings): the penalty as set and as
    applied per step after the rescaling with batch, LR and training images (`ista.scaled_lambda`)."""
    parts = []
    for arch, c in cfgs.items():
        b = c["baseline"]
        images = b["train_subset"] or 50_000
        steps = images // b["batch_size"]  # training batches drop the last partial one, as the method counts
        per_step = (scaled_lambda(c["lambda_max"], b["batch_size"], b["lr"], steps * b["batch_size"])
                    if c.get("lambda_scaling", True) else c["lambda_max"])
        parts.append(f"{arch}: λ_max {c['lambda_max']:g} → {per_step:.3g} per step (batch {b['batch_size']}, "
                     f"lr {b['lr']:g}, {images:,} images), {c['epochs']} epochs, {c['students']} students")
    profile = next(iter(cfgs.values()))["profile"]
    return (f"**The {profile} profile's method settings** (from the table above): " + "; ".join(parts) +
            ". DPFPS's λ_max is 0.01 at batch 64, lr 0.1 and 50,000 images; the run keeps steps per epoch × lr × λ "
            "at that reference, so a small LR or few images give a large λ per step (the λ panel plots it).")
