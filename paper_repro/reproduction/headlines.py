"""The end of `make reproduce`: each regenerated headline number beside the committed one, against the noise.

Bitwise equality holds on one processor only (oneDNN picks kernels by instruction set), so on another machine the
numbers move. This report says by how much, and whether that is within the run-to-run noise measured by the
notebooks (σ over seeds, results/verdicts.csv): |now − committed| ≤ 2σ reads "within noise".

Headline numbers: each teacher's test accuracy (results/baselines.csv; loaded from teachers/, so equal unless the
teachers were retrained) and, per network of the main table, the selected student's accuracy after removal and
the params and FLOPs pruned (results/main_table.csv).
"""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from .tables import BLOCKS
from .verdicts import K_SIGMA


def snapshot(results_dir) -> dict:
    """The headline numbers of the tables in `results_dir` now: {(what, network): value in %}, plus σ by network."""
    res = Path(results_dir)
    out = {"values": {}, "sigma": {}}
    base = _read(res / "baselines.csv")
    if base is not None:
        for r in base.itertuples():
            out["values"][("teacher test accuracy, %", r.arch)] = 100 * float(r.test_acc)
    main = _read(res / "main_table.csv")
    if main is not None:
        ours = main[main["source"].astype(str).str.startswith("ours")]
        for r in ours.itertuples():
            # A row at the paper's width is its own headline, named as its verdicts are (claims: "<arch>_w1").
            network = (f"{r.network}_w{float(r.width):g}" if getattr(r, "block", None) == BLOCKS[1]
                       else r.network)
            out["values"][("selected student's accuracy, %", network)] = 100 * float(r.pruned_acc_best)
            out["values"][("params pruned, %", network)] = float(r.params_pruned_pct)
            out["values"][("FLOPs pruned, %", network)] = float(r.flops_pruned_pct)
    ver = _read(res / "verdicts.csv")
    if ver is not None and "claim_id" in ver:
        for r in ver.itertuples():
            if str(r.claim_id).endswith("_accuracy_kept"):
                out["sigma"][str(r.claim_id)[: -len("_accuracy_kept")]] = float(r.noise)  # σ of that accuracy
    return out


def _read(path):
    return pd.read_csv(path) if path.exists() else None


def compare(before: dict, after: dict) -> pd.DataFrame:
    """One row per headline number present in both snapshots."""
    rows = []
    for key, now in after["values"].items():
        if key not in before["values"]:
            continue
        what, network = key
        was = before["values"][key]
        sigma = after["sigma"].get(network) if "accuracy" in what and "teacher" not in what else None
        diff = now - was
        if diff == 0:
            status = "identical"
        elif sigma is None:
            status = "differs (exact quantity)" if "pruned" in what else "differs"
        else:
            status = "within noise" if abs(diff) <= K_SIGMA * sigma else "outside noise"
        rows.append(dict(network=network, number=what, committed=round(was, 2), now=round(now, 2),
                         difference=round(diff, 2), two_sigma=None if sigma is None else round(K_SIGMA * sigma, 2),
                         status=status))
    return pd.DataFrame(rows, columns=["network", "number", "committed", "now", "difference", "two_sigma", "status"])


def report(before: dict, after: dict) -> str:
    """The comparison as text for the terminal ("" when there is nothing to compare)."""
    table = compare(before, after)
    if table.empty:
        return ""
    buf = io.StringIO()
    buf.write("[reproduce] headline numbers, regenerated vs committed (2σ: the notebooks' run-to-run noise):\n")
    buf.write(table.to_string(index=False))
    moved = table[table["status"] == "outside noise"]
    buf.write(f"\n[reproduce] {len(table)} numbers: {int((table['status'] == 'identical').sum())} identical, "
              f"{int((table['status'] == 'within noise').sum())} within noise, {len(moved)} outside noise\n")
    return buf.getvalue()
