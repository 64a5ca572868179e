"""The exercise grader.

Exercise notebooks live in ``solutions/NN_topic.ipynb``. A graded cell carries the tag ``graded``
and the exercise id in its metadata (``{"tags": ["graded"], "exercise": "16.heap"}``); the answer
sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``. ``build_exercises`` writes
``exercises/`` from ``solutions/`` with each block replaced by ``raise NotImplementedError``.

``grade_notebook(path)`` runs each graded cell, with only the import cells above it, in a fresh
Python process under a time limit, then runs that exercise's checks (``embedlab.checks``) on the
object the cell defines. A syntax error, an exception or an endless loop in one answer costs that
answer's points and nothing else. Inside a notebook, ``check("16.heap", k_closest_heap)`` runs the
same checks at once and prints the same feedback.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from embedlab import checks as _checks

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
GRADED_TAG = "graded"
DEFAULT_TIMEOUT = 60.0


# --------------------------------------------------------------------------- running checks
def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0]}" if msg else type(exc).__name__


def run_checks(exercise_id: str, answer: Any) -> dict[str, Any]:
    """Run every check of one exercise on ``answer``; the points are shared equally."""
    ex = _checks.get(exercise_id)
    passed, hints = 0, []
    for chk in ex.checks:
        try:
            chk.fn(answer)
        except AssertionError as exc:
            detail = str(exc).strip()
            hints.append(chk.hint + (f" ({detail})" if detail else ""))
        except NotImplementedError:
            hints.append(f"{chk.hint} (not answered yet: NotImplementedError)")
        except Exception as exc:  # the learner's code raised: that check fails, the rest run
            hints.append(f"{chk.hint} (raised {_short(exc)})")
        else:
            passed += 1
    n = max(len(ex.checks), 1)
    if not passed and hints and all("NotImplementedError" in h for h in hints):
        hints = ["not answered yet: write your answer in the graded cell (NotImplementedError)"]
    return {"id": ex.id, "points": round(ex.points * passed / n, 4), "max": ex.points,
            "hints": hints}


def format_table(result: dict[str, Any]) -> str:
    """A plain-text score table with one hint line per failed check."""
    rows = ["exercise                          points", "-" * 42]
    for ex in result["exercises"]:
        rows.append(f"{ex['id']:<32} {ex['points']:>4g} / {ex['max']:g}")
        rows.extend(f"    hint: {h}" for h in ex["hints"])
    rows.append("-" * 42)
    rows.append(f"{'total':<32} {result['total']:>4g} / {result['max']:g}")
    return "\n".join(rows)


def check(exercise_id: str, answer: Any) -> float:
    """Check an answer inside a notebook: prints the score and hints, returns the points."""
    res = run_checks(exercise_id, answer)
    print(format_table({"exercises": [res], "total": res["points"], "max": res["max"]}))
    return res["points"]


# --------------------------------------------------------------------------- reading notebooks
def _exercise_of(cell: Any) -> str | None:
    tags = cell.get("metadata", {}).get("tags", [])
    if cell.get("cell_type") == "code" and GRADED_TAG in tags:
        return cell["metadata"].get("exercise")
    return None


def _runnable(source: str) -> str:
    """Drop IPython magics and shell escapes, which plain Python cannot run."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
    )


def _is_import_cell(source: str) -> bool:
    try:
        tree = ast.parse(_runnable(source))
    except SyntaxError:
        return False
    return bool(tree.body) and all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in tree.body)


def graded_cells(nb: Any) -> list[tuple[str, str, list[str]]]:
    """(exercise id, cell source, import cells above it) for every graded cell."""
    out, imports = [], []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        ex_id = _exercise_of(cell)
        if ex_id:
            out.append((ex_id, cell.source, list(imports)))
        elif _is_import_cell(cell.source):
            imports.append(cell.source)
    return out


def chapter_of(path: str | Path) -> str:
    name = Path(path).name
    if not re.match(r"^\d\d_", name):
        raise ValueError(f"{path}: an exercise notebook is named NN_topic.ipynb")
    return name[:2]


# --------------------------------------------------------------------------- the child process
def _child(job_path: str, out_path: str) -> None:
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    ns: dict[str, Any] = {"__name__": "__graded__"}
    ex = _checks.get(job["exercise"])
    try:
        for src in job["setup"]:
            exec(compile(_runnable(src), "<import cell>", "exec"), ns)
        code = compile(_runnable(job["cell"]), f"<graded cell {ex.id}>", "exec")
    except SyntaxError as exc:
        res = {"id": ex.id, "points": 0.0, "max": ex.points,
               "hints": [f"SyntaxError in your answer, line {exc.lineno}: {exc.msg}"]}
    else:
        try:
            exec(code, ns)
        except NotImplementedError:
            res = {"id": ex.id, "points": 0.0, "max": ex.points,
                   "hints": ["not answered yet: the cell raises NotImplementedError"]}
        except Exception as exc:
            tb = traceback.extract_tb(exc.__traceback__)
            line = next((f.lineno for f in reversed(tb) if f.filename.startswith("<graded")), "?")
            res = {"id": ex.id, "points": 0.0, "max": ex.points,
                   "hints": [f"your cell raised {_short(exc)} (line {line})"]}
        else:
            if ex.name not in ns:
                res = {"id": ex.id, "points": 0.0, "max": ex.points,
                       "hints": [f"the cell must define `{ex.name}`"]}
            else:
                res = run_checks(ex.id, ns[ex.name])
    Path(out_path).write_text(json.dumps(res), encoding="utf-8")


def _grade_one(ex_id: str, source: str, setup: list[str], timeout: float) -> dict[str, Any]:
    ex = _checks.get(ex_id)
    with tempfile.TemporaryDirectory(prefix="embedlab-grade-") as tmp:
        job, out = Path(tmp, "job.json"), Path(tmp, "result.json")
        job.write_text(json.dumps({"exercise": ex_id, "cell": source, "setup": setup}))
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", EMBEDLAB_PROFILE="ci", MPLBACKEND="Agg")
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "embedlab.grading", "--child", str(job), str(out)],
                capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            return {"id": ex_id, "points": 0.0, "max": ex.points,
                    "hints": [f"stopped after {timeout:g} s: an endless loop, or far too slow"]}
        if not out.exists():
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            return {"id": ex_id, "points": 0.0, "max": ex.points,
                    "hints": [f"the grading process died (exit {proc.returncode}): {tail[0]}"]}
        return json.loads(out.read_text(encoding="utf-8"))


def stale_file_warning(path: str | Path) -> str | None:
    """A warning when JupyterLab's checkpoint of ``path`` is newer than the file itself.

    The grader reads the file on disk. JupyterLab keeps ``.ipynb_checkpoints/NAME-checkpoint.ipynb``
    beside it; a checkpoint newer than the file means the file on disk is not the latest version.
    """
    path = Path(path)
    ckpt = path.parent / ".ipynb_checkpoints" / f"{path.stem}-checkpoint{path.suffix}"
    if path.exists() and ckpt.exists() and ckpt.stat().st_mtime > path.stat().st_mtime + 1:
        return (f"warning: {path} is older than its JupyterLab checkpoint {ckpt}; the grader reads "
                "the file on disk, so save the notebook (Ctrl+S) and grade again")
    return None


def grade_notebook(path: str | Path, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Grade one exercise notebook; returns ``{"total", "max", "exercises": [...]}``."""
    import nbformat  # imported here: the grading child process does not need it

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no notebook at {path}")
    stale = stale_file_warning(path)
    if stale:
        print(stale, file=sys.stderr)
    nb = nbformat.read(path, as_version=4)
    expected = _checks.for_chapter(chapter_of(path))
    if not expected:
        raise ValueError(f"{path}: chapter {chapter_of(path)} has no graded exercises")
    found = {}
    for ex_id, source, setup in graded_cells(nb):
        found.setdefault(ex_id, (source, setup))
    results = []
    for ex in expected:
        if ex.id in found:
            results.append(_grade_one(ex.id, *found[ex.id], timeout=timeout))
        else:
            results.append({"id": ex.id, "points": 0.0, "max": ex.points,
                            "hints": [f"no graded cell for {ex.id}: keep its tag and metadata"]})
    return {"total": round(sum(r["points"] for r in results), 4),
            "max": sum(r["max"] for r in results), "exercises": results}


# ------------------------------------------------------------------ exercises from solutions
def strip_solution(source: str, exercise_id: str = "") -> str:
    """Replace each ``### BEGIN SOLUTION`` .. ``### END SOLUTION`` block with a ``raise``."""
    out, inside = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"{exercise_id}: nested {BEGIN}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            what = f"exercise {exercise_id}" if exercise_id else "this exercise"
            out.append(f'{indent}raise NotImplementedError("{what}: write your answer here")')
        elif stripped == END:
            if not inside:
                raise ValueError(f"{exercise_id}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{exercise_id}: {BEGIN} without {END}")
    return "\n".join(out)


def exercise_notebook(solution: Any) -> Any:
    """The learner's version of a solution notebook: solutions stripped, outputs cleared."""
    import nbformat  # imported here: the grading child process does not need it

    nb = nbformat.reads(nbformat.writes(solution), as_version=4)  # a deep copy
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if BEGIN in cell.source:
                cell.source = strip_solution(cell.source, _exercise_of(cell) or "")
    return nb


def build_exercises(src: str | Path = "solutions", dst: str | Path = "exercises") -> list[Path]:
    """Write ``dst/NN_topic.ipynb`` for every solution notebook; returns the paths written."""
    import nbformat  # imported here: the grading child process does not need it

    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(src.glob("[0-9][0-9]_*.ipynb")):
        out = dst / path.name
        out.write_text(nbformat.writes(exercise_notebook(nbformat.read(path, as_version=4))) + "\n",
                       encoding="utf-8")
        written.append(out)
    return written


def out_of_step(src: str | Path = "solutions", dst: str | Path = "exercises") -> list[str]:
    """Exercise notebooks missing, extra or different from what ``build_exercises`` writes."""
    import nbformat  # imported here: the grading child process does not need it

    src, dst = Path(src), Path(dst)
    problems = []
    want = {p.name: p for p in src.glob("[0-9][0-9]_*.ipynb")}
    have = {p.name for p in dst.glob("[0-9][0-9]_*.ipynb")}
    for name in sorted(have - set(want)):
        problems.append(f"{dst / name}: has no solution notebook")
    for name, path in sorted(want.items()):
        expected = nbformat.writes(exercise_notebook(nbformat.read(path, as_version=4))) + "\n"
        target = dst / name
        if not target.exists():
            problems.append(f"{target}: missing")
        elif target.read_text(encoding="utf-8") != expected:
            problems.append(f"{target}: out of step with {path}")
    return problems


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m embedlab.grading")
    p.add_argument("--child", nargs=2, metavar=("JOB", "OUT"))
    args = p.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    p.error("use `embedlab grade PATH` instead")
    return 2


if __name__ == "__main__":
    sys.exit(_main())
