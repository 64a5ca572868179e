"""Chapter 20, the capstone: a search engine under a budget, scored on sealed queries.

The task is chapter 04's, at full size: a news headline is the query, its article the one relevant
document, and the index holds the whole corpus (every article with a text, duplicates dropped).

**The budget** (``profiles.sizes("20", profile)``; the standard values are the course's):

* ``max_bytes_per_vector``: what the index keeps per document, ids excluded (see
  :func:`index_bytes` for exactly what is counted);
* ``max_p99_ms``: the 99th percentile of single-query latency in thread CPU time
  (``time.thread_time``), one thread: the scan, any re-ranking, everything ``search`` does but
  the engine's own query embedder (an ``encode`` method, timed apart and shown beside it, unless
  ``encoder_in_latency``; see :func:`run_queries`);
* ``max_build_s``: the build, from the notebook's first cell to a built index with an empty data
  cache, in CPU seconds of its process spread over the ``build_threads`` cores it may use
  (``build_s = cpu_s / build_threads``: its wall time on an otherwise idle machine when it keeps
  them busy; unlike wall time, it does not grow when other programs share the machine, and the
  wall time is shown beside it);
* no network (the scorer's child process runs offline, like the whole course).

**Sealed queries.** ``embedlab.data.select_sealed`` fixes ``data.N_SEALED`` headlines by a seeded
hash of the article id. ``embedlab.data.load("news")`` withholds them everywhere but in the
scorer (their articles stay in the corpus: a search engine indexes documents, and the queries are
what is held out, as in BEIR). The learner tunes on the public development split, :func:`dev_split`.

**The scorer** (``embedlab capstone score PATH``, :func:`score`) runs the notebook's code cells up
to the one tagged ``capstone`` in a fresh child process (:mod:`embedlab.sandbox`), calls
``build(corpus)`` there, measures the index's bytes and each sealed query's latency with trusted
functions that run in the child (:func:`index_bytes`, :func:`run_queries`), and scores nDCG@10
(Jarvelin and Kekalainen 2002) and recall@100 against three baselines it builds itself
(:class:`BM25Engine`, :class:`FlatEngine`, :class:`PQEngine`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: the tag of the cell that defines ``build`` (the scorer grades it, not ``embedlab grade``)
CAPSTONE_TAG = "capstone"
HISTORY = Path("build") / "capstone" / "history.json"


class ScoreError(RuntimeError):
    """The scorer could not score a notebook: ``status`` is the exit status the command uses."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- data
def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _documents(frame):
    """Every article with a text, each text once (the first copy), in row order."""
    docs = frame[frame.text.str.strip() != ""]
    return docs[~docs.text.duplicated()]


def sealed_order() -> tuple[int, ...]:
    """The sealed article ids in their hash order (public: it is the headlines that are sealed)."""
    from embedlab import data

    return data.sealed_ids()


def corpus(profile: str = "standard") -> pd.DataFrame:
    """The documents every engine indexes: a DataFrame ``article_id, text`` in row order.

    With the profile's ``n_corpus`` set (``ci``), a smaller corpus: the articles of the profile's
    development and sealed queries, filled up with other articles in the order of the sha256 of
    their id; otherwise every article with a text, each text once.
    """
    from embedlab import data
    from embedlab.profiles import sizes

    S = sizes("20", profile)
    docs = _documents(data.load("news"))
    if S["n_corpus"] is not None:
        _, dev = dev_split(profile)
        need = set(dev.article_id.tolist()) | set(sealed_order()[: S["n_sealed"]])
        if len(need) > S["n_corpus"]:
            raise ValueError(f"n_corpus ({S['n_corpus']}) must hold the {len(need)} articles "
                             "of the development and sealed queries")
        key = docs.article_id.astype(str).map(_sha)
        rest = docs[~docs.article_id.isin(need)].assign(key=key).sort_values("key")
        keep = need | set(rest.article_id.iloc[: S["n_corpus"] - len(need)].tolist())
        docs = docs[docs.article_id.isin(keep)]
    return docs[["article_id", "text"]].reset_index(drop=True)


def dev_split(profile: str = "standard") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, dev)``: the public pairs (``article_id, title, text``). ``dev`` is the first
    ``n_dev`` of the chapters' 800 held-out pairs (``embedlab.tasks.news_split``), for tuning;
    ``train`` is every other public pair, for training. Neither holds a sealed headline."""
    from embedlab import data, tasks
    from embedlab.profiles import sizes

    train, test = tasks.news_split()
    dev = test.iloc[: sizes("20", profile)["n_dev"]].reset_index(drop=True)
    data.refuse_sealed(np.concatenate([train.article_id, dev.article_id]), "the public split")
    return train, dev


def sealed_queries(profile: str = "standard") -> pd.DataFrame:
    """The sealed queries (``article_id, title``) of ``profile``: the scorer's alone.

    Raises ``embedlab.data.SealedError`` unless the scorer has opened the seal."""
    from embedlab import data
    from embedlab.profiles import sizes

    if not data._seal_is_open():
        raise data.SealedError("the sealed capstone queries are read only by "
                               "`embedlab capstone score`; tune on capstone.dev_split()")
    frame = data.load("news").set_index("article_id")
    ids = list(sealed_order()[: sizes("20", profile)["n_sealed"]])
    titles = frame.loc[ids, "title"].tolist()
    if any(not t.strip() for t in titles):
        raise RuntimeError("a sealed headline is empty: the seal did not open")
    import pandas

    return pandas.DataFrame({"article_id": ids, "title": titles})


# --------------------------------------------------------------------------- the budget
@dataclass(frozen=True)
class Budget:
    """The capstone's limits (``profiles.sizes("20", profile)``)."""

    max_bytes_per_vector: float
    max_p99_ms: float
    max_build_s: float
    encoder_in_latency: bool = False

    @classmethod
    def of(cls, profile: str = "standard") -> Budget:
        from embedlab.profiles import sizes

        S = sizes("20", profile)
        return cls(float(S["max_bytes_per_vector"]), float(S["max_p99_ms"]),
                   float(S["max_build_s"]), bool(S["encoder_in_latency"]))

    def holds(self, bytes_per_vector: float | None, p99_ms: float | None,
              build_s: float | None) -> bool:
        """True when every measured number is present and within its limit."""
        values = (bytes_per_vector, p99_ms, build_s)
        if any(v is None or not math.isfinite(v) for v in values):
            return False
        return (bytes_per_vector <= self.max_bytes_per_vector and p99_ms <= self.max_p99_ms
                and build_s <= self.max_build_s)


# --------------------------------------------------------------------------- bytes per vector
#: packages whose indexes keep their data in compiled memory the scorer cannot read
OPAQUE_PACKAGES = ("faiss", "hnswlib", "annoy", "scann", "usearch", "voyager", "pynndescent",
                   "nmslib", "lancedb", "qdrant_client", "chromadb", "pymilvus")
_SCALARS = (str, int, float, complex, bool, type(None), range, slice)


def _owner(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _is_ids(a: np.ndarray, n: int, ids: np.ndarray | None) -> bool:
    if a.ndim != 1 or a.shape[0] != n or not np.issubdtype(a.dtype, np.integer):
        return False
    s = np.sort(a.astype(np.int64))
    return bool(np.array_equal(s, np.arange(n)) or (ids is not None and np.array_equal(s, ids)))


def index_bytes(engine: Any, n: int, ids: Sequence[int] | None = None,
                max_objects: int = 200_000) -> dict[str, Any]:
    """What a built engine keeps per document, read from its own arrays.

    The engine's attributes are walked (``__dict__``, ``__slots__``, lists, tuples, dicts, sets,
    numeric pandas columns, sparse matrices), and every numpy array, torch tensor and ``bytes``
    object found is counted once, by the memory it owns (a view counts with its base):

    * **per vector**, the index proper: an array with at least ``n`` rows (codes, vectors, graph
      links, postings), or a list/tuple/dict of arrays of one dtype and row shape whose rows
      add up to at least ``n`` (inverted lists);
    * **ids**, excluded: a 1-D integer array of exactly ``n`` entries holding each document's id
      once (the positions ``0..n-1`` or the article ids, in any order);
    * **shared**, reported but not per vector: smaller arrays (codebooks, centroids, a rotation);
    * not counted: ``torch.nn.Module`` objects (the encoder's weights, not the index), text
      (object arrays and strings: the document store).

    An index of ``embedlab.index`` is read through the arrays it saves (its ``_state()``, what
    its ``nbytes`` counts), not its caches and scratch buffers.

    An object from a compiled index library (faiss, hnswlib, ...) cannot be read: it is listed
    under ``opaque``, and the scorer then reports no bytes per vector (over budget). Returns
    ``{"bytes_per_vector", "per_vector_bytes", "shared_bytes", "ids_bytes", "arrays", "opaque"}``.
    """
    import types
    from collections import deque

    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    want = None if ids is None else np.sort(np.asarray(ids, dtype=np.int64))
    torch = sys.modules.get("torch")
    sparse = sys.modules.get("scipy.sparse")
    pd = sys.modules.get("pandas")
    package_index = getattr(sys.modules.get("embedlab.index.base"), "Index", None)
    found: dict[int, dict[str, Any]] = {}      # owner id -> {path, shape, dtype, nbytes, rows}
    keep_alive: list[Any] = []
    groups: list[list[int]] = []
    opaque: list[str] = []
    seen: set[int] = set()
    stack = deque([("engine", engine, 0)])         # breadth first: the shortest path is kept
    visited = 0

    def add(path: str, arr: Any, nbytes: int, shape: tuple, dtype: str, key: int) -> int:
        if key not in found:
            found[key] = {"path": path, "shape": list(shape), "dtype": dtype,
                          "nbytes": int(nbytes), "rows": int(shape[0]) if shape else 0,
                          "array": arr}
        return key

    def leaf(path: str, obj: Any) -> int | None:
        """The key of an array-like leaf, or None when ``obj`` is not one."""
        if isinstance(obj, np.ndarray):
            if obj.dtype == object:
                return None
            own = _owner(obj)
            keep_alive.append(own)
            return add(path, obj, own.nbytes, obj.shape, str(obj.dtype), id(own))
        if torch is not None and isinstance(obj, torch.Tensor):
            st = obj.untyped_storage()
            return add(path, obj, st.nbytes(), tuple(obj.shape), str(obj.dtype).replace(
                "torch.", ""), ("t", st.data_ptr()).__hash__())
        if isinstance(obj, (bytes, bytearray)):
            keep_alive.append(obj)
            return add(path, obj, len(obj), (len(obj),), "bytes", id(obj))
        if isinstance(obj, memoryview):
            return add(path, obj, obj.nbytes, (obj.nbytes,), "bytes", id(obj.obj))
        return None

    while stack and visited < max_objects:
        path, obj, depth = stack.popleft()
        if isinstance(obj, _SCALARS) or id(obj) in seen:
            continue
        seen.add(id(obj))
        visited += 1
        if leaf(path, obj) is not None:
            continue
        if isinstance(obj, np.ndarray):           # object array: look at its items
            if obj.size <= 100_000:
                stack.extend((f"{path}[{i}]", v, depth + 1) for i, v in enumerate(obj.ravel()))
            continue
        if isinstance(obj, (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType,
                            types.MethodType)):
            continue
        if torch is not None and isinstance(obj, torch.nn.Module):
            continue
        module = type(obj).__module__ or ""
        if module.split(".")[0] in OPAQUE_PACKAGES:
            opaque.append(f"{path}: {module}.{type(obj).__name__}")
            continue
        if depth >= 12:
            continue
        if pd is not None and isinstance(obj, (pd.DataFrame, pd.Series)):
            frame = obj.to_frame() if isinstance(obj, pd.Series) else obj
            for col in frame.columns:
                values = frame[col].to_numpy()
                if values.dtype != object:
                    keep_alive.append(values)
                    leaf(f"{path}[{col!r}]", values)
            continue
        if sparse is not None and sparse.issparse(obj):
            stack.extend((f"{path}.{a}", getattr(obj, a), depth + 1)
                         for a in ("data", "indices", "indptr", "row", "col", "offsets")
                         if hasattr(obj, a))
            continue
        container = True
        if isinstance(obj, dict):
            items = [(f"{path}[{k!r}]", v) for k, v in obj.items()]
        elif isinstance(obj, (list, tuple, set, frozenset)) or type(obj).__name__ == "deque":
            items = [(f"{path}[{i}]", v) for i, v in enumerate(obj)]
        elif package_index is not None and isinstance(obj, package_index):
            container = False            # the package's own index: the arrays it saves
            items = [(f"{path}.{k}", v) for k, v in obj._state().items()]
        else:
            container = False
            items = [(f"{path}.{k}", v) for k, v in getattr(obj, "__dict__", {}).items()]
            for klass in type(obj).__mro__:
                for slot in getattr(klass, "__slots__", ()):
                    if isinstance(slot, str) and hasattr(obj, slot) and slot != "__weakref__":
                        items.append((f"{path}.{slot}", getattr(obj, slot)))
        if container:        # parts of one table (inverted lists): same dtype and row shape
            members = [k for k in (leaf(p, v) for p, v in items) if k is not None]
            kinds = {(found[k]["dtype"], tuple(found[k]["shape"][1:])) for k in members}
            if len(members) >= 2 and len(kinds) == 1:
                groups.append(members)
        stack.extend((p, v, depth + 1) for p, v in items)

    per_vector: set[int] = {k for k, a in found.items() if a["rows"] >= n}
    for members in groups:
        if sum(found[k]["rows"] for k in set(members)) >= n:
            per_vector.update(members)
    ids_keys = {k for k, a in found.items()
                if isinstance(a["array"], np.ndarray) and _is_ids(a["array"], n, want)}
    if torch is not None:
        ids_keys |= {k for k, a in found.items() if isinstance(a["array"], torch.Tensor)
                     and a["array"].dim() == 1 and _is_ids(a["array"].cpu().numpy(), n, want)}
    per_vector -= ids_keys
    rows = []
    for k, a in found.items():
        role = "ids" if k in ids_keys else "per vector" if k in per_vector else "shared"
        rows.append({"path": a["path"], "shape": a["shape"], "dtype": a["dtype"],
                     "nbytes": a["nbytes"], "role": role})
    rows.sort(key=lambda r: -r["nbytes"])
    total = sum(r["nbytes"] for r in rows if r["role"] == "per vector")
    return {"bytes_per_vector": None if opaque else total / n, "per_vector_bytes": total,
            "shared_bytes": sum(r["nbytes"] for r in rows if r["role"] == "shared"),
            "ids_bytes": sum(r["nbytes"] for r in rows if r["role"] == "ids"),
            "arrays": rows[:30], "opaque": opaque}


# --------------------------------------------------------------------------- latency and quality
def _one_thread() -> list:
    """Limit torch, BLAS and numba to one thread; returns what restores the previous settings."""
    undo = []
    torch = sys.modules.get("torch")
    if torch is not None:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        undo.append(lambda: torch.set_num_threads(before))
    numba = sys.modules.get("numba")
    if numba is not None:
        try:
            nb_before = numba.get_num_threads()
            numba.set_num_threads(1)
            undo.append(lambda: numba.set_num_threads(nb_before))
        except (AttributeError, ValueError, RuntimeError):
            pass
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(limits=1)
    undo.append(limits.restore_original_limits)
    return undo


def _as_row(out: Any, k: int) -> np.ndarray:
    """One query's result from ``search([q], k)`` as int64 ``(k,)``, or a ValueError."""
    if isinstance(out, tuple) and len(out) == 2:
        raise ValueError("search returned a pair (scores, ids?); return only the ids, "
                         "an array of shape (n_queries, k)")
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    a = np.asarray(out)
    if a.ndim == 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 1 or a.shape[0] != k:
        raise ValueError(f"search([query], k={k}) must return shape (1, {k}), got "
                         f"{np.asarray(out).shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"search must return integer article ids, got dtype {a.dtype}")
    return a.astype(np.int64)


class _TimedEncode:
    """Wraps an engine's ``encode`` so that the thread CPU time spent in it is known."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.spent = fn, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.spent += time.thread_time() - t0


def run_queries(engine: Any, queries: Sequence[str], k: int = 100, warmup: int = 5,
                encoder_in_latency: bool = False) -> dict[str, Any]:
    """Each query alone, ``engine.search([q], k)``, on one thread: its ids and its latency.

    The latency is the calling thread's CPU time (``time.thread_time``) around the call, so a
    busy machine does not inflate it; torch, BLAS and numba are held to one thread while the
    queries run (work sent to other threads would not be seen). The first ``warmup`` queries
    run once untimed first.

    An engine may have ``encode(query_texts)``, its query embedder, which ``search`` calls. Its
    time is measured on its own (``encode_ms``) and, unless ``encoder_in_latency``, left out of
    ``ms``, the latency the budget reads: everything else ``search`` does (the scan, the
    re-ranking) counts. Returns ``{"ids": int64 (n, k), "ms": float64 (n,), "encode_ms":
    float64 (n,)}``; a malformed result raises ``ValueError``.
    """
    if isinstance(queries, str) or not len(queries):
        raise ValueError("queries must be a non-empty list of strings")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    timed, own = None, getattr(engine, "__dict__", None)
    if callable(getattr(engine, "encode", None)) and own is not None:
        before = own.get("encode", _TimedEncode)           # an instance attribute, or none
        timed = _TimedEncode(engine.encode)
        engine.encode = timed                  # the instance attribute shadows the method
    undo = _one_thread()
    try:
        for q in list(queries)[:warmup]:
            engine.search([q], k)
        ids = np.empty((len(queries), k), dtype=np.int64)
        ms, enc = np.empty(len(queries)), np.zeros(len(queries))
        for i, q in enumerate(queries):
            if timed is not None:
                timed.spent = 0.0
            t0 = time.thread_time()
            out = engine.search([q], k)
            total = time.thread_time() - t0
            enc[i] = 0.0 if timed is None else timed.spent * 1e3
            ms[i] = total * 1e3 - (0.0 if encoder_in_latency else enc[i])
            ids[i] = _as_row(out, k)
    finally:
        for fn in reversed(undo):
            fn()
        if timed is not None:
            if before is _TimedEncode:
                del engine.encode
            else:
                engine.encode = before
    return {"ids": ids, "ms": ms, "encode_ms": enc}


def p99(ms: Sequence[float]) -> float:
    """The 99th percentile of latencies (numpy's linear interpolation)."""
    return float(np.percentile(np.asarray(ms, dtype=np.float64), 99))


def quality(ranked: np.ndarray, relevant: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-query nDCG@10 and recall@100 of ranked article ids against each query's article."""
    from embedlab.evaluation import per_query_ranked

    ranked = _pad(np.asarray(ranked), 100)               # a shorter list misses the rest
    return {"ndcg@10": per_query_ranked(ranked, relevant, k=10)["ndcg@10"],
            "recall@100": per_query_ranked(ranked, relevant, k=100)["recall@100"]}


@dataclass
class Result:
    """One engine's numbers on one set of queries."""

    name: str
    ndcg10: float
    recall100: float
    bytes_per_vector: float | None
    p99_ms: float
    build_s: float | None
    within_budget: bool
    n_queries: int
    per_query_ndcg10: list[float] = field(default_factory=list, repr=False)
    shared_bytes: int = 0
    encode_p99_ms: float = 0.0
    build_wall_s: float | None = None

    def line(self) -> str:
        """``capstone: ndcg@10=... recall@100=... bytes/vector=... p99_ms=... build_s=...
        within_budget=...``"""
        bpv = "n/a" if self.bytes_per_vector is None else f"{self.bytes_per_vector:.1f}"
        build = "n/a" if self.build_s is None else f"{self.build_s:.1f}"
        return (f"capstone: ndcg@10={self.ndcg10:.4f} recall@100={self.recall100:.4f} "
                f"bytes/vector={bpv} p99_ms={self.p99_ms:.2f} build_s={build} "
                f"within_budget={self.within_budget}")


def measure(name: str, engine: Any, queries: Sequence[str], relevant: Sequence[int], n: int,
            budget: Budget, build_s: float | None = None, ids: Sequence[int] | None = None,
            k: int = 100) -> Result:
    """Score an engine in this process: its bytes (:func:`index_bytes`), each query alone
    (:func:`run_queries`) and the quality of what it returned (:func:`quality`). Without
    ``build_s`` the budget is checked on bytes and latency only."""
    b = index_bytes(engine, n, ids)
    run = run_queries(engine, list(queries), k, encoder_in_latency=budget.encoder_in_latency)
    return _result(name, b, run, relevant, budget, build_s)


def _result(name: str, b: dict, run: dict, relevant: Sequence[int], budget: Budget,
            build_s: float | None) -> Result:
    q = quality(run["ids"], relevant)
    lat = p99(run["ms"])
    bpv = b["bytes_per_vector"]
    ok = budget.holds(bpv, lat, 0.0 if build_s is None else build_s)
    return Result(name, float(q["ndcg@10"].mean()), float(q["recall@100"].mean()), bpv, lat,
                  build_s, ok, len(relevant), [float(v) for v in q["ndcg@10"]],
                  int(b["shared_bytes"]), p99(run["encode_ms"]))


# --------------------------------------------------------------------------- baselines
def topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest scores, best first (ties: lower position first)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = min(int(k), scores.shape[0])
    part = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(k)
    return part[np.lexsort((part, -scores[part]))]


def _check_docs(docs: Any) -> None:
    if not (hasattr(docs, "columns") and {"article_id", "text"} <= set(docs.columns)):
        raise TypeError("docs must be a DataFrame with columns article_id and text "
                        f"(capstone.corpus()), got {type(docs).__name__}")
    if len(docs) == 0:
        raise ValueError("docs must hold at least one article")


def _pad(rows: np.ndarray, k: int) -> np.ndarray:
    """Article ids padded with -1 to ``k`` columns (a corpus smaller than k)."""
    if rows.shape[1] >= k:
        return rows[:, :k]
    return np.hstack([rows, np.full((rows.shape[0], k - rows.shape[1]), -1, dtype=rows.dtype)])


class BM25Engine:
    """BM25 (Robertson and Zaragoza 2009) over whole articles, with the course's tokeniser and
    ``bm25s``'s sparse score matrix (every (word, document) weight is stored: the index is the
    postings, far more than a vector's bytes)."""

    def __init__(self, docs, k1: float = 1.5, b: float = 0.75) -> None:
        import bm25s

        from embedlab.text import tokenize

        _check_docs(docs)
        self.ids = docs.article_id.to_numpy(np.int64)
        tokens = [tokenize(t) for t in docs.text]
        self.vocab: dict[str, int] = {}
        for toks in tokens:
            for t in toks:
                self.vocab.setdefault(t, len(self.vocab))
        self.retriever = bm25s.BM25(k1=k1, b=b)
        self.retriever.index(bm25s.tokenization.Tokenized(
            ids=[[self.vocab[t] for t in toks] for toks in tokens], vocab=self.vocab),
            show_progress=False)

    def search(self, queries: Sequence[str], k: int) -> np.ndarray:
        from embedlab.text import tokenize

        out = np.empty((len(queries), min(k, len(self.ids))), dtype=np.int64)
        for i, q in enumerate(queries):
            toks = [t for t in tokenize(q) if t in self.vocab]
            s = (self.retriever.get_scores(toks) if toks
                 else np.zeros(len(self.ids), dtype=np.float32))
            out[i] = self.ids[topk(np.asarray(s), out.shape[1])]
        return _pad(out, k)


class FlatEngine:
    """Frozen all-MiniLM-L6-v2: articles cut to ``max_chars`` and embedded once, float32, exact
    inner-product search; each query is embedded when it arrives (384 x 4 bytes per vector:
    the reference over budget)."""

    def __init__(self, docs, max_chars: int | None = 1000, model=None,
                 vectors: np.ndarray | None = None) -> None:
        from embedlab.encoders import embed_cached, load_minilm
        from embedlab.tasks import truncate_text

        _check_docs(docs)
        self.ids = docs.article_id.to_numpy(np.int64)
        self.model = model if model is not None else load_minilm("cpu")
        if vectors is None:
            vectors = embed_cached([truncate_text(t, max_chars) for t in docs.text],
                                   model=self.model, show_progress_bar=False)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def encode(self, queries: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.encode(list(queries), convert_to_numpy=True,
                                            normalize_embeddings=True, show_progress_bar=False),
                          dtype=np.float32)

    def search(self, queries: Sequence[str], k: int) -> np.ndarray:
        scores = self.encode(queries) @ self.vectors.T
        return _pad(np.stack([self.ids[topk(s, k)] for s in scores]), k)


class PQEngine:
    """Frozen MiniLM and product quantisation (Jegou, Douze and Schmid 2011): ``m`` sub-vectors
    of 8-bit codes, ``m`` bytes per vector, scored by asymmetric distance (ADC) against the
    float query; nothing is re-ranked."""

    def __init__(self, docs, m: int = 64, max_chars: int | None = 1000, model=None,
                 vectors: np.ndarray | None = None, seed: int = 0, niter: int = 10) -> None:
        from embedlab.index import PQIndex

        flat = FlatEngine(docs, max_chars=max_chars, model=model, vectors=vectors)
        self.ids, self.model = flat.ids, flat.model
        self.index = PQIndex(flat.vectors.shape[1], m=m, nbits=8, metric="ip", seed=seed,
                             niter=niter)
        self.index.train(flat.vectors)
        self.index.add(flat.vectors)
        self.encode = flat.encode

    def search(self, queries: Sequence[str], k: int) -> np.ndarray:
        _, idx = self.index.search(self.encode(queries), min(k, len(self.ids)))
        return _pad(np.where(idx >= 0, self.ids[np.maximum(idx, 0)], -1), k)


BASELINE_VERSION = 1


def baselines(docs, queries: Sequence[str], relevant: Sequence[int], profile: str = "standard",
              model=None) -> list[Result]:
    """The three baselines on ``queries``: BM25, frozen MiniLM with exact float32 search (over
    budget, for reference), and frozen MiniLM with 64-byte PQ codes. Their vectors come from
    the data cache, so no build time is measured for them (``build_s`` is None)."""
    from embedlab.profiles import sizes

    S = sizes("20", profile)
    budget = Budget.of(profile)
    ids = docs.article_id.to_numpy(np.int64)
    m = int(budget.max_bytes_per_vector)
    flat = FlatEngine(docs, max_chars=S["max_chars"], model=model)
    pq = PQEngine(docs, m=m, model=flat.model, vectors=flat.vectors)
    engines = [("BM25", BM25Engine(docs)), ("MiniLM frozen + flat float32", flat),
               (f"MiniLM frozen + PQ {m} B", pq)]
    return [measure(name, e, queries, relevant, len(docs), budget, ids=ids)
            for name, e in engines]


# --------------------------------------------------------------------------- the scorer
UNANSWERED = ("not answered yet: `build` in the cell tagged 'capstone' raises "
              "NotImplementedError. Write your engine there (and its design note), then run "
              "`embedlab capstone score` again.")


def read_notebook(path: str | os.PathLike) -> Any:
    """The notebook at ``path``, or a ``ScoreError`` (status 2) naming the problem and the fix."""
    from embedlab.grading import load_notebook

    p = Path(path)
    fix = "give the path of your capstone notebook, e.g. exercises/20_capstone.ipynb"
    if not p.exists():
        raise ScoreError(f"{p}: no such file; {fix}", 2)
    if p.is_dir():
        raise ScoreError(f"{p} is a folder, not a notebook; {fix}", 2)
    try:
        return load_notebook(p)
    except (OSError, UnicodeDecodeError) as exc:
        raise ScoreError(f"{p} cannot be read ({exc.__class__.__name__}: {exc}); check its "
                         "permissions, or rebuild it with `embedlab exercises build`", 2) from None
    except Exception as exc:  # JSON that breaks, or JSON that is not an nbformat 4 notebook
        raise ScoreError(f"{p} is not a readable notebook ({exc.__class__.__name__}); open it "
                         "in JupyterLab and save it again, or rebuild it with `embedlab exercises "
                         "build`", 2) from None


def capstone_cells(nb: Any, path: str | os.PathLike = "notebook") -> list[tuple[int, str]]:
    """``(cell number, source)`` of the code cells the scorer runs: every code cell up to and
    including the one tagged ``capstone``, except checks cells; IPython magics are dropped."""
    from embedlab.grading import _runnable

    cells, found = [], False
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if "checks" not in tags:
            cells.append((i, _runnable(cell.source)))
        if CAPSTONE_TAG in tags:
            found = True
            break
    if not found:
        raise ScoreError(f"{path} has no code cell tagged '{CAPSTONE_TAG}' (the cell that "
                         "defines build); restore the tag from exercises/20_capstone.ipynb", 2)
    return cells


def _unanswered(exc: BaseException) -> bool:
    return isinstance(exc, NotImplementedError) or "NotImplementedError" in (
        f"{type(exc).__name__}: {exc} {getattr(exc, 'message', '')}")


def _has_search(engine: Any) -> str:
    """Trusted check in the child: '' when ``engine.search`` is callable, else what is wrong."""
    if not callable(getattr(engine, "search", None)):
        return f"build returned a {type(engine).__name__}, which has no search(query_texts, k)"
    return ""


def child_env(profile: str, scratch: Path, cold: bool = True) -> dict[str, str]:
    """The child's environment: the profile, no progress bars, offline, and with ``cold`` an
    empty data cache (only the downloaded files linked in), so the build starts from nothing."""
    from embedlab import data

    env = {"EMBEDLAB_PROFILE": profile, "TQDM_DISABLE": "1", "EMBEDLAB_STATIC": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           # anything that tries the network through a proxy-aware client fails at once
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "ALL_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    if cold:
        cache = scratch / "data"
        cache.mkdir(parents=True, exist_ok=True)
        downloads = data.cache_dir() / "downloads"
        if downloads.exists():
            (cache / "downloads").symlink_to(downloads.resolve(), target_is_directory=True)
        env["EMBEDLAB_DATA"] = str(cache)
    return env


def _child_run(path: Path, profile: str, docs, queries: list[str], log: Any,
               cold: bool) -> tuple[dict, dict, float, float]:
    """Build the learner's engine in a sandboxed child and measure it there."""
    import tempfile

    from embedlab.profiles import sizes
    from embedlab.sandbox import Sandbox

    S = sizes("20", profile)
    cells = capstone_cells(read_notebook(path), path)
    n = len(docs)
    with tempfile.TemporaryDirectory(prefix="embedlab-capstone-") as scratch:
        env = child_env(profile, Path(scratch), cold=cold)
        with Sandbox(timeout=float(S["timeout_s"]), memory_gb=float(S["memory_gb"]), refuse=(),
                     threads=int(S["build_threads"]), cwd=str(path.resolve().parent),
                     env=env) as sb:
            log(f"building: {len(cells)} code cells of {path}, then build(corpus) on "
                f"{n:,} articles ({'empty' if cold else 'warm'} data cache, "
                f"{S['build_threads']} threads)")
            t0 = time.perf_counter()
            where = "starting"
            try:
                cpu0 = float(sb.call("time:process_time"))
                for i, src in cells:
                    where = f"cell {i}"
                    sb.run(src, name=f"<{path.name} cell {i}>")
                if not sb.has("build"):
                    raise ScoreError(f"the cell tagged '{CAPSTONE_TAG}' never defines `build`; "
                                     "define build(corpus) there", 1)
                where = "build(corpus)"
                engine = sb.get("build")(docs)
                wall_s = time.perf_counter() - t0
                build_s = (float(sb.call("time:process_time")) - cpu0) / int(S["build_threads"])
                where = "checking the engine"
                problem = sb.call("embedlab.capstone:_has_search", engine)
                if problem:
                    raise ScoreError(problem, 1)
                where = "counting the index's bytes"
                b = sb.call("embedlab.capstone:index_bytes", engine, n,
                            docs.article_id.to_numpy(np.int64))
                where = "running the sealed queries"
                log(f"searching: {len(queries)} sealed queries, one at a time, one thread")
                run = sb.call("embedlab.capstone:run_queries", engine, queries, S["k"],
                              encoder_in_latency=bool(S["encoder_in_latency"]))
            except ScoreError:
                raise
            except Exception as exc:  # the learner's code failed, or the child died
                if _unanswered(exc):
                    raise ScoreError(UNANSWERED, 1) from None
                kind = getattr(exc, "kind", type(exc).__name__)
                tail = "\n".join(f"    {ln}" for ln in sb.log_tail(12))
                msg = str(getattr(exc, "message", exc)).strip().splitlines()
                raise ScoreError(f"{path}: {where} failed ({kind}): "
                                 f"{msg[-1] if msg else ''}" + (f"\n  its output:\n{tail}"
                                                               if tail else ""), 1) from None
    return b, run, build_s, wall_s


def _fingerprint(*parts: Any) -> str:
    return _sha(json.dumps(parts, sort_keys=True, default=str))[:16]


def cached_baselines(docs, queries: list[str], relevant: list[int], profile: str,
                     out_dir: Path, log: Any = print) -> list[Result]:
    """:func:`baselines`, kept in ``out_dir/baselines-PROFILE.json`` for the same corpus,
    queries and profile, so a second scoring does not rebuild them."""
    from embedlab.profiles import sizes

    key = _fingerprint(BASELINE_VERSION, profile, sizes("20", profile),
                       docs.article_id.tolist(), relevant, [_sha(q) for q in queries])
    path = out_dir / f"baselines-{profile}.json"
    if path.exists():
        try:
            saved = json.loads(path.read_text())
            if saved.get("key") == key:
                return [Result(**r) for r in saved["results"]]
        except (ValueError, TypeError, KeyError):
            pass
    log("baselines: BM25, MiniLM flat float32 and MiniLM + PQ (MiniLM embeds the corpus once; "
        "it is cached afterwards)")
    results = baselines(docs, queries, relevant, profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "results": [asdict(r) for r in results]}))
    return results


def table(rows: list[Result], budget: Budget) -> str:
    """A plain-text table of results, the budget on its last line."""
    head = (f"{'system':<34} {'ndcg@10':>8} {'recall@100':>10} {'bytes/vector':>12} "
            f"{'p99_ms':>8} {'build_s':>8}  {'within_budget':<13} {'embed_p99_ms':>12} "
            f"{'build_wall_s':>12}")
    lines = [head, "-" * len(head)]
    for r in rows:
        bpv = "n/a" if r.bytes_per_vector is None else f"{r.bytes_per_vector:.1f}"
        build = "-" if r.build_s is None else f"{r.build_s:.1f}"
        wall = "-" if r.build_wall_s is None else f"{r.build_wall_s:.1f}"
        lines.append(f"{r.name[:34]:<34} {r.ndcg10:>8.4f} {r.recall100:>10.4f} {bpv:>12} "
                     f"{r.p99_ms:>8.2f} {build:>8}  {r.within_budget!s:<13} "
                     f"{r.encode_p99_ms:>12.2f} {wall:>12}")
    lines.append("-" * len(head))
    limits = [f"<= {v:g}" for v in (budget.max_bytes_per_vector, budget.max_p99_ms,
                                     budget.max_build_s)]
    lines.append(f"{'budget':<34} {'':>8} {'':>10} {limits[0]:>12} {limits[1]:>8} "
                 f"{limits[2]:>8}")
    return "\n".join(lines)


def append_history(entry: dict, path: Path) -> list[dict]:
    """Append one run to the JSON list at ``path`` (created when missing); returns the list."""
    runs: list[dict] = []
    if path.exists():
        try:
            runs = json.loads(path.read_text())
            if not isinstance(runs, list):
                runs = []
        except ValueError:
            runs = []
    runs.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(runs, indent=1))
    tmp.replace(path)
    return runs


def plot_history(runs: list[dict], path: Path) -> Path:
    """nDCG@10 of the scored runs of the latest run's profile in time order, one line per
    notebook (filled markers within budget, hollow over it), with the latest baselines as dashed
    lines; saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = [r for r in runs if r.get("profile") == runs[-1].get("profile")]   # one profile
    fig, ax = plt.subplots(figsize=(7, 4))
    for nb in sorted({r["notebook"] for r in runs}):
        mine = [(i, r) for i, r in enumerate(runs, 1) if r["notebook"] == nb]
        xs = [i for i, _ in mine]
        ax.plot(xs, [r["ndcg@10"] for _, r in mine], "-", color="C0", alpha=0.5)
        for i, r in mine:
            ax.plot(i, r["ndcg@10"], "o", color="C0",
                    markerfacecolor="C0" if r["within_budget"] else "white")
        ax.annotate(Path(nb).name, (xs[-1], mine[-1][1]["ndcg@10"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    last = runs[-1].get("baselines", {})
    for j, (name, value) in enumerate(last.items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{j + 1}", label=name)
    ax.plot([], [], "o", color="C0", label="your runs (filled: within budget)")
    ax.set_title(f"Capstone runs on the sealed queries ({runs[-1]['profile']} profile)")
    ax.set_xlabel("run number, in time order")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(x=0.15)                                     # room for the notebooks' names
    ax.set_ylabel("nDCG@10")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def score(path: str | os.PathLike, profile: str | None = None,
          out_dir: str | os.PathLike = HISTORY.parent, with_baselines: bool = True,
          cold: bool = True, log: Any = print) -> dict[str, Any]:
    """Score a capstone notebook on the sealed queries (``embedlab capstone score PATH``).

    Builds the engine in a sandboxed child (:func:`_child_run`), scores it, compares it with the
    baselines, appends the run to ``out_dir/history.json`` and redraws ``out_dir/history.png``.
    Returns ``{"result", "baselines", "table", "line", "difference"}``; raises ``ScoreError``
    (with the exit status) when the notebook cannot be scored.
    """
    from embedlab import data
    from embedlab.profiles import profile_from_env

    path = Path(path)
    profile = profile or profile_from_env(default="standard")
    read_notebook(path)                                   # a bad path fails before anything else
    budget = Budget.of(profile)
    docs = corpus(profile)
    with data._open_seal():
        sealed = sealed_queries(profile)
    queries, relevant = sealed.title.tolist(), sealed.article_id.astype(int).tolist()
    b, run, build_s, wall_s = _child_run(path, profile, docs, queries, log, cold)
    known = set(docs.article_id.tolist()) | {-1}
    bad = sorted(set(np.unique(run["ids"]).tolist()) - known)
    if bad:
        raise ScoreError(f"search returned ids that are not article ids of the corpus "
                         f"(e.g. {bad[0]}); return corpus.article_id values", 1)
    mine = _result(f"{path.name}", b, run, relevant, budget, build_s)
    mine.build_wall_s = wall_s
    if b["opaque"]:
        log("bytes/vector: n/a: the index keeps its data where the scorer cannot read it "
            f"({'; '.join(b['opaque'][:3])}); keep codes and vectors in numpy arrays")
    base = cached_baselines(docs, queries, relevant, profile, Path(out_dir), log) \
        if with_baselines else []
    out: dict[str, Any] = {"result": mine, "baselines": base, "line": mine.line(),
                           "table": table([mine, *base], budget), "difference": None,
                           "bytes": b}
    if base:
        from embedlab.stats import paired_bootstrap

        out["difference"] = paired_bootstrap(mine.per_query_ndcg10, base[-1].per_query_ndcg10)
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "notebook": str(path),
             "profile": profile, "ndcg@10": mine.ndcg10, "recall@100": mine.recall100,
             "bytes_per_vector": mine.bytes_per_vector, "p99_ms": mine.p99_ms,
             "build_s": mine.build_s, "build_wall_s": wall_s,
             "within_budget": mine.within_budget,
             "n_queries": mine.n_queries, "cold_cache": cold,
             "baselines": {r.name: r.ndcg10 for r in base}}
    runs = append_history(entry, Path(out_dir) / "history.json")
    out["plot"] = plot_history(runs, Path(out_dir) / "history.png")
    return out


def main_score(path: str, profile: str | None = None, out_dir: str = str(HISTORY.parent),
               with_baselines: bool = True, cold: bool = True) -> int:
    """What ``embedlab capstone score PATH`` does: print the line and the table; the exit
    status (0 scored, 1 not answered or failed, 2 no readable notebook)."""
    try:
        res = score(path, profile, out_dir, with_baselines, cold,
                    log=lambda m: print(m, file=sys.stderr, flush=True))
    except ScoreError as exc:
        print(f"embedlab capstone: {exc}", file=sys.stderr)
        return exc.status
    print(res["line"])
    print()
    print(res["table"])
    if res["difference"] is not None:
        d = res["difference"]
        print(f"\nnDCG@10 minus {res['baselines'][-1].name}: {d.fmt(signed=True)} "
              f"(paired bootstrap, 95%, {res['result'].n_queries} sealed queries)")
    print(f"history: {Path(out_dir) / 'history.json'}; plot: {res['plot']}")
    return 0
