"""The README is a front page (issue 37): at most README_WORDS words as `wc -w` counts them (the generated summary
included), and no line over README_LINE characters. What does not fit belongs in docs/ (docs/guide.md)."""
from paper_repro.provenance import ROOT

README_WORDS = 1500
README_LINE = 200


def words(text: str) -> int:
    """`wc -w`: runs of characters between whitespace."""
    return len(text.split())


def test_the_readme_stays_under_its_word_limit():
    n = words((ROOT / "README.md").read_text(encoding="utf-8"))
    assert n <= README_WORDS, f"README.md: {n} words (wc -w), limit {README_WORDS}: move detail to docs/guide.md"


def test_no_readme_line_is_over_its_length_limit():
    long = [f"line {i}: {len(line)} characters" for i, line in
            enumerate((ROOT / "README.md").read_text(encoding="utf-8").splitlines(), 1) if len(line) > README_LINE]
    assert not long, f"README.md: lines over {README_LINE} characters: {long}"


def test_words_count_as_wc_counts_them():
    assert words("a  b\tc\n|x|y|\n") == 4
