"""Qdrant through its Python client in *local mode*: ``QdrantClient(path=...)`` or
``":memory:"``.

Local mode is a pure-Python re-implementation of the server's API for tests and demos. It keeps
points in a folder (one SQLite row per point, written as it goes, which makes inserts slow) or
in memory, computes **exact** distances with numpy, builds no HNSW index, and evaluates payload
filters in Python, point by point, before ranking (an exact pre-filter). Against a real Qdrant
server, a Rust binary that is not on the package index, the only change is
``QdrantClient(url="http://host:6333")``.

Quantisation: the server stores a compressed copy of every vector next to the float32 one
(``ScalarQuantization``: one byte a dimension, the range cut at a quantile; ``BinaryQuantization``:
one bit) and, by default, re-scores its candidates with the originals (Qdrant documentation,
"Quantization"). Local mode accepts ``quantization_config`` in ``create_collection`` and drops
it: the collection's config reads ``quantization_config=None`` and searches stay exact float32
(``quantization_config()`` shows what was kept).
"""

from __future__ import annotations

from pathlib import Path

from embedlab.vectordb.base import VectorStore, dir_bytes, distances, identifier, require

QUANTIZATION = (None, "scalar", "binary")


class QdrantStore(VectorStore):
    """Qdrant's client in local mode (exact search, Python filters) or on a server (``url``).

    ``quantization`` (``"scalar"``: int8 at the 0.99 quantile, ``"binary"``, or None) is passed
    to ``create_collection`` as a server would take it.
    """

    engine = "qdrant"
    exact = True
    filter_plan = "exact numpy scan of the points a Python filter lets through"
    _METRIC = {"cosine": ("COSINE", "similarity"), "l2": ("EUCLID", "distance"),
               "ip": ("DOT", "similarity")}

    def __init__(self, path: str | Path | None = None, fields: dict[str, type] | None = None,
                 collection: str = "items", url: str | None = None,
                 quantization: str | None = None) -> None:
        super().__init__(path, fields)
        qdrant_client = require("qdrant_client", "qdrant-client", "qdrant")
        if quantization not in QUANTIZATION:
            raise ValueError(f"quantization must be one of {QUANTIZATION}, got {quantization!r}")
        self.models = qdrant_client.models
        self.collection = identifier(collection, "collection")
        self.quantization = quantization
        self.local = url is None
        if url is not None:
            self.client = qdrant_client.QdrantClient(url=url)
        elif self.path is None:
            self.client = qdrant_client.QdrantClient(":memory:")
        else:
            self.client = qdrant_client.QdrantClient(path=str(self.path))

    def _quantization_config(self):
        m = self.models
        if self.quantization == "scalar":
            return m.ScalarQuantization(scalar=m.ScalarQuantizationConfig(
                type=m.ScalarType.INT8, quantile=0.99, always_ram=True))
        if self.quantization == "binary":
            return m.BinaryQuantization(binary=m.BinaryQuantizationConfig(always_ram=True))
        return None

    def _create(self, dim: int, metric: str) -> None:
        m = self.models
        if self.client.collection_exists(self.collection):
            self.client.delete_collection(self.collection)
        self.client.create_collection(
            self.collection, vectors_config=m.VectorParams(
                size=dim, distance=getattr(m.Distance, self._METRIC[metric][0])),
            quantization_config=self._quantization_config())

    def quantization_config(self):
        """The quantisation the collection really has (``None`` in local mode, whatever
        ``create`` asked for)."""
        return self.client.get_collection(self.collection).config.quantization_config

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
            yield distances([p.score for p in pts], self.metric, kind), [p.id for p in pts]

    def disk_bytes(self) -> int | float:
        """Bytes in the folder; ``nan`` for an in-memory client (nothing is on disk)."""
        return float("nan") if self.path is None else dir_bytes(self.path)

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
            self.client = None
