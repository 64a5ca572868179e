"""Code search on Python's own standard library: pairs read with ``ast``, a split by module.

CodeSearchNet (Husain et al. 2019, "CodeSearchNet Challenge: Evaluating the State of Semantic
Code Search", section 2) builds its retrieval task from functions that carry documentation: the
**query** is the first part of the docstring, the **document** is the function with its docstring
removed, and a model must find each query's own function among all the others. The standard
library of the running interpreter is real code with human-written docstrings that ships with
Python, so the same task is here offline:

* :func:`stdlib_files` lists the library's ``.py`` files (test packages, ``idlelib`` and
  ``lib2to3`` left out); :func:`extract_pairs` reads one module's source with ``ast`` and
  returns a :class:`CodePair` for every function (module level, method or nested, sync or async)
  with a docstring and at least ``min_statements`` statements, the docstring counted as one (the
  length of ``node.body``). The query is the docstring's first sentence; the document is
  ``ast.unparse`` of the function with its docstring statement removed (decorators and signature
  kept). :func:`stdlib_pairs` does this for every file, skips (and counts) a file that does not
  decode or parse, and caches the result under ``$EMBEDLAB_DATA``.
* :func:`split_by_module` puts every function of one top-level module or package on the same
  side. A split by function would put a function in the test set whose siblings, written by the
  same authors with the same names and helpers (often the same docstring words), were trained on.
* :func:`split_identifiers` turns code into words for BM25 (Robertson and Zaragoza 2009):
  ``readLines`` and ``read_lines`` both give ``read lines``.
* :func:`reciprocal_rank_fusion` (Cormack, Clarke and Buettcher 2009, eq. 1) fuses rankings by
  ``sum 1 / (k + rank)``: it reads ranks only, never how sure each ranker was.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import re
import sys
import sysconfig
import tokenize
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["EXCLUDED", "CodePair", "CodeSplit", "StdlibPairs", "extract_pairs",
           "first_sentence", "module_name", "per_query_search", "reciprocal_rank_fusion",
           "split_by_module", "split_identifiers", "stdlib_files", "stdlib_pairs"]

#: directory names whose files are not read: test packages and two tools that carry their own
#: copies of library code (``idlelib``, ``lib2to3``), plus third-party installs
EXCLUDED = frozenset({"test", "tests", "idle_test", "idlelib", "lib2to3", "site-packages",
                      "dist-packages", "__pycache__"})


@dataclass(frozen=True)
class CodePair:
    """One function: its query (the docstring's first sentence), its document (the code without
    the docstring), the module it lives in, its qualified name and its first line."""
    query: str
    document: str
    module: str
    name: str
    lineno: int


@dataclass
class StdlibPairs:
    """Every pair read from the library, with the files read and the files skipped."""
    pairs: list[CodePair]
    n_files: int
    skipped: list[str] = field(default_factory=list)


@dataclass
class CodeSplit:
    """Training and held-out pairs, and the top-level modules on each side."""
    train: list[CodePair]
    test: list[CodePair]
    train_modules: list[str]
    test_modules: list[str]


# --------------------------------------------------------------------------- one module
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def first_sentence(docstring: str) -> str:
    """The first sentence of a docstring: its first paragraph on one line, cut after the first
    ``.``, ``!`` or ``?`` that a space follows, without the final full stop."""
    if not isinstance(docstring, str):
        raise TypeError(f"docstring must be a str, got {type(docstring).__name__}")
    paragraph = docstring.strip().split("\n\n")[0]
    text = " ".join(paragraph.split())
    text = _SENTENCE_END.split(text, maxsplit=1)[0]
    return text.removesuffix(".").strip()


def _without_docstring(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """``ast.unparse`` of a copy of ``node`` whose first statement (the docstring) is dropped."""
    clone = copy.deepcopy(node)
    clone.body = clone.body[1:] or [ast.Pass()]
    return ast.unparse(clone)


def extract_pairs(source: str, module: str = "", min_statements: int = 3) -> list[CodePair]:
    """(query, document) pairs of every function in ``source`` with a docstring and at least
    ``min_statements`` statements in its body, the docstring included.

    Functions are found anywhere (module level, methods, functions nested in functions), in the
    order ``ast.walk`` meets them, then sorted by line. ``name`` is the dotted path of classes
    and functions that enclose it. A function whose docstring's first sentence is empty is
    skipped. Raises ``SyntaxError`` when ``source`` does not parse."""
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    if isinstance(min_statements, bool) or not isinstance(min_statements, int) or \
            min_statements < 1:
        raise ValueError(f"min_statements must be a positive integer, got {min_statements!r}")
    tree = ast.parse(source)
    out: list[CodePair] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    doc = ast.get_docstring(child)
                    query = first_sentence(doc) if doc else ""
                    if query and len(child.body) >= min_statements:
                        out.append(CodePair(query, _without_docstring(child), module, name,
                                            child.lineno))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return sorted(out, key=lambda p: p.lineno)


# --------------------------------------------------------------------------- the library
def stdlib_files(root: str | Path | None = None) -> list[Path]:
    """The ``.py`` files of the standard library (``sysconfig``'s ``stdlib`` path of the running
    interpreter, or ``root``), sorted, without any file under a directory in :data:`EXCLUDED`."""
    base = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    if not base.is_dir():
        raise ValueError(f"root must be a directory of Python sources, got {str(base)!r}")
    return [p for p in sorted(base.rglob("*.py"))
            if not EXCLUDED.intersection(p.relative_to(base).parts[:-1])]


def module_name(path: str | Path, root: str | Path) -> str:
    """Dotted module name of a file under ``root``: ``email/utils.py`` -> ``email.utils``,
    ``json/__init__.py`` -> ``json``."""
    parts = list(Path(path).relative_to(root).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _read_source(path: Path) -> str:
    """A file's text in the encoding its coding cookie names (UTF-8 by default, PEP 263)."""
    with tokenize.open(path) as fh:
        return fh.read()


def stdlib_pairs(root: str | Path | None = None, min_statements: int = 3, every: int = 1,
                 cache: bool = True) -> StdlibPairs:
    """:func:`extract_pairs` over every file of :func:`stdlib_files` (every ``every``-th file
    when ``every`` > 1, for a quick look). A file that does not decode or parse is skipped and
    its module name kept in ``skipped``. Pairs whose (query, document) repeat an earlier pair
    are dropped. Cached as JSON under ``$EMBEDLAB_DATA``, keyed by the interpreter's version,
    the library path, ``min_statements`` and ``every``."""
    from embedlab.data import cache_dir

    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    base = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    files = stdlib_files(base)[::every]
    key = hashlib.sha256(json.dumps([sys.version, str(base), min_statements, every,
                                     [str(f.relative_to(base)) for f in files], 1])
                         .encode()).hexdigest()[:16]
    path = cache_dir() / "derived" / f"codesearch-pairs-{key}.json"
    if cache and path.exists():
        saved = json.loads(path.read_text(encoding="utf-8"))
        return StdlibPairs([CodePair(**p) for p in saved["pairs"]], saved["n_files"],
                           saved["skipped"])
    pairs, skipped, seen = [], [], set()
    for f in files:
        module = module_name(f, base)
        try:
            found = extract_pairs(_read_source(f), module, min_statements)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            skipped.append(module)
            continue
        for p in found:
            if (p.query, p.document) not in seen:
                seen.add((p.query, p.document))
                pairs.append(p)
    result = StdlibPairs(pairs, len(files), skipped)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.tmp.json")
        tmp.write_text(json.dumps({"pairs": [asdict(p) for p in pairs], "n_files": len(files),
                                   "skipped": skipped}), encoding="utf-8")
        tmp.replace(path)
    return result


def split_by_module(pairs: Sequence[CodePair], test_fraction: float = 0.15,
                    seed: int = 0) -> CodeSplit:
    """Hold out whole top-level modules (``email.utils`` counts as ``email``): shuffle them
    (seeded) and move them to the test side until it holds at least ``test_fraction`` of the
    pairs. No top-level module has functions on both sides."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if len(pairs) < 2:
        raise ValueError(f"pairs must hold at least two pairs, got {len(pairs)}")
    counts: dict[str, int] = {}
    for p in pairs:
        top = p.module.split(".")[0]
        counts[top] = counts.get(top, 0) + 1
    order = sorted(counts)
    np.random.default_rng(seed).shuffle(order)
    test_mods, n = set(), 0
    for m in order:
        if n >= test_fraction * len(pairs):
            break
        if n + counts[m] < len(pairs):          # never move everything
            test_mods.add(m)
            n += counts[m]
    test = [p for p in pairs if p.module.split(".")[0] in test_mods]
    train = [p for p in pairs if p.module.split(".")[0] not in test_mods]
    return CodeSplit(train, test, sorted(set(counts) - test_mods), sorted(test_mods))


# --------------------------------------------------------------------------- retrieval
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def split_identifiers(code: str) -> str:
    """The words of ``code``: every identifier split at underscores and at camelCase humps,
    lower-cased, joined by spaces (``parseHTTPHeader_v2`` -> ``parse http header v 2``)."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, got {type(code).__name__}")
    words = []
    for ident in _IDENTIFIER.findall(code):
        for piece in ident.split("_"):
            words.extend(w.lower() for w in _CAMEL.findall(piece))
    return " ".join(words)


def reciprocal_rank_fusion(*scores: np.ndarray, k: int = 60) -> np.ndarray:
    """Fuse several (queries, documents) score matrices by their ranks (Cormack et al. 2009):
    each document gets ``sum over rankers of 1 / (k + rank)``, rank 1 for a ranker's best
    document. Returns the fused (queries, documents) scores (higher is better)."""
    if not scores:
        raise ValueError("give at least one score matrix")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    mats = [np.asarray(s, dtype=np.float64) for s in scores]
    shape = mats[0].shape
    for i, m in enumerate(mats):
        if m.ndim != 2 or m.shape != shape or m.size == 0:
            raise ValueError(f"scores[{i}] must be a non-empty 2-d matrix of shape {shape}, "
                             f"got {m.shape}")
        if not np.isfinite(m).all():
            raise ValueError(f"scores[{i}] must be finite")
    fused = np.zeros(shape)
    rows = np.arange(shape[0])[:, None]
    for m in mats:
        order = np.argsort(-m, axis=1, kind="stable")
        ranks = np.empty_like(order)
        ranks[rows, order] = np.arange(1, shape[1] + 1)
        fused += 1.0 / (k + ranks)
    return fused


def per_query_search(scores: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """Per-query numbers of a paired search (query i's document is document i), ready for
    bootstrap intervals: ``MRR@k`` (1 / rank of the document when it is in the top k, else 0),
    ``recall@1`` and ``recall@k`` (1.0 or 0.0 each); their means are the usual metrics."""
    from embedlab.evaluation import per_query_metrics

    m = per_query_metrics(scores, k=k)
    rr = m["rr"]
    return {f"MRR@{k}": np.where(rr >= 1.0 / k, rr, 0.0), "recall@1": m["recall@1"],
            f"recall@{k}": m[f"recall@{k}"]}
