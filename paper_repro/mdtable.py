"""Markdown (GFM) tables: the one place every generated table of the project is written through.

GitHub splits a table row into cells at every `|` that is not escaped, before it reads any inline markup: a pipe
inside a cell's text (`|params pruned − 53.61%|`), even inside a code span, starts a new cell unless written `\\|`.
A line break ends the row. So every cell goes through `md_cell`, and a generator writes its rows with `md_row` or
its whole table with `md_table` (tests/test_markdown_tables.py parses the written files)."""
from __future__ import annotations

from collections.abc import Iterable


def md_cell(value) -> str:
    """`value` as the text of one table cell: `|` escaped as `\\|`, line breaks as `<br>`, outer spaces trimmed."""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").strip()
    return text.replace("|", "\\|").replace("\n", "<br>")


def md_row(cells: Iterable) -> str:
    """'| a | b |': one table row, each cell escaped."""
    return "| " + " | ".join(md_cell(c) for c in cells) + " |"


def md_table(header: Iterable, rows: Iterable[Iterable] = ()) -> list[str]:
    """The lines of a table: the header row, the delimiter row, then one line per row (each cell escaped). A row
    whose cell count is not the header's is an error: GitHub would pad or cut it silently."""
    header, lines = list(header), []
    for r in rows:
        r = list(r)
        if len(r) != len(header):
            raise ValueError(f"a table row has {len(r)} cells, its header {len(header)}: {r!r}")
        lines.append(md_row(r))
    return [md_row(header), "|" + "---|" * len(header)] + lines
