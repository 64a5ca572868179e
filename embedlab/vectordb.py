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
    "SqliteVecStore",
    "connect_sqlite_vec",
    "lance_build_ivfpq",
    "lance_search",
    "lance_table",
    "reciprocal_rank_fusion",
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
