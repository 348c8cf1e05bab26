"""Every Markdown table renders as written: each row of each table in the README, results/ and docs/ has its
header's cell count when split as GitHub (GFM) splits it, and the generators escape what would split a cell.

GFM splits a row at every `|` not preceded by a backslash, before any inline markup is read: a pipe inside a code
span splits the cell too (GFM spec, "Tables (extension)", the `\\|` examples), so the parser below ignores code
spans on purpose. A row with more cells than its header loses the excess, one with fewer is padded: both render,
silently wrong. No Markdown library ships in the venv (markdown-it-py is not installed), hence this small parser.

The committed README summary, results/README.md and results/verdicts.md are written by `make reproduce`; rows
written before the generators escaped their cells (issue 37) fail here until they are regenerated."""
import re
from pathlib import Path

import pandas as pd
import pytest

from paper_repro.mdtable import md_cell, md_row, md_table
from paper_repro.provenance import ROOT

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
DELIMITER_CELL = re.compile(r"^\s*:?-+:?\s*$")
# lines that end a table (GFM: "the first empty line, or beginning of another block-level structure")
BLOCK_START = re.compile(r"^ {0,3}(#{1,6}(\s|$)|>|```|~~~)")


def split_row(line: str) -> list[str]:
    """The cells of a table row as GFM splits it: at every pipe not preceded by a backslash (code spans do not
    protect a pipe); a leading and a trailing pipe bound the row; `\\|` inside a cell reads as `|`."""
    text = line.strip()
    cells, current, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == "|":
            current, i = current + "|", i + 2
            continue
        if ch == "|":
            cells.append(current)
            current = ""
        else:
            current += ch
        i += 1
    cells.append(current)
    if text.startswith("|"):
        cells = cells[1:]
    if cells and cells[-1] == "" and text.endswith("|") and not text.endswith("\\|"):
        cells = cells[:-1]
    return [c.strip() for c in cells]


def is_delimiter(line: str) -> bool:
    if "-" not in line or not set(line.strip()) <= set("|:- \t"):
        return False
    cells = split_row(line)
    return bool(cells) and all(DELIMITER_CELL.match(c) for c in cells) and ("|" in line or len(cells) > 1)


def tables(text: str):
    """(line number of the header, header cells, [(line number, cells), ...]) of every table in `text`, outside
    fenced code; and a header whose delimiter row has another cell count (GFM then renders no table at all) as a
    table whose delimiter is its one row."""
    lines = text.splitlines()
    fence, i = None, 0
    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip(" `~"):
                fence = None
            i += 1
            continue
        if m:
            fence, i = m.group(1), i + 1
            continue
        if (i + 1 < len(lines) and "|" in line and not line.startswith("    ") and is_delimiter(lines[i + 1])
                and not BLOCK_START.match(line)):
            header, rows, j = split_row(line), [], i + 2
            if len(split_row(lines[i + 1])) != len(header):
                yield i + 1, header, [(i + 2, split_row(lines[i + 1]))]
                i += 2
                continue
            while j < len(lines) and lines[j].strip() and not BLOCK_START.match(lines[j]) \
                    and not lines[j].startswith("    "):
                rows.append((j + 1, split_row(lines[j])))
                j += 1
            yield i + 1, header, rows
            i = j
            continue
        i += 1


def misshapen_rows(text: str) -> list[str]:
    """'line N: M cells, header K' for every row whose cell count is not its header's."""
    return [f"line {n}: {len(cells)} cells, header {len(header)} ({' | '.join(cells)[:80]}...)"
            for _, header, rows in tables(text) for n, cells in rows if len(cells) != len(header)]


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "results").rglob("*.md")), *sorted((ROOT / "docs").glob("*.md"))]


# --- the parser itself --------------------------------------------------------------------------------------------

def test_the_parser_splits_rows_as_gfm_does():
    assert split_row("| a | b |") == ["a", "b"]
    assert split_row("a | b") == ["a", "b"]
    assert split_row(r"| f\|oo | b `\|` az |") == ["f|oo", "b `|` az"]  # the spec's escaped pipes, in code too
    assert split_row("| b `|` az |") == ["b `", "` az"]  # a pipe in a code span still splits (GFM)
    assert split_row("| |x − y|, points | ok |") == ["", "x − y", ", points", "ok"]
    assert split_row(r"| a \| |") == ["a |"]  # an escaped last pipe is content
    assert split_row("| a |  |") == ["a", ""]  # an empty last cell is a cell


def test_the_parser_finds_tables_and_their_misshapen_rows():
    text = ("intro\n\n| h1 | h2 |\n|---|:--:|\n| a | b |\n| |x| | y |\nafter, still a row\n\n"
            "```\n| not | a | table |\n|---|---|---|\n| x |\n```\n\n| one | two |\n|---|---|---|\n")
    found = list(tables(text))
    assert [(n, h) for n, h, _ in found] == [(3, ["h1", "h2"]), (15, ["one", "two"])]
    assert [n for n, _, rows in found[:1] for n, _ in rows] == [5, 6, 7]
    assert misshapen_rows(text) == ["line 6: 4 cells, header 2 ( | x |  | y...)",
                                    "line 7: 1 cells, header 2 (after, still a row...)",
                                    "line 16: 3 cells, header 2 (--- | --- | ---...)"]


# --- the generators -----------------------------------------------------------------------------------------------

PIPED = "|params pruned − 53.61%|, points; ours 59.88%: 6.27"


def _one_table(text: str):
    found = list(tables(text))
    assert len(found) == 1, found
    return found[0]


def test_the_helper_escapes_pipes_and_line_breaks():
    assert md_cell(PIPED) == r"\|params pruned − 53.61%\|, points; ours 59.88%: 6.27"
    assert md_cell("two\nlines\r\nhere") == "two<br>lines<br>here" and md_cell(" 3.5 ") == "3.5"
    lines = md_table(["claim", "measured", "verdict"], [["resnet56", PIPED, "**contradicted**"],
                                                         ["`a | b`", "x\ny", "|"]])
    _, header, rows = _one_table("\n".join(lines))
    assert header == ["claim", "measured", "verdict"]
    assert [cells for _, cells in rows] == [["resnet56", PIPED, "**contradicted**"], ["`a | b`", "x<br>y", "|"]]
    assert md_row(["|x − y|"]) == r"| \|x − y\| |"
    with pytest.raises(ValueError, match="2 cells, its header 3"):
        md_table(["a", "b", "c"], [["1", "2"]])


STAMP = dict(profile="cpu", dataset="cifar10", dataset_official=False, dataset_fingerprint="ab", seed=0,
             device="cpu", commit="x")


def test_a_results_table_with_a_piped_cell_keeps_its_columns(monkeypatch, tmp_path):
    """outputs.write_table (results/<name>.md, verdicts.md among them), results/README.md and the notebooks'
    index tables, each fed a cell `|x − y|`."""
    import paper_repro.reproduction.index as I
    import paper_repro.reproduction.navigation as N
    import paper_repro.reproduction.outputs as O

    monkeypatch.setattr(O, "ROOT", tmp_path)
    monkeypatch.setenv(O.ENV_OUTPUTS, "committed")
    df = pd.DataFrame([dict(claim_id="r_other_ratio_as_paper", claim="resnet56: 53.61% | as the paper reports",
                            measured="|params pruned − 53.61%|, points; ours 59.88%", value=6.275, verdict="x")])
    out = O.write_table(df, "verdicts", "cpu", STAMP, title="Verdicts", notes="a note")
    _, header, rows = _one_table(out.with_suffix(".md").read_text())
    assert header == ["claim_id", "claim", "measured", "value", "verdict"]
    assert rows[0][1] == ["r_other_ratio_as_paper", "resnet56: 53.61% | as the paper reports",
                          "|params pruned − 53.61%|, points; ours 59.88%", "6.275", "x"]

    res_dir = out.parent
    pd.DataFrame([dict(claim_id="resnet56_other_ratio_as_paper", claim="c | d", source="paper, abstract",
                       measured="|x − y|, points", value=0.93, noise=0.0, direction="<=", threshold=1,
                       verdict="supported", notebook="02_method", figure="f", noise_source="exact")]).to_csv(
        res_dir / "verdicts.csv", index=False)
    monkeypatch.setattr(I, "output_dirs", lambda profile: (res_dir, tmp_path / "figures"))
    monkeypatch.setattr(I, "manifest_path", lambda profile: O.manifest_path("cpu"))
    text = I.write_index("cpu").read_text()
    for _, header, rows in tables(text):
        assert rows and all(len(cells) == len(header) for _, cells in rows), (header, rows)
    assert "|x − y|, points: +0.93" in [c for _, h, rows in tables(text) for _, cells in rows for c in cells]

    from paper_repro.reproduction import findings

    evidence = findings.evidence_table(findings.read_rows(res_dir), res_dir, "cpu")  # the README summary's table
    assert [cells for _, cells in _one_table("\n".join(evidence))[2]] == [
        ["**At the reduced budget** (about that budget, not the method)", "", "", "", ""],  # a section row
        ["c | d", "supported", "0.93", "1", "[02][02]"]]

    monkeypatch.setattr(N, "committed_dirs", lambda profile: (res_dir, tmp_path / "figures"))
    (tmp_path / "figures").mkdir(exist_ok=True)
    O._record("cpu", "a.png", "figure", "a figure", STAMP, caption="left | right")
    monkeypatch.setattr(N, "ROOT", tmp_path)
    _, header, rows = _one_table(N.figures_markdown("cpu"))
    assert rows[0][1][2] == "left | right"


# --- the committed files ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_committed_table_row_has_its_headers_cell_count(path):
    """Fails on the committed README summary, results/README.md and results/verdicts.md until `make reproduce`
    rewrites them with the escaping generators (issue 37)."""
    bad = misshapen_rows(path.read_text())
    assert not bad, f"{path.relative_to(ROOT)}: rows that GitHub splits into another cell count:\n" + "\n".join(bad)
