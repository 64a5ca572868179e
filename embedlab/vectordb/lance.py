"""LanceDB: a table of Lance columnar files on disk, an IVF-PQ index, SQL filters, full-text search.

``LanceStore`` is the engine adapter; ``lance_table``, ``lance_build_ivfpq`` and
``lance_search`` are the same calls unwrapped, returning faiss-style ``(D, I)`` arrays.

``build_index()`` builds IVF-PQ (``nlist`` partitions, ``m`` sub-vectors of ``nbits`` bits; by
default ``sqrt(n)`` partitions and sub-vectors of 8 dimensions); searches probe ``nprobe``
partitions and re-rank ``refine_factor * k`` candidates with the stored float32 vectors. Filters
are SQL predicates evaluated **before** the vector search (``prefilter=True``): LanceDB computes
the rows that pass, then searches the probed partitions among them. When the probed partitions
hold fewer than ``k`` matching rows the answer comes back short; the adapter then re-runs that
query with ``bypass_vector_index()``, a flat scan of the matching rows (exact).

``hybrid_search`` (with ``text_field``) uses LanceDB's own full-text index (``FTS``: BM25 over
tokens that are lower-cased, stemmed and stripped of English stop words, built on disk, no
network) and its hybrid query, whose ``RRFReranker`` fuses the two lists by reciprocal rank.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.vectordb.base import VectorStore, identifier, require, vectors

os.environ.setdefault("LANCEDB_LOG", "error")   # LanceDB's Rust logger: errors only


def lance_table(path: str | Path, name: str, vectors_: object, **columns: Sequence[Any]):
    """A LanceDB table ``name`` in the database folder ``path``: an ``id`` column (0..n-1),
    a ``vector`` column (float32, fixed size) and any further ``columns``. Overwrites."""
    import lancedb
    import pyarrow as pa

    x = vectors(vectors_, None, "vectors")
    data = {"id": pa.array(np.arange(x.shape[0], dtype=np.int64)),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])}
    for c, v in columns.items():
        if len(v) != x.shape[0]:
            raise ValueError(f"column {c!r} must have {x.shape[0]} values, got {len(v)}")
        data[identifier(c, "column")] = pa.array(list(v))
    db = lancedb.connect(str(path))
    name = identifier(name, "name")
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

    q = vectors(queries, None, "queries")
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


class LanceStore(VectorStore):
    """A LanceDB table on disk: ``id``, ``vector`` (fixed-size float32) and the payload."""

    engine = "lancedb"
    exact = True
    hybrid = True
    _METRIC = {"cosine": ("cosine", "distance"), "l2": ("l2", "squared"),
               "ip": ("dot", "dot")}

    def __init__(self, path: str | Path, fields: dict[str, type] | None = None,
                 table: str = "items", nlist: int | None = None, m: int | None = None,
                 nbits: int = 8, nprobe: int = 16, refine_factor: int | None = 10,
                 text_field: str | None = None, complete_short: bool = True) -> None:
        super().__init__(path, fields, text_field)
        lancedb = require("lancedb", "lancedb", "lancedb")
        self.pa = require("pyarrow", "pyarrow", "lancedb")
        self.db = lancedb.connect(str(self.path))
        self.name = identifier(table, "table")
        self.nlist, self.m, self.nbits = nlist, m, int(nbits)
        self.nprobe, self.refine_factor = int(nprobe), refine_factor
        self.complete_short = bool(complete_short)
        self.table = None
        self._fts = False

    def _schema(self, dim: int):
        pa = self.pa
        return pa.schema([pa.field("id", pa.int64()),
                          pa.field("vector", pa.list_(pa.float32(), dim)),
                          *[pa.field(n, pa.int64() if t is int else pa.string())
                            for n, t in self.fields.items()]])

    def _create(self, dim: int, metric: str) -> None:
        self.table = self.db.create_table(self.name, schema=self._schema(dim), mode="overwrite")
        self.exact, self._fts = True, False

    def attach(self, dim: int, metric: str = "cosine") -> LanceStore:
        super().attach(dim, metric)
        self.table = self.db.open_table(self.name)
        self.exact = not self.table.list_indices()
        return self

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
        if self.text_field is not None:
            self._build_fts()

    def _build_fts(self) -> None:
        from lancedb.index import FTS

        self.table.create_index(self.text_field, config=FTS(), replace=True)
        self._fts = True

    @staticmethod
    def where_sql(conds) -> str:
        """``conds`` as a SQL predicate, text values quoted."""
        def lit(v):
            return "'" + v.replace("'", "''") + "'" if isinstance(v, str) else str(v)
        return " AND ".join(f"{n} {'<>' if op == '!=' else op} {lit(v)}" for n, op, v in conds)

    def _query(self, row, k, conds, exact: bool):
        metric = self._METRIC[self.metric][0]
        s = self.table.search(row, vector_column_name="vector").distance_type(metric).limit(k)
        if exact:
            s = s.bypass_vector_index()
        else:
            s = s.nprobes(self.nprobe)
            if self.refine_factor:
                s = s.refine_factor(int(self.refine_factor))
        clause = self.where_sql(conds)
        if clause:
            s = s.where(clause, prefilter=True)
        return s

    def _run(self, q, k, conds, exact: bool):
        kind = self._METRIC[self.metric][1]
        for row in q:
            res = self._query(row, k, conds, exact).select(["id", "_distance"]).to_arrow()
            d = res.column("_distance").to_numpy().astype(np.float64)
            if kind == "dot":                       # LanceDB's dot distance is 1 - q.x
                d = d - 1.0
            elif kind == "squared":
                d = np.sqrt(np.maximum(d, 0.0))
            yield d, res.column("id").to_numpy()

    def _search(self, q, k, conds):
        return self._run(q, k, conds, self.exact)

    def _complete(self, q, k, conds):
        return self._run(q, k, conds, True)

    def plan(self, q: object, k: int, where: dict | None = None) -> str:
        """What LanceDB runs for one query, named from its ``explain_plan``: the IVF partitions
        it probes (or a flat scan) and where the filter goes."""
        row = self._check_vectors(q, "q")[0]
        conds = self._check_where(where)
        text = self._query(row, self._check_k(k), conds, self.exact).explain_plan(verbose=True)
        scan = (f"IVF-PQ, {self.nprobe} partitions probed" if "ANNIvfPartition" in text
                else "flat scan (exact)")
        if self.refine_factor and "ANNIvfPartition" in text:
            scan += f", refine x{self.refine_factor}"
        if conds:
            scan += ", filter before the vector search" if "full_filter=" in text or \
                "prefilter" in text.lower() else ", filter after"
        return scan

    def _hybrid(self, text, terms, v, k, rrf_k, depth):
        from lancedb.rerankers import RRFReranker

        if not self._fts:
            self._build_fts()
        metric = self._METRIC[self.metric][0]
        s = (self.table.search(query_type="hybrid", vector_column_name="vector",
                               fts_columns=self.text_field)
             .vector(v).text(" ".join(terms) or " ").distance_type(metric).limit(depth))
        if not self.exact:
            s = s.nprobes(self.nprobe)
            if self.refine_factor:
                s = s.refine_factor(int(self.refine_factor))
        res = s.rerank(RRFReranker(K=int(rrf_k))).select(["id"]).to_arrow()
        ids = res.column("id").to_pylist()
        scores = res.column("_relevance_score").to_pylist()
        return sorted(zip(ids, scores, strict=True), key=lambda t: (-t[1], t[0]))[:k]
