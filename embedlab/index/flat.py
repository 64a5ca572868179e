"""Exact (brute-force) search: every query against every stored vector.

For a block of queries ``Q`` (b, d) and a block of the database ``X`` (c, d) one matrix product
``Q X^T`` gives every inner product at once; BLAS's sgemm runs it near the machine's peak
floating-point rate. The squared distance follows from the same product,

    |q - x|^2 = |q|^2 - 2 q.x + |x|^2,

with ``|x|^2`` computed once at add time (faiss's ``IndexFlatL2`` does the same). Each block's
scores then go through the small k-best selection every index shares
(``embedlab.index.kernels.topk_push``), so memory stays at one block whatever the database size,
and the cost is ``n d`` multiply-adds per query plus ``n`` comparisons: the floor for any exact
method, and the yardstick for every approximate one.

Three paths, one answer (identical ids; ties go to the lower id):

* ``flat_search_numpy``: the readable version, one product and ``np.lexsort`` per query;
* one query: a compiled scan (``kernels.flat_one``) reads each row once and keeps the k best as
  it goes. A single query cannot reuse anything from cache, so its floor is the time to stream
  ``4 n d`` bytes from wherever the vectors live (chapter 08 measures it). To come close to it the
  scan reads a transposed copy of the vectors, blocks of 16 rows stored coordinate by coordinate
  (``kernels.transpose_blocks``): one SIMD multiply-add then serves 16 rows and no horizontal sum
  is needed. The copy holds the same bytes in another order, made on the first single query; an
  index that only ever serves single queries would keep that layout alone;
* a batch: the same layout walked in chunks that stay in the L2 cache, each chunk serving every
  query, four queries per SIMD pass (``kernels.flat_batch_blocks``): a blocked matrix product
  whose selection is fused into it, so no score matrix is ever written out. Each block of the
  base is reused by many queries, and the floor becomes the arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedlab.index import kernels as K
from embedlab.index.base import Index, as_matrix, check_int, check_metric, raise_status


def flat_search_numpy(xb: np.ndarray, q: np.ndarray, k: int,
                      metric: str = "ip") -> tuple[np.ndarray, np.ndarray]:
    """Exact k best rows of ``xb`` for each query of ``q``, in plain numpy: the readable version
    of ``FlatIndex.search`` (same ids). ``metric`` is "ip" or "l2" (rows are used as given).

    Scores are ``q.x`` (ip) or ``2 q.x - |x|^2`` (l2, the nearest has the highest score and
    ``|q - x|^2 = |q|^2 - score``); each row's best are chosen by ``np.lexsort`` (ties: lower id).
    """
    metric = check_metric(metric)
    if metric == "cosine":
        raise ValueError("flat_search_numpy takes metric 'ip' or 'l2' (normalise rows for cosine)")
    xb = as_matrix(xb, None, "xb")
    q = as_matrix(q, xb.shape[1], "q")
    k = check_int(k, "k")
    l2 = metric == "l2"
    norms = np.einsum("ij,ij->i", xb, xb)
    ids = np.arange(xb.shape[0])
    D = np.empty((q.shape[0], k), np.float32)
    I = np.empty((q.shape[0], k), np.int64)  # noqa: E741
    for r, qv in enumerate(q):
        scores = xb @ qv
        if l2:
            scores = 2 * scores - norms
        best = K.rank(scores, ids, k)
        s = scores[best].astype(np.float64)
        if l2:
            s = np.maximum(float(qv.astype(np.float64) @ qv) - s, 0.0)
        D[r], I[r] = K.pad_results(s, best, k, l2)
    return D, I


class FlatIndex(Index):
    """Exact k-nearest-neighbour search with blocked matrix products (faiss ``IndexFlat``).

    ``FlatIndex(dim, metric="ip")``; no training. ``query_block`` and ``db_block`` are kept for
    saved indexes and callers of earlier versions; the compiled scans choose their own blocks.
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
        self._xbt = None

    _has_one = True

    def _blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """The transposed copy the single-query scan reads (made once per content)."""
        xb = self.xb
        cached = getattr(self, "_xbt", None)
        if cached is None or cached[2] != xb.shape[0]:
            cached = (*K.transpose_blocks(xb, self._norms), xb.shape[0])
            self._xbt = cached
        return cached[0], cached[1]

    def _search_one(self, q: np.ndarray, k: int, **kwargs: Any) -> tuple[Any, Any]:
        if kwargs:
            raise TypeError(f"FlatIndex.search got unexpected arguments {sorted(kwargs)}")
        D = np.empty((1, k), np.float32)
        I = np.empty((1, k), np.int64)  # noqa: E741
        xbt, norms_p = self._blocks()
        raise_status(K.flat_one(xbt, norms_p, self.ntotal, q, self._mode, D[0], I[0]), "q")
        return D, I

    def _search(self, q: np.ndarray, k: int, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if kwargs:
            raise TypeError(f"FlatIndex.search got unexpected arguments {sorted(kwargs)}")
        D = np.empty((q.shape[0], k), np.float32)
        I = np.empty((q.shape[0], k), np.int64)  # noqa: E741
        xbt, norms_p = self._blocks()
        mode = 0 if self.metric == "cosine" else self._mode  # q is already prepared
        raise_status(K.flat_batch_blocks(xbt, norms_p, self.ntotal, q, mode, D, I), "q")
        return D, I

    def _state(self) -> dict[str, Any]:
        return {"xb": self.xb, "query_block": self.query_block, "db_block": self.db_block}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.query_block, self.db_block = state["query_block"], state["db_block"]
        self._chunks = []
        self._xb = np.ascontiguousarray(state["xb"], dtype=np.float32)
        self._norms = np.einsum("ij,ij->i", self._xb, self._xb).astype(np.float32)
        self._xbt = None
