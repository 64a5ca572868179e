"""The inverted file (IVF): cluster the data, then scan only the clusters nearest the query.

Sivic and Zisserman (2003, "Video Google") brought the inverted file from text retrieval to
vectors; Jegou, Douze and Schmid (2011, "Product quantization for nearest neighbor search",
section IV) made it the coarse stage of billion-scale search. Training runs k-means with
``nlist`` centroids (the *coarse quantiser*); each added vector goes to the list of its nearest
centroid. A query ranks the centroids, then scans only its ``nprobe`` best lists exactly: about
``nprobe / nlist`` of the data, at the price of missing neighbours that fell in other lists.
``nprobe = nlist`` scans everything and is exact again.

Lists are stored the way faiss stores them in spirit: all vectors in one contiguous array grouped
by list, with ``offsets[l] .. offsets[l + 1]`` delimiting list ``l`` and ``ids`` mapping each row
back to its add-order id. A batch of queries is scanned list by list: the queries that probe list
``l`` are multiplied with that list's vectors in one sgemm, then pushed through the k-best heaps.

Centroids are ranked the way faiss's quantiser ranks them: by L2 distance for ``metric="l2"``
and by inner product for ``"ip"``/``"cosine"``. Training uses the same rule inside k-means's
assignment step, so the lists are filled the way they were trained; for inner products the
centroids are kept at unit length (spherical k-means), and k-means runs 10 iterations: both are
faiss's ``IndexIVF`` defaults.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedlab.index.base import Index, check_int, finish_heaps, heap_push_block, new_heaps
from embedlab.index.kmeans import kmeans


def top_lists(q: np.ndarray, centroids: np.ndarray, nprobe: int, metric: str) -> np.ndarray:
    """The ``nprobe`` best lists of each query, best first: (nq, nprobe) int64."""
    ip = q @ centroids.T
    if metric == "l2":
        score = 2.0 * ip - np.einsum("ij,ij->i", centroids, centroids)[None, :]
    else:
        score = ip
    if nprobe < score.shape[1]:
        part = np.argpartition(-score, nprobe - 1, axis=1)[:, :nprobe]
    else:
        part = np.broadcast_to(np.arange(score.shape[1]), score.shape).copy()
    order = np.argsort(-np.take_along_axis(score, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


class IVFIndex(Index):
    """Inverted-file index with exact distances inside the lists (faiss ``IndexIVFFlat``).

    ``IVFIndex(dim, nlist=256, metric="l2", nprobe=1, seed=0)``; ``train(x)`` runs k-means,
    ``search(q, k, nprobe=8)`` scans the ``nprobe`` nearest lists.
    """

    needs_training = True

    def __init__(self, dim: int, nlist: int = 256, metric: str = "l2", nprobe: int = 1,
                 seed: int = 0, niter: int = 10) -> None:
        super().__init__(dim, metric)
        self.nlist = check_int(nlist, "nlist")
        self.nprobe = check_int(nprobe, "nprobe", high=self.nlist)
        self.seed, self.niter = int(seed), check_int(niter, "niter", low=0)
        self.centroids = np.zeros((0, self.dim), dtype=np.float32)
        self._reset()

    # -- training and adding ---------------------------------------------------------------
    def _train(self, x: np.ndarray) -> None:
        if x.shape[0] < self.nlist:
            raise ValueError(f"train needs at least nlist={self.nlist} vectors, got {x.shape[0]}")
        ip = self.metric != "l2"  # train with the rule used to fill the lists
        self.centroids = kmeans(x, self.nlist, niter=self.niter, seed=self.seed,
                                metric="ip" if ip else "l2", spherical=ip).centroids

    def assign(self, x: np.ndarray, block: int = 16384) -> np.ndarray:
        """The list each row of ``x`` belongs to (its best centroid under the index's metric)."""
        return np.concatenate([top_lists(x[i:i + block], self.centroids, 1, self.metric)[:, 0]
                               for i in range(0, x.shape[0], block)])

    def _add(self, x: np.ndarray) -> None:
        lists = self.assign(x)
        new_ids = np.arange(self.ntotal, self.ntotal + x.shape[0], dtype=np.int64)
        self._store(lists, x, new_ids)

    def _store(self, lists: np.ndarray, payload: np.ndarray, new_ids: np.ndarray) -> None:
        """Merge new rows into the list-grouped arrays (stable: add order within each list)."""
        old_lists = np.repeat(np.arange(self.nlist), np.diff(self.offsets))
        all_lists = np.concatenate([old_lists, lists])
        order = np.argsort(all_lists, kind="stable")
        self.codes = np.ascontiguousarray(np.concatenate([self.codes, payload])[order])
        self.ids = np.concatenate([self.ids, new_ids])[order]
        counts = np.bincount(all_lists, minlength=self.nlist)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._norms = np.einsum("ij,ij->i", self.codes, self.codes) if self._flat else None

    _flat = True  # the stored payload is the vectors themselves (IVFPQ stores codes)

    def _reset(self) -> None:
        self.codes = np.zeros((0, self.dim), dtype=np.float32)
        self.ids = np.zeros(0, dtype=np.int64)
        self.offsets = np.zeros(self.nlist + 1, dtype=np.int64)
        self._norms = np.zeros(0, dtype=np.float32)

    def list_sizes(self) -> np.ndarray:
        """How many vectors each inverted list holds."""
        return np.diff(self.offsets)

    # -- search ----------------------------------------------------------------------------
    def _nprobe(self, nprobe: int | None) -> int:
        if nprobe is None:
            return self.nprobe
        return check_int(nprobe, "nprobe", high=self.nlist)

    def _search(self, q: np.ndarray, k: int, nprobe: int | None = None,
                **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if kwargs:
            raise TypeError(f"{type(self).__name__}.search got unexpected arguments "
                            f"{sorted(kwargs)}")
        nprobe = self._nprobe(nprobe)
        probes = top_lists(q, self.centroids, nprobe, self.metric)
        hd, hi = new_heaps(q.shape[0], k)
        if q.shape[0] == 1:  # one query: gather its lists' rows, one product, one heap pass
            starts, ends = self.offsets[probes[0]], self.offsets[probes[0] + 1]
            lens = ends - starts
            rows = np.arange(int(lens.sum())) + np.repeat(starts - (np.cumsum(lens) - lens), lens)
            ip = (self.codes[rows] @ q[0])[None, :]
            heap_push_block(hd, hi, np.ascontiguousarray(ip), np.zeros(1, np.int64),
                            self.ids[rows], self._norms[rows], self._l2)
            qnorm = np.einsum("ij,ij->i", q, q) if self._l2 else None
            return finish_heaps(hd, hi, self.metric, qnorm)
        # group the (query, list) pairs by list: one sgemm per list for all its queries
        flat = probes.ravel()
        order = np.argsort(flat, kind="stable")
        qrows = (order // nprobe).astype(np.int64)
        bounds = np.searchsorted(flat[order], np.arange(self.nlist + 1))
        for lst in np.flatnonzero(np.diff(bounds)):
            a, b = self.offsets[lst], self.offsets[lst + 1]
            if a == b:
                continue
            rows = qrows[bounds[lst]:bounds[lst + 1]]
            ip = q[rows] @ self.codes[a:b].T  # sgemm
            heap_push_block(hd, hi, ip, rows, self.ids[a:b], self._norms[a:b], self._l2)
        qnorm = np.einsum("ij,ij->i", q, q) if self._l2 else None
        return finish_heaps(hd, hi, self.metric, qnorm)

    # -- persistence -------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"centroids": self.centroids, "codes": self.codes, "ids": self.ids,
                "offsets": self.offsets, "nlist": self.nlist, "nprobe": self.nprobe,
                "seed": self.seed, "niter": self.niter}

    def _set_state(self, state: dict[str, Any]) -> None:
        for key in ("nlist", "nprobe", "seed", "niter"):
            setattr(self, key, int(state[key]))
        self.centroids = state["centroids"]
        self.codes = np.ascontiguousarray(state["codes"])
        self.ids, self.offsets = state["ids"], state["offsets"]
        self._norms = np.einsum("ij,ij->i", self.codes, self.codes) if self._flat else None
