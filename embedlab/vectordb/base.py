"""The rules every engine adapter shares: the checks, the distance convention, the base class.

One thin adapter per engine, all with the same five operations::

    store = PgVectorStore(dsn=...).create(dim, metric="cosine")
    store.upsert(ids, vectors, {"source": [...], "date": [...]})    # insert or replace
    store.delete(ids)
    D, I = store.search(q, k, where={"source": "bbc", "date": (">=", 20170201)})
    store.close()

Each adapter translates those calls into the engine's own API (SQL for pgvector and sqlite-vec,
client calls for Milvus, Qdrant and LanceDB, index calls for faiss) and does nothing the engine
does not. Everything is checked here, before anything is written: a wrong dimension, NaN or inf,
k < 1, an unknown metric or field, and, under the cosine metric, the zero vector, whose cosine
``x.y / (|x| |y|)`` is ``0 / 0``. Left to the engines, a zero vector gets four different outcomes
(a NaN distance, a distance of 1, a row that vanishes from the results, arbitrary ids), so every
adapter refuses it with the same ``ValueError``.

Conventions shared by every adapter, so results compare across engines:

* ``D`` is a distance, smaller is nearer: ``1 - cos`` (cosine), Euclidean distance (l2, not
  squared), ``-q.x`` (ip); ``I`` holds the ids; ``-1`` / ``inf`` pad a short answer;
* **k real ids**: a search returns ``k`` ids whenever the collection (or the rows that pass the
  filter) holds ``k`` rows. An ANN index can come back short (pgvector's HNSW stops at
  ``ef_search`` candidates, a filtered graph walk runs out of matching rows); each ANN adapter
  then widens its own search or re-runs the short rows exactly, and ``fallbacks`` counts the
  query rows that needed it in the last call;
* payload fields are declared once (``fields={"source": str, "date": int}`` by default): text
  fields take equality filters, integer fields also ranges (dates as yyyymmdd);
* ``where`` is a dict ``field -> value`` (equality) or ``field -> (op, value)`` with op one of
  ``= != < <= > >=``; all conditions must hold (AND).

Hybrid search (``hybrid_search(text, vector, k, rrf_k=60)``, where the engine has full-text
search) fuses a lexical ranking and the vector ranking by reciprocal rank (Cormack, Clarke and
Buettcher 2009, "Reciprocal Rank Fusion outperforms Condorcet and individual Rank Learning
Methods"): ``RRF(d) = sum_r w_r / (k + rank_r(d))``, ranks from 1, ``k = 60`` in the paper. It
needs no calibration between a BM25 score and a cosine similarity, which live on different
scales. ``reciprocal_rank_fusion`` is the same rule in Python.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ENGINES = ("pgvector", "milvus", "qdrant", "lancedb", "sqlite-vec", "faiss")
METRICS = ("cosine", "l2", "ip")
OPS = ("=", "!=", "<", "<=", ">", ">=")
DEFAULT_FIELDS: dict[str, type] = {"source": str, "date": int}
#: The one message every adapter gives for a zero vector under the cosine metric.
ZERO_VECTOR = ("{name} row {row} is the zero vector: it has no direction, so its cosine distance "
               "to any vector is 0/0, undefined. Store and search nonzero vectors, or create the "
               "collection with metric='l2'")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WORD = re.compile(r"\w+", re.UNICODE)


def identifier(name: object, what: str) -> str:
    """``name`` if it is a plain SQL identifier (letters, digits, ``_``), else a ValueError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{what} must be a plain SQL identifier (letters, digits, _), "
                         f"got {name!r}")
    return name


def vectors(x: object, dim: int | None, name: str) -> np.ndarray:
    """``x`` as a float32 ``(n, dim)`` matrix (``embedlab.index.base.as_matrix``'s checks)."""
    from embedlab.index.base import as_matrix

    return as_matrix(x, dim, name)


def check_nonzero(x: np.ndarray, name: str) -> None:
    """Refuse a zero row (cosine metric): ``ValueError(ZERO_VECTOR)`` naming the first one."""
    zero = np.flatnonzero(~np.any(x != 0, axis=1))
    if zero.size:
        raise ValueError(ZERO_VECTOR.format(name=name, row=int(zero[0])))


def require(module: str, package: str, engine: str):
    """Import ``module`` or fail with an ImportError naming the package and the fix."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"the {engine} adapter needs the package {package!r} (import "
                          f"{module!r} failed: {exc}). Fix: .venv/bin/pip install {package} "
                          f"(the version pinned in requirements.lock), or `make setup`.") from exc


def distances(scores: object, metric: str, kind: str) -> np.ndarray:
    """Engine output -> the shared distance. ``kind`` says what the engine returned:
    ``"similarity"`` (cos or q.x, larger is nearer), ``"squared"`` (squared Euclidean) or
    ``"distance"`` (already the shared distance)."""
    s = np.asarray(scores, dtype=np.float64)
    if kind == "similarity":
        return 1.0 - s if metric == "cosine" else -s
    if kind == "squared":
        return np.sqrt(np.maximum(s, 0.0))
    return s


def dir_bytes(path: str | Path) -> int:
    """Bytes of the files under ``path`` (a file's own size if ``path`` is a file)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0


def text_terms(text: object) -> list[str]:
    """The distinct lowercase words of ``text``, in order: what a lexical query matches (any of
    them, as BM25 scores a query: an OR of its terms)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    seen: dict[str, None] = {}
    for w in _WORD.findall(text.lower()):
        seen.setdefault(w, None)
    return list(seen)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: float = 60.0,
                           weights: Sequence[float] | None = None,
                           top: int | None = None) -> list[tuple[int, float]]:
    """Fuse ranked id lists: ``score(d) = sum_r w_r / (k + rank_r(d))``, ranks from 1.

    An id missing from a list gets nothing from it. Returns ``(id, score)`` pairs, best first;
    ties go to the smaller id. ``top`` keeps only the first ``top``. Ids ``-1`` (faiss's "no
    result") are skipped.
    """
    if isinstance(rankings, (str, bytes)) or not isinstance(rankings, Sequence) or not rankings:
        raise TypeError("rankings must be a non-empty sequence of ranked id lists")
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not k >= 0:
        raise ValueError(f"k must be a number >= 0, got {k!r}")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"weights must have one entry per ranking ({len(rankings)}), "
                         f"got {len(weights)}")
    scores: dict[int, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        seen: set[int] = set()
        for rank, item in enumerate(np.asarray(ranking).ravel().tolist(), start=1):
            item = int(item)
            if item == -1 or item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + float(w) / (k + rank)
    fused = sorted(scores.items(), key=lambda t: (-t[1], t[0]))
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ValueError(f"top must be None or an integer >= 1, got {top!r}")
        fused = fused[:top]
    return fused


class VectorStore:
    """The five operations, with the checks every adapter shares; subclasses do the engine part.

    ``path`` is the folder (or file) the engine keeps its data in; ``fields`` the payload
    schema, name -> ``str`` or ``int``; ``text_field`` names a ``str`` field that also feeds the
    engine's full-text index (for ``hybrid_search``; engines without one ignore it). ``exact``
    says whether ``search`` is an exact scan. ``short_rows`` lists the query rows of the last
    ``search`` that the engine answered with fewer than ``k`` ids; an ANN adapter searches them
    again (``_complete``, unless ``complete_short`` is False) and ``fallbacks`` counts them.
    """

    engine = ""
    metrics: tuple[str, ...] = METRICS
    exact = True
    hybrid = False
    complete_short = True
    filter_plan = ""

    def __init__(self, path: str | Path | None = None, fields: dict[str, type] | None = None,
                 text_field: str | None = None) -> None:
        fields = dict(DEFAULT_FIELDS if fields is None else fields)
        for name, typ in fields.items():
            identifier(name, "field")
            if typ not in (str, int):
                raise TypeError(f"field {name!r} must be str or int, got {typ!r}")
            if name in ("id", "vector", "embedding", "distance", "tsv"):
                raise ValueError(f"field name {name!r} is reserved")
        if text_field is not None and fields.get(text_field) is not str:
            raise ValueError(f"text_field must name a str payload field of {list(fields)}, "
                             f"got {text_field!r}")
        self.path = None if path is None else Path(path)
        self.fields = fields
        self.text_field = text_field
        self.dim: int | None = None
        self.metric: str | None = None
        self.fallbacks = 0
        self.short_rows: list[int] = []

    # ------------------------------------------------------------------ checks
    def _check_metric(self, metric: object) -> str:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if metric not in self.metrics:
            raise ValueError(f"{self.engine} supports the metrics {self.metrics}, got {metric!r}")
        return str(metric)

    def _created(self) -> int:
        if self.dim is None:
            raise RuntimeError(f"call create(dim, metric) on the {self.engine} store first")
        return self.dim

    def _check_vectors(self, x: object, name: str) -> np.ndarray:
        arr = vectors(x, self._created(), name)
        if self.metric == "cosine":
            check_nonzero(arr, name)
        return arr

    def _check_ids(self, ids: object, n: int | None = None) -> list[int]:
        arr = np.asarray(ids).ravel() if not np.isscalar(ids) else np.asarray([ids])
        if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"ids must be integers, got dtype {arr.dtype}")
        out = [int(i) for i in arr]
        if any(i < 0 or i >= 2 ** 63 for i in out):
            raise ValueError("ids must be integers in 0 .. 2**63 - 1")
        if len(set(out)) != len(out):
            raise ValueError("ids must not repeat within one call")
        if n is not None and len(out) != n:
            raise ValueError(f"ids must give one id per vector row ({n}), got {len(out)}")
        return out

    def _check_payload(self, payload: object, n: int) -> dict[str, list]:
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise TypeError("payload must be a dict field -> sequence of values (one per row)")
        unknown = set(payload) - set(self.fields)
        if unknown:
            raise ValueError(f"unknown payload fields {sorted(unknown)}; the store has "
                             f"{list(self.fields)}")
        missing = [f for f in self.fields if f not in payload]
        if missing:
            raise ValueError(f"payload fields {missing} must be given (every row has them)")
        out = {}
        for name, typ in self.fields.items():
            values = list(payload[name])
            if len(values) != n:
                raise ValueError(f"payload field {name!r} must have {n} values, got {len(values)}")
            if typ is int:
                if any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                       for v in values):
                    raise TypeError(f"payload field {name!r} holds integers")
                values = [int(v) for v in values]
            elif any(not isinstance(v, str) for v in values):
                raise TypeError(f"payload field {name!r} holds strings")
            out[name] = values
        return out

    def _check_where(self, where: object) -> list[tuple[str, str, Any]]:
        if where is None:
            return []
        if not isinstance(where, dict):
            raise TypeError("where must be None or a dict field -> value or (op, value)")
        conds = []
        for name, cond in where.items():
            if name not in self.fields:
                raise ValueError(f"can filter only on the payload fields {list(self.fields)}, "
                                 f"got {name!r}")
            op, value = cond if isinstance(cond, tuple) else ("=", cond)
            if op not in OPS:
                raise ValueError(f"filter operator must be one of {' '.join(OPS)}, got {op!r}")
            typ = self.fields[name]
            if typ is int:
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                    raise TypeError(f"field {name!r} is an integer field, got {value!r}")
                value = int(value)
            else:
                if not isinstance(value, str):
                    raise TypeError(f"field {name!r} is a text field, got {value!r}")
                if op not in ("=", "!="):
                    raise ValueError(f"text field {name!r} takes = or != only (ranges are for "
                                     f"integer fields), got {op!r}")
            conds.append((name, op, value))
        return conds

    def _check_k(self, k: object) -> int:
        from embedlab.index.base import check_int

        return check_int(k, "k", high=4096)

    # ------------------------------------------------------------------ the five operations
    def create(self, dim: int, metric: str = "cosine") -> VectorStore:
        """Create (or replace) the collection: ``dim``-d vectors compared by ``metric``."""
        from embedlab.index.base import check_int

        dim = check_int(dim, "dim", high=16_000)
        metric = self._check_metric(metric)
        self._create(dim, metric)
        self.dim, self.metric = dim, metric
        return self

    def attach(self, dim: int, metric: str = "cosine") -> VectorStore:
        """Use a collection that ``create`` made earlier (in this or another process)."""
        from embedlab.index.base import check_int

        self.dim, self.metric = check_int(dim, "dim", high=16_000), self._check_metric(metric)
        return self

    def upsert(self, ids: object, vectors: object, payload: dict | None = None) -> None:
        """Insert rows, replacing any row with the same id (vector and payload)."""
        x = self._check_vectors(vectors, "vectors")
        ids = self._check_ids(ids, x.shape[0])
        self._upsert(ids, x, self._check_payload(payload, x.shape[0]))

    def delete(self, ids: object) -> None:
        """Remove the rows with these ids (ids that are absent are ignored)."""
        self._created()
        ids = self._check_ids(ids)
        if ids:
            self._delete(ids)

    def search(self, q: object, k: int, where: dict | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """``(D, I)``, each (n_queries, k): the k nearest rows that match ``where``.

        A row comes back with fewer than ``k`` ids only when fewer than ``k`` rows match: an
        ANN adapter completes a short answer itself (``fallbacks`` counts those rows).
        """
        queries = self._check_vectors(q, "q")
        k = self._check_k(k)
        conds = self._check_where(where)
        found = list(self._search(queries, k, conds))
        self.short_rows = [r for r, (_, i) in enumerate(found) if len(i) < k]
        self.fallbacks = 0
        if self.short_rows and not self.exact and self.complete_short:
            redo = self._complete(queries[self.short_rows], k, conds)
            for r, got in zip(self.short_rows, redo, strict=True):
                found[r] = got
                self.fallbacks += 1
        dist = np.full((queries.shape[0], k), np.inf, dtype=np.float32)
        ids = np.full((queries.shape[0], k), -1, dtype=np.int64)
        for row, (d, i) in enumerate(found):
            n = min(k, len(i))
            d64 = np.asarray(d, dtype=np.float64)[:n]
            order = np.argsort(d64, kind="stable")
            dist[row, :n] = d64[order]
            ids[row, :n] = np.asarray(i, dtype=np.int64)[:n][order]
        return dist, ids

    def hybrid_search(self, text: str, vector: object, k: int, rrf_k: float = 60.0,
                      depth: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Lexical and vector search fused by reciprocal rank inside the engine.

        ``text`` is matched against ``text_field`` (any of its words), ``vector`` ranks by the
        metric; each side contributes its best ``depth`` rows (``max(k, 100)`` by default) and
        the fused score is ``1 / (rrf_k + rank_lexical) + 1 / (rrf_k + rank_vector)``. Returns
        ``(scores, ids)``, each of length ``k``, best first, ``-1`` padding.
        """
        if not self.hybrid:
            raise NotImplementedError(f"{self.engine} has no full-text search here; "
                                      f"hybrid_search runs on pgvector, sqlite-vec and lancedb")
        if self.text_field is None:
            raise ValueError(f"hybrid_search needs a text_field: open the {self.engine} store "
                             f"with text_field='<a str payload field>' before create()")
        terms = text_terms(text)
        qv = self._check_vectors(vector, "vector")
        if qv.shape[0] != 1:
            raise ValueError(f"vector must be one query vector, got {qv.shape[0]} rows")
        k = self._check_k(k)
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, (int, float)) or not rrf_k >= 0:
            raise ValueError(f"rrf_k must be a number >= 0, got {rrf_k!r}")
        from embedlab.index.base import check_int

        depth = max(k, 100) if depth is None else check_int(depth, "depth", high=4096)
        fused = self._hybrid(text, terms, qv[0], k, float(rrf_k), max(depth, k))
        scores = np.zeros(k, dtype=np.float64)
        ids = np.full(k, -1, dtype=np.int64)
        for j, (i, s) in enumerate(fused[:k]):
            ids[j], scores[j] = int(i), float(s)
        return scores, ids

    def build_index(self) -> float:
        """Build the engine's ANN index (if it has one); returns the seconds it took."""
        self._created()
        t0 = time.perf_counter()
        self._build_index()
        return time.perf_counter() - t0

    def disk_bytes(self) -> int | float:
        """Bytes the collection takes on disk (table, index and engine files)."""
        return dir_bytes(self.path) if self.path is not None else 0

    def close(self) -> None:
        """Release the engine (connections, files, servers this store started)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ engine parts
    def _create(self, dim: int, metric: str) -> None:
        raise NotImplementedError

    def _upsert(self, ids: list[int], x: np.ndarray, payload: dict[str, list]) -> None:
        raise NotImplementedError

    def _delete(self, ids: list[int]) -> None:
        raise NotImplementedError

    def _search(self, q: np.ndarray, k: int, conds: list) -> Iterable[tuple[Any, Any]]:
        """One ``(distances, ids)`` per query row (any order; ``search`` sorts them)."""
        raise NotImplementedError

    def _complete(self, q: np.ndarray, k: int, conds: list) -> Iterable[tuple[Any, Any]]:
        """ANN engines: the rows ``_search`` answered short, searched again so that they hold
        ``k`` ids whenever ``k`` rows match (a wider walk or an exact scan)."""
        return self._search(q, k, conds)

    def _hybrid(self, text: str, terms: list[str], v: np.ndarray, k: int, rrf_k: float,
                depth: int) -> list[tuple[int, float]]:
        raise NotImplementedError

    def _build_index(self) -> None:
        pass
