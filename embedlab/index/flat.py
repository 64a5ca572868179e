"""Exact (brute-force) search: every query against every stored vector.

For a block of queries ``Q`` (b, d) and a block of the database ``X`` (c, d) one matrix product
``Q X^T`` gives every inner product at once; BLAS's sgemm runs it near the machine's peak
floating-point rate. The squared distance follows from the same product,

    |q - x|^2 = |q|^2 - 2 q.x + |x|^2,

with ``|x|^2`` computed once at add time (faiss's ``IndexFlatL2`` does the same). Each block's
scores then go through a size-k heap per query (``embedlab.index.base``), so memory stays at one
block whatever the database size, and the cost is ``n d`` multiply-adds per query plus ``n`` heap
comparisons: the floor for any exact method, and the yardstick for every approximate one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedlab.index.base import Index, finish_heaps, heap_push_block, new_heaps


class FlatIndex(Index):
    """Exact k-nearest-neighbour search with blocked matrix products (faiss ``IndexFlat``).

    ``FlatIndex(dim, metric="ip")``; no training. ``query_block`` and ``db_block`` set the block
    sizes of the matrix products (they change speed, never results).
    """

    def __init__(self, dim: int, metric: str = "l2", query_block: int = 256,
                 db_block: int = 8192) -> None:
        super().__init__(dim, metric)
        self.query_block, self.db_block = int(query_block), int(db_block)
        self._chunks: list[np.ndarray] = []
        self._xb = np.zeros((0, self.dim), dtype=np.float32)
        self._norms = np.zeros(0, dtype=np.float32)

    @property
    def xb(self) -> np.ndarray:
        """The stored vectors, (ntotal, dim) float32 (unit rows for cosine)."""
        if self._chunks:
            self._xb = np.concatenate([self._xb, *self._chunks])
            self._norms = np.einsum("ij,ij->i", self._xb, self._xb).astype(np.float32)
            self._chunks = []
        return self._xb

    def reconstruct(self, i: int) -> np.ndarray:
        """The stored vector with id ``i``."""
        return self.xb[i].copy()

    def _add(self, x: np.ndarray) -> None:
        self._chunks.append(x.copy())

    def _reset(self) -> None:
        self._chunks, self._xb = [], np.zeros((0, self.dim), dtype=np.float32)
        self._norms = np.zeros(0, dtype=np.float32)

    def _search(self, q: np.ndarray, k: int, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if kwargs:
            raise TypeError(f"FlatIndex.search got unexpected arguments {sorted(kwargs)}")
        xb, norms = self.xb, self._norms
        hd, hi = new_heaps(q.shape[0], k)
        for q0 in range(0, q.shape[0], self.query_block):
            qb = q[q0:q0 + self.query_block]
            rows = np.arange(q0, q0 + qb.shape[0])
            for x0 in range(0, xb.shape[0], self.db_block):
                ip = qb @ xb[x0:x0 + self.db_block].T  # sgemm
                ids = np.arange(x0, x0 + ip.shape[1])
                heap_push_block(hd, hi, ip, rows, ids, norms[x0:x0 + ip.shape[1]], self._l2)
        qnorm = np.einsum("ij,ij->i", q, q) if self._l2 else None
        return finish_heaps(hd, hi, self.metric, qnorm)

    def _state(self) -> dict[str, Any]:
        return {"xb": self.xb, "query_block": self.query_block, "db_block": self.db_block}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.query_block, self.db_block = state["query_block"], state["db_block"]
        self._chunks = []
        self._xb = np.ascontiguousarray(state["xb"], dtype=np.float32)
        self._norms = np.einsum("ij,ij->i", self._xb, self._xb).astype(np.float32)
