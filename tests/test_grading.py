"""The grader: solutions score full marks, exercises zero, a broken answer costs only itself."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from embedlab import checks
from embedlab.grading import (
    check,
    exercise_notebook,
    grade_notebook,
    out_of_step,
    strip_solution,
)

ROOT = Path(__file__).resolve().parent.parent
def _graded(folder: str) -> list[Path]:
    """The notebooks of ``folder`` whose chapter declares checks (the capstone is scored by
    `embedlab capstone score`, and a chapter may hold only thinking questions)."""
    return [p for p in sorted((ROOT / folder).glob("[0-9][0-9]_*.ipynb"))
            if checks.for_chapter(p.name[:2])]


SOLUTIONS = _graded("solutions")
EXERCISES = _graded("exercises")
SOL16 = ROOT / "solutions" / "17_k_closest_points.ipynb"


def test_exercises_in_step_with_solutions() -> None:
    assert SOLUTIONS, "no solution notebooks"
    assert out_of_step(ROOT / "solutions", ROOT / "exercises") == []


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solutions_score_full_marks(path: Path) -> None:
    result = grade_notebook(path)
    failed = {e["id"]: e["hints"] for e in result["exercises"] if e["points"] < e["max"]}
    assert result["max"] > 0 and result["total"] == result["max"], failed


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.stem)
def test_generated_exercises_score_zero(path: Path) -> None:
    result = grade_notebook(path)
    assert result["max"] > 0 and result["total"] == 0
    assert all(e["hints"] for e in result["exercises"])


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_every_chapter_exercise_has_a_graded_cell(path: Path) -> None:
    from embedlab.grading import chapter_of, graded_cells

    nb = nbformat.read(path, as_version=4)
    ids = [i for i, _, _ in graded_cells(nb)]
    declared = [e.id for e in checks.for_chapter(chapter_of(path))]
    assert sorted(ids) == declared
    for ex in checks.for_chapter(chapter_of(path)):
        assert len(ex.checks) >= 2, f"{ex.id}: at least two checks, so hints can be specific"


def _learner_notebook(tmp_path: Path, edits: dict[str, str]) -> Path:
    """A copy of the chapter-16 solutions with some graded cells replaced."""
    nb = nbformat.read(SOL16, as_version=4)
    for cell in nb.cells:
        ex_id = cell.metadata.get("exercise")
        if ex_id in edits:
            cell.source = edits[ex_id]
    path = tmp_path / SOL16.name
    nbformat.write(nb, path)
    return path


def _by_id(result: dict) -> dict:
    return {e["id"]: e for e in result["exercises"]}


def test_syntax_error_costs_only_that_answer(tmp_path: Path) -> None:
    path = _learner_notebook(tmp_path, {"17.partition": "def partition(values, pivot_index)\n"
                                                        "    return values, 0\n"})
    res = _by_id(grade_notebook(path))
    assert res["17.partition"]["points"] == 0
    assert res["17.partition"]["hints"][0].startswith("SyntaxError in your answer, line 1")
    assert res["17.heap"]["points"] == res["17.heap"]["max"]
    assert res["17.merge"]["points"] == res["17.merge"]["max"]


def test_exception_in_cell_costs_only_that_answer(tmp_path: Path) -> None:
    path = _learner_notebook(tmp_path, {"17.merge": "x = 1\nundefined_name + 1\n"})
    res = _by_id(grade_notebook(path))
    assert res["17.merge"]["points"] == 0
    assert res["17.merge"]["hints"] == ["your cell raised NameError: name 'undefined_name' is not "
                                        "defined (line 2)"]
    assert res["17.heap"]["points"] == res["17.heap"]["max"]


def test_endless_loop_is_stopped_and_costs_only_that_answer(tmp_path: Path) -> None:
    path = _learner_notebook(tmp_path, {"17.heap": "def k_closest_heap(points, k):\n"
                                                   "    while True:\n        pass\n"})
    res = _by_id(grade_notebook(path, timeout=8))
    assert res["17.heap"]["points"] == 0
    assert "stopped after 8 s" in res["17.heap"]["hints"][0]
    assert res["17.partition"]["points"] == res["17.partition"]["max"]


def test_wrong_answer_gets_partial_points_and_specific_hints(tmp_path: Path) -> None:
    # sorts by distance correctly but ignores the tie rule and never validates k
    wrong = ("def k_closest_heap(points, k):\n"
             "    d = [float(x * x + y * y) for x, y in np.asarray(points, dtype=float)]\n"
             "    return sorted(range(len(d)), key=lambda i: (d[i], -i))[:k]\n")
    res = _by_id(grade_notebook(_learner_notebook(tmp_path, {"17.heap": wrong})))
    heap = res["17.heap"]
    assert 0 < heap["points"] < heap["max"]
    assert any("ties" in h for h in heap["hints"])
    assert any("ValueError" in h for h in heap["hints"])
    assert not any("LeetCode" in h for h in heap["hints"])


def test_missing_graded_cell_is_reported(tmp_path: Path) -> None:
    nb = nbformat.read(SOL16, as_version=4)
    nb.cells = [c for c in nb.cells if c.metadata.get("exercise") != "17.merge"]
    path = tmp_path / SOL16.name
    nbformat.write(nb, path)
    res = _by_id(grade_notebook(path))
    assert res["17.merge"]["points"] == 0 and "no graded cell" in res["17.merge"]["hints"][0]


def test_cli_json_output(tmp_path: Path) -> None:
    path = _learner_notebook(tmp_path, {"17.partition": "raise RuntimeError('no')\n"})
    proc = subprocess.run([sys.executable, "-m", "embedlab.cli", "grade", "--json", str(path)],
                          capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout)
    assert set(out) == {"total", "max", "exercises"}
    assert out["max"] == 10 and out["total"] == 7
    assert [set(e) for e in out["exercises"]] == [{"id", "points", "max", "hints"}] * 3


def test_check_in_a_notebook_prints_and_never_raises(capsys) -> None:
    def broken(points, k):
        raise ZeroDivisionError("oops")

    assert check("17.heap", broken) == 0
    out = capsys.readouterr().out
    assert "17.heap" in out and "0 / 4" in out and "raised ZeroDivisionError: oops" in out


def test_strip_solution_and_unbalanced_markers() -> None:
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    assert strip_solution(src, "16.x") == (
        'def f(x):\n    raise NotImplementedError("exercise 16.x: write your answer here")')
    with pytest.raises(ValueError, match="without"):
        strip_solution("### BEGIN SOLUTION\nx = 1\n")
    with pytest.raises(ValueError, match="without"):
        strip_solution("x = 1\n### END SOLUTION\n")


def test_exercise_notebook_keeps_everything_but_the_answers() -> None:
    sol = nbformat.read(SOL16, as_version=4)
    ex = exercise_notebook(sol)
    assert len(ex.cells) == len(sol.cells)
    changed = [i for i, (a, b) in enumerate(zip(sol.cells, ex.cells, strict=True))
               if a.source != b.source]
    blocks = [i for i, c in enumerate(sol.cells) if "### BEGIN SOLUTION" in c.source]
    answers = [i for i, c in enumerate(sol.cells) if "answer" in c.metadata.get("tags", [])]
    assert blocks and answers and changed == sorted(blocks + answers)
    assert all("NotImplementedError" in ex.cells[i].source for i in blocks)
    assert all("Your answer" in ex.cells[i].source for i in answers)  # thinking questions


def test_exercise_ids_are_validated() -> None:
    with pytest.raises(ValueError, match="must look like"):
        checks.exercise("heap", name="f", points=1)
    with pytest.raises(ValueError, match="declared twice"):
        checks.exercise("17.heap", name="f", points=1)
    with pytest.raises(KeyError, match="unknown exercise '16.nothing'"):
        checks.get("16.nothing")


# ------------------------------------------------------------------ hardening and references
def test_importing_the_package_function_scores_zero(tmp_path: Path) -> None:
    edits = {
        "17.heap": "from embedlab.heap import k_closest_heap\n",
        "17.partition": "import embedlab.heap as h\npartition = h.partition\n",
        "17.merge": "import embedlab\n\ndef merge_k_best(a, b, k):\n"
                    "    return getattr(embedlab, 'heap').merge_k_best(a, b, k)\n",
    }
    res = _by_id(grade_notebook(_learner_notebook(tmp_path, edits)))
    for ex_id in edits:
        assert res[ex_id]["points"] == 0, res[ex_id]
        assert "from the package" in res[ex_id]["hints"][0]
    assert "embedlab.heap.k_closest_heap" in res["17.heap"]["hints"][0]


def test_reference_uses_sees_imports_aliases_and_attributes() -> None:
    from embedlab.grading import ALLOWED_FROM_EMBEDLAB, reference_uses

    setup = ["from embedlab.contrastive import info_nce\nfrom embedlab.grading import check\n"
             "import embedlab.geometry as geo\n"]
    assert reference_uses("def f(a, b):\n    return info_nce(a, b)\n", setup) == [
        "embedlab.contrastive.info_nce"]
    assert reference_uses("f = geo.cosine\n", setup) == ["embedlab.geometry.cosine"]
    assert reference_uses("import importlib\nm = importlib.import_module('embedlab.heap')\n") == [
        "embedlab.heap"]
    # only `check` may be taken from the package; the utilities are refused like the rest
    assert reference_uses("def f(x):\n    return geo.normalize(x)\n", setup) == [
        "embedlab.geometry.normalize"]
    assert reference_uses("from embedlab.data import load\n") == ["embedlab.data.load"]
    assert reference_uses("x = check\n", setup) == []
    assert ALLOWED_FROM_EMBEDLAB == ("embedlab.grading.check", "embedlab.checks.check")


def test_a_function_from_the_package_scores_zero_in_check(capsys) -> None:
    from embedlab.heap import k_closest_heap

    assert check("17.heap", k_closest_heap) == 0
    assert "from the package" in capsys.readouterr().out


def test_a_cell_that_never_defines_the_name_scores_zero(tmp_path: Path) -> None:
    path = _learner_notebook(tmp_path, {"17.merge": "def merge_best(a, b, k):\n    return a\n"})
    res = _by_id(grade_notebook(path))
    assert res["17.merge"]["points"] == 0
    assert "never defines `merge_k_best`" in res["17.merge"]["hints"][0]


def test_sort_then_delegate_heap_loses_points(tmp_path: Path) -> None:
    # reads the whole stream into memory, sorts it, hands back the first k: not a heap
    sort_all = ("def k_closest_heap(points, k):\n"
                "    if k < 1:\n        raise ValueError('k')\n"
                "    pts = [tuple(p) for p in points]\n"
                "    order = sorted(range(len(pts)),\n"
                "                   key=lambda i: (sum(v * v for v in pts[i]), i))\n"
                "    return order[:k]\n")
    res = _by_id(grade_notebook(_learner_notebook(tmp_path, {"17.heap": sort_all})))
    assert res["17.heap"]["points"] < res["17.heap"]["max"]
    assert any("memory" in h.lower() for h in res["17.heap"]["hints"]), res["17.heap"]["hints"]


def test_a_perturbed_result_loses_points(tmp_path: Path) -> None:
    # the right partition, then one element swapped out of place
    nb = nbformat.read(SOL16, as_version=4)
    src = next(c.source for c in nb.cells if c.metadata.get("exercise") == "17.merge")
    perturbed = src.replace("def merge_k_best(", "def _merge_right(") + (
        "\n\ndef merge_k_best(*args, **kwargs):\n"
        "    out = list(_merge_right(*args, **kwargs))\n"
        "    if len(out) > 1:\n        out[0], out[-1] = out[-1], out[0]\n"
        "    return out\n")
    res = _by_id(grade_notebook(_learner_notebook(tmp_path, {"17.merge": perturbed})))
    assert res["17.merge"]["points"] < res["17.merge"]["max"]


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "survivor.txt"
    script = tmp_path / "linger.py"
    script.write_text(f"import time\ntime.sleep(6)\nopen({str(marker)!r}, 'w').write('alive')\n")
    cell = ("import subprocess, sys\n"
            f"subprocess.Popen([sys.executable, {str(script)!r}])\n"
            "def k_closest_heap(points, k):\n    while True:\n        pass\n")
    res = _by_id(grade_notebook(_learner_notebook(tmp_path, {"17.heap": cell}), timeout=4))
    assert res["17.heap"]["points"] == 0 and "stopped after 4 s" in res["17.heap"]["hints"][0]
    import time

    time.sleep(4)
    assert not marker.exists(), "a process the answer started outlived the timeout"


def test_memory_limit_per_answer(tmp_path: Path) -> None:
    cell = ("blob = bytearray(64 * 2**30)\n"
            "def k_closest_heap(points, k):\n    return []\n")
    res = _by_id(grade_notebook(_learner_notebook(tmp_path, {"17.heap": cell})))
    assert res["17.heap"]["points"] == 0 and "memory" in res["17.heap"]["hints"][0]
    assert res["17.partition"]["points"] == res["17.partition"]["max"]


def test_wrong_shape_names_expected_and_actual() -> None:
    from embedlab.checks import expect_array

    with pytest.raises(AssertionError, match=r"expected shape \(3, 'any'\), got list of shape"):
        expect_array([1.0, 2.0], (3, None))
    assert expect_array([[1, 2]], (1, 2), dtype_kind="iu").shape == (1, 2)


def test_one_line_summary_per_exercise(tmp_path: Path) -> None:
    path = _learner_notebook(tmp_path, {"17.partition": "raise RuntimeError('no')\n"})
    proc = subprocess.run([sys.executable, "-m", "embedlab.cli", "grade", str(path)],
                          capture_output=True, text=True, check=True)
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("17.")]
    assert len(rows) == 3
    assert any("ok: full marks" in r for r in rows if r.startswith("17.merge"))
    assert any("no points: your cell raised RuntimeError" in r for r in rows
               if r.startswith("17.partition"))


def test_earlier_exercise_ids_name_the_same_exercises() -> None:
    # the heap and the checklist moved from 16 and 17 to 17 and 18; their earlier ids still work
    assert checks.get("16.heap") is checks.get("17.heap")
    assert checks.get("17.temperature") is checks.get("18.temperature")
    assert not set(checks.RENAMED) & set(checks.registry()), "an earlier id is a current one"
    assert set(checks.RENAMED.values()) <= set(checks.registry())
