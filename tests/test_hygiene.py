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
    assert (ROOT / "notebooks" / "16_k_closest_points.ipynb").exists()


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
