"""LICENSE and CITATION.cff (issue 37): the companion is MIT-licensed, and its citation file parses, names it as
software and points at the paper it reproduces."""
from pathlib import Path

import yaml  # PyYAML: a dependency of papermill, pinned in pyproject.toml

ROOT = Path(__file__).resolve().parents[1]


def test_the_license_is_mit_for_the_contributors():
    lines = (ROOT / "LICENSE").read_text().splitlines()
    assert lines[0] == "MIT License" and "Copyright (c) 2026 paper_repro contributors" in lines
    assert "Permission is hereby granted, free of charge" in (ROOT / "LICENSE").read_text()


def test_the_citation_file_parses_and_names_the_companion_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert {"cff-version", "message", "title", "authors"} <= set(cff)  # CFF 1.2.0's required keys
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    assert cff["title"].startswith("paper_repro: a reproducible companion to Ruan et al.'s model pruning")
    assert cff["authors"] and all("name" in a or "family-names" in a for a in cff["authors"])
    paper = [r for r in cff.get("references", []) + [cff.get("preferred-citation") or {}]
             if r.get("journal") == "Acta Automatica Sinica"]
    assert len(paper) == 1 and paper[0]["type"] == "article"
    names = [(a["family-names"], a["given-names"]) for a in paper[0]["authors"]]
    assert names == [("Ruan", "Xiaofeng"), ("Hu", "Weiming"), ("Liu", "Yufan"), ("Li", "Bing")]
    assert "dynamic sparsity and feature-learning enhancement" in paper[0]["title"]
