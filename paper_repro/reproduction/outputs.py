"""Tables and figures with their provenance stamp, written atomically to the profile's output folders."""
from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import pandas as pd

from ..mdtable import md_table
from ..provenance import ROOT, stamp_line
from ..storage import atomic_write, write_json, write_text
from .reading import FRACTION_COLUMNS, percent

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


MISSING = "—"  # the one spelling of "not measured" a reader sees (the CSVs keep empty cells)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or str(v) in ("", "nan", "NaN", "None", "—")


def _fmt(v, column: str = ""):
    if _missing(v):
        return MISSING
    if column in FRACTION_COLUMNS and isinstance(v, (int, float)) and not isinstance(v, bool):
        return percent(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _plain(x):
    """A value read back from a table as the stamp wrote it: numpy scalars as Python ones, and a whole float that
    a column of missing values made of an int (seed 0 read back as 0.0) as the int."""
    x = x.item() if hasattr(x, "item") else x
    return int(x) if isinstance(x, float) and x.is_integer() else x


def table_stamp(df: pd.DataFrame, stamp: dict, published=None) -> tuple[dict, list[str]]:
    """(the stamp a table's header states, the stamp columns its rows must still show). A stamp column whose
    rows (ours, not the `published` ones) all hold one value is stated once, in the header; one whose rows
    differ (verdicts gathered from several notebooks) stays a column, and the header says so."""
    ours = df if published is None else df[~pd.Series(list(published), index=df.index).astype(bool)]
    header, varying = {}, []
    for k, v in stamp.items():
        values = {str(x) for x in ours[k]} if k in ours and len(ours) else {str(v)}
        if len(values) == 1:
            header[k] = _plain(ours[k].iloc[0]) if k in ours and len(ours) else v
        else:
            header[k], varying = "varies by row", varying + [k]
    return header, varying


def write_table(df: pd.DataFrame, name: str, profile: str, stamp: dict, title: str = "", notes: str = "",
                published=None, columns: list[str] | None = None) -> Path:
    """results/<name>.csv (every row of ours carries the stamp columns: the file stands alone) and
    results/<name>.md, for reading: one provenance line (the stamp its rows share), the stamp columns only where
    rows differ, fractions in percent, and one spelling of a missing value. `published`: a boolean mask of rows
    that are others' reported numbers (e.g. the paper's); they get no stamp of ours. `columns`: the ones the
    Markdown shows (a wide table's key columns; the CSV keeps all, and the Markdown says so)."""
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
    header, varying = table_stamp(df, stamp, published)
    cols = [c for c in (columns or df.columns) if c in df.columns and (c not in stamp or c in varying)]
    lines = [f"# {title or name}", "", f"Provenance: {stamp_line(header)}", ""]
    if published is not None and any(published):
        lines[-1:] = ["", "Rows of published numbers (others' reports, with their sources) carry no stamp of ours.",
                      ""]
    lines += md_table(cols, ([_fmt(v, c) for c, v in zip(cols, row)] for row in df[cols].itertuples(index=False)))
    lines += ["", f"Fractions are shown in percent; {MISSING}: not measured. The CSV beside this file holds every "
              "value unrounded, with the provenance columns on each row"
              + (f", and the columns not shown here ({', '.join(c for c in df.columns if c not in cols and c not in stamp)})."
                 if columns else ".")]
    if notes:
        lines += ["", notes]
    write_text(res_dir / f"{name}.md", "\n".join(lines) + "\n")
    _record(profile, f"{name}.csv", "table", title or name, header)  # the index says what the header says
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
    import matplotlib.pyplot as plt  # on use: the command line never draws (start-up time)
    from IPython.display import Markdown, display

    save_figure(fig, name, profile, stamp, caption)
    plt.show()
    display(Markdown(f"**Figure `{name}`.** {caption}"))


def manifest_path(profile: str) -> Path:
    return output_dirs(profile)[0] / "outputs.json"


def _record(profile: str, file: str, kind: str, title: str, stamp: dict, caption: str = "") -> None:
    """Remember which notebook wrote which output (for the results/README.md index)."""
    path = manifest_path(profile)
    manifest = json.loads(path.read_text()) if path.exists() else {}
    manifest[file] = {"kind": kind, "title": title, "notebook": os.environ.get(ENV_NOTEBOOK, "interactive"),
                      "stamp": stamp, **({"caption": caption} if caption else {})}
    write_json(path, manifest)
