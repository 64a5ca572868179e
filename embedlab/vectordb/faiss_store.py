"""faiss as a store: an exact ``IndexIDMap2(IndexFlat)`` with the payload beside it.

faiss is a library, not a database: the payload lives in the adapter's Python dict, filters
become an ``IDSelectorBatch`` of the ids that pass, handed to ``search`` (the flat scan skips
the others: an exact pre-filter), and nothing is on disk until ``disk_bytes`` (or ``save``)
writes the index with ``faiss.write_index``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedlab.vectordb.base import VectorStore, distances, require


class FaissStore(VectorStore):
    """faiss ``IndexIDMap2(IndexFlat)``: exact search by id, nothing else.

    faiss is a library, not a database: the payload lives in this adapter's Python dict,
    filters become an ``IDSelectorBatch`` passed to ``search`` (a pre-filter), and nothing is
    on disk until ``disk_bytes`` (or ``save``) writes the index with ``faiss.write_index``.
    """

    engine = "faiss"
    exact = True
    filter_plan = "exact flat scan of the ids in an IDSelectorBatch"

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
            yield distances(s[keep], self.metric, kind), i[keep]

    def save(self, path: str | Path) -> int:
        """Write the index with ``faiss.write_index``; returns its size in bytes."""
        self.faiss.write_index(self.index, str(path))
        return Path(path).stat().st_size

    def disk_bytes(self) -> int:
        if self.path is None:
            return int(self.faiss.serialize_index(self.index).nbytes)
        self.path.mkdir(parents=True, exist_ok=True)
        return self.save(self.path / "index.faiss")
