"""The graded answers make the learner build something, and cannot be re-typed from the chapter.

Token overlap (``embedlab.grading.overlap``, the measure the grader itself applies): the answer
(the text between ``### BEGIN SOLUTION`` and ``### END SOLUTION``) and another text are split with
Python's ``tokenize`` into names (keywords included) and numbers; the overlap is the size of the
multiset intersection divided by the number of the answer's tokens. 1.0 means every token of the
answer, with its multiplicity, appears in the other text. Operators and brackets are left out:
they carry no content of their own.

The grader gives 0 to an answer that shares 60% or more of its tokens with the package's
implementation or with a window of up to three adjacent code cells of the chapter's teaching
notebook; the solutions must stay clear of that, and the two builds that used to be transcription
(02 and 10) stay under 40%.

A *build* answer is one of at least ``BUILD_LINES`` non-blank lines.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
import pytest

from embedlab import checks
from embedlab.grading import (
    BEGIN,
    COPY_MIN_TOKENS,
    COPY_THRESHOLD,
    END,
    overlap,
    package_sources,
    teaching_windows,
    tokens,
)

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
MAX_OVERLAP = COPY_THRESHOLD
NOT_TRANSCRIPTION = {"02.sgns_epoch": 0.40, "10.hnsw": 0.40}
BUILD_LINES = 25
# every chapter from 02 to 17 that exists has a build (17, the heap, is the last with one)
BUILD_CHAPTERS = [f"{n:02d}" for n in range(2, 18)
                  if any((ROOT / "notebooks").glob(f"{n:02d}_*.ipynb"))]


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
            if "capstone" in cell.get("metadata", {}).get("tags", []):
                continue  # the capstone is scored on sealed queries by its own command
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


ANSWERS = answers()


def test_overlap_measure() -> None:
    assert overlap("x = a + b", "x = a + b\ny = 2") == 1.0
    assert overlap("x = a + b + c", "x = a") == pytest.approx(2 / 4)
    assert overlap("y = y + y", "y = 1") == pytest.approx(1 / 3)  # a multiset: y counts once
    assert overlap("for i in range(3):\n    s += i\n", "pass") == 0.0
    assert overlap("f(x)", "print('hi')") == 0.0  # brackets are not content
    cell = "def f(xs):\n    return sorted(xs)[:3]\n"
    assert overlap(cell, cell + "print(f([3, 1]))\n") == 1.0  # a re-typed cell is caught
    assert sum(tokens("%timeit f(x)\n!ls\nx = 1\n").values()) == 2  # magics are not code


@pytest.mark.parametrize(("chapter", "ex_id", "answer"), ANSWERS, ids=[a[1] for a in ANSWERS])
def test_answer_is_not_a_copy_of_teaching_cells(chapter: str, ex_id: str, answer: str) -> None:
    mine = tokens(answer)
    if sum(mine.values()) < COPY_MIN_TOKENS:  # the grader compares longer answers only
        assert ex_id not in NOT_TRANSCRIPTION
        return
    worst, where = max(((overlap(mine, toks), w) for w, toks in teaching_windows(chapter)),
                       default=(0.0, ""))
    limit = NOT_TRANSCRIPTION.get(ex_id, MAX_OVERLAP)
    assert worst < limit, f"{ex_id}: {worst:.2f} of its tokens are in {where} (limit {limit})"


@pytest.mark.parametrize(("chapter", "ex_id", "answer"), ANSWERS, ids=[a[1] for a in ANSWERS])
def test_answer_is_not_a_copy_of_the_package(chapter: str, ex_id: str, answer: str) -> None:
    ex = checks.get(ex_id)
    sources = package_sources(ex)
    assert len(sources) == len(ex.reference), (
        f"{ex_id}: a reference no longer resolves: {ex.reference} gave {[w for w, _ in sources]}")
    mine = tokens(answer)
    if sum(mine.values()) < COPY_MIN_TOKENS:  # the grader compares longer answers only
        return
    for where, toks in sources:
        share = overlap(mine, toks)
        assert share < MAX_OVERLAP, f"{ex_id}: {share:.2f} of its tokens are in {where}"


def test_every_build_names_the_package_code_it_must_not_copy() -> None:
    builds = [ex for ch, ex, a in ANSWERS if n_lines(a) >= BUILD_LINES]
    # the package has no code of its own for these builds (MIPS reduced to L2, SQL on pgvector,
    # the code-pair extractor): there is nothing to copy from
    own = ("07.mips", "12.", "16.")
    missing = [ex for ex in builds if not checks.get(ex).reference and not ex.startswith(own)]
    assert not missing, f"builds without a package reference: {missing}"


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
