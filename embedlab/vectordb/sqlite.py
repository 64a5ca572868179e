"""sqlite-vec: vectors in a SQLite file, searched exactly in SQL, with FTS5 for full-text search.

sqlite-vec (Alex Garcia) adds a ``vec0`` virtual table to SQLite: one row per item, a
``float[d]`` embedding column, metadata columns that can be filtered inside the k-NN query, and
auxiliary columns carried along. Its k-NN is an exact scan (``WHERE embedding MATCH ? AND k = ?``,
the filter applied to the rows as they are scanned: an exact pre-filter), so its top k must
equal brute force. We open SQLite through apsw because the standard library's ``sqlite3``
cannot load extensions on every Python build. Everything SQL gives comes free: joins with
ordinary tables, transactions (a rolled-back insert leaves no trace), and a single file that
survives the process.

Two classes: ``SqliteVecStore``, the plain table with SQL written out (chapter 12 starts
there), and ``SqliteVecAdapter``, the engine adapter with the five shared operations. With
``text_field``, the adapter keeps an FTS5 table (SQLite's full-text index, ranked by its
built-in ``bm25()``, Robertson and Zaragoza 2009) in step with the vectors, inside the same
transactions, and ``hybrid_search`` fuses FTS5's ranking and the ``vec0`` k-NN by reciprocal
rank in one SQL statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.vectordb.base import VectorStore, dir_bytes, identifier, require, vectors


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
        if metric not in ("cosine", "l2"):
            raise ValueError(f"metric must be one of ('cosine', 'l2'), got {metric!r}")
        self.metric, self.table = metric, identifier(table, "table")
        self.metadata = tuple(identifier(c, "metadata column") for c in metadata)
        self.extra = tuple(identifier(c, "extra column") for c in extra)
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
        x = vectors(embeddings, None, "embeddings")
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

        q = vectors(queries, self.dim, "queries")
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


class SqliteVecAdapter(VectorStore):
    """sqlite-vec's ``vec0`` table in a SQLite file (through apsw): exact k-NN in SQL.

    Payload fields are ``vec0`` metadata columns, so filters run inside the k-NN query. An
    upsert is ``DELETE`` + ``INSERT`` in one transaction (``vec0`` has no ``ON CONFLICT``). The
    file uses SQLite's default rollback journal: a transaction copies each page it changes to
    ``<file>-journal`` first, and a journal left behind by a killed process (a *hot* journal)
    is rolled back by the next connection.
    """

    engine = "sqlite-vec"
    metrics = ("cosine", "l2")
    exact = True
    filter_plan = "exact vec0 scan, the filter checked on each row it scans"
    hybrid = True

    def __init__(self, path: str | Path, fields: dict[str, type] | None = None,
                 table: str = "items", text_field: str | None = None) -> None:
        super().__init__(path, fields, text_field)
        require("apsw", "apsw", "sqlite-vec")
        require("sqlite_vec", "sqlite-vec", "sqlite-vec")
        self.table = identifier(table, "table")
        self.fts = f"{self.table}_fts"
        self.conn = connect_sqlite_vec(self.path)

    def _create(self, dim: int, metric: str) -> None:
        cols = "".join(f", {n} {'integer' if t is int else 'text'}"
                       for n, t in self.fields.items())
        with self.conn:
            self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")
            self.conn.execute(f"DROP TABLE IF EXISTS {self.fts}")
            self.conn.execute(f"CREATE VIRTUAL TABLE {self.table} USING vec0(id integer primary "
                              f"key, embedding float[{dim}] distance_metric={metric}{cols})")
            if self.text_field is not None:
                self.conn.execute(f"CREATE VIRTUAL TABLE {self.fts} USING fts5(body, "
                                  f"tokenize='porter unicode61')")

    def _upsert(self, ids, x, payload) -> None:
        names = ["id", "embedding", *self.fields]
        with self.conn:
            self._delete(ids)
            self.conn.executemany(
                f"INSERT INTO {self.table}({', '.join(names)}) VALUES "
                f"({', '.join('?' * len(names))})",
                ((i, x[j].tobytes(), *(payload[f][j] for f in self.fields))
                 for j, i in enumerate(ids)))
            if self.text_field is not None:
                text = payload[self.text_field]
                self.conn.executemany(f"INSERT INTO {self.fts}(rowid, body) VALUES (?, ?)",
                                      ((i, text[j]) for j, i in enumerate(ids)))

    def _delete(self, ids) -> None:
        with self.conn:
            for a in range(0, len(ids), 500):
                part = ids[a:a + 500]
                marks = ", ".join("?" * len(part))
                self.conn.execute(f"DELETE FROM {self.table} WHERE id IN ({marks})", part)
                if self.text_field is not None:
                    self.conn.execute(f"DELETE FROM {self.fts} WHERE rowid IN ({marks})", part)

    def _search(self, q, k, conds):
        clause = "".join(f" AND {n} {op} ?" for n, op, _ in conds)
        sql = (f"SELECT id, distance FROM {self.table} WHERE embedding MATCH ? AND k = ?"
               f"{clause} ORDER BY distance")
        params = [v for *_, v in conds]
        for row in q:
            hits = self.conn.execute(sql, (row.tobytes(), k, *params)).fetchall()
            yield np.array([h[1] for h in hits], dtype=np.float64), [h[0] for h in hits]

    def hybrid_sql(self, lexical: bool = True) -> str:
        """The one statement ``hybrid_search`` runs: the ``vec0`` top ``depth`` and the FTS5
        top ``depth`` (ranked by ``bm25()``, FTS5's ``rank``), each numbered by rank, and their
        reciprocal ranks summed per id (``lexical=False``: no words to match, the vector side
        alone)."""
        lex = (f"SELECT rowid AS id, row_number() OVER (ORDER BY rank) AS r FROM {self.fts} "
               f"WHERE {self.fts} MATCH :match ORDER BY rank LIMIT :depth") if lexical else \
            "SELECT NULL AS id, NULL AS r WHERE 0"
        return f"""WITH vec AS (SELECT id, row_number() OVER (ORDER BY distance) AS r
             FROM {self.table} WHERE embedding MATCH :v AND k = :depth),
     lex AS ({lex}),
     ranks AS (SELECT id, r FROM vec UNION ALL SELECT id, r FROM lex)
SELECT id, sum(1.0 / (:rrf_k + r)) AS score FROM ranks
GROUP BY id ORDER BY score DESC, id LIMIT :k"""

    def _hybrid(self, text, terms, v, k, rrf_k, depth):
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = self.conn.execute(self.hybrid_sql(bool(terms)),
                                 {"v": v.tobytes(), "depth": depth, "match": match,
                                  "rrf_k": rrf_k, "k": k}).fetchall()
        return [(int(i), float(s)) for i, s in rows]

    def disk_bytes(self) -> int:
        return sum(dir_bytes(f"{self.path}{s}") for s in ("", "-wal", "-journal"))

    def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.close()
            self.conn = None
