"""Verdicts: each claim of the paper (and each ablation question) set against what a notebook measured.

A claim is a measured quantity compared with a threshold: "the pruned network loses at most 1 point" is
Δacc >= -1; "all three loss terms beat KD alone" is acc(all) - acc(KD) > 0. The measurement carries its
run-to-run noise σ (the standard deviation over seeds, for a difference of two arms √2·σ; where both networks
have per-image records, the paired standard error over the same test images and the seeds, paper_repro/paired.py).
The verdict is:

    supported      the whole interval value ± K_SIGMA·σ lies on the claim's side of the threshold
    contradicted   the whole interval lies on the other side
    inconclusive   the interval straddles the threshold: the data cannot tell (within noise)
    not testable   nothing was measured at this profile (e.g. a paper-profile run that does not exist)
    not yet        nothing measured yet: a committed run it needs is still training across sessions
    not comparable two arms whose pruned ratios differ by more than RATIO_TOLERANCE_PTS: a smaller network is
                   harder to keep accurate, so their accuracies answer no question of the method

So a difference inside the noise is never "supported". A deterministic quantity (a pruned ratio, a count)
has σ = 0. Rows are written by the notebooks (`write_verdicts`) into results/verdicts.csv + .md, one file for
all notebooks, each notebook replacing only its own rows.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from ..checks import check_choice
from . import outputs
from .reading import show_all

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE = ("supported", "contradicted", "inconclusive (within noise)",
                                                       "not testable at this profile")
NOT_COMPARABLE = "not comparable (pruned ratios differ by more than 1 point)"
NOT_YET = "not testable yet (a run it needs has not finished)"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, NOT_COMPARABLE, NOT_YET)
RATIO_TOLERANCE_PTS = 1.0  # [chosen] two arms are compared only when their pruned ratios are this close
DIRECTIONS = (">", ">=", "<", "<=")
K_SIGMA = 2.0  # about a 95% interval for a normal noise


def judge(value: float | None, threshold: float, direction: str = ">", noise: float = 0.0,
          k: float = K_SIGMA) -> str:
    """The verdict on `value direction threshold` given the noise σ of `value` (see the module docstring)."""
    check_choice("direction", direction, DIRECTIONS)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_TESTABLE
    if noise is None or math.isnan(noise) or noise < 0:
        raise ValueError(f"noise: must be a number >= 0 (0 for a deterministic quantity), got {noise!r}")
    lo, hi = value - k * noise, value + k * noise
    holds = {">": lo > threshold, ">=": lo >= threshold, "<": hi < threshold, "<=": hi <= threshold}[direction]
    fails = {">": hi <= threshold, ">=": hi < threshold, "<": lo >= threshold, "<=": lo > threshold}[direction]
    return SUPPORTED if holds else CONTRADICTED if fails else INCONCLUSIVE


def difference_noise(sigma: float) -> float:
    """σ of the difference of two independent arms that each have run-to-run noise σ."""
    return math.sqrt(2.0) * sigma


@dataclass
class Verdict:
    claim_id: str  # stable key, e.g. "resnet56_almost_lossless"
    claim: str  # the claim in words
    source: str  # where it is claimed: the paper's section, a seed question, an ablation
    measured: str  # what was measured, in words with units, e.g. "Δ accuracy -0.42 points"
    value: float | None
    threshold: float
    direction: str
    noise: float  # σ of `value`, same unit
    verdict: str
    notebook: str
    figure: str = ""
    noise_source: str = ""  # how σ was measured: "seeds 0, 1, 2", "test-set sampling (one seed)", "exact"

    def row(self) -> dict:
        return asdict(self)


def verdict(claim_id: str, claim: str, source: str, measured: str, value, threshold: float, direction: str,
            noise: float, notebook: str, figure: str = "", noise_source: str = "", comparable: bool = True,
            unfinished: bool = False) -> Verdict:
    """One claim judged (`judge`); `comparable` False (arms at different pruned ratios) overrides the judgement;
    `unfinished` (a run it needs is still training) turns "not testable" into "not testable yet"."""
    judged = judge(value, threshold, direction, noise) if comparable else NOT_COMPARABLE
    if judged == NOT_TESTABLE and unfinished:
        judged = NOT_YET
    return Verdict(claim_id, claim, source, measured, None if value is None else float(value), float(threshold),
                   direction, float(noise), judged, notebook, figure, noise_source or ("exact" if not noise else ""))


def interval(v: Verdict) -> tuple[float, float] | None:
    """The interval the verdict rests on: value ± K_SIGMA·σ (None when nothing was measured)."""
    if v.value is None or (isinstance(v.value, float) and math.isnan(v.value)):
        return None
    return v.value - K_SIGMA * v.noise, v.value + K_SIGMA * v.noise


def _shown(v: Verdict) -> str:
    if interval(v) is None:
        return "—"
    return f"{v.value:+.2f}" + (f" ± {K_SIGMA * v.noise:.2f}" if v.noise else "")


def sentence(v: Verdict, profile: str) -> str:
    """The verdict in words, every number from the row: what was measured, its interval, the claim's test."""
    if interval(v) is None and v.verdict == NOT_YET:
        return f"{v.claim}: {v.measured}: **{v.verdict}**."
    if interval(v) is None:
        return f"{v.claim}: nothing measured at the {profile} profile: {v.verdict}."
    lo, hi = interval(v)
    spread = (f" (interval {lo:+.2f} to {hi:+.2f}, ±{K_SIGMA:g}σ, σ from {v.noise_source})" if v.noise else
              f" ({v.noise_source or 'exact'})")
    return (f"At the {profile} profile, {v.measured} is {_shown(v)}{spread}; the claim needs {v.direction} "
            f"{v.threshold:g}: **{v.verdict}**. ({v.claim})")


@dataclass
class VerdictReport:
    """What a notebook's verdict cell shows: the table, then one generated sentence per claim."""
    table: pd.DataFrame
    sentences: list[str]

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{s.replace('**', '')}</li>" for s in self.sentences)
        return self.table.to_html(index=False) + (f"<ul>{items}</ul>" if items else "")

    def _repr_markdown_(self) -> str:
        return "\n".join(f"- {s}" for s in self.sentences)

    def __repr__(self) -> str:
        return self.table.to_string(index=False) + "".join(f"\n- {s}" for s in self.sentences)


def verdict_table(verdicts: list[Verdict]) -> pd.DataFrame:
    """For reading: the claim, the measurement ± 2σ and its interval, the verdict, where it is shown (shown
    whole, no `...`)."""
    show_all()
    rows = []
    for v in verdicts:
        span = interval(v)
        rows.append({"claim": v.claim, "source": v.source, "measured": f"{v.measured}: {_shown(v)}",
                     "interval": "—" if span is None else f"[{span[0]:+.2f}, {span[1]:+.2f}]",
                     "test": f"{v.direction} {v.threshold:g}", "noise": v.noise_source, "verdict": v.verdict,
                     "where": f"{v.notebook}" + (f", figure {v.figure}" if v.figure else "")})
    return pd.DataFrame(rows, columns=["claim", "source", "measured", "interval", "test", "noise", "verdict",
                                       "where"])


def merge_verdicts(existing: pd.DataFrame | None, notebook: str, verdicts: list[Verdict]) -> pd.DataFrame:
    """`existing` with `notebook`'s rows replaced by `verdicts` (other notebooks' rows kept, in their order)."""
    new = pd.DataFrame([v.row() for v in verdicts], columns=list(Verdict.__dataclass_fields__))
    kept = None if existing is None or existing.empty else existing[existing["notebook"] != notebook]
    rows = ([] if kept is None else kept.to_dict("records")) + new.to_dict("records")
    merged = pd.DataFrame(rows, columns=list(dict.fromkeys([*(() if kept is None else kept.columns), *new.columns])))
    return merged.sort_values("notebook", kind="stable", ignore_index=True)  # notebook order, whoever ran last


def write_verdicts(verdicts: list[Verdict], notebook: str, profile: str, stamp: dict) -> VerdictReport:
    """Replace `notebook`'s rows of results/verdicts.csv (+ .md) with `verdicts`; returns what the notebook
    shows: the reading table and one sentence per claim."""
    path = outputs.output_dirs(profile)[0] / "verdicts.csv"
    existing = _read_csv(path) if path.exists() else None
    table = merge_verdicts(existing, notebook, verdicts)
    for k, v in stamp.items():  # this notebook's rows carry its stamp; the others keep theirs
        if k not in table.columns:
            table[k] = None
        table.loc[table["notebook"] == notebook, k] = v
    outputs.write_table(table, "verdicts", profile, stamp, title="Verdicts: the paper's claims against our measurements",
                notes=f"supported / contradicted: the whole interval value ± {K_SIGMA:g}σ lies on one side of the "
                      "threshold; inconclusive: it straddles it (a difference within the run-to-run noise); "
                      "not testable: not measured at this profile; not testable yet: a committed run it needs "
                      "is still training. noise: σ of the value itself (the standard "
                      "deviation over seeds; for a difference of two arms, √2 × that of one arm; paired rows: the "
                      "standard error of the mean paired difference over the same test images and the seeds); 0 for "
                      "deterministic quantities; noise_source says how it was measured.")
    return VerdictReport(verdict_table(verdicts), [sentence(v, profile) for v in verdicts])


def read_verdicts(profile: str) -> list[Verdict]:
    """Every notebook's verdicts, as the last `make reproduce` (or interactive run) wrote them."""
    path = outputs.output_dirs(profile)[0] / "verdicts.csv"
    if not path.exists():
        return []
    fields = list(Verdict.__dataclass_fields__)
    out = []
    for r in _read_csv(path).to_dict("records"):
        v = {k: r.get(k) for k in fields}
        v["value"] = None if pd.isna(v["value"]) else float(v["value"])
        out.append(Verdict(**v))
    return out


TEXT_FIELDS = ("claim_id", "claim", "source", "measured", "direction", "verdict", "notebook", "figure",
               "noise_source")


def _read_csv(path) -> pd.DataFrame:
    """verdicts.csv with its text columns as text ("06" stays "06", an empty figure stays "")."""
    return pd.read_csv(path, dtype={k: str for k in TEXT_FIELDS}, keep_default_na=False, na_values={"value": [""]})
