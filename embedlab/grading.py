"""The exercise grader.

Exercise notebooks live in ``solutions/NN_topic.ipynb``. A graded cell carries the tag ``graded``
and the exercise id in its metadata (``{"tags": ["graded"], "exercise": "17.heap"}``); the answer
sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``. ``build_exercises`` writes
``exercises/`` from ``solutions/`` with each block replaced by ``raise NotImplementedError``.

``grade_notebook(path)`` grades each graded cell on its own. The notebook's chapter comes from
its graded cells' own metadata, so a renamed copy grades. Inside a notebook,
``check("17.heap", k_closest_heap)`` runs the same checks at once, in the notebook's own process,
for quick feedback; only ``embedlab grade`` gives the guarantees below.

What the grade certifies
------------------------
**The checks live outside the answer's reach.** Each answer runs in a fresh child interpreter
(:mod:`embedlab.sandbox`) with only the import cells above it; the checks, their references and
the score stay in the grading process, which calls the answer's functions and objects over a
socket and reads back plain data with a restricted unpickler. Nothing the answer prints or writes
changes its score; an answer that exits before the checks run (``os._exit``) scores 0.

**Builds are built.** While an answer's code runs, an import hook refuses the course's package,
however it is reached (``importlib``, ``exec``, ``__import__``, ``sys.modules``, an import cell
above the answer), and the reference libraries (faiss, scikit-learn, hnswlib, ScaNN, gensim,
sentence-transformers), with a message that says why; an audit hook refuses reading their source
files; an exercise can refuse more (``heapq`` for the heap, the torch losses a loss exercise asks
for). The checks test properties only the real algorithm has (HNSW's distance count and degree
caps, a heap's sift functions and O(k) memory over a stream, k-means' update on a constructed
case). An answer whose tokens overlap 60% or more with the package's implementation of the same
thing, or with a window of up to three adjacent code cells of the chapter's teaching notebook,
scores 0 with a hint that names the source.

**Nothing escapes, nothing waits for pipes.** The child runs in its own session; when its
exercise is done, its process group and every process it started are killed, including those
that left the group (the grading process is their subreaper). Time is bounded per exercise
(``timeout``), and the grader waits on the process and its socket, never on pipes.

What it does not guarantee: an answer determined to defeat the checks can still reach code by
routes no hook sees (the interpreter's memory through ``ctypes``, a program of its own that it
starts); the hooks close the routes a lazy answer takes, and the property checks make a wrong
algorithm fail even when it gives right answers.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import io
import json
import os
import re
import sys
import textwrap
import tokenize
from collections import Counter
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
ROOT = Path(__file__).resolve().parent.parent

#: What a graded cell may take from ``embedlab``: ``check`` (a no-op under ``embedlab grade``,
#: which runs the checks itself). Everything else of the package is refused.
ALLOWED_FROM_EMBEDLAB: tuple[str, ...] = ("embedlab.grading.check", "embedlab.checks.check")

#: The peer libraries the checks compare answers with: refused in every graded cell.
REFERENCE_LIBRARIES: tuple[str, ...] = ("faiss", "sklearn", "hnswlib", "scann", "gensim",
                                        "sentence_transformers")

#: Near-copy: an answer sharing this share of its tokens (or more) with the package's
#: implementation of the same thing, or with a window of up to COPY_WINDOW adjacent code cells of
#: the chapter's teaching notebook, scores 0. Answers shorter than COPY_MIN_TOKENS are not
#: compared (a three-line warm-up shares its few tokens with anything).
COPY_THRESHOLD = 0.60
COPY_WINDOW = 3
COPY_MIN_TOKENS = 60


class GradeError(Exception):
    """A notebook the grader cannot read; the message names the problem and the fix."""


# --------------------------------------------------------------------------- token overlap
_KEEP = {tokenize.NAME, tokenize.NUMBER}


def _tokenize(text: str) -> Counter:
    out: Counter = Counter()
    for tok in tokenize.generate_tokens(io.StringIO(text + "\n").readline):
        if tok.type in _KEEP:
            out[tok.string] += 1
    return out


def tokens(source: str) -> Counter:
    """Names (keywords included) and numbers of ``source``, as a multiset. Operators and brackets
    are left out: they carry no content of their own. IPython magics and shell lines are dropped;
    text that does not tokenize as a whole is tokenized line by line."""
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


def overlap(answer: str | Counter, other: str | Counter) -> float:
    """The share of the answer's tokens (with multiplicity) that ``other`` also holds: 1.0 when
    every token of the answer appears in it as often."""
    a = answer if isinstance(answer, Counter) else tokens(answer)
    n = sum(a.values())
    b = other if isinstance(other, Counter) else tokens(other)
    return sum((a & b).values()) / n if n else 0.0


class _Node(dict):
    """A notebook read as JSON, with nbformat's attribute access (``nb.cells``, ``c.source``,
    a cell's source joined into one string). Grading reads notebooks this way: importing
    nbformat loads its JSON-schema validator, slow to import, which grading never needs."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _node(value: Any) -> Any:
    if isinstance(value, dict):
        out = _Node((k, _node(v)) for k, v in value.items())
        if isinstance(out.get("source"), list):
            out["source"] = "".join(out["source"])
        return out
    if isinstance(value, list):
        return [_node(v) for v in value]
    return value


def load_notebook(path: str | Path) -> Any:
    """A v4 notebook file as nested ``_Node`` objects (cells with ``cell_type``, ``source`` as
    one string, ``metadata``); ``ValueError`` when it is not one."""
    with open(path, encoding="utf-8") as fh:
        nb = _node(json.load(fh))
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"),
                                                                              list):
        raise ValueError("not an nbformat 4 notebook")
    for cell in nb.cells:
        if not isinstance(cell, dict) or "cell_type" not in cell or "source" not in cell:
            raise ValueError("a cell without cell_type or source")
        cell.setdefault("metadata", _Node())
    return nb


def teaching_windows(chapter: str, width: int = COPY_WINDOW,
                     root: Path = ROOT) -> list[tuple[str, Counter]]:
    """``(where, tokens)`` for every window of 1 to ``width`` adjacent code cells of the
    chapter's teaching notebook (``where`` names the notebook and the cells)."""
    out = []
    for path in sorted((root / "notebooks").glob(f"{chapter}_*.ipynb")):
        cells = [(i, c.source) for i, c in enumerate(load_notebook(path).cells)
                 if c.cell_type == "code"]
        toks = [tokens(src) for _, src in cells]
        for start in range(len(cells)):
            total: Counter = Counter()
            for w in range(width):
                if start + w >= len(cells):
                    break
                total = total + toks[start + w]
                first, last = cells[start][0], cells[start + w][0]
                where = (f"cell {first}" if w == 0 else f"cells {first}-{last}")
                out.append((f"{path.relative_to(root)} {where}", total))
    return out


def _source_of(module: str, qual: str) -> str | None:
    """The source text of ``qual`` (``name`` or ``Class.method``) in ``module``, read from its file
    with ``ast``: nothing is imported (a reference module may load numba or torch)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    text = Path(spec.origin).read_text(encoding="utf-8")
    body: list[ast.stmt] = ast.parse(text).body
    node: ast.AST | None = None
    for part in qual.split("."):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                        ast.ClassDef)) and n.name == part), None)
        if node is None:
            return None
        body = node.body
    return ast.get_source_segment(text, node)


def package_sources(ex: Any) -> list[tuple[str, Counter]]:
    """``(where, tokens)`` of the package implementations an exercise names as its reference."""
    out = []
    for ref in getattr(ex, "reference", ()) or ():
        module, _, qual = ref.partition(":")
        try:
            src = _source_of(module, qual)
        except (ImportError, ValueError, OSError, SyntaxError):
            src = None
        if src:
            out.append((f"{module.replace('.', '/')}.py `{qual}`", tokens(src)))
    return out


def skeleton_of(exercise_id: str, root: Path = ROOT) -> str:
    """The graded cell of ``exercise_id`` as the exercise notebook gives it (the code a learner
    starts from), or "" when no exercise notebook holds it."""
    chapter = exercise_id.split(".", 1)[0]
    for path in sorted((root / "exercises").glob(f"{chapter}_*.ipynb")):
        for cell in load_notebook(path).cells:
            if cell.get("metadata", {}).get("exercise") == exercise_id:
                return cell.source
    return ""


def answer_tokens(exercise_id: str, source: str) -> Counter:
    """The tokens the learner wrote: the cell's, less those of the skeleton it started from."""
    return tokens(source) - tokens(skeleton_of(exercise_id))


def copied_from(ex: Any, source: str,
                threshold: float = COPY_THRESHOLD) -> tuple[str, float] | None:
    """``(where, share)`` of the closest source when the answer shares ``threshold`` or more of
    its tokens with the package's implementation or a window of teaching cells; else None."""
    mine = answer_tokens(ex.id, source)
    if sum(mine.values()) < COPY_MIN_TOKENS:
        return None
    best: tuple[str, float] | None = None
    for where, toks in package_sources(ex) + teaching_windows(ex.chapter):
        share = overlap(mine, toks)
        if share >= threshold and (best is None or share > best[1]):
            best = (where, share)
    return best


# --------------------------------------------------------------------------- running checks
def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0]}" if msg else type(exc).__name__


def run_checks(exercise_id: str, answer: Any, box: Any = None) -> dict[str, Any]:
    """Run every check of one exercise on ``answer``; the points are shared equally.

    ``answer`` is the learner's object itself (``check()`` in a notebook) or a proxy for it in
    the sandbox ``box`` (``embedlab grade``). A timeout stops the exercise at 0 points; an
    answer whose process dies fails the check it was in and every later one."""
    from embedlab.sandbox import Remote, SandboxDied, SandboxTimeout

    ex = _checks.get(exercise_id)
    if not isinstance(answer, Remote):
        module = getattr(answer, "__module__", None) or ""
        if module == "embedlab" or module.startswith("embedlab."):
            where = f"{module}.{getattr(answer, '__qualname__', ex.name)}"
            return {"id": ex.id, "points": 0.0, "max": ex.points,
                    "hints": [_reference_hint(ex, [where])]}
    passed, hints, dead = 0, [], ""
    for chk in ex.checks:
        if dead:
            hints.append(f"{chk.hint} (not run: {dead})")
            continue
        if box is not None:
            box.where = f"running the check '{chk.hint[:60]}'"
        try:
            chk.fn(answer)
        except SandboxTimeout as exc:
            return _zero(ex, f"{exc}: an endless loop, or far too slow (the limit is for the "
                             "whole exercise)")
        except SandboxDied as exc:
            dead = str(exc)
            hints.append(f"{chk.hint} ({dead})")
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


def chapter_of(path: str | Path, nb: Any = None) -> str:
    """The chapter an exercise notebook belongs to: from its graded cells' exercise ids (so a
    renamed copy grades), else from a ``NN_`` file name."""
    if nb is not None:
        chapters = sorted({ex_id.split(".", 1)[0] for ex_id, _, _ in graded_cells(nb)})
        if len(chapters) == 1:
            return chapters[0]
        if len(chapters) > 1:
            raise GradeError(f"{path} mixes graded cells of chapters {', '.join(chapters)}: "
                             "grade one chapter's exercise notebook at a time")
    name = Path(path).name
    if not re.match(r"^\d\d_", name):
        raise GradeError(f"{path} has no graded cells: grade an exercise notebook from "
                         "exercises/ (its graded cells keep their 'graded' tag and metadata)")
    return name[:2]


def read_notebook(path: str | Path) -> Any:
    """The notebook at ``path``, or a :class:`GradeError` naming the problem and the fix."""
    path = Path(path)
    if not path.exists():
        raise GradeError(f"no notebook at {path}: check the path (exercise notebooks are "
                         "exercises/NN_topic.ipynb)")
    if path.is_dir():
        raise GradeError(f"{path} is a folder: give the path of one .ipynb file")
    try:
        return load_notebook(path)
    except json.JSONDecodeError as exc:
        raise GradeError(f"{path} is not a readable notebook (its JSON breaks at line "
                         f"{exc.lineno}): restore it from JupyterLab's checkpoint in "
                         ".ipynb_checkpoints/ or copy exercises/ again") from None
    except (UnicodeDecodeError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise GradeError(f"{path} is not a readable notebook ({type(exc).__name__}): restore it "
                         "from JupyterLab's checkpoint or copy exercises/ again") from None


# ------------------------------------------------------------- what the graded cell takes
def _allowed(dotted: str, ex: Any = None) -> bool:
    extra = tuple(getattr(ex, "allow", ()) or ())
    return any(dotted == a or dotted.startswith(a + ".") for a in ALLOWED_FROM_EMBEDLAB + extra)


def _leads_to_allowed(dotted: str, ex: Any = None) -> bool:
    """True when ``dotted`` is allowed or is a module above an allowed name (``embedlab.grading``
    for ``embedlab.grading.check``): importing it is fine, what the cell uses is checked."""
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
    """The dotted ``embedlab`` names a graded cell visibly takes (imports, aliases, attribute
    chains, strings naming a module); ``[]`` when it takes none. ``setup`` are the import cells
    above it. This reading gives a precise hint early; the import hook in the answer's process
    refuses the routes that no reading of the source can see."""
    try:
        tree = ast.parse(_runnable(source))
    except SyntaxError:
        return []  # reported as a syntax error when the cell runs
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
            f"`{ex.name}` yourself (a graded cell may take only `check` from embedlab)")


def _copy_hint(ex: Any, where: str, share: float) -> str:
    return (f"0 points: {share:.0%} of your answer's tokens are in {where}: the exercise is to "
            f"write `{ex.name}` yourself, not to copy it")


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


# --------------------------------------------------------------------------- the sandbox
def _package_dir(name: str) -> str | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    return spec.origin if spec.origin and os.path.isfile(spec.origin) else None  # one file


def refusals(ex: Any) -> list[tuple[str, str]]:
    """``(module prefix, reason)`` refused while this exercise's answer runs."""
    out = [("embedlab", f"{ex.id}: the grader refuses the course's package `embedlab` in graded "
                        f"cells: build `{ex.name}` yourself")]
    out += [(lib, f"{ex.id}: the grader refuses `{lib}` in graded cells: it is a reference the "
                  "checks compare you with, not a building block") for lib in REFERENCE_LIBRARIES]
    out += [(mod, f"{ex.id}: the exercise is to build this yourself, so `{mod}` is refused here")
            for mod in getattr(ex, "refuse", ()) or ()]
    return out


def _preloads(sources: list[str]) -> list[str]:
    """Heavy libraries the cells import, loaded before the answer's code runs."""
    text = "\n".join(sources)
    return [m for m in ("torch", "scipy", "pandas") if re.search(rf"\b(import|from)\s+{m}\b", text)]


def _sandbox(ex: Any, timeout: float, sources: list[str]) -> Any:
    from embedlab.sandbox import Sandbox

    refuse = refusals(ex)
    protect = sorted({d for d in (_package_dir(m) for m, _ in refuse) if d})
    attrs = [(mod, attr, f"{ex.id}: the exercise is to write this loss yourself, so "
                         f"`{mod}.{attr}` is refused here (log_softmax and logsumexp are fine)")
             for mod, attr in getattr(ex, "refuse_attrs", ()) or ()]
    return Sandbox(timeout=timeout, memory_gb=MEMORY_LIMIT_BYTES / 2**30, refuse=refuse,
                   refuse_attrs=attrs, protect=protect,
                   protect_reason=f"{ex.id}: graded answers may not read the course's package or "
                                  "the reference libraries' source files",
                   stubs=["embedlab", "embedlab.grading", "embedlab.checks"],
                   preload=_preloads(sources), threads=1,
                   env={"EMBEDLAB_PROFILE": "ci", "CUDA_VISIBLE_DEVICES": ""})


def _grade_one(ex_id: str, source: str, setup: list[str], timeout: float) -> dict[str, Any]:
    from embedlab.sandbox import SandboxDied, SandboxError, SandboxTimeout

    ex = _checks.get(ex_id)
    taken = reference_uses(source, setup, ex)
    if taken:
        return _zero(ex, _reference_hint(ex, taken))
    copy = copied_from(ex, source)
    if copy:
        return _zero(ex, _copy_hint(ex, *copy))
    gib = f"{MEMORY_LIMIT_BYTES / 2**30:g} GiB"
    box = _sandbox(ex, timeout, [*setup, source])
    try:
        box.start()
        box.where = "running the import cells"
        for n, src in enumerate(setup):
            try:
                box.run(_runnable(src), f"<import cell {n + 1}>")
            except SandboxError as exc:
                return _zero(ex, f"an import cell failed: {exc}")
            except MemoryError:
                return _zero(ex, f"the import cells ran out of memory (limit {gib})")
            except Exception as exc:
                return _zero(ex, f"an import cell raised {_short(exc)}")
        box.where = "running your graded cell"
        try:
            box.run(_runnable(source), f"<graded cell {ex.id}>")
        except SandboxError as exc:
            if exc.kind == "syntax":
                return _zero(ex, exc.message.replace(f"in <graded cell {ex.id}>",
                                                     "in your answer"))
            raise
        except NotImplementedError:
            return _zero(ex, "not answered yet: the cell raises NotImplementedError")
        except MemoryError:
            return _zero(ex, f"your cell ran out of memory: an answer may use at most {gib}")
        except Exception as exc:
            line = getattr(exc, "remote_line", "")
            at = line.rsplit(":", 1)[-1] if line.startswith("<graded") else "?"
            return _zero(ex, f"your cell raised {_short(exc)} (line {at})")
        if ex.name not in defined_names(source) or not box.has(ex.name):
            return _zero(ex, f"the graded cell never defines `{ex.name}`: write "
                             f"`def {ex.name}(...):` in this cell (keep the name the exercise "
                             "asks for)")
        return run_checks(ex.id, box.get(ex.name), box=box)
    except SandboxTimeout as exc:
        return _zero(ex, f"{exc}: an endless loop, or far too slow")
    except SandboxDied as exc:
        return _zero(ex, str(exc))
    finally:
        box.close()


def grade_cell(exercise_id: str, source: str, setup: list[str] | tuple = (),
               timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Grade one graded cell's ``source`` (with the import cells ``setup`` above it) for
    ``exercise_id``: ``{"id", "points", "max", "hints"}``."""
    return _grade_one(exercise_id, source, list(setup), timeout)


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
    """Grade one exercise notebook; returns ``{"total", "max", "exercises": [...]}``.
    Raises :class:`GradeError` for a notebook it cannot read."""
    path = Path(path)
    nb = read_notebook(path)
    stale = stale_file_warning(path)
    if stale:
        print(stale, file=sys.stderr)
    chapter = chapter_of(path, nb)
    expected = _checks.for_chapter(chapter)
    if not expected:
        raise GradeError(f"{path}: chapter {chapter} has no graded exercises")
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
                cell.source = strip_solution(cell.source, cell.metadata.get("exercise") or "")
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
    p.parse_args(argv)
    p.error("use `embedlab grade PATH` instead")
    return 2


if __name__ == "__main__":
    sys.exit(_main())
