"""Notebook hygiene: committed clean, numbered, a markdown title first, the parameters cell next."""

import re
from pathlib import Path

import nbformat
import pytest

from embedlab.course import CHAPTERS, clean_notebook

ROOT = Path(__file__).resolve().parent.parent
ALL = sorted(p for d in ("notebooks", "solutions", "exercises")
             for p in (ROOT / d).glob("*.ipynb"))
PARAMETERS = ('from embedlab.profiles import profile_from_env, sizes\n\n'
              'profile = profile_from_env(default="standard")')


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_there_are_notebooks() -> None:
    assert (ROOT / "notebooks" / "00_welcome.ipynb").exists()
    assert (ROOT / "notebooks" / "17_k_closest_points.ipynb").exists()


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_committed_clean(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nbformat.writes(clean_notebook(nb)) + "\n" == text, (
        f"{_rel(path)} is not clean: run `embedlab clean {_rel(path)}`")


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_named_after_a_chapter(path: Path) -> None:
    m = re.fullmatch(r"(\d\d)_([a-z0-9_]+)\.ipynb", path.name)
    assert m, f"{path.name}: expected NN_topic.ipynb"
    number, stem = m.groups()
    assert number in CHAPTERS, f"{path.name}: no chapter {number}"
    assert stem == CHAPTERS[number][0], f"{path.name}: chapter {number} is '{CHAPTERS[number][0]}'"


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_title_then_parameters_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert re.match(rf"# {path.name[:2]} · \S", first.source), "first line must be '# NN · Title'"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    assert "parameters" in code[0].metadata.get("tags", [])
    assert code[0].source.strip() == PARAMETERS
    assert not any("parameters" in c.metadata.get("tags", []) for c in code[1:])


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_sizes_come_from_profiles(path: Path) -> None:
    """The cell after the parameters cell reads this chapter's sizes from embedlab.profiles."""
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert len(code) > 1 and f'sizes("{path.name[:2]}", profile)' in code[1].source


def test_every_notebook_has_its_exercise_notebook_and_back() -> None:
    teach = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    sols = {p.name for p in (ROOT / "solutions").glob("*.ipynb")}
    assert sols <= teach, f"solutions without a chapter notebook: {sorted(sols - teach)}"


def test_readme_lists_every_chapter_and_its_state() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    built = {p.name[:2] for p in (ROOT / "notebooks").glob("*.ipynb")}
    for number, (_, title) in CHAPTERS.items():
        row = next((ln for ln in readme.splitlines() if ln.startswith(f"| {number} ")), None)
        assert row, f"README has no row for chapter {number}"
        assert title in row
        if number in built:
            assert "coming" not in row, f"chapter {number} is built but README says coming"
        else:
            assert "coming" in row, f"chapter {number} is not built; README must say coming"


# --------------------------------------------------------------------------- typed numbers
# A measured result in prose comes from the run (an f-string, a generated Markdown cell or a
# claim()); a decimal or a percentage typed into a Markdown cell is allowed only when it is an
# external fact listed, with its source, in tests/typed_numbers_allow.txt.
ALLOW_FILE = ROOT / "tests" / "typed_numbers_allow.txt"
NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)*)(\s?%)?")
TYPED_DIRS = ("notebooks", "solutions")


def typed_numbers(text: str) -> list[str]:
    """The decimals (``0.78``, ``4.2``) and percentages (``75%``, ``5 %``) written in ``text``."""
    out = []
    for m in NUMBER.finditer(text):
        number, percent = m.group(1), m.group(2)
        if percent:
            out.append(number + "%")
        elif "." in number:
            out.append(number)
    return out


def read_allow_list(path: Path = ALLOW_FILE) -> dict[str, dict[str, str]]:
    """``{notebook file name or "*": {literal: source}}`` from the allow-list.

    One entry a line, three tab-separated fields: the notebook's file name (it covers the same
    name in notebooks/ and solutions/; ``*`` for every notebook), the literal exactly as written,
    and where the figure comes from. Blank lines and lines starting with ``#`` are comments.
    """
    allow: dict[str, dict[str, str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        assert len(fields) == 3 and all(f.strip() for f in fields), (
            f"{path.name}:{n}: expected 'notebook<TAB>literal<TAB>source', got {line!r}")
        notebook, literal, source = (f.strip() for f in fields)
        assert notebook == "*" or re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", notebook), (
            f"{path.name}:{n}: {notebook!r} is not a notebook file name")
        allow.setdefault(notebook, {})[literal] = source
    return allow


def _markdown_numbers(path: Path) -> list[tuple[int, str]]:
    nb = nbformat.read(path, as_version=4)
    return [(i, lit) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
            for lit in typed_numbers(c.source)]


TYPED = sorted(p for d in TYPED_DIRS for p in (ROOT / d).glob("*.ipynb"))


def test_typed_numbers_finds_decimals_and_percentages() -> None:
    text = "cos is 0.78 (see 4.2), about 75% or 5 %; 1,797 digits, 2024, v1 and arXiv 1603.09320."
    assert typed_numbers(text) == ["0.78", "4.2", "75%", "5%", "1603.09320"]
    assert typed_numbers("a sentence. 3 words, 12 vectors") == []


@pytest.mark.parametrize("path", TYPED, ids=_rel)
def test_no_typed_numbers_in_markdown(path: Path) -> None:
    allow = read_allow_list()
    allowed = {**allow.get("*", {}), **allow.get(path.name, {})}
    bad = [(i, lit) for i, lit in _markdown_numbers(path) if lit not in allowed]
    assert not bad, (
        f"{_rel(path)}: typed numbers in Markdown cells {bad}. Compute them (f-string, generated "
        "Markdown, claim()) or, for an external fact, add it with its source to "
        f"{ALLOW_FILE.relative_to(ROOT)}")


def test_allow_list_is_short_and_every_entry_is_used() -> None:
    allow = read_allow_list()
    entries = [(nb, lit) for nb, lits in allow.items() for lit in lits]
    assert len(entries) <= 80, "the allow-list is for a few external facts, not measurements"
    used = {nb: {lit for p in TYPED if nb in ("*", p.name) for _, lit in _markdown_numbers(p)}
            for nb in allow}
    stale = [(nb, lit) for nb, lit in entries if lit not in used[nb]]
    assert not stale, f"allow-list entries no notebook writes any more: {stale}"
