"""The graded answers make the learner build something, and cannot be re-typed from the chapter.

Token overlap of an answer with a code cell: the answer (the text between ``### BEGIN SOLUTION``
and ``### END SOLUTION``) and the cell are split with Python's ``tokenize`` into names (keywords
included) and numbers; the overlap is the size of the multiset intersection divided by the number
of the answer's tokens. 1.0 means every token of the answer, with its multiplicity, appears in the
cell. Operators and brackets are left out: they carry no content of their own, and counting them
made any short answer (mostly ``np``, dots and brackets) look like a copy of any long cell, while
an answer re-typed from a cell still scores 1.0.

A *build* answer is one of at least ``BUILD_LINES`` non-blank lines.
"""

from __future__ import annotations

import io
import re
import textwrap
import tokenize
from collections import Counter
from pathlib import Path

import nbformat
import pytest

from embedlab.grading import BEGIN, END

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
MAX_OVERLAP = 0.60
BUILD_LINES = 25
# every chapter from 02 to 17 that exists has a build (17, the heap, is the last with one)
BUILD_CHAPTERS = [f"{n:02d}" for n in range(2, 18)
                  if any((ROOT / "notebooks").glob(f"{n:02d}_*.ipynb"))]
KEEP = {tokenize.NAME, tokenize.NUMBER}


def _tokenize(text: str) -> Counter:
    out: Counter = Counter()
    for tok in tokenize.generate_tokens(io.StringIO(text + "\n").readline):
        if tok.type in KEEP:
            out[tok.string] += 1
    return out


def tokens(source: str) -> Counter:
    """Names and numbers of ``source`` (IPython magics and shell lines dropped).
    Text that does not tokenize as a whole (answer blocks at different indents) is tokenized
    line by line."""
    lines = ["" if ln.lstrip().startswith(("%", "!")) else ln
             for ln in textwrap.dedent(source).splitlines()]
    try:
        return _tokenize("\n".join(lines))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        out: Counter = Counter()
        for ln in lines:
            try:
                out += _tokenize(ln.strip())
            except (tokenize.TokenError, IndentationError, SyntaxError):
                out += Counter(re.findall(r"[A-Za-z_]\w*|\d+(?:\.\d+)?", ln))
        return out


def overlap(answer: str, cell: str) -> float:
    a = tokens(answer)
    n = sum(a.values())
    return sum((a & tokens(cell)).values()) / n if n else 0.0


def answers() -> list[tuple[str, str, str]]:
    """(chapter, exercise id, answer text) for every graded answer in solutions/. An answer in
    several blocks (a skeleton with several methods to fill in) is the blocks joined."""
    out = []
    for path in SOLUTIONS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            ex_id = cell.get("metadata", {}).get("exercise")
            if cell.cell_type != "code" or not ex_id:
                continue
            inside, block = False, []
            for line in cell.source.splitlines():
                if line.strip() == BEGIN:
                    inside = True
                elif line.strip() == END:
                    inside = False
                elif inside:
                    block.append(textwrap.dedent(line) if not line.strip() else line)
            if block:
                out.append((path.name[:2], ex_id, textwrap.dedent("\n".join(block))))
    return out


def n_lines(text: str) -> int:
    return sum(1 for ln in text.splitlines() if ln.strip())


def teaching_cells(chapter: str) -> list[str]:
    paths = sorted((ROOT / "notebooks").glob(f"{chapter}_*.ipynb"))
    cells = []
    for p in paths:
        cells += [c.source for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code"]
    return cells


ANSWERS = answers()


def test_overlap_measure() -> None:
    assert overlap("x = a + b", "x = a + b\ny = 2") == 1.0
    assert overlap("x = a + b + c", "x = a") == pytest.approx(2 / 4)
    assert overlap("y = y + y", "y = 1") == pytest.approx(1 / 3)  # a multiset: y counts once
    assert overlap("for i in range(3):\n    s += i\n", "pass") == 0.0
    assert overlap("f(x)", "print('hi')") == 0.0  # brackets are not content
    cell = "def f(xs):\n    return sorted(xs)[:3]\n"
    assert overlap(cell, cell + "print(f([3, 1]))\n") == 1.0  # a re-typed cell is caught


@pytest.mark.parametrize(("chapter", "ex_id", "answer"), ANSWERS, ids=[a[1] for a in ANSWERS])
def test_answer_is_not_a_copy_of_a_teaching_cell(chapter: str, ex_id: str, answer: str) -> None:
    worst, where = 0.0, -1
    for i, cell in enumerate(teaching_cells(chapter)):
        o = overlap(answer, cell)
        if o > worst:
            worst, where = o, i
    assert worst < MAX_OVERLAP, (f"{ex_id}: {worst:.2f} of its tokens are in code cell {where} "
                                 f"of the chapter-{chapter} teaching notebook")


def test_enough_build_answers_over_enough_chapters() -> None:
    builds = [(ch, ex) for ch, ex, a in ANSWERS if n_lines(a) >= BUILD_LINES]
    chapters = {ch for ch, _ in builds}
    assert len(builds) >= 10 and len(chapters) >= 8, (
        f"{len(builds)} answers of {BUILD_LINES}+ lines over {len(chapters)} chapters: {builds}")


@pytest.mark.parametrize("chapter", BUILD_CHAPTERS)
def test_every_chapter_has_a_build_exercise(chapter: str) -> None:
    lengths = {ex: n_lines(a) for ch, ex, a in ANSWERS if ch == chapter}
    assert lengths, f"chapter {chapter} has no graded answers"
    assert max(lengths.values()) >= BUILD_LINES, (
        f"chapter {chapter}: no answer of {BUILD_LINES}+ lines (lengths {lengths})")
