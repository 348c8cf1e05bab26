"""Getting around the notebooks: links between them, and how long each took in the last `make reproduce`.

Every notebook opens with a navigation line (`nav_markdown`; a test keeps each notebook's copy equal to it) and
states its measured runtime (`runtime_note`). `reproduce` records the runtimes (`record_runtime`): "cold" when
the notebook trained something (a file of one of the profile's runs under runs/ was written, or its runs trained in
`reproduce --lanes` before it ran, whose lane seconds then count in its cold time), "cached" when it only read
finished runs.
"""
from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path

import nbformat

from .. import engine
from ..mdtable import md_table
from ..provenance import ROOT
from ..storage import write_text
from .outputs import committed_dirs

NOTEBOOKS = ROOT / "notebooks"
INDEX = "00_index"
TOTAL = "all of make reproduce"  # the runtimes row of a whole `reproduce` (lanes and every notebook)
# lane_seconds: the part of `seconds` its runs took in `reproduce --lanes` (one thread each, beside the other lanes)
RUNTIME_FIELDS = ("notebook", "kind", "seconds", "lane_seconds", "when", "commit")


def notebook_names() -> list[str]:
    """The numbered notebooks in reading order, the index first."""
    return sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def title(name: str) -> str:
    """The notebook's first heading, without its '#'."""
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    for c in nb["cells"]:
        if c["cell_type"] == "markdown":
            for line in "".join(c["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return name


def nav_markdown(name: str, profile: str = "cpu", executed: bool = False) -> str:
    """The navigation line at the top of notebook `name`: previous, index, next, and its executed copy. In the
    executed copy (`executed`, notebooks/executed/<profile>/) the neighbours are the executed copies beside it,
    and the last link goes back to the source notebook."""
    names = notebook_names()
    if name not in names:
        raise ValueError(f"name: unknown notebook {name!r}; valid: {', '.join(names)}")
    i = names.index(name)
    parts = []
    if i > 0:
        parts.append(f"← [{names[i - 1]}]({names[i - 1]}.ipynb)")
    if name != INDEX and (i == 0 or names[i - 1] != INDEX):
        parts.append(f"[index]({INDEX}.ipynb)")
    if i + 1 < len(names):
        parts.append(f"[{names[i + 1]}]({names[i + 1]}.ipynb) →")
    parts.append(f"[source notebook](../../{name}.ipynb)" if executed else
                 f"[executed copy ({profile} profile)](executed/{profile}/{name}.ipynb)")
    return " · ".join(parts)


# A relative link in markdown ([text](target), ![alt](target)) or HTML (href=, src=); URLs and #anchors excluded.
_LINK = re.compile(r"""(\]\(\s*<?|\b(?:href|src)\s*=\s*["'])(?![a-zA-Z][a-zA-Z0-9+.-]*:|//|#|/)([^)\s"'>]+)""")
_SIBLING = re.compile(r"^[0-9][0-9]_[^/]*\.ipynb(?:#.*)?$")  # another numbered notebook: its executed copy is beside


def rebase_links(text: str, prefix: str) -> str:
    """`text` with every relative link that is not a sibling notebook moved under `prefix` (e.g. '../../'): a
    notebook's links are written from notebooks/, its executed copy lies two folders deeper."""
    return _LINK.sub(lambda m: m[0] if _SIBLING.match(m[2]) else f"{m[1]}{prefix}{m[2]}", text)


def relink_executed(path, name: str, profile: str) -> None:
    """Make an executed copy's links work from notebooks/executed/<profile>/: its own navigation line, and every
    other relative link (in markdown cells and in markdown or HTML outputs) rebased by `rebase_links`."""
    if not json.loads(Path(path).read_text()).get("cells"):  # nothing to relink (e.g. a test's stand-in file)
        return
    nb = nbformat.read(str(path), as_version=4)
    prefix = "../" * len(Path("executed", profile).parts)
    for i, cell in enumerate(nb.cells):
        if i == 0 and "nav" in cell.metadata.get("tags", []):
            cell.source = nav_markdown(name, profile, executed=True)
        elif cell.cell_type == "markdown":
            cell.source = rebase_links(cell.source, prefix)
        for out in cell.get("outputs", []):
            for kind in ("text/markdown", "text/html"):
                if kind in out.get("data", {}):
                    out["data"][kind] = rebase_links(out["data"][kind], prefix)
    nbformat.write(nb, str(path))


RUNTIMES = "notebook_runtimes.csv"  # in the profile's results folder: every run time a page states comes from it
# [measured] What `make test` costs, and what a fresh clone adds to `make reproduce` (the venv and the data), on
# the 2-core development machine; neither is recorded by `reproduce`, so they are stated here once (docs/profiles.md).
MAKE_TEST_COST = "about 10 min in a clean clone"
SETUP_COST = "a fresh clone adds a few minutes"


def _runtimes_path(profile: str) -> Path:
    return committed_dirs(profile)[0] / RUNTIMES


def read_runtimes(profile: str) -> list[dict]:
    return runtimes_at(_runtimes_path(profile))


def runtimes_at(path: Path) -> list[dict]:
    """The rows of a notebook_runtimes.csv (none when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return list(csv.DictReader(io.StringIO(path.read_text())))


def reproduce_times(rows: list[dict]) -> dict[str, dict]:
    """{"cold": row, "cached": row} of a whole `make reproduce` (the TOTAL rows of notebook_runtimes.csv)."""
    return {r["kind"]: r for r in rows if r["notebook"] == TOTAL}


def reproduce_time_words(rows: list[dict], commits: bool = True) -> str:
    """'cold 46 min (2026-12-06, commit 9577d4651aa8), cached 12 min (2026-12-06, commit 025afd5beba5)': the one
    wording of what a whole `make reproduce` took, read from notebook_runtimes.csv's TOTAL rows: the README's
    summary and the index's opening state it through this function, the index's table from the same rows (each
    notebook states its own time, `runtime_text`). '' when none is recorded."""
    got = reproduce_times(rows)
    parts = []
    for kind in ("cold", "cached"):
        if kind in got:
            r = got[kind]
            when = f"{r['when']}, commit {r['commit']}" if commits else r["when"]
            parts.append(f"{kind} {human_duration(float(r['seconds']))} ({when})")
    return ", ".join(parts)


def record_runtime(profile: str, name: str, seconds: float, trained: bool, commit: str,
                   lane_seconds: float = 0.0) -> None:
    """Keep the latest cold and the latest cached runtime of each notebook (a cold one replaces the older cold).
    `seconds` includes `lane_seconds`, the time its runs took in `reproduce --lanes` before the notebook ran."""
    kind = "cold" if trained else "cached"
    rows = [r for r in read_runtimes(profile) if not (r["notebook"] == name and r["kind"] == kind)]
    rows.append(dict(notebook=name, kind=kind, seconds=f"{seconds:.0f}", lane_seconds=f"{lane_seconds:.0f}",
                     when=time.strftime("%Y-%m-%d", time.gmtime()), commit=commit))
    rows.sort(key=lambda r: (r["notebook"], r["kind"]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RUNTIME_FIELDS)
    w.writeheader()
    w.writerows(rows)
    write_text(_runtimes_path(profile), buf.getvalue())


def human_duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def runtime_text(name: str, profile: str) -> str:
    """'Runtime (make reproduce, cpu profile): cold 41 min (2026-12-01), cached 14 s (2026-12-01).'"""
    got = {r["kind"]: r for r in read_runtimes(profile) if r["notebook"] == name}
    if not got:
        return f"Runtime ({profile} profile): not measured yet (`make reproduce` records it)."
    parts = []
    for k in ("cold", "cached"):
        if k in got:
            lane = float(got[k].get("lane_seconds") or 0)
            of = f", of which {human_duration(lane)} training its runs in the lanes" if lane else ""
            parts.append(f"{k} {human_duration(float(got[k]['seconds']))} ({got[k]['when']}{of})")
    return (f"Runtime in `make reproduce` ({profile} profile), as recorded before this copy ran: " + ", ".join(parts)
            + ". Cold: the notebook's runs were trained (by it, or first in `reproduce --lanes`, one thread per "
              "lane; a run shared by several notebooks counts for the first); cached: it read them from runs/.")


def runtime_note(name: str, profile: str) -> None:
    """Show `runtime_text` as a line of markdown in the notebook."""
    from IPython.display import Markdown, display  # on use: only a notebook shows it

    display(Markdown(runtime_text(name, profile)))


def run_profile(folder: Path) -> str | None:
    """The profile a run folder (runs/<kind>/<name>) belongs to: its config.json's, else None (being written)."""
    try:
        return json.loads((Path(folder) / "config.json").read_text()).get("profile")
    except (OSError, ValueError, AttributeError):
        return None


def runs_snapshot(profile: str, runs=None) -> dict:
    """{file: mtime} of the files of `profile`'s runs in the run cache (runs/, or $PAPER_REPRO_RUNS), to tell
    whether a notebook trained anything. Other profiles' runs are left out: a `make test` beside a `make reproduce`
    writes smoke runs into the same folder. A folder whose name carries the profile (…-<profile>-s<seed>-…) counts
    even before its config.json is written."""
    runs = Path(engine.RUNS if runs is None else runs)  # engine.RUNS read now: $PAPER_REPRO_RUNS, or a test's
    if not runs.exists():
        return {}
    out = {}
    for folder in runs.glob("*/*"):
        if folder.is_dir() and (f"-{profile}-s" in folder.name or run_profile(folder) == profile):
            out.update({str(p): p.stat().st_mtime_ns for p in folder.rglob("*")
                        if p.is_file() and not p.name.startswith(".")})
    return out


def index_markdown(profile: str) -> str:
    """The notebooks in reading order: link, title, and their runtimes in the last cold and cached `make
    reproduce`, each column headed by the commit and day it was measured at (a cell that differs says its own)."""
    rows = read_runtimes(profile)
    measured = {k: {(r["commit"], r["when"]) for r in rows if r["kind"] == k} for k in ("cold", "cached")}
    head = {k: f"{k} ({', '.join(f'{c}, {w}' for c, w in sorted(v))})" if len(v) == 1 else k
            for k, v in measured.items()}
    times = {}
    for r in rows:
        own = "" if len(measured[r["kind"]]) == 1 else f" ({r['commit']})"
        times.setdefault(r["notebook"], {})[r["kind"]] = human_duration(float(r["seconds"])) + own
    table = []
    for name in notebook_names():
        if name == INDEX:
            continue
        t = times.get(name, {})
        table.append([f"[{name}]({name}.ipynb)", title(name).split('·', 1)[-1].strip(), t.get('cold', '—'),
                      t.get('cached', '—')])
    if reproduce_times(rows):  # the same rows as the README's summary and the index's opening (reproduce_time_words)
        t = times[TOTAL]
        table.append(["**all**", "all of `make reproduce` (venv and data set up), wall time up to this index, "
                      "recorded just before it ran", t.get('cold', '—'), t.get('cached', '—')])
    lines = md_table(["notebook", "what it answers", head["cold"], head["cached"]], table)
    lines += ["", "A notebook's cold time includes the seconds its runs took in `reproduce --lanes`, where the "
              "runs train first in parallel lanes (one thread each): the notebooks' cold times add up to lane time, "
              "about the number of lanes times the wall time in the last row, not to that wall time."]
    return "\n".join(lines)


def figures_markdown(profile: str) -> str:
    """Every figure `make reproduce` wrote, with its caption and the notebook that made it."""
    res, figs = committed_dirs(profile)
    path = res / "outputs.json"
    manifest = json.loads(path.read_text()) if path.exists() else {}
    rows = []
    for file, m in sorted(manifest.items(), key=lambda kv: (kv[1]["notebook"], kv[0])):
        if m["kind"] != "figure":
            continue
        rel = Path("..") / (figs / file).relative_to(ROOT)  # from notebooks/
        rows.append([f"[{Path(file).stem}]({rel.as_posix()}) ([pdf]({rel.with_suffix('.pdf').as_posix()}))",
                     m["notebook"], m.get("caption", "")])
    return "\n".join(md_table(["figure", "notebook", "caption"], rows))
