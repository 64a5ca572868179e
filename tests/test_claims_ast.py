"""A claim is a falsifiable test: an AST check over every ``claim(...)`` the course states.

``claim(id, text, holds)`` must compute ``holds`` from measured values. This file parses the code
cells of every notebook in ``notebooks/`` (and every module of ``embedlab/`` that calls ``claim``)
and fails on three patterns that make a claim unable to fail:

1. **literal verdict**: ``holds`` is a literal bool, ``claim("x", "...", True)``;
2. **guarded claim**: the claim sits inside an ``if`` (or an ``x if c else y``) whose test reads a
   quantity that ``holds`` also reads: ``if after > before: claim(..., after > before)`` can only
   ever print a check mark, and the failing branch escapes strict mode;
3. **literals only**: ``holds`` reads no measured value at all, only literals and names whose every
   binding in the notebook is itself an expression of literals (``raw = 1024 * 4`` then
   ``claim(..., raw == 4096)``).

A "quantity" is a name read as a value: names bound by ``import`` and Python's builtins (``len``,
``abs``, ``np``...) do not count, nor do the chapter's sizes ``S`` and ``profile`` (an ``if`` on
the profile is configuration), nor the function part of a call (``good`` in ``len(good)`` counts,
``len`` does not). A name bound inside the guarding ``if`` counts as the quantities its value
reads (``if len(good): ms = good.ms[0]; claim(..., ms < 1)`` is guarded). Calls are opaque:
``code_size(128, 8)`` is not a literal.

Notebooks listed in ``tests/notebook_rules_pending.txt`` (not yet converted to the notebook rules)
are exempt until their owners remove their line; the checker itself is tested on planted snippets.
"""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
PENDING_FILE = ROOT / "tests" / "notebook_rules_pending.txt"
BUILTINS = set(dir(builtins))
# the chapter's sizes and profile name: configuration, not a measured quantity
CONFIG = {"S", "profile"}


def read_pending(path: Path = PENDING_FILE) -> set[str]:
    """The relative paths listed in the pending file (``#`` lines and blank lines are comments)."""
    return {ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")}


# --------------------------------------------------------------------------- the checker
def _python_source(cell_source: str) -> str:
    """A code cell's text with IPython magics and shell escapes blanked (same line numbers)."""
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln
                     for ln in cell_source.splitlines())


def _is_claim_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id == "claim") or (
        isinstance(f, ast.Attribute) and f.attr == "claim")


def _holds_arg(call: ast.Call) -> ast.AST | None:
    for kw in call.keywords:
        if kw.arg == "holds":
            return kw.value
    return call.args[2] if len(call.args) >= 3 else None


def _claim_id(call: ast.Call) -> str:
    first = call.args[0] if call.args else next(
        (k.value for k in call.keywords if k.arg == "id"), None)
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return ast.unparse(first) if first is not None else "?"


def _quantities(node: ast.AST, imported: set[str]) -> set[str]:
    """Names read as values in ``node`` (not call targets, not imports, not builtins)."""
    funcs = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
    out = set()
    for n in ast.walk(node):
        if (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and id(n) not in funcs
                and n.id not in imported and n.id not in BUILTINS and n.id not in CONFIG):
            out.add(n.id)
    return out


_PURE = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Tuple, ast.List,
         ast.Set, ast.IfExp, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
         ast.expr_context, ast.Name, ast.JoinedStr, ast.FormattedValue)


def _literal_expr(node: ast.AST, literal_names: set[str]) -> bool:
    """True when ``node`` is built from literals (and literal-bound names) with pure operators."""
    for n in ast.walk(node):
        if not isinstance(n, _PURE):
            return False
        if isinstance(n, ast.Name) and n.id not in literal_names and n.id not in ("True", "False"):
            return False
    return True


def _bindings(tree: ast.AST) -> tuple[dict[str, list[ast.AST | None]], set[str]]:
    """``{name: [value expressions bound to it]}`` (None: bound by something opaque) and the
    names bound by ``import``."""
    binds: dict[str, list[ast.AST | None]] = {}
    imported: set[str] = set()

    def bind(target: ast.AST, value: ast.AST | None) -> None:
        if isinstance(target, ast.Name):
            binds.setdefault(target.id, []).append(value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            vals = (value.elts if isinstance(value, (ast.Tuple, ast.List))
                    and len(value.elts) == len(target.elts) else [None] * len(target.elts))
            for t, v in zip(target.elts, vals, strict=True):
                bind(t, v)
        elif isinstance(target, ast.Starred):
            bind(target.value, None)

    for n in ast.walk(tree):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            for a in n.names:
                imported.add((a.asname or a.name).split(".")[0])
        elif isinstance(n, ast.Assign):
            for t in n.targets:
                bind(t, n.value)
        elif isinstance(n, (ast.AnnAssign, ast.AugAssign)):
            bind(n.target, n.value if isinstance(n, ast.AnnAssign) else None)
        elif isinstance(n, ast.NamedExpr):
            bind(n.target, n.value)
        elif isinstance(n, (ast.For, ast.AsyncFor, ast.comprehension)):
            bind(n.target, None)
        elif isinstance(n, (ast.With, ast.AsyncWith)):
            for item in n.items:
                if item.optional_vars is not None:
                    bind(item.optional_vars, None)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for a in n.args.args + n.args.kwonlyargs + n.args.posonlyargs:
                binds.setdefault(a.arg, []).append(None)
            if not isinstance(n, ast.Lambda):
                binds.setdefault(n.name, []).append(None)
        elif isinstance(n, ast.ClassDef):
            binds.setdefault(n.name, []).append(None)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            binds.setdefault(n.name, []).append(None)
    return binds, imported


def _literal_names(binds: dict[str, list[ast.AST | None]]) -> set[str]:
    """Names whose every binding is a literal expression (a fixed point over the bindings)."""
    names = {k for k, vs in binds.items() if all(v is not None for v in vs)}
    changed = True
    while changed:
        changed = False
        for k in list(names):
            if not all(_literal_expr(v, names) for v in binds[k]):
                names.discard(k)
                changed = True
    return names


def _derived(holds: ast.AST, block: ast.AST, imported: set[str]) -> set[str]:
    """The quantities ``holds`` reads, plus those of the values bound inside ``block`` (the body
    of the guarding ``if``) to any of them: ``if len(good): ms = good.ms[0]; claim(.., ms < 1)``
    reads ``good`` through ``ms``."""
    local: dict[str, set[str]] = {}
    for n in ast.walk(block):
        if isinstance(n, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            if n.value is None:
                continue
            reads = _quantities(n.value, imported)
            for t in targets:
                for name in (x.id for x in ast.walk(t) if isinstance(x, ast.Name)):
                    local.setdefault(name, set()).update(reads)
    wanted = _quantities(holds, imported)
    frontier = set(wanted)
    while frontier:
        new = set().union(*(local.get(n, set()) for n in frontier)) - wanted
        wanted |= new
        frontier = new
    return wanted


def check_source(source: str) -> list[tuple[str, str, int]]:
    """``[(rule, claim id, line)]`` for every hollow claim in ``source`` (one module's code).

    rule is ``"literal"`` (holds is a literal bool), ``"guarded"`` (inside an ``if`` on a quantity
    holds also reads) or ``"literals-only"`` (holds reads no measured value).
    """
    tree = ast.parse(source)
    binds, imported = _bindings(tree)
    literal = _literal_names(binds)
    parents: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    problems = []
    for node in ast.walk(tree):
        if not _is_claim_call(node):
            continue
        holds = _holds_arg(node)
        if holds is None:
            continue
        cid = _claim_id(node)
        if isinstance(holds, ast.Constant) and isinstance(holds.value, bool):
            problems.append(("literal", cid, node.lineno))
            continue
        if _literal_expr(holds, literal):
            problems.append(("literals-only", cid, node.lineno))
            continue
        child, parent = node, parents.get(id(node))
        while parent is not None:
            test = None
            if isinstance(parent, (ast.If, ast.While, ast.IfExp)) and child is not parent.test:
                test = parent.test
            if test is not None and (_derived(holds, parent, imported)
                                     & _quantities(test, imported)):
                problems.append(("guarded", cid, node.lineno))
                break
            child, parent = parent, parents.get(id(parent))
    return problems


def notebook_source(path: Path) -> str:
    """The code cells of a notebook, joined in order (magics blanked)."""
    nb = nbformat.read(path, as_version=4)
    return "\n\n".join(_python_source(c.source) for c in nb.cells if c.cell_type == "code")


# --------------------------------------------------------------------------- the checker, tested
PLANTS = {
    "literal": 'claim("ch99.x", "a heap returns the k closest", True)\n',
    "literal keyword": 'claim("ch99.x", "text", holds=False)\n',
    "guarded": ('after, before = measure(), measure()\n'
                'if after > before:\n'
                '    claim("ch99.x", "re-ranking beats the first stage", after > before)\n'),
    "guarded else": ('ms = timing()\n'
                     'if ms < 1.0:\n    print("fast")\n'
                     'else:\n    claim("ch99.x", "sub-millisecond", bool(ms < 1.0))\n'),
    "guarded nested": ('good = lat[lat.recall >= 0.95]\n'
                       'if len(good):\n'
                       '    for r in rows:\n'
                       '        claim("ch99.x", "fast at 95%", good.ms.iloc[0] < 1)\n'),
    "guarded through a local": ('good = lat[lat.recall >= 0.95]\n'
                                'if len(good):\n'
                                '    ms = good.ms.iloc[0]\n'
                                '    claim("ch99.x", "sub-ms at 95%", ms < 1.0)\n'),
    "literals only": 'claim("ch99.x", "4096 B become 128 B", 4096 // 128 == 32)\n',
    "literals through names": ('d, m = 1024, 128\nraw = d * 4\n'
                               'claim("ch99.x", "32x", raw == 4096 and m == 128)\n'),
}
EXPECTED_RULE = {"literal": "literal", "literal keyword": "literal", "guarded": "guarded",
                 "guarded else": "guarded", "guarded nested": "guarded",
                 "guarded through a local": "guarded",
                 "literals only": "literals-only", "literals through names": "literals-only"}


@pytest.mark.parametrize("name", sorted(PLANTS))
def test_the_checker_fails_on_each_planted_hollow_claim(name: str) -> None:
    problems = check_source(PLANTS[name])
    assert [p[0] for p in problems] == [EXPECTED_RULE[name]], (name, problems)
    assert problems[0][1] == "ch99.x"


def test_the_checker_passes_falsifiable_claims() -> None:
    good = (
        "import numpy as np\n"
        "from embedlab.report import claim\n"
        "x = np.random.default_rng(0).normal(size=100)\n"
        "claim('ch99.a', 'the mean is near zero', bool(abs(x.mean()) < 0.5))\n"
        "d, m = 1024, 128\n"
        "code = code_size(m, 8)\n"                          # a call: measured by the package
        "claim('ch99.b', 'codes are 128 B', code == 128)\n"
        "if S['grade'] == 'all':\n"                          # an if on the configuration
        "    claim('ch99.c', 'ties broken by index', bool(np.all(np.diff(x) != 0)))\n"
        "raw = d * 4\n"
        "raw = len(x)\n"                                     # a second, measured binding
        "claim('ch99.d', 'counted', raw > 0)\n"
    )
    assert check_source(good) == []


def test_the_checker_reads_notebook_cells_with_magics(tmp_path: Path) -> None:
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("%matplotlib inline\nok = 1 > 2"),
                             new_code_cell("!echo hi\nclaim('ch99.x', 'text', True)")])
    path = tmp_path / "99_x.ipynb"
    nbformat.write(nb, path)
    assert [p[0] for p in check_source(notebook_source(path))] == ["literal"]


# --------------------------------------------------------------------------- the course
def _sources() -> list[Path]:
    """Notebooks (less the pending ones) and package modules that call claim."""
    pending = read_pending()
    notebooks = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb")
                       if str(p.relative_to(ROOT)) not in pending)
    modules = sorted(p for p in (ROOT / "embedlab").rglob("*.py")
                     if re.search(r"\bclaim\(", p.read_text(encoding="utf-8"))
                     and p.name != "report.py")
    return notebooks + modules


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


@pytest.mark.parametrize("path", _sources(), ids=_rel)
def test_every_claim_can_fail(path: Path) -> None:
    source = notebook_source(path) if path.suffix == ".ipynb" else path.read_text("utf-8")
    problems = check_source(source)
    assert not problems, (
        f"{_rel(path)}: claims that cannot fail {problems} (literal: holds is True/False; "
        "guarded: the claim sits inside an if on the quantity it tests; literals-only: holds "
        "reads no measured value). Compute holds from the measurement, outside the if.")


def test_chapter_18_is_checked() -> None:
    """The checklist chapter is converted: it must never hide behind the pending list."""
    assert "notebooks/18_checklist_review.ipynb" not in read_pending()
    assert (ROOT / "notebooks" / "18_checklist_review.ipynb") in _sources()
