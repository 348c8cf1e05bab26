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

import html
import math
import re
from dataclasses import asdict, dataclass

import pandas as pd

from ..checks import check_choice
from . import outputs
from .reading import show_all

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE = ("supported", "contradicted", "inconclusive (within noise)",
                                                       "not testable at this profile")
NOT_COMPARABLE = "not comparable (pruned ratios differ by more than 1 point)"
NOT_YET = "not testable yet (a run it needs has not finished)"
# A question about the sparsity engine (criterion, selection, penalty schedule) that a budget cannot ask: both arms had
# cut (nearly) all their channels by the end of their first epoch, so the engine's later choices had nothing to act on
# and the arms differ by how hard the first steps cut (issue 36, item 7).
BUDGET_DECIDED = "not answered at this budget (both arms cut their channels in the first epoch)"
# A comparison with a run that trained on less than its own recipe (a peer or a control starved by the budget): its
# number is what the budget did to it, so the comparison may not say "supported" (issue 36, item 4).
SHORT_OF_RECIPE = "not comparable (the other run had less than its own recipe)"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, NOT_COMPARABLE, NOT_YET, BUDGET_DECIDED,
            SHORT_OF_RECIPE)
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
            unfinished: bool = False, budget_decided: bool = False, short_of_recipe: bool = False) -> Verdict:
    """One claim judged (`judge`); `comparable` False (arms at different pruned ratios) overrides the judgement, and
    so do `budget_decided` (an engine question the budget cannot ask, `BUDGET_DECIDED`) and `short_of_recipe` (the
    other run had less than its own recipe, `SHORT_OF_RECIPE`); `unfinished` (a run it
    needs is still training) turns "not testable" into "not testable yet"."""
    judged = judge(value, threshold, direction, noise) if comparable else NOT_COMPARABLE
    if budget_decided and comparable:
        judged = BUDGET_DECIDED
    if short_of_recipe and comparable and judged != NOT_TESTABLE:
        judged = SHORT_OF_RECIPE
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


# What a row is: a claim of the paper, a check that a run did what it was set up to do, or a question around the
# claims (ablations, controls, comparisons). A check is met or missed, not a claim upheld.
CLAIM, CHECK, QUESTION = "claim", "check", "question"
CHECK_WORDS = {SUPPORTED: "met", CONTRADICTED: "missed"}
SHORT_VERDICTS = {SUPPORTED: "supported", CONTRADICTED: "contradicted", INCONCLUSIVE: "inconclusive",
                  NOT_TESTABLE: "not testable", NOT_COMPARABLE: "not comparable", NOT_YET: "not testable yet",
                  BUDGET_DECIDED: "not answered at this budget",
                  SHORT_OF_RECIPE: "not comparable (short of its recipe)"}


def is_check(claim_id: str) -> bool:
    """A row that checks a run against its own goal (a teacher reaching its accuracy goal, a run its pruning
    target), not a claim of the paper: it says the experiment did what it was set up to do."""
    return claim_id.startswith("teacher_converged_") or claim_id.endswith(("_params_pruned", "_flops_pruned"))


def is_paper_width(claim_id: str) -> bool:
    """A row of the paper-width study (claims.paper_width_verdicts: ids carry `<arch>_w1`): the runs at the paper's
    width, said apart from the profile's reduced budget."""
    return re.search(r"_w1(_|$)", claim_id) is not None


def row_kind(v) -> str:
    """CLAIM (the paper's source, not a check), CHECK or QUESTION, of a Verdict or a verdicts.csv row."""
    if is_check(str(v.claim_id)):
        return CHECK
    return CLAIM if str(v.source).startswith("paper") else QUESTION


def _text(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)


def _measured(v) -> bool:
    return not (v.value is None or (isinstance(v.value, float) and math.isnan(v.value)))


def value_words(v, context: bool = True) -> str:
    """The value with its ±K_SIGMA·σ and unit, as a reader says it: '-0.51 ± 0.62 points' (a difference, signed),
    '0.93 points' (a distance, |a − b|), '84.99%', '2.37 ± 0.06× (CPU, batch 64, width 1.0)' (`context`: where
    a speed-up was timed); '—' when nothing was measured."""
    if not _measured(v):
        return "—"
    measured, noise = _text(v.measured), float(v.noise or 0)
    spread = f" ± {K_SIGMA * noise:.2f}" if noise else ""
    if "speed-up" in measured:  # 'measured speed-up, CPU, batch 64, width 1.0; ...': where it was timed
        where = measured.split("measured speed-up, ", 1)[-1].split(";")[0]
        return f"{v.value:.2f}{spread}×" + (f" ({where})" if context else "")
    if "points" in measured:
        return (f"{v.value:.2f}" if measured.startswith("|") else f"{v.value:+.2f}") + f"{spread} points"
    if "%" in measured:
        return f"{v.value:.2f}%{spread}"
    return f"{v.value:.2f}{spread}"


_MEAN_SEEDS = re.compile(r"mean over seeds ([\d, ]+\d)")
_ONE_SEED = re.compile(r"(?:^|, )seed (\d+)(?:$|[ ,(])")
_PER_SEED = re.compile(r"(?:^|; )seed (\d+)(?: \(.*?\))?: [-+−]?\d")  # '; seed 1 (Intel(R) Xeon(R)): -0.25 ± ...'


def seeds_of(v) -> list[int]:
    """The seeds the value rests on, read from the row: 'mean over seeds 0, 1' or 'seed 0' in its measured text, the
    per-seed entries of a paired noise source ('seed 1 (AMD EPYC): ...'), else the row's own seed (one run; an
    ablation's σ may come from more seeds of its reference arm: `noise_seeds`)."""
    measured, source = _text(v.measured), _text(v.noise_source)
    m = _MEAN_SEEDS.search(measured)
    if m:
        return [int(x) for x in m[1].split(",")]
    per = _PER_SEED.findall(source)
    if per:
        return [int(x) for x in per]
    m = _ONE_SEED.search(measured)
    if m:
        return [int(m[1])]
    seed = getattr(v, "seed", None)
    try:
        return [int(float(seed))]
    except (TypeError, ValueError):
        return [0]


def noise_seeds(v) -> list[int]:
    """The seeds σ was measured over, when they are not the value's own ('seeds 0, 1, 2 on ...': an ablation's
    reference arm rerun); [] otherwise."""
    m = re.match(r"seeds ([\d, ]+\d)", _text(v.noise_source))
    return [int(x) for x in m[1].split(",")] if m else []


def spread_words(v) -> str:
    """What the ±K_SIGMA·σ covers, in a few words: 'paired over the test images and the seeds', 'the test-set
    sampling error, a lower bound', 'σ over seeds 0, 1, 2 of the reference arm', 'exact'."""
    source = _text(v.noise_source)
    if not float(v.noise or 0):
        return "exact" if _measured(v) else ""
    if source.startswith("paired"):
        return "paired over the same test images" + (" and the seeds" if len(seeds_of(v)) > 1 else "")
    if source.startswith("test-set sampling"):
        return "the test-set sampling error, a lower bound"
    if noise_seeds(v):
        return f"σ over seeds {', '.join(map(str, noise_seeds(v)))}"
    return source.split(";")[0]


def seeds_words(v) -> str:
    """'n = 2 seeds (0, 1)', 'n = 1 seed', 'n = 1 seed; σ from 3' (an ablation's reference arm); '' for a timing
    (its σ is the timed calls')."""
    if "timed calls" in _text(v.noise_source) or "timing" in _text(v.noise_source):
        return ""
    seeds, sigma = seeds_of(v), noise_seeds(v)
    words = f"n = {len(seeds)} seed{'s' if len(seeds) > 1 else ''}" + (
        f" ({', '.join(map(str, seeds))})" if len(seeds) > 1 else "")
    return words + (f"; σ from {len(sigma)}" if len(sigma) > 1 and sigma != seeds else "")


def _count_words(rows, check: bool = False) -> str:
    counts = {}
    for v in rows:
        word = CHECK_WORDS.get(v.verdict, v.verdict) if check else v.verdict
        counts[word] = counts.get(word, 0) + 1
    return ", ".join(f"{n} {w}" for w, n in counts.items())


def _item(v, check: bool = False) -> str:
    verdict = CHECK_WORDS.get(v.verdict, v.verdict) if check else SHORT_VERDICTS.get(v.verdict, v.verdict)
    claim = re.sub(r" \(read: [^)]*\)$", "", _text(v.claim))
    if not _measured(v):
        return f"{claim} ({_text(v.measured)}: {verdict})"
    return f"{claim}: {value_words(v)} ({verdict})"


def answer_paragraph(verdicts) -> str:
    """A notebook's answer in one generated paragraph, from its verdict rows (Verdicts, or rows of verdicts.csv):
    the paper's claims it tests, the checks of its runs and the questions around them, each counted by verdict
    with every value ± K_SIGMA·σ, then what σ covers. Every number is the rows'; '' when there are none."""
    verdicts = list(verdicts)
    if not verdicts:
        return ""
    groups = {k: [v for v in verdicts if row_kind(v) == k] for k in (CLAIM, QUESTION, CHECK)}
    parts = []
    for kind, label in ((CLAIM, "The paper's claims tested here"),
                        (QUESTION, "The questions around them" if groups[CLAIM] else "The questions it asks"),
                        (CHECK, "Checks of the runs, not claims of the paper")):
        rows = groups[kind]
        if rows:
            check = kind == CHECK
            parts.append(f"{label} ({len(rows)}): {_count_words(rows, check)}. "
                         + "; ".join(_item(v, check) for v in rows) + ".")
    spreads = list(dict.fromkeys(spread_words(v) + (f" ({seeds_words(v)})" if seeds_words(v) else "")
                                 for v in verdicts if float(v.noise or 0) and _measured(v)))
    if spreads:
        parts.append(f"The ± is {K_SIGMA:g}σ: " + "; ".join(spreads) + ".")
    return " ".join(parts)


@dataclass
class VerdictReport:
    """What a notebook's verdict cell shows: its answer in a paragraph (`answer_paragraph`), the table, then one
    generated sentence per claim (collapsed in the HTML)."""
    table: pd.DataFrame
    sentences: list[str]
    answer: str = ""

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{s.replace('**', '')}</li>" for s in self.sentences)
        answer = f"<p><b>In short.</b> {_html(self.answer)}</p>" if self.answer else ""
        return answer + self.table.to_html(index=False) + (
            f"<details><summary>Each verdict in a sentence</summary><ul>{items}</ul></details>" if items else "")

    def _repr_markdown_(self) -> str:
        answer = f"**In short.** {self.answer}\n\n" if self.answer else ""
        return answer + "\n".join(f"- {s}" for s in self.sentences)

    def __repr__(self) -> str:
        answer = f"In short. {self.answer}\n\n" if self.answer else ""
        return answer + self.table.to_string(index=False) + "".join(f"\n- {s}" for s in self.sentences)


def _html(text: str) -> str:
    return html.escape(text, quote=False)


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


def write_verdicts(verdicts: list[Verdict], notebook: str, profile: str, stamp: dict,
                   row_stamps: dict | None = None) -> VerdictReport:
    """Replace `notebook`'s rows of results/verdicts.csv (+ .md) with `verdicts`; returns what the notebook
    shows: the reading table and one sentence per claim. `row_stamps` ({claim_id: stamp}): rows measured on runs
    that this notebook only reads (committed runs trained elsewhere) carry their runs' stamp, not the notebook's."""
    path = outputs.output_dirs(profile)[0] / "verdicts.csv"
    existing = _read_csv(path) if path.exists() else None
    table = merge_verdicts(existing, notebook, verdicts)
    for k, v in stamp.items():  # this notebook's rows carry its stamp; the others keep theirs
        if k not in table.columns:
            table[k] = None
        table.loc[table["notebook"] == notebook, k] = v
    for claim_id, own in (row_stamps or {}).items():
        for k, v in own.items():
            table[k] = table[k].astype(object)  # a seed "0/1" beside whole seeds
            table.loc[(table["notebook"] == notebook) & (table["claim_id"] == claim_id), k] = v
    for k in stamp:  # seed 0, not 0.0: a column that held a missing value was read back as floats
        table[k] = table[k].astype(object).map(outputs._plain)
    outputs.write_table(table, "verdicts", profile, stamp, title="Verdicts: the paper's claims against our measurements",
                notes=f"supported / contradicted: the whole interval value ± {K_SIGMA:g}σ lies on one side of the "
                      "threshold; inconclusive: it straddles it (a difference within the run-to-run noise); "
                      "not testable: not measured at this profile; not testable yet: a committed run it needs "
                      "is still training. noise: σ of the value itself (the standard "
                      "deviation over seeds; for a difference of two arms, √2 × that of one arm; paired rows: the "
                      "standard error of the mean paired difference over the same test images and the seeds); 0 for "
                      "deterministic quantities; noise_source says how it was measured.")
    return VerdictReport(verdict_table(verdicts), [sentence(v, profile) for v in verdicts], answer_paragraph(verdicts))


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
