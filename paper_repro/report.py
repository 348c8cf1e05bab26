"""Tables and figures with their provenance stamp, written atomically to the profile's output folders."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pandas as pd

from .provenance import ROOT, stamp_line
from .storage import atomic_write, write_json, write_text

ENV_NOTEBOOK = "PAPER_REPRO_NOTEBOOK"  # set by `reproduce` so every output knows which notebook made it
# "committed": write the committed results/ and figures/ (what `reproduce` sets); anything else, or unset (a
# notebook run by hand in JupyterLab): build/interactive/<profile>/, so trying a notebook never overwrites them.
ENV_OUTPUTS = "PAPER_REPRO_OUTPUTS"


def committed_dirs(profile: str) -> tuple[Path, Path]:
    """(results, figures) that `make reproduce` writes and git tracks. cpu: results/ and figures/; paper:
    their paper/ subfolders; smoke (tests, nbval): build/smoke/, never committed."""
    if profile == "cpu":
        return ROOT / "results", ROOT / "figures"
    if profile == "paper":
        return ROOT / "results" / "paper", ROOT / "figures" / "paper"
    return ROOT / "build" / profile / "results", ROOT / "build" / profile / "figures"


def output_dirs(profile: str) -> tuple[Path, Path]:
    """(results, figures) this process writes to: the committed ones under `reproduce` (or with
    $PAPER_REPRO_OUTPUTS=committed), else build/interactive/<profile>/. The smoke profile always writes build/."""
    if profile not in ("cpu", "paper") or os.environ.get(ENV_OUTPUTS) == "committed":
        return committed_dirs(profile)
    return ROOT / "build" / "interactive" / profile / "results", ROOT / "build" / "interactive" / profile / "figures"


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_table(df: pd.DataFrame, name: str, profile: str, stamp: dict, title: str = "", notes: str = "",
                published=None) -> Path:
    """results/<name>.csv (every row of ours carries the stamp columns) and results/<name>.md (table + stamp).
    `published`: a boolean mask of rows that are others' reported numbers (e.g. the paper's); they get no stamp
    of ours."""
    res_dir, _ = output_dirs(profile)
    for k, v in stamp.items():
        if k not in df.columns:
            df[k] = v
            if published is not None:
                df[k] = df[k].astype(object)
                df.loc[list(published), k] = None
    csv_buf = io.StringIO()
    df.to_csv(csv_buf, index=False)
    write_text(res_dir / f"{name}.csv", csv_buf.getvalue())
    cols = list(df.columns)
    lines = [f"# {title or name}", "", f"Provenance: {stamp_line(stamp)}", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    if notes:
        lines += ["", notes]
    write_text(res_dir / f"{name}.md", "\n".join(lines) + "\n")
    _record(profile, f"{name}.csv", "table", title or name, stamp)
    return res_dir / f"{name}.csv"


MAX_WIDTH_IN = 7.0  # a two-column page's full width: text set at >= 7 pt stays >= 7 pt when printed
PNG_DPI = 300
# Okabe & Ito's colour-blind-safe palette (seaborn "colorblind" order), plus a marker per series so that no
# reading depends on colour alone.
PALETTE = "colorblind"
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def figure_style() -> None:
    """The look of every figure: seaborn whitegrid, 8 pt text (7 pt ticks and legends), colour-blind palette."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper", palette=PALETTE)
    mpl.rcParams.update({"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7,
                         "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7,
                         "figure.titlesize": 9, "pdf.fonttype": 42, "svg.fonttype": "none"})


def save_figure(fig, name: str, profile: str, stamp: dict, caption: str = "") -> Path:
    """figures/<name>.pdf (vector) and figures/<name>.png (300 dpi), the stamp printed under the plot; `caption`
    goes to the results index. A figure wider than MAX_WIDTH_IN is refused: scaled down to a page its text
    would fall under 7 pt."""
    fig.canvas.draw()  # the saved width is the tight box's: a legend outside the axes widens the file
    width = max(fig.get_size_inches()[0], fig.get_tightbbox(fig.canvas.get_renderer()).width)
    if width > MAX_WIDTH_IN + 1e-9:
        raise ValueError(f"figure {name!r}: {width:.2f} in wide; at most {MAX_WIDTH_IN} in (figsize)")
    _, fig_dir = output_dirs(profile)
    fig.text(0.01, 0.005, stamp_line(stamp), fontsize=5.5, color="0.35", ha="left", va="bottom")
    meta = stamp_line(stamp)
    for ext, kw in (("pdf", dict(metadata={"Subject": meta})),
                    ("png", dict(dpi=PNG_DPI, metadata={"Description": meta}))):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, bbox_inches="tight", **kw)
        atomic_write(fig_dir / f"{name}.{ext}", lambda f: f.write(buf.getvalue()))
    _record(profile, f"{name}.png", "figure", name, stamp, caption)
    return fig_dir / f"{name}.png"


def publish_figure(fig, name: str, profile: str, stamp: dict, caption: str) -> None:
    """In a notebook: save the figure (save_figure), show it, and show its caption under it. Returns nothing, so
    that no path repr lands in the executed notebook."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    save_figure(fig, name, profile, stamp, caption)
    plt.show()
    display(Markdown(f"**Figure `{name}`.** {caption}"))


def _manifest_path(profile: str) -> Path:
    return output_dirs(profile)[0] / "outputs.json"


def _record(profile: str, file: str, kind: str, title: str, stamp: dict, caption: str = "") -> None:
    """Remember which notebook wrote which output (for the results/README.md index)."""
    path = _manifest_path(profile)
    manifest = json.loads(path.read_text()) if path.exists() else {}
    manifest[file] = {"kind": kind, "title": title, "notebook": os.environ.get(ENV_NOTEBOOK, "interactive"),
                      "stamp": stamp, **({"caption": caption} if caption else {})}
    write_json(path, manifest)


def write_index(profile: str) -> Path:
    """results/README.md: every table and figure, the notebook that makes it, and its provenance."""
    res_dir, fig_dir = output_dirs(profile)
    path = _manifest_path(profile)
    manifest = json.loads(path.read_text()) if path.exists() else {}
    lines = [f"# Results index ({profile} profile)", "",
             "Generated by `make reproduce`; do not edit. Each output was written by the notebook named beside it.", ""]
    lines += _verdict_lines(res_dir / "verdicts.csv")
    lines += ["## Every table and figure", "", "| output | kind | notebook | caption | provenance |",
              "|---|---|---|---|---|"]
    for file, m in sorted(manifest.items(), key=lambda kv: (kv[1]["notebook"], kv[0])):
        where = (res_dir / file) if m["kind"] == "table" else (fig_dir / file)
        rel = os.path.relpath(where, res_dir)
        if m["kind"] == "table":
            rel_md = os.path.relpath(where.with_suffix(".md"), res_dir)
            link = f"[{file}]({rel}) ([md]({rel_md}))"
        else:
            link = f"[{file}]({rel})"
        prov = stamp_line(m["stamp"]).replace("|", "\\|")  # the stamp's own separators must not split cells
        caption = m.get("caption", m["title"] if m["kind"] == "table" else "").replace("|", "\\|")
        lines.append(f"| {link} | {m['kind']} | {m['notebook']} | {caption} | {prov} |")
    return write_text(res_dir / "README.md", "\n".join(lines) + "\n")


def _verdict_lines(path: Path) -> list[str]:
    """The verdicts first: the claim, what we measured, the verdict, where it is shown."""
    if not path.exists():
        return []
    from .verdicts import K_SIGMA

    v = pd.read_csv(path)
    lines = ["## Verdicts", "", f"Each claim against our measurement ± {K_SIGMA:g}σ ([verdicts.csv](verdicts.csv), "
             "[rules](../paper_repro/verdicts.py)).", "", "| claim | measured | test | noise | verdict | where |",
             "|---|---|---|---|---|---|"]
    for r in v.itertuples(index=False):
        shown = shown_value(r)
        where = r.notebook + (f", {r.figure}" if isinstance(r.figure, str) and r.figure else "")
        noise = r.noise_source if isinstance(getattr(r, "noise_source", None), str) else ""
        lines.append(f"| {r.claim} | {r.measured}: {shown} | {r.direction} {r.threshold:g} | {noise} | "
                     f"**{r.verdict}** | {where} |")
    return lines + [""]


README = ROOT / "README.md"
SUMMARY_BEGIN, SUMMARY_END = "<!-- summary:begin", "<!-- summary:end -->"
# The rows the README shows one by one: the teachers and the paper's headline claims (notebooks 01 and 02); the
# others are counted by verdict there and listed in results/verdicts.md.
HEADLINE_NOTEBOOKS = ("01_baselines", "02_method")


def shown_value(r) -> str:
    """'-4.98 ± 0.22' (value ± K_SIGMA·noise; signed when it is a difference, in points), '—' when nothing was
    measured."""
    from .verdicts import K_SIGMA

    if pd.isna(r.value):
        return "—"
    value = f"{r.value:+.2f}" if str(r.measured).endswith("points") else f"{r.value:.2f}"
    return value + (f" ± {K_SIGMA * r.noise:.2f}" if r.noise else "")


def readme_summary(res_dir: Path) -> str:
    """The README's generated summary: the headline verdicts, the count of the others by verdict, the data they
    were measured on, and the time of the last cold and cached `make reproduce`."""
    from .navigation import TOTAL, _human

    v = pd.read_csv(res_dir / "verdicts.csv")
    first = v.iloc[0]
    data = ("official CIFAR-10" if str(first["dataset_official"]) == "True" else
            f"a modified {first['dataset']} copy, fingerprint {first['dataset_fingerprint']}, not official CIFAR-10")
    commits = ", ".join(sorted(set(v["commit"].astype(str))))
    lines = [f"**Measured** ({first['profile']} profile, {data}; commit {commits}):", "",
             "| claim | measured | verdict |", "|---|---|---|"]
    head = v[v["notebook"].isin(HEADLINE_NOTEBOOKS)]
    for r in head.itertuples(index=False):
        lines.append(f"| {r.claim} | {r.measured}: {shown_value(r)} | **{r.verdict}** |")
    rest = v[~v["notebook"].isin(HEADLINE_NOTEBOOKS)]
    counts = rest["verdict"].value_counts()
    numbers = ", ".join(sorted({str(n).split("_")[0] for n in rest["notebook"]}))
    lines += ["", f"The {len(rest)} other questions (notebooks {numbers}: ablations and comparisons): "
              + ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
              + "; each with its value and noise in [results/verdicts.md](results/verdicts.md)."]
    times = {}
    rt = res_dir / "notebook_runtimes.csv"
    if rt.exists():
        for r in pd.read_csv(rt).itertuples(index=False):
            if r.notebook == TOTAL:
                times[r.kind] = f"{_human(float(r.seconds))} ({r.when}, commit {r.commit})"
    if times:
        lines += ["", "Time of `make reproduce` on this profile (venv and data in place): "
                  + "; ".join(f"{k} {times[k]}" for k in ("cold", "cached") if k in times) + "."]
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """`text` with the lines between the summary markers replaced by `block` (the markers stay)."""
    begin, end = text.find(SUMMARY_BEGIN), text.find(SUMMARY_END)
    if begin < 0 or end < begin:
        raise ValueError(f"README: the markers {SUMMARY_BEGIN!r} ... {SUMMARY_END!r} are missing or out of order")
    head_end = text.index("\n", begin) + 1
    return text[:head_end] + block.rstrip("\n") + "\n" + text[end:]


def write_readme_summary(profile: str, readme: Path = README) -> Path | None:
    """Refresh the README's summary from the committed results; only `make reproduce` of the committed profile
    writes it (an interactive or smoke run never touches the README)."""
    res_dir = committed_dirs(profile)[0]
    if res_dir != ROOT / "results" or not (res_dir / "verdicts.csv").exists():
        return None
    return write_text(readme, replace_block(readme.read_text(), readme_summary(res_dir)))
