"""Every relative link in the README, docs/ and the notebooks (sources and executed copies) points at a file
that exists. Links inside fenced code blocks and inline code spans are not links; URLs (any scheme: http(s):,
mailto:, data:, ...) and pure #anchors are not checked; #anchors and ?queries are stripped before resolving."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "README": lambda: [ROOT / "README.md"],
    "docs": lambda: sorted((ROOT / "docs").rglob("*.md")),
    "notebooks": lambda: sorted((ROOT / "notebooks").glob("*.ipynb")),
    # not papermill's hidden temporaries (a killed run leaves one; .gitignore keeps it out of commits)
    "executed": lambda: sorted(p for p in (ROOT / "notebooks" / "executed").rglob("*.ipynb")
                               if not p.name.startswith(".")),
}
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+).+?\1")
INLINE = (
    re.compile(r"\]\(\s*(?:<([^>]+)>|([^)\s]+))"),  # [text](target), ![alt](target), [![a](img)](target)
    re.compile(r"""\b(?:href|src)\s*=\s*(?:"([^"]*)"|'([^']*)')"""),  # HTML <a href>, <img src>
)
# [x]: target, only where a paragraph may start (it cannot interrupt one: "[chosen]: all ..." inside one is text)
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(?:<([^>]+)>|(\S+))")
URL_OR_ANCHOR = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//|#)")
OUTPUT_TYPES = ("text/markdown", "text/html")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def markdown_links(text: str):
    """(line number, target) of every link in markdown (or HTML) `text`, outside code."""
    fence, in_paragraph = None, False
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m and (fence is None or (m[1][0] == fence[0] and len(m[1]) >= len(fence))):
            fence, in_paragraph = (m[1] if fence is None else None), False
            continue
        if fence is None:
            reference = None if in_paragraph else REFERENCE.match(line)
            in_paragraph = bool(line.strip()) and not reference
            matches = [reference] if reference else []
            matches += [m for pattern in INLINE for m in pattern.finditer(CODE_SPAN.sub("", line))]
            for match in matches:
                yield number, next(g for g in match.groups() if g is not None).strip()


def relative_links(path: Path):
    """(where, target) of every relative link in a markdown file or a notebook's markdown cells and outputs."""
    if path.suffix != ".ipynb":
        chunks = [("", path.read_text(encoding="utf-8"))]
    else:
        chunks = []
        for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            if cell["cell_type"] == "markdown":
                chunks.append((f"cell {i} ", _text(cell["source"])))
            for j, out in enumerate(cell.get("outputs", [])):
                if out["output_type"] in ("display_data", "execute_result"):
                    chunks += [(f"cell {i} output {j} ", _text(out["data"][kind]))
                               for kind in OUTPUT_TYPES if kind in out.get("data", {})]
    for where, text in chunks:
        for line, target in markdown_links(text):
            if target and not URL_OR_ANCHOR.match(target):
                yield f"{where}line {line}", target


def target_path(path: Path, target: str, root: Path) -> Path:
    target = re.split(r"[#?]", target, maxsplit=1)[0]
    return root / target.lstrip("/") if target.startswith("/") else path.parent / target


def broken_links(files, root: Path = ROOT) -> list[str]:
    return [f"{f.relative_to(root)}: {target} ({where})" for f in files for where, target in relative_links(f)
            if not target_path(f, target, root).exists()]


@pytest.mark.parametrize("group", SOURCES)
def test_every_relative_link_resolves(group):
    files = SOURCES[group]()
    assert [link for f in files for link in relative_links(f)], f"{group}: no links found"
    broken = broken_links(files)
    assert not broken, f"{len(broken)} broken link(s) in {group}:\n" + "\n".join(broken)


def test_the_checker_reports_exactly_the_broken_link(tmp_path):
    (tmp_path / "good.md").write_text("# Good\n")
    doc = tmp_path / "doc.md"
    doc.write_text("# Doc\n"
                   "[good](good.md#good) and ![img](<good.md>) and <a href='good.md'>html</a>\n"
                   "[bad](missing.md?x=1#part)\n"
                   "`[span](nope1.md)` [web](https://example.org/nope) [anchor](#doc) [mail](mailto:a@b.c)\n"
                   "[chosen]: inside a paragraph, so not a reference definition: nope2.md\n"
                   "\n[ref]: good.md\n"
                   "```md\n[fenced](nope3.md)\n```\n")
    assert [target for _, target in relative_links(doc)] == [
        "good.md#good", "good.md", "good.md", "missing.md?x=1#part", "good.md"]
    assert broken_links([doc], tmp_path) == ["doc.md: missing.md?x=1#part (line 3)"]
