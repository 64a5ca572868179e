"""The notebook rules of CONTRIBUTING.md that a program can read.

Every notebook of ``notebooks/``, ``solutions/`` and ``exercises/``:

* a code cell not tagged ``checks`` never calls ``claim`` or ``record``;
* a ``checks`` cell starts with ``# Checks:`` and is hidden in JupyterLab
  (``{"jupyter": {"source_hidden": true}}``);
* Markdown never says "session", never cites the profile's sizes (``S[``) and never says
  "printed above" (outside chapter 18's ledger section, the one place that speaks of the study
  session the course checks).

Every teaching notebook (``notebooks/``):

* teaching code cells (not ``parameters``, not ``checks``, not the sizes cell after the
  parameters) are short: a median of 12 non-blank lines or fewer, none over 30 unless listed with a
  reason in ``tests/long_cells_allow.txt``;
* chapters 01 to 19 say what the learner will be able to do ("You will be able to") in their
  first Markdown cell, end with a ``## Thinking questions`` section, and draw at least one figure
  (a ``plt.``, ``.plot(`` or ``explore(`` call in the source; and, where an executed copy exists in
  ``build/papermill/``, an image among its outputs).

Files listed in ``tests/notebook_rules_pending.txt`` are not collected until their owners remove
their line (chapter 18's teaching notebook is never listed).
"""

from __future__ import annotations

import ast
import re
import statistics
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
PENDING_FILE = ROOT / "tests" / "notebook_rules_pending.txt"
LONG_FILE = ROOT / "tests" / "long_cells_allow.txt"
MEDIAN_MAX, CELL_MAX = 12, 30


def read_pending(path: Path = PENDING_FILE) -> set[str]:
    return {ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")}


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else p.name


ALL = sorted(p for d in ("notebooks", "solutions", "exercises")
             for p in (ROOT / d).glob("[0-9][0-9]_*.ipynb"))
CHECKED = [p for p in ALL if _rel(p) not in read_pending()]
TEACHING = [p for p in CHECKED if p.parent.name == "notebooks"]
CHAPTERS = [p for p in TEACHING if "01" <= p.name[:2] <= "19"]


# --------------------------------------------------------------------------- helpers
def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def _calls(source: str, names: set[str]) -> list[str]:
    """Names in ``names`` that ``source`` calls (``claim(...)``, ``report.record(...)``)."""
    text = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln
                     for ln in source.splitlines())
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return [n for n in names if re.search(rf"\b{n}\(", text)]
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            f = n.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) \
                else ""
            if name in names:
                out.append(name)
    return out


def _lines(source: str) -> int:
    return sum(1 for ln in source.splitlines() if ln.strip())


def _is_sizes_cell(cell) -> bool:
    return bool(re.search(r'\bsizes\("\d\d", profile\)', cell.source))


def teaching_cells(nb) -> list[tuple[int, object]]:
    """``[(index, cell)]`` of the teaching code cells: not parameters, checks or the sizes cell."""
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            and not {"parameters", "checks"} & set(_tags(c)) and not _is_sizes_cell(c)]


def read_long_allow(path: Path = LONG_FILE) -> list[dict[str, str]]:
    """Entries ``path<TAB>cell<TAB>reason``: cell is ``#N`` (its index) or its unique first line."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        assert len(fields) == 3 and all(f.strip() for f in fields), (
            f"{path.name}:{n}: expected 'path<TAB>#index or first line<TAB>reason', got {line!r}")
        out.append({"path": fields[0].strip(), "cell": fields[1].strip(),
                    "reason": fields[2].strip(), "line": str(n)})
    return out


def _entry_matches(entry: dict[str, str], path: Path, index: int, cell) -> bool:
    if entry["path"] != _rel(path):
        return False
    if entry["cell"].startswith("#"):
        return entry["cell"] == f"#{index}"
    first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
    return first == entry["cell"]


def ledger_section(nb) -> set[int]:
    """Indices of the cells of chapter 18's ledger section (from its ``##`` heading that names the
    ledger to the next ``##`` heading)."""
    inside, out = False, set()
    for i, c in enumerate(nb.cells):
        if c.cell_type == "markdown" and re.search(r"^##\s", c.source, re.M):
            heading = re.search(r"^##\s.*$", c.source, re.M).group(0)
            inside = "ledger" in heading.lower()
        if inside:
            out.add(i)
    return out


FORBIDDEN_PROSE = [(re.compile(r"\bsessions?\b", re.I), "says 'session'"),
                   (re.compile(r"\bS\["), "cites the profile's sizes S[...]"),
                   (re.compile(r"printed above", re.I), "says 'printed above'")]


def prose_problems(nb, name: str) -> list[str]:
    allowed = ledger_section(nb) if name.startswith("18_") else set()
    out = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != "markdown" or i in allowed:
            continue
        for rx, what in FORBIDDEN_PROSE:
            if rx.search(c.source):
                out.append(f"cell {i} {what}")
    return out


def cell_problems(nb) -> list[str]:
    """Checks-cell rules: claim/record only in checks cells; checks cells hidden, '# Checks:'."""
    out = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code":
            continue
        checks = "checks" in _tags(c)
        called = _calls(c.source, {"claim", "record"})
        if called and not checks:
            out.append(f"cell {i} calls {sorted(set(called))} but is not tagged 'checks'")
        if checks:
            if c.metadata.get("jupyter", {}).get("source_hidden") is not True:
                out.append(f"cell {i} is a checks cell without jupyter.source_hidden")
            if not c.source.lstrip().startswith("# Checks:"):
                out.append(f"cell {i} is a checks cell whose first line is not '# Checks: ...'")
    return out


def length_problems(nb, path: Path, allow: list[dict[str, str]]) -> list[str]:
    cells = teaching_cells(nb)
    if not cells:
        return []
    out = []
    median = statistics.median(_lines(c.source) for _, c in cells)
    if median > MEDIAN_MAX:
        out.append(f"the median teaching cell has {median:g} lines (at most {MEDIAN_MAX})")
    for i, c in cells:
        n = _lines(c.source)
        if n > CELL_MAX and not any(_entry_matches(e, path, i, c) for e in allow):
            out.append(f"cell {i} has {n} lines (at most {CELL_MAX} outside "
                       f"{LONG_FILE.relative_to(ROOT)})")
    return out


def outline_problems(nb) -> list[str]:
    out = []
    md = [c for c in nb.cells if c.cell_type == "markdown"]
    if not md or "You will be able to" not in md[0].source:
        out.append("the first Markdown cell does not say 'You will be able to'")
    if not any(re.search(r"^##\s+Thinking questions\s*$", c.source, re.M) for c in md):
        out.append("no '## Thinking questions' section")
    return out


FIGURE_CALL = re.compile(r"\bplt\.|\.plot\(|\bexplore\(")


def draws_a_figure(nb) -> bool:
    return any(c.cell_type == "code" and FIGURE_CALL.search(c.source) for c in nb.cells)


def shows_a_figure(executed) -> bool:
    return any(o.get("output_type") in ("display_data", "execute_result")
               and any(k.startswith("image/") for k in o.get("data", {}))
               for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))


# --------------------------------------------------------------------------- the rules, tested
def _nb(cells):
    from nbformat.v4 import new_notebook

    return new_notebook(cells=cells)


def _code(src: str, tags=(), hidden=False):
    from nbformat.v4 import new_code_cell

    c = new_code_cell(src)
    if tags:
        c.metadata["tags"] = list(tags)
    if hidden:
        c.metadata["jupyter"] = {"source_hidden": True}
    return c


def _md(src: str):
    from nbformat.v4 import new_markdown_cell

    return new_markdown_cell(src)


def test_rules_catch_planted_breaches() -> None:
    nb = _nb([_md("# 05 · x\n\nmotivation"),
              _code("x = 1\nclaim('ch05.x', 'text', x > 0)"),
              _code("# Checks: x\nrecord('ch05.y', 1)", tags=["checks"]),
              _code("record('ch05.z', 2)", tags=["checks"], hidden=True),
              _md("As printed above, the session used S[\"n\"] rows.")])
    cells = cell_problems(nb)
    assert any("cell 1 calls ['claim']" in p for p in cells)
    assert any("cell 2 is a checks cell without" in p for p in cells)
    assert any("cell 3 is a checks cell whose first line" in p for p in cells)
    assert len(cells) == 3
    assert len(prose_problems(nb, "05_x.ipynb")) == 3
    assert outline_problems(nb) == [
        "the first Markdown cell does not say 'You will be able to'",
        "no '## Thinking questions' section"]
    assert not draws_a_figure(nb)


def test_rules_pass_a_converted_notebook() -> None:
    nb = _nb([_md("# 05 · x\n\n**You will be able to**\n\n- train\n- explain\n- choose"),
              _code("from embedlab.profiles import profile_from_env, sizes", tags=["parameters"]),
              _code('S = sizes("05", profile)\nimport numpy as np\n' + "a = 1\n" * 40),
              _code("x = np.ones(3)\nplt.plot(x)"),
              _code("# Checks: x is positive\nclaim('ch05.x', 'x is positive', bool(x.all()))",
                    tags=["checks"], hidden=True),
              _md("## Thinking questions\n\n1. Why?"),
              _md("## The session's ledger\n\nThe session said so."),
              _md("## After\n\nno more")])
    assert cell_problems(nb) == []
    assert prose_problems(nb, "05_x.ipynb") == ["cell 6 says 'session'"]
    assert prose_problems(nb, "18_x.ipynb") == []          # chapter 18's ledger section only
    assert outline_problems(nb) == []
    assert length_problems(nb, ROOT / "notebooks" / "05_x.ipynb", []) == []  # sizes cell exempt
    assert draws_a_figure(nb)


def test_length_rules_median_and_maximum() -> None:
    long = _code("a = 1\n" * 31)
    nb = _nb([_md("# 05 · x"), _code("b = 2\n" * 13), _code("c = 3\n" * 13), long])
    path = ROOT / "notebooks" / "05_x.ipynb"
    problems = length_problems(nb, path, [])
    assert problems == ["the median teaching cell has 13 lines (at most 12)",
                        "cell 3 has 31 lines (at most 30 outside tests/long_cells_allow.txt)"]
    allow = [{"path": "notebooks/05_x.ipynb", "cell": "#3", "reason": "r", "line": "1"}]
    assert length_problems(nb, path, allow) == problems[:1]
    allow = [{"path": "notebooks/05_x.ipynb", "cell": "a = 1", "reason": "r", "line": "1"}]
    assert length_problems(nb, path, allow) == problems[:1]


def test_figure_detection_in_executed_outputs() -> None:
    from nbformat.v4 import new_output

    c = _code("plt.plot([1])")
    c.outputs = [new_output("display_data", {"image/png": "iVBOR", "text/plain": "<Figure>"})]
    assert shows_a_figure(_nb([c]))
    c.outputs = [new_output("stream", text="no picture")]
    assert not shows_a_figure(_nb([c]))


# --------------------------------------------------------------------------- the course
@pytest.mark.parametrize("path", CHECKED, ids=_rel)
def test_claims_and_records_live_in_hidden_checks_cells(path: Path) -> None:
    problems = cell_problems(nbformat.read(path, as_version=4))
    assert not problems, f"{_rel(path)}: " + "; ".join(problems)


@pytest.mark.parametrize("path", CHECKED, ids=_rel)
def test_prose_is_about_the_subject(path: Path) -> None:
    problems = prose_problems(nbformat.read(path, as_version=4), path.name)
    assert not problems, f"{_rel(path)}: " + "; ".join(problems)


@pytest.mark.parametrize("path", TEACHING, ids=_rel)
def test_teaching_cells_are_short(path: Path) -> None:
    problems = length_problems(nbformat.read(path, as_version=4), path, read_long_allow())
    assert not problems, f"{_rel(path)}: " + "; ".join(problems)


@pytest.mark.parametrize("path", CHAPTERS, ids=_rel)
def test_outcomes_first_and_thinking_questions_last(path: Path) -> None:
    problems = outline_problems(nbformat.read(path, as_version=4))
    assert not problems, f"{_rel(path)}: " + "; ".join(problems)


@pytest.mark.parametrize("path", CHAPTERS, ids=_rel)
def test_every_chapter_draws_a_figure(path: Path) -> None:
    assert draws_a_figure(nbformat.read(path, as_version=4)), (
        f"{_rel(path)}: no plt./.plot(/explore( call: every chapter from 01 on draws a figure")


EXECUTED = sorted(p for p in (ROOT / "build" / "papermill").glob("[0-9][0-9]_*.ipynb")
                  if "01" <= p.name[:2] <= "19"
                  and f"notebooks/{p.name}" not in read_pending()
                  and (ROOT / "notebooks" / p.name).exists())


if EXECUTED:  # defined only where executed copies exist, so nothing is ever skipped
    @pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.name)
    def test_executed_chapter_shows_a_figure(path: Path) -> None:
        """Runs over the executed copies ``tests/test_notebooks.py`` left in build/papermill/."""
        assert shows_a_figure(nbformat.read(path, as_version=4)), (
            f"build/papermill/{path.name}: no image among the outputs of the executed chapter "
            "(when no executed copy has one, the kernel drew with a non-inline matplotlib "
            "backend: MPLBACKEND=Agg in the environment papermill's kernel inherits)")


def test_long_cell_allow_list_is_used_and_reasoned() -> None:
    allow = read_long_allow()
    assert len(allow) <= 25, "the long-cell list is for a few exceptions"
    for e in allow:
        path = ROOT / e["path"]
        assert path.exists(), f"{LONG_FILE.name}:{e['line']}: no file {e['path']}"
        nb = nbformat.read(path, as_version=4)
        hits = [(i, c) for i, c in teaching_cells(nb) if _entry_matches(e, path, i, c)]
        assert len(hits) == 1, f"{LONG_FILE.name}:{e['line']}: matches {len(hits)} cells"
        assert _lines(hits[0][1].source) > CELL_MAX, (
            f"{LONG_FILE.name}:{e['line']}: the cell is no longer long; remove the entry")
        assert len(e["reason"].split()) >= 4, f"{LONG_FILE.name}:{e['line']}: give a reason"


def test_pending_list_names_existing_files_and_never_chapter_18() -> None:
    pending = read_pending()
    assert all((ROOT / p).exists() for p in pending), sorted(
        p for p in pending if not (ROOT / p).exists())
    assert "notebooks/18_checklist_review.ipynb" not in pending
    assert (ROOT / "notebooks" / "18_checklist_review.ipynb") in CHAPTERS
