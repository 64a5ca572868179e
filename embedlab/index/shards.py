"""Search past one machine: the data split across shards, every shard searched, k-best merged.

Each shard is an ordinary index over its slice of the data (in a real deployment, on its own
machine). A query goes to every shard; each returns its own top k, best first; the coordinator
merges the sorted lists into the global top k with a k-way heap merge
(``embedlab.heap.merge_k_best``, chapter 17). Ids are made global by adding each shard's offset.
This is what faiss's ``IndexShards`` does inside one process, and what billion-scale systems do
across machines: the merge costs ``O(shards * k log shards)`` per query, nothing next to the
shards' own search, and recall is the shards' recall, since every true neighbour lives in exactly
one shard and that shard searches it with the same parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from embedlab.heap import merge_k_best
from embedlab.index.base import as_matrix, check_int


class ShardedIndex:
    """``n_shards`` indexes made by ``make_shard()``, filled with contiguous slices of the data.

    ``add(x)`` splits ``x`` into ``n_shards`` nearly equal contiguous slices (ids stay
    ``0..n-1`` in add order); ``search(q, k, **params)`` searches every shard with the same
    parameters and merges. Training, if the shards need it, happens per shard on its own slice.
    Call ``add`` once (each shard's ids must be a contiguous block).
    """

    def __init__(self, make_shard: Callable[[], Any], n_shards: int) -> None:
        if not callable(make_shard):
            raise TypeError("make_shard must be a callable that returns an empty index")
        self.n_shards = check_int(n_shards, "n_shards")
        self.shards = [make_shard() for _ in range(self.n_shards)]
        self.offsets = np.zeros(self.n_shards + 1, dtype=np.int64)
        self.dim = int(self.shards[0].dim)
        self.metric = self.shards[0].metric

    @property
    def ntotal(self) -> int:
        return int(self.offsets[-1])

    @property
    def nbytes(self) -> int:
        return int(sum(s.nbytes for s in self.shards))

    def add(self, x: object) -> None:
        if self.ntotal:
            raise ValueError("ShardedIndex.add may be called once (shards hold contiguous ids)")
        x = as_matrix(x, self.dim, "x")
        if x.shape[0] < self.n_shards:
            raise ValueError(f"x must have at least n_shards = {self.n_shards} rows, "
                             f"got {x.shape[0]}")
        bounds = np.linspace(0, x.shape[0], self.n_shards + 1).round().astype(np.int64)
        for s, shard in enumerate(self.shards):
            part = x[bounds[s]:bounds[s + 1]]
            if getattr(shard, "needs_training", False) and not shard.is_trained:
                shard.train(part)
            shard.add(part)
        self.offsets = bounds

    def search(self, q: object, k: int, **params: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.ntotal == 0:
            raise ValueError("ShardedIndex: the index is empty; add(x) before search()")
        k = check_int(k, "k")
        q = as_matrix(q, self.dim, "q")
        largest = self.metric != "l2"
        results = []
        for s, shard in enumerate(self.shards):
            D, I = shard.search(q, min(k, shard.ntotal), **params)  # noqa: E741
            results.append((D, np.where(I >= 0, I + self.offsets[s], -1)))
        out_d = np.empty((q.shape[0], k), dtype=np.float32)
        out_i = np.empty((q.shape[0], k), dtype=np.int64)
        for r in range(q.shape[0]):
            out_d[r], out_i[r] = merge_k_best([(d[r], i[r]) for d, i in results], k,
                                              largest=largest)
        return out_d, out_i
