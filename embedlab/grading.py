"""The exercise grader.

Exercise notebooks live in ``solutions/NN_topic.ipynb``. A graded cell carries the tag ``graded``
and the exercise id in its metadata (``{"tags": ["graded"], "exercise": "17.heap"}``); the answer
sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``. ``build_exercises`` writes
``exercises/`` from ``solutions/`` with each block replaced by ``raise NotImplementedError``.

``grade_notebook(path)`` runs each graded cell, with only the import cells above it, in a fresh
Python process under a time limit, then runs that exercise's checks (``embedlab.checks``) on the
object the cell defines. A syntax error, an exception or an endless loop in one answer costs that
answer's points and nothing else. Inside a notebook, ``check("17.heap", k_closest_heap)`` runs the
same checks at once and prints the same feedback.

Hardening
---------
Each answer runs in its own process group (``start_new_session=True``); on a timeout the whole
group is killed (``os.killpg``), so a child the answer forks cannot outlive it. The child sets an
address-space limit (``RLIMIT_AS``, :data:`MEMORY_LIMIT_BYTES`, 4 GiB unless
``EMBEDLAB_GRADE_MEMORY_GB`` says otherwise), enough for ``import torch`` and small models; an
answer that needs more gets 0 with a hint. Nothing one answer does can stop the grading of the
others: syntax errors, exceptions, ``sys.exit``, endless loops and crashes cost only that answer.

A graded cell must itself define the exercise's name (``def name(...)`` or an assignment at the
top level of the cell); a cell that does not scores 0 with a hint naming the missing function.

The package's own implementation scores 0
-----------------------------------------
Before an answer runs, :func:`reference_uses` reads the graded cell's syntax tree. The cell scores
0 for that exercise, with a hint that says why, when it takes anything from ``embedlab`` that is
not a utility on the allow-list:

- ``from embedlab.heap import k_closest_heap`` or ``import embedlab.heap`` inside the cell;
- a name that one of the import cells above binds to an ``embedlab`` object
  (``from embedlab.contrastive import info_nce`` above, ``info_nce(...)`` in the cell);
- attribute access through a module (``embedlab.heap.k_closest_heap``, ``ec.info_nce`` after
  ``import embedlab.contrastive as ec``), including aliasing (``f = embedlab.heap.k_closest_heap``)
  and bare module references (``getattr(embedlab, "heap")``);
- ``__import__`` / ``importlib.import_module`` / ``sys.modules`` with a string naming ``embedlab``.

:data:`ALLOWED_FROM_EMBEDLAB` lists the utilities every exercise may use (data loading, profiles,
normalisation, the report, ``check``). A dotted name is allowed when it equals an entry or lies
below one (``embedlab.data.load`` is below ``embedlab.data``). An exercise can allow more for
itself: ``exercise("06.x", name=..., points=..., allow=("embedlab.encoders.TinyTransformer",))``
(for objects the exercise hands to the learner rather than asks them to build). Inside a notebook,
``check()`` also gives 0 to an answer object that was defined in the package
(``answer.__module__`` starts with ``embedlab.``).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import signal
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
#: Markdown cells of a solution notebook tagged ``answer`` (the answers to the thinking questions)
#: become :data:`ANSWER_PROMPT` in the generated exercise notebook.
ANSWER_TAG = "answer"
ANSWER_PROMPT = "*Your answer:* write it here, then compare with `solutions/`."
DEFAULT_TIMEOUT = 60.0
MEMORY_LIMIT_BYTES = int(float(os.environ.get("EMBEDLAB_GRADE_MEMORY_GB", "4")) * 2**30)

#: What every graded cell may take from ``embedlab``: utilities, not the chapters' algorithms.
#: A dotted name is allowed when it equals an entry or lies below one.
ALLOWED_FROM_EMBEDLAB: tuple[str, ...] = (
    "embedlab.data",
    "embedlab.profiles",
    "embedlab.report",
    "embedlab.geometry.normalize",
    "embedlab.geometry.as_vectors",
    "embedlab.encoders.default_device",
    "embedlab.grading.check",
    "embedlab.checks.check",
)


# --------------------------------------------------------------------------- running checks
def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0]}" if msg else type(exc).__name__


def run_checks(exercise_id: str, answer: Any) -> dict[str, Any]:
    """Run every check of one exercise on ``answer``; the points are shared equally."""
    ex = _checks.get(exercise_id)
    module = getattr(answer, "__module__", None) or ""
    if module == "embedlab" or module.startswith("embedlab."):
        where = f"{module}.{getattr(answer, '__qualname__', ex.name)}"
        if not _allowed(where, ex):
            return {"id": ex.id, "points": 0.0, "max": ex.points,
                    "hints": [_reference_hint(ex, [where])]}
    passed, hints = 0, []
    for chk in ex.checks:
        try:
            chk.fn(answer)
        except AssertionError as exc:
            detail = str(exc).strip()
            hints.append(chk.hint + (f" ({detail})" if detail else ""))
        except NotImplementedError:
            hints.append(f"{chk.hint} (not answered yet: NotImplementedError)")
        except MemoryError:
            hints.append(f"{chk.hint} (ran out of memory: the answer may use at most "
                         f"{MEMORY_LIMIT_BYTES / 2**30:g} GiB)")
        except Exception as exc:  # the learner's code raised: that check fails, the rest run
            hints.append(f"{chk.hint} (raised {_short(exc)})")
        else:
            passed += 1
    n = max(len(ex.checks), 1)
    if not passed and hints and all("NotImplementedError" in h for h in hints):
        hints = ["not answered yet: write your answer in the graded cell (NotImplementedError)"]
    return {"id": ex.id, "points": round(ex.points * passed / n, 4), "max": ex.points,
            "hints": hints}


def summary_line(ex: dict[str, Any]) -> str:
    """One line on how an exercise went: full marks, not answered, or what failed first."""
    if ex["points"] >= ex["max"]:
        return "ok: full marks"
    hints = ex["hints"]
    if not hints:
        return "partial"
    first = hints[0] if len(hints[0]) <= 70 else hints[0][:67] + "..."
    more = f" (+{len(hints) - 1} more)" if len(hints) > 1 else ""
    return f"{'no points' if ex['points'] == 0 else 'partial'}: {first}{more}"


def format_table(result: dict[str, Any]) -> str:
    """A plain-text score table with one hint line per failed check."""
    rows = ["exercise                          points", "-" * 42]
    for ex in result["exercises"]:
        rows.append(f"{ex['id']:<32} {ex['points']:>4g} / {ex['max']:g}   {summary_line(ex)}")
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


# ------------------------------------------------------------- what the graded cell takes
def _allowed(dotted: str, ex: Any = None) -> bool:
    extra = tuple(getattr(ex, "allow", ()) or ())
    return any(dotted == a or dotted.startswith(a + ".") for a in ALLOWED_FROM_EMBEDLAB + extra)


def _leads_to_allowed(dotted: str, ex: Any = None) -> bool:
    """True when ``dotted`` is allowed or is a module above an allowed name (``embedlab.geometry``
    for ``embedlab.geometry.normalize``): importing it is fine, what the cell uses is checked."""
    extra = tuple(getattr(ex, "allow", ()) or ())
    return _allowed(dotted, ex) or any(a.startswith(dotted + ".")
                                       for a in ALLOWED_FROM_EMBEDLAB + extra)


def _is_embedlab(module: str | None) -> bool:
    return bool(module) and (module == "embedlab" or module.startswith("embedlab."))


def _bindings(tree: ast.AST) -> dict[str, str]:
    """Names the import statements of ``tree`` bind to ``embedlab`` objects, as dotted paths."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _is_embedlab(a.name):
                    if a.asname:
                        out[a.asname] = a.name
                    else:
                        out[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_embedlab(node.module):
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _chain(node: ast.AST) -> tuple[str, list[str]] | None:
    """``a.b.c`` as ``("a", ["b", "c"])``; None when the chain does not start at a name."""
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return node.id, attrs[::-1]
    return None


def reference_uses(source: str, setup: list[str] = (), ex: Any = None) -> list[str]:
    """The dotted ``embedlab`` names a graded cell takes that are not allowed (see the module
    docstring); ``[]`` when it takes none. ``setup`` are the import cells above it."""
    try:
        tree = ast.parse(_runnable(source))
    except SyntaxError:
        return []  # reported as a syntax error by the child
    bound: dict[str, str] = {}
    for src in setup:
        try:
            bound.update(_bindings(ast.parse(_runnable(src))))
        except SyntaxError:
            pass
    found: list[str] = []

    def flag(name: str) -> None:
        if name not in found:
            found.append(name)

    for node in ast.walk(tree):  # imports inside the cell
        if isinstance(node, ast.Import):
            for a in node.names:
                if _is_embedlab(a.name) and not _leads_to_allowed(a.name, ex):
                    flag(a.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_embedlab(node.module):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if not _leads_to_allowed(full, ex):
                    flag(full)
    bound.update(_bindings(tree))
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):  # uses: names and attribute chains that resolve into embedlab
        if id(node) in inner or not isinstance(node, (ast.Name, ast.Attribute)):
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            continue
        chain = _chain(node)
        if chain is None or chain[0] not in bound:
            continue
        full = ".".join([bound[chain[0]], *chain[1]])
        if not _allowed(full, ex):
            flag(full)
    for node in ast.walk(tree):  # dynamic imports by string
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.strip()
            if (_is_embedlab(text) and re.fullmatch(r"[\w.]+", text)
                    and not _leads_to_allowed(text, ex)):
                flag(text)
    return found


def _reference_hint(ex: Any, names: list[str]) -> str:
    what = ", ".join(f"`{n}`" for n in names[:3])
    return (f"0 points: the graded cell takes {what} from the package; the exercise is to build "
            f"`{ex.name}` yourself. From embedlab a graded cell may use only utilities: "
            + ", ".join(ALLOWED_FROM_EMBEDLAB + tuple(getattr(ex, "allow", ()) or ())))


def _defined_in(body: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.If):
            names |= _defined_in(node.body) | _defined_in(node.orelse)
        elif isinstance(node, ast.Try):
            names |= _defined_in(node.body) | _defined_in(node.orelse)
            for h in node.handlers:
                names |= _defined_in(h.body)
        else:
            targets: list[ast.AST] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
                targets = [node.target]
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                targets = [i.optional_vars for i in node.items if i.optional_vars is not None]
                names |= _defined_in(node.body)
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
            for n in ast.walk(node):
                if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name):
                    names.add(n.target.id)
    return names


def defined_names(source: str) -> set[str]:
    """Names bound at the top level of a cell (def, class, assignment, import, for, with, and
    inside top-level if/try blocks)."""
    try:
        return _defined_in(ast.parse(_runnable(source)).body)
    except SyntaxError:
        return set()


def _zero(ex: Any, hint: str) -> dict[str, Any]:
    return {"id": ex.id, "points": 0.0, "max": ex.points, "hints": [hint]}


# --------------------------------------------------------------------------- the child process
def _limit_memory() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT_BYTES,
                                                                               hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):  # no resource module (Windows) or not permitted
        pass


def _child(job_path: str, out_path: str) -> None:
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    _limit_memory()
    ns: dict[str, Any] = {"__name__": "__graded__"}
    ex = _checks.get(job["exercise"])
    gib = f"{MEMORY_LIMIT_BYTES / 2**30:g} GiB"
    try:
        for src in job["setup"]:
            exec(compile(_runnable(src), "<import cell>", "exec"), ns)
        code = compile(_runnable(job["cell"]), f"<graded cell {ex.id}>", "exec")
    except SyntaxError as exc:
        res = _zero(ex, f"SyntaxError in your answer, line {exc.lineno}: {exc.msg}")
    except MemoryError:
        res = _zero(ex, f"the import cells ran out of memory (limit {gib})")
    else:
        try:
            exec(code, ns)
        except NotImplementedError:
            res = _zero(ex, "not answered yet: the cell raises NotImplementedError")
        except MemoryError:
            res = _zero(ex, f"your cell ran out of memory: an answer may use at most {gib}")
        except Exception as exc:
            tb = traceback.extract_tb(exc.__traceback__)
            line = next((f.lineno for f in reversed(tb) if f.filename.startswith("<graded")), "?")
            res = _zero(ex, f"your cell raised {_short(exc)} (line {line})")
        else:
            if ex.name not in defined_names(job["cell"]) or ex.name not in ns:
                res = _zero(ex, f"the graded cell never defines `{ex.name}`: write "
                                f"`def {ex.name}(...):` in this cell (keep the name the "
                                "exercise asks for)")
            else:
                res = run_checks(ex.id, ns[ex.name])
    Path(out_path).write_text(json.dumps(res), encoding="utf-8")


def _grade_one(ex_id: str, source: str, setup: list[str], timeout: float) -> dict[str, Any]:
    ex = _checks.get(ex_id)
    taken = reference_uses(source, setup, ex)
    if taken:
        return _zero(ex, _reference_hint(ex, taken))
    with tempfile.TemporaryDirectory(prefix="embedlab-grade-") as tmp:
        job, out = Path(tmp, "job.json"), Path(tmp, "result.json")
        job.write_text(json.dumps({"exercise": ex_id, "cell": source, "setup": setup}))
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1", EMBEDLAB_PROFILE="ci",
                   MPLBACKEND="Agg", CUDA_VISIBLE_DEVICES="")
        proc = subprocess.Popen(
            [sys.executable, "-m", "embedlab.grading", "--child", str(job), str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp,
            start_new_session=True,
        )
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return _zero(ex, f"stopped after {timeout:g} s: an endless loop, or far too slow")
        finally:
            _kill_group(proc)  # whatever the answer left running in its group goes too
        if not out.exists():
            lines = (stderr or "").strip().splitlines()
            tail = lines[-1:] or ["no output"]
            if any("MemoryError" in ln or "std::bad_alloc" in ln for ln in lines):
                return _zero(ex, f"the answer ran out of memory (limit "
                                 f"{MEMORY_LIMIT_BYTES / 2**30:g} GiB)")
            return _zero(ex, f"the grading process died (exit {proc.returncode}): {tail[0]}")
        return json.loads(out.read_text(encoding="utf-8"))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    try:
        proc.communicate(timeout=5)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        pass


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
        if cell.cell_type == "markdown" and ANSWER_TAG in cell.metadata.get("tags", []):
            cell.source = ANSWER_PROMPT
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
