"""Milvus Lite: ``pymilvus``' ``MilvusClient`` on a local file, the same client calls as a Milvus
server.

Milvus Lite 3 (``milvus-lite``) is a Python engine on top of faiss, run as a local subprocess
that the client talks to over gRPC; it is not the C++ Milvus server, though the client code is
the same. Rows first land in a memory table, searched by brute force; ``flush`` seals them into
a segment, and each sealed segment gets its own index (``AUTOINDEX`` is faiss HNSW: ``M``,
``efConstruction``; ``ef`` at search time). A search runs every segment and the memory table and
merges their top k. The index of a new segment is built by a background thread after the flush,
while ``describe_index`` already reports every row indexed: a search in between is a brute-force
scan, exact. ``build_index`` therefore waits for each segment's index file
(``wait_for_index=False`` measures the engine in that window).

A filter becomes a mask of the rows that pass, handed to faiss's HNSW walk as an
``IDSelectorBatch``: rows that fail are still walked through but never returned, and the walk
stops after ``ef`` candidates as usual. Under a selective filter the walk can end before it has
met ``k`` matching rows, so the answer comes back short. The adapter raises ``ef`` to at least
``k``; for a short row it searches again with ``ef`` four times larger, up to the collection's
size, where the walk visits every reachable row (``complete_short=False`` shows the engine's
own answer).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from embedlab.vectordb.base import VectorStore, distances, identifier, require

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")   # the gRPC client's notes on fork(): errors only


class MilvusStore(VectorStore):
    """Milvus Lite (``pymilvus`` + ``milvus-lite`` 3): ``MilvusClient("<folder>/milvus.db")``."""

    engine = "milvus"
    exact = False
    filter_plan = "HNSW walk per sealed segment, the filter as a faiss IDSelector (ef bounds it)"
    _METRIC = {"cosine": ("COSINE", "similarity"), "l2": ("L2", "squared"),
               "ip": ("IP", "similarity")}

    def __init__(self, path: str | Path, fields: dict[str, type] | None = None,
                 collection: str = "items", M: int = 16, ef_construction: int = 100,
                 ef: int = 64, complete_short: bool = True, wait_for_index: bool = True) -> None:
        super().__init__(path, fields)
        pymilvus = require("pymilvus", "pymilvus", "milvus")
        require("milvus_lite", "milvus-lite", "milvus")
        self.path.mkdir(parents=True, exist_ok=True)
        self.collection = identifier(collection, "collection")
        self.M, self.ef_construction, self.ef = int(M), int(ef_construction), int(ef)
        self.complete_short, self.wait_for_index = bool(complete_short), bool(wait_for_index)
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
                schema.add_field(name, dt.VARCHAR, max_length=4096)
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
        self.client.flush(self.collection)     # seal the memory table into a segment
        if self.wait_for_index:
            self.wait_for_segment_indexes()

    def segment_files(self) -> tuple[int, int]:
        """``(segments, indexed)``: the sealed data files of the collection and how many of
        them already have their HNSW index file beside them (Milvus Lite writes
        ``partitions/<p>/indexes/<segment>.vector.autoindex.idx`` when a build finishes)."""
        root = self.path / "milvus.db" / "collections" / self.collection / "partitions"
        segs = {p.stem for p in root.glob("*/data/*.parquet")}
        idx = {p.name.split(".")[0] for p in root.glob("*/indexes/*.idx")}
        return len(segs), len(segs & idx)

    def wait_for_segment_indexes(self, timeout: float = 600.0) -> float:
        """Wait until every sealed segment has its HNSW index; returns the seconds waited.

        ``describe_index`` reports every row indexed as soon as the rows are flushed, but the
        HNSW graph is built afterwards by a background thread; until it is attached, a segment
        is searched by brute force (exact). The index file appears just before the graph is
        attached, hence the short pause after it.
        """
        t0 = time.perf_counter()
        while True:
            segs, done = self.segment_files()
            if segs and done == segs:
                time.sleep(0.5)
                return time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"Milvus Lite built {done} of {segs} segment indexes in "
                                   f"{timeout:g} s")
            time.sleep(0.05)

    def index_state(self) -> dict:
        """What ``describe_index`` reports next to what is on disk."""
        info = self.client.describe_index(self.collection, "vector")
        segs, done = self.segment_files()
        return {"index_type": info.get("index_type"), "state": info.get("state"),
                "indexed_rows": info.get("indexed_rows"), "total_rows": info.get("total_rows"),
                "segments": segs, "segments with an HNSW file": done}

    @staticmethod
    def filter_expr(conds) -> str:
        """``conds`` as a Milvus boolean expression, e.g. ``source == "bbc" and date >= 1``."""
        import json

        return " and ".join(f"{n} {'==' if op == '=' else op} "
                            f"{json.dumps(v) if isinstance(v, str) else v}" for n, op, v in conds)

    def _query(self, q, k, conds, ef):
        res = self.client.search(self.collection, data=list(q), limit=k,
                                 filter=self.filter_expr(conds), output_fields=["id"],
                                 search_params={"params": {"ef": int(ef)}})
        kind = self._METRIC[self.metric][1]
        for hits in res:
            yield (distances([h["distance"] for h in hits], self.metric, kind),
                   [h["id"] for h in hits])

    def _search(self, q, k, conds):
        return self._query(q, k, conds, max(self.ef, k))

    def _complete(self, q, k, conds):
        total = int(self.client.get_collection_stats(self.collection).get("row_count", 0))
        ef = max(self.ef, k)
        out: list = [None] * len(q)
        todo = list(range(len(q)))
        while todo:
            ef = min(4 * ef, max(total, k))
            for r, got in zip(todo, self._query(q[todo], k, conds, ef), strict=True):
                out[r] = got
            todo = [r for r in todo if len(out[r][1]) < k and ef < max(total, k)]
        return out

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
            self.client = None
