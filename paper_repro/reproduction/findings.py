"""What the reproduction found, in sentences: the README's first screen and the index's opening (index.py and
notebooks/00_index.ipynb call these), generated from results/verdicts.csv, the main and paper-width tables and
results/notebook_runtimes.csv; nothing here is typed by hand but the words around the numbers.

- `headline_sentences`: one sentence per headline network of the paper (VGG-Small, ResNet-56, MobileNetV2) with its
  verdict, the seeds it rests on and its ±2σ, from the runs at the paper's width where they exist, else saying
  that those are still training and what the reduced budget measured instead;
- `evidence_table`: every claim of the paper (and the questions of the paper-width study around them) with its
  verdict, value ± 2σ, seeds and the notebook and table behind it;
- `checks_sentence`, `others_sentence`: the checks of the runs and the other questions, counted;
- `findings_markdown` and `verdict_sections`: the index's opening and its collapsed verdict tables.
"""
from __future__ import annotations

import html
import re
import textwrap
from pathlib import Path

import pandas as pd

from ..config import paper_width_overrides
from ..mdtable import md_cell, md_table
from ..paper import PAPER_TARGETS
from ..teachers import WEIGHTS, teacher_dir
from .navigation import RUNTIMES, reproduce_time_words, runtimes_at
from .outputs import committed_dirs
from .tables import BLOCKS
from .verdicts import (CHECK, CHECK_WORDS, CLAIM, K_SIGMA, QUESTION, RATIO_TOLERANCE_PTS, SHORT_VERDICTS, _read_csv,
                       is_paper_width, noise_seeds, row_kind, seeds_of, spread_words, value_words, verdict_table)

NAMES = {"vgg_small": "VGG-Small", "resnet56": "ResNet-56", "mobilenetv2": "MobileNetV2", "resnet20": "ResNet-20"}
HEADLINE_ARCHS = tuple(PAPER_TARGETS)  # the paper's three CIFAR-10 rows, in its order
WRAP = 118  # the README's line width for generated prose (tables are kept under 200 characters a row)
# The table each notebook's verdicts rest on, where a row names no table of its own (`figure` naming a table wins).
NOTEBOOK_TABLES = {"01_baselines": "baselines", "02_method": "main_table", "03_ablation_losses": "ablation_losses",
                   "04_ablation_students": "ablation_students", "05_ablation_sparsity": "ablation_sparsity",
                   "06_classic_baselines": "classic_baselines", "07_peer_torch_pruning": "peer_torch_pruning",
                   "08_deployment": "deployment_latency"}
# Short words for the claims whose own text is too long for a table row (their full text: results/verdicts.md).
SHORT_CLAIMS = {"beats_uniform_distilled": "beats a same-FLOPs network distilled from random weights",
                "beats_uniform_scratch": "beats a same-FLOPs network trained from scratch with labels",
                "matches_peer_tp": "matches Torch-Pruning with its recipe (labels, fine-tuning)",
                "matches_peer_l1": "matches L1-norm pruning with fine-tuning (labels)",
                "finetune_adds": "fine-tuning with labels adds accuracy"}


def read_rows(res_dir: Path) -> pd.DataFrame:
    path = Path(res_dir) / "verdicts.csv"
    return _read_csv(path) if path.exists() else pd.DataFrame()


def wrap(text: str, width: int = WRAP, indent: str = "") -> str:
    """Prose wrapped for a Markdown source (no line over `width`; a code span is never split)."""
    keep = re.sub(r"`[^`]*`", lambda m: m[0].replace(" ", "\x00"), text)
    return textwrap.fill(keep, width, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False).replace("\x00", " ")


def arch_of(claim_id: str) -> str | None:
    """The network a row is about ('resnet56' of 'resnet56_w1_accuracy_kept', 'teacher_converged_vgg_small')."""
    rest = claim_id.removeprefix("teacher_converged_")
    return next((a for a in sorted(NAMES, key=len, reverse=True) if rest == a or rest.startswith(a + "_")), None)


def name(arch: str) -> str:
    return NAMES.get(arch, arch)


def _row(rows: pd.DataFrame, claim_id: str):
    hit = rows[rows["claim_id"] == claim_id] if len(rows) else rows
    return None if hit.empty else next(hit.itertuples(index=False))


def _measured(v) -> bool:
    return v is not None and not pd.isna(v.value)


def _verdict(v) -> str:
    return SHORT_VERDICTS.get(v.verdict, v.verdict)


def _arch_budget(res_dir: Path, arch: str, paper_width: bool) -> str:
    """'width 0.25, 3 student epochs on 10,000 training images', from the main table's row of ours for `arch`."""
    path = Path(res_dir) / "main_table.csv"
    if not path.exists():
        return ""
    t = pd.read_csv(path)
    t = t[t["source"].astype(str).str.startswith("ours") & (t["network"] == arch)]
    if "block" in t:
        t = t[t["block"] == BLOCKS[1 if paper_width else 2]]
    elif paper_width:
        return ""
    if t.empty:
        return ""
    r = t.iloc[0]
    images = "" if pd.isna(r.get("train_images")) else str(r.get("train_images"))
    images = f"{int(float(images)):,}" if images.replace(".0", "").isdigit() else images
    width, epochs = pd.to_numeric(r.get("width"), errors="coerce"), pd.to_numeric(r.get("epochs"), errors="coerce")
    if pd.isna(width):
        return ""
    words = f"width {width:.1f}" if width == round(width, 1) else f"width {width:g}"
    words += f", {int(epochs)} of the paper's 200 student epochs" if not pd.isna(epochs) else ""
    return words + (f", {images} training images" if images else "")


def paper_width_state(arch: str, profile: str) -> str:
    """Where `arch` stands at the paper's width when none of its verdicts exists: in training (config.PAPER_WIDTH
    names it: its teacher, then its runs) or not planned on this profile."""
    try:
        width = paper_width_overrides(arch, profile).get("width", 1.0)
    except ValueError:
        return ""
    folder = teacher_dir(arch, profile, 0, width)
    if (folder / WEIGHTS).exists():
        return f"its width-{width:.1f} teacher is trained, its pruning runs are training: `make paper-width`"
    return f"its width-{width:.1f} teacher is training: `make teachers`"


def _accuracy_words(v) -> str:
    """'accuracy -0.51 ± 0.62 points against its teacher, **inconclusive** (n = 2 seeds; ±2σ: paired over the same
    test images and the seeds)'."""
    if not _measured(v):
        return f"accuracy: {v.measured} (**{_verdict(v)}**)"
    n = len(seeds_of(v))
    return (f"accuracy {value_words(v)} against its teacher, **{_verdict(v)}** (n = {n} seed{'s' if n > 1 else ''}"
            + (f"; ±{K_SIGMA:g}σ: {spread_words(v).removeprefix('the ')}" if float(v.noise or 0) else "") + ")")


def _check_words(v) -> str:
    """'59.90% of the FLOPs pruned (target 60%, missed)', 'its teacher at 89.58% (goal 92.5%, missed)'."""
    if not _measured(v):
        return f"{v.claim}: {v.measured}"
    met = CHECK_WORDS.get(v.verdict, v.verdict)
    if str(v.claim_id).startswith("teacher_converged_"):
        return f"its teacher at {v.value:.2f}% (goal {v.threshold:g}%, {met})"
    kind = "params" if str(v.claim_id).endswith("_params_pruned") else "FLOPs"
    return f"{v.value:.2f}% of the {kind} pruned (target {v.threshold:g}%, {met})"


def _other_ratio_words(v) -> str:
    """'params pruned 52.68% against the paper's 53.61% (**supported**, test: within 1 point)'."""
    m = re.search(r"\|(\w+) pruned − ([\d.]+)%\|", str(v.measured))
    ours = re.search(r"ours ([\d.]+%)", str(v.measured))
    if not (m and ours and _measured(v)):
        return f"{v.claim}: **{_verdict(v)}**"
    kind = "FLOPs" if m[1] == "flops" else m[1]
    return (f"{kind} pruned {ours[1]} against the paper's {m[2]}% (**{_verdict(v)}**, test: within "
            f"{RATIO_TOLERANCE_PTS:g} point)")


def headline_sentence(rows: pd.DataFrame, arch: str, res_dir: Path, profile: str, state: str | None = None) -> str:
    """One generated sentence for a headline network of the paper (module docstring). `state`: where it stands at
    the paper's width when nothing is measured there yet (default: `paper_width_state`)."""
    kind = PAPER_TARGETS[arch].split("=")[0]
    wide = [v for v in rows.itertuples(index=False) if arch_of(v.claim_id) == arch and is_paper_width(v.claim_id)]
    if any(_measured(v) for v in wide):  # else its rows are all "not testable yet": said as training below
        tag = f"{arch}_w1"
        kept, check = _row(rows, f"{tag}_accuracy_kept"), _row(rows, f"{tag}_{kind}_pruned")
        other, teacher = _row(rows, f"{tag}_other_ratio_as_paper"), _row(rows, f"teacher_converged_{tag}")
        budget = _arch_budget(res_dir, arch, True) or "the committed paper-width runs"
        parts = [_accuracy_words(kept)] if kept is not None else []
        parts += [_check_words(check)] if check is not None else []
        parts += [_other_ratio_words(other)] if other is not None else []
        parts += [_check_words(teacher)] if teacher is not None else []
        return f"**{name(arch)}** at the paper's width ({budget}): " + "; ".join(parts) + "."
    state = paper_width_state(arch, profile) if state is None else state
    kept, check = _row(rows, f"{arch}_accuracy_kept"), _row(rows, f"{arch}_{kind}_pruned")
    other = _row(rows, f"{arch}_other_ratio_as_paper")
    speed = [v for v in rows.itertuples(index=False) if str(v.claim_id).startswith(f"{arch}_speedup")]
    budget = _arch_budget(res_dir, arch, False) or f"the {profile} profile"
    head = (f"**{name(arch)}** at the paper's width: training; not testable yet ({state}). What exists, at the "
            f"reduced budget ({budget}), says what that width and budget do, not what the method does: " if state else
            f"**{name(arch)}**, not run at the paper's width on this profile; at the reduced budget ({budget}): ")
    parts = [_accuracy_words(kept)] if kept is not None else []
    parts += [_check_words(check)] if check is not None else []
    parts += [_other_ratio_words(other)] if other is not None else []
    if speed:
        parts.append(f"measured speed-up against the paper's {speed[0].threshold:g}×: " + ", ".join(
            f"{value_words(v)} **{_verdict(v)}**" for v in speed))
    return head + ("; ".join(parts) if parts else "nothing measured yet") + "."


def headline_sentences(rows: pd.DataFrame, res_dir: Path, profile: str, states: dict | None = None) -> list[str]:
    """`headline_sentence` of each of the paper's headline networks that has a verdict row or a paper-width plan."""
    states = states or {}
    out = []
    for arch in HEADLINE_ARCHS:
        if len(rows) and any(arch_of(c) == arch for c in rows["claim_id"]):
            out.append(headline_sentence(rows, arch, res_dir, profile, states.get(arch)))
    return out


def _short_claim(v) -> str:
    """The claim in a few words for a table row: the network's name, the claim without its '(read: ...)'."""
    claim = re.sub(r" \(read: [^)]*\)$", "", str(v.claim))
    arch = arch_of(str(v.claim_id))
    suffix = next((w for k, w in SHORT_CLAIMS.items() if str(v.claim_id).endswith(k)), None)
    if arch and (suffix or re.match(rf"{arch}( at the paper's width)?: ", claim)):
        claim = f"{name(arch)}: {suffix or claim.split(': ', 1)[1]}"
    claim = claim.replace(" after pruning with no fine-tuning", ", no fine-tuning")
    claim = claim.replace(" at the flops target, as the paper reports", ", as the paper reports").replace(
        " at the params target, as the paper reports", ", as the paper reports")
    if "speed-up" in str(v.measured):
        where = str(v.measured).split("measured speed-up, ", 1)[-1].split(";")[0]
        claim += f" ({where})"
    return claim


def _table_of(v, res_dir: Path) -> str | None:
    """The results table a verdict rests on: the paper-width table for its rows, the table its `figure` names, the
    full-width latency table for a width-1.0 speed-up, else its notebook's main table; None when not written."""
    figure = "" if pd.isna(v.figure) else str(v.figure)
    if is_paper_width(str(v.claim_id)):
        table = "paper_width"
    elif figure and (Path(res_dir) / f"{figure}.md").exists():
        table = figure
    elif "width 1.0" in str(v.measured) and str(v.notebook) == "08_deployment":
        table = "deployment_latency_full_width"
    else:
        table = NOTEBOOK_TABLES.get(str(v.notebook))
    return table if table and (Path(res_dir) / f"{table}.md").exists() else None


def _section(v) -> str:
    if is_paper_width(str(v.claim_id)):
        return "paper"
    return {"02_method": "reduced", "08_deployment": "speed"}.get(str(v.notebook), "parts")


def evidence_rows(rows: pd.DataFrame):
    """The rows the evidence table shows: every claim of the paper, and the questions of the paper-width study (its
    controls, peers and fine-tuning test), the paper-width ones first."""
    if not len(rows):
        return []
    keep = [v for v in rows.itertuples(index=False)
            if row_kind(v) == CLAIM or (row_kind(v) == QUESTION and is_paper_width(str(v.claim_id)))]
    order = {"paper": 0, "reduced": 1, "speed": 2, "parts": 3}
    return sorted(keep, key=lambda v: order[_section(v)])  # stable: the notebooks' order within a section


def _seeds_cell(v) -> str:
    if "timed calls" in str(v.noise_source):
        return "timing"
    n, sigma = len(seeds_of(v)), noise_seeds(v)
    return f"{n}" + (f" (σ:{len(sigma)})" if len(sigma) > n else "")


def _compact_row(cells) -> str:
    """A table row without the spaces around its pipes (the same table, fewer characters and words)."""
    return "|" + "|".join(md_cell(c) for c in cells) + "|"


def evidence_table(rows: pd.DataFrame, res_dir: Path, profile: str, root: str = "") -> list[str]:
    """Markdown lines: the claims-to-evidence table (claim, verdict, value ± 2σ, seeds, notebook and table), in
    sections, with its links as references below it (`root`: the path from the page to the project root)."""
    chosen = evidence_rows(rows)
    if not chosen:
        return []
    budgets = {_arch_budget(res_dir, a, True) for a in {arch_of(str(v.claim_id)) for v in chosen
                                                        if is_paper_width(str(v.claim_id))}} - {""}
    paper_budget = budgets.pop() if len(budgets) == 1 else ("width 1.0; each network's epochs: the sentences above"
                                                            if budgets else "")
    titles = {"paper": "**At the paper's width**" + (f" ({paper_budget})" if paper_budget else ""),
              "reduced": "**At the reduced budget** (about that budget, not the method)",
              "speed": "**Measured speed-up**",
              "parts": "**The method's parts** (ResNet-56 ablations)"}
    body, refs, section = [], {}, None
    for v in chosen:
        if _section(v) != section:
            section = _section(v)
            body.append([titles[section], "", "", "", ""])
        nb = str(v.notebook)
        refs[nb[:2]] = f"{root}notebooks/executed/{profile}/{nb}.ipynb"
        evidence = f"[{nb[:2]}][{nb[:2]}]"
        table = _table_of(v, res_dir)
        if table:
            refs[table] = f"{root}results/{table}.md"
            evidence += f" [{table}][{table}]"
        value = value_words(v, context=False).removesuffix(" points")
        body.append([_short_claim(v), _verdict(v), value, _seeds_cell(v), evidence])
    md_table(["claim", "verdict", "v", "s", "e"], body)  # checks every row's cell count
    lines = [_compact_row(["claim", "verdict", f"value ± {K_SIGMA:g}σ (points)", "seeds", "notebook, table"]),
             "|---|---|---|---|---|"] + [_compact_row(r) for r in body]
    return lines + [""] + [f"[{k}]: {refs[k]}" for k in sorted(refs)]


def _check_item(v) -> str:
    arch = arch_of(str(v.claim_id)) or ""
    wide = " width 1.0" if is_paper_width(str(v.claim_id)) else ""
    words = _check_words(v)
    if words.startswith("its teacher"):
        return f"the {name(arch)}{wide} teacher{words.removeprefix('its teacher')}"
    return f"{name(arch)}{wide}: {words}"


def checks_sentence(rows: pd.DataFrame) -> str:
    """'Checks of the runs (not claims of the paper): 4 of 8 met; missed: the VGG-Small teacher at 84.99% (goal
    88%, missed); ...'."""
    checks = [v for v in rows.itertuples(index=False) if row_kind(v) == CHECK] if len(rows) else []
    if not checks:
        return ""
    met = [v for v in checks if CHECK_WORDS.get(v.verdict) == "met"]
    rest = [v for v in checks if v not in met]
    text = f"Checks of the runs (not claims of the paper): {len(met)} of {len(checks)} met"
    return text + ("; not met: " + "; ".join(_check_item(v) for v in rest) if rest else "") + "."


def others_sentence(rows: pd.DataFrame, root: str = "") -> str:
    """The questions the evidence table leaves out (ablation and comparison questions), counted by verdict."""
    rest = [v for v in rows.itertuples(index=False)
            if row_kind(v) == QUESTION and not is_paper_width(str(v.claim_id))] if len(rows) else []
    if not rest:
        return ""
    counts = pd.Series([v.verdict for v in rest]).value_counts()
    notebooks = ", ".join(sorted({str(v.notebook)[:2] for v in rest}))
    return (f"The {len(rest)} other questions (notebooks {notebooks}: comparisons and seed questions): "
            + ", ".join(f"{n} {k}" for k, n in counts.items())
            + f"; each with its value and noise in [results/verdicts.md]({root}results/verdicts.md), and each "
              "notebook ends with its answer in a paragraph.")


def data_words(rows: pd.DataFrame) -> str:
    """'cpu profile; a modified cifar10 copy (fingerprint 0eb270ba7f3d306e), not official CIFAR-10; results of
    commit 025afd5beba5'."""
    first = rows.iloc[0]
    fingerprint = first.get("dataset_fingerprint")
    fingerprint = "" if pd.isna(fingerprint) or not str(fingerprint) else f" (fingerprint {fingerprint})"
    data = ("official CIFAR-10" if str(first.get("dataset_official")) == "True" else
            f"a modified {first.get('dataset')} copy{fingerprint}, not official CIFAR-10")
    commits = ", ".join(sorted(set(rows["commit"].astype(str))))
    return f"{first['profile']} profile; {data}; results of commit {commits}"


def time_words(res_dir: Path, commits: bool = True) -> str:
    """The time of a whole `make reproduce`, in the one wording the README and the index state
    (navigation.reproduce_time_words over results/notebook_runtimes.csv)."""
    return reproduce_time_words(runtimes_at(Path(res_dir) / RUNTIMES), commits)


def gpu_words(res_dir: Path) -> str:
    """What a GPU has contributed: the recorded paper-recipe runs (results/paper_recipe_gpu_runs.csv), or none."""
    path = Path(res_dir) / "paper_recipe_gpu_runs.csv"
    runs = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if runs.empty:
        return "**GPU evidence:** none; no paper-recipe run has been recorded (docs/gpu.md says what is prepared)."
    parts = [f"{r.network} on {str(r.device).removeprefix('cuda:')}, {int(r.method_epochs)} method epochs after a "
             f"{int(r.teacher_epochs)}-epoch teacher, target {'met' if str(r.target_met) == 'True' else 'missed'}"
             for r in runs.itertuples()]
    return "**GPU evidence:** " + "; ".join(parts) + "; no run of the paper's 200-epoch recipe exists yet."


def _counted(rows) -> str:
    counts = pd.Series([v.verdict for v in rows]).value_counts()
    return ", ".join(f"{n} {k}" for k, n in counts.items())


def findings_markdown(profile: str, res_dir: Path | None = None) -> str:
    """The index's opening (links from notebooks/): the headline sentences, then the paper's claims, the checks of
    the runs and the questions around the claims, each counted apart, the GPU evidence and the time of `make
    reproduce`."""
    res_dir = committed_dirs(profile)[0] if res_dir is None else Path(res_dir)
    rows = read_rows(res_dir)
    if rows.empty:
        return f"No verdict has been written at the {profile} profile yet: `make reproduce` writes them."
    all_rows = list(rows.itertuples(index=False))
    claims = [v for v in all_rows if row_kind(v) == CLAIM]
    wide = [v for v in all_rows if row_kind(v) == QUESTION and is_paper_width(str(v.claim_id))]
    lines = [f"What this reproduction found ({data_words(rows)}):", ""]
    lines += [f"- {s}" for s in headline_sentences(rows, res_dir, profile)]
    lines += ["", f"**The paper's claims** ({len(claims)}: its headline rows, the speed-up and the parts of its method "
              f"it names): {_counted(claims)}; each with its value ± {K_SIGMA:g}σ under *Verdicts* below."]
    check = checks_sentence(rows)
    if check:
        lines += ["", "**" + check.replace(": ", ":** ", 1)]
    questions = ([f"at the paper's width, {len(wide)} (its same-FLOPs controls, peers and fine-tuning test): "
                  f"{_counted(wide)}"] if wide else [])
    other = others_sentence(rows, "../")
    other = other[:1].lower() + other[1:]
    if questions or other:
        lines += ["", "**Questions around the claims**: " + "; ".join(questions + ([other] if other else []))]
    lines += ["", gpu_words(res_dir)]
    times = time_words(res_dir)
    if times:
        lines += ["", f"**Time of `make reproduce`** on this profile (venv and data in place): {times}."]
    return "\n".join(lines)


class VerdictSections:
    """The full verdict table in three collapsed parts (HTML <details>): the paper's claims, the checks of the runs,
    the questions around the claims; as Markdown, the same three tables."""

    def __init__(self, verdicts):
        self.parts = [(title, [v for v in verdicts if row_kind(v) == kind]) for kind, title in
                      ((CLAIM, "The paper's claims"), (CHECK, "Checks of the runs (not claims of the paper)"),
                       (QUESTION, "Questions around the claims (controls, comparisons, seed questions)"))]

    def _repr_html_(self) -> str:
        out = []
        for title, rows in self.parts:
            if rows:
                counts = pd.Series([v.verdict for v in rows]).value_counts()
                summary = f"{title}: {len(rows)} ({', '.join(f'{n} {k}' for k, n in counts.items())})"
                out.append(f"<details><summary>{html.escape(summary)}</summary>"
                           f"{verdict_table(rows).to_html(index=False)}</details>")
        return "".join(out) or "<p>No verdicts yet.</p>"

    def _repr_markdown_(self) -> str:
        out = []
        for title, rows in self.parts:
            if rows:
                t = verdict_table(rows)
                out += [f"**{title}** ({len(rows)})", ""] + md_table(list(t.columns), t.values.tolist()) + [""]
        return "\n".join(out) or "No verdicts yet."

    def __repr__(self) -> str:
        return "\n\n".join(f"{title} ({len(rows)})\n" + verdict_table(rows).to_string(index=False)
                           for title, rows in self.parts if rows)


def verdict_sections(verdicts) -> VerdictSections:
    return VerdictSections(list(verdicts))

