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

Search runs as one compiled call per query (``embedlab.index.kernels.ivf_one``): the centroid scan
keeps the ``nprobe`` best lists with the same small selection that keeps the k best results, and
the lists are scanned in place through ``offsets``, with no copy of their rows. A batch is the same
kernel in a loop, inside one call. ``ivf_search_numpy`` is the readable version (identical ids).

Centroids are ranked the way faiss's quantiser ranks them: by L2 distance for ``metric="l2"``
and by inner product for ``"ip"``/``"cosine"``. Training uses the same rule inside k-means's
assignment step, so the lists are filled the way they were trained; for inner products the
centroids are kept at unit length (spherical k-means), and k-means runs 10 iterations: both are
faiss's ``IndexIVF`` defaults.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedlab.index import kernels as K
from embedlab.index.base import Index, check_int, raise_status
from embedlab.index.kmeans import kmeans

BLAS_MIN_QUERIES = 20  # a batch this large ranks its centroids with one matrix product


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


def ivf_search_numpy(index: IVFIndex, q: np.ndarray, k: int,
                     nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The readable version of ``IVFIndex.search`` (same ids), one query at a time in numpy:

    1. score the centroids and keep the ``nprobe`` best lists (ties: the lower list number);
    2. gather those lists' rows through ``offsets`` and score them with one product;
    3. keep the k best (``np.lexsort``: best score, then the lower id).
    """
    q = index._prepare(q, "q")
    k = check_int(k, "k")
    nprobe = index._nprobe(nprobe)
    l2 = index.metric == "l2"
    cn = np.einsum("ij,ij->i", index.centroids, index.centroids)
    D = np.empty((q.shape[0], k), np.float32)
    I = np.empty((q.shape[0], k), np.int64)  # noqa: E741
    for r, qv in enumerate(q):
        cs = index.centroids @ qv
        if l2:
            cs = 2 * cs - cn
        lists = K.rank(cs, np.arange(index.nlist), nprobe)
        rows = np.concatenate([np.arange(index.offsets[lst], index.offsets[lst + 1])
                               for lst in lists])
        scores = index.codes[rows] @ qv
        if l2:
            scores = 2 * scores - index._norms[rows]
        best = K.rank(scores, index.ids[rows], k)
        s = scores[best].astype(np.float64)
        if l2:
            s = np.maximum(float(qv.astype(np.float64) @ qv) - s, 0.0)
        D[r], I[r] = K.pad_results(s, index.ids[rows][best], k, l2)
    return D, I


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
        self._cnorms = np.zeros(0, dtype=np.float32)
        self._reset()

    # -- training and adding ---------------------------------------------------------------
    def _train(self, x: np.ndarray) -> None:
        if x.shape[0] < self.nlist:
            raise ValueError(f"train needs at least nlist={self.nlist} vectors, got {x.shape[0]}")
        ip = self.metric != "l2"  # train with the rule used to fill the lists
        self.centroids = kmeans(x, self.nlist, niter=self.niter, seed=self.seed,
                                metric="ip" if ip else "l2", spherical=ip).centroids
        self._cnorms = np.einsum("ij,ij->i", self.centroids, self.centroids)

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
        self._norms = (np.einsum("ij,ij->i", self.codes, self.codes) if self._flat
                       else np.zeros(0, np.float32))

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

    _has_one = True

    def _search_one(self, q: np.ndarray, k: int, nprobe: int | None = None,
                    **kwargs: Any) -> tuple[Any, Any]:
        if kwargs:
            raise TypeError(f"{type(self).__name__}.search got unexpected arguments "
                            f"{sorted(kwargs)}")
        nprobe = self.nprobe if nprobe is None else self._nprobe(nprobe)
        D = np.empty((1, k), np.float32)
        I = np.empty((1, k), np.int64)  # noqa: E741
        raise_status(self._kernel_one(q, self._mode, nprobe, D[0], I[0]), "q")
        return D, I

    @property
    def _probe(self) -> tuple[np.ndarray, np.ndarray]:
        """The centroids in the transposed layout the kernels' centroid scan reads (made once
        per set of centroids; derived, not saved)."""
        cached = getattr(self, "_probe_cache", None)
        if cached is None or cached[2] is not self.centroids:
            cached = (*K.transpose_blocks(self.centroids, self._cnorms), self.centroids)
            self._probe_cache = cached
        return cached[0], cached[1]

    def _kernel_one(self, q, mode, nprobe, out_d, out_i):
        return K.ivf_one(*self._probe, self.codes, self._norms, self.ids, self.offsets, q, mode,
                         nprobe, out_d, out_i)

    def _centroid_scores(self, q: np.ndarray, mode: int) -> np.ndarray | None:
        """For a batch, every query's centroid scores in one matrix product (sgemm), as faiss's
        quantiser does; None for a few queries (the kernel's own scan is faster there)."""
        if q.shape[0] < BLAS_MIN_QUERIES or mode == 2:
            return None
        cs = q @ self.centroids.T
        return 2 * cs - self._cnorms if mode == 1 else cs

    def _kernel_batch(self, q, mode, nprobe, out_d, out_i):
        return K.ivf_batch(*self._probe, self.codes, self._norms, self.ids, self.offsets, q,
                           mode, nprobe, out_d, out_i, self._centroid_scores(q, mode))

    def _search(self, q: np.ndarray, k: int, nprobe: int | None = None,
                **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if kwargs:
            raise TypeError(f"{type(self).__name__}.search got unexpected arguments "
                            f"{sorted(kwargs)}")
        nprobe = self._nprobe(nprobe)
        D = np.empty((q.shape[0], k), np.float32)
        I = np.empty((q.shape[0], k), np.int64)  # noqa: E741
        # q is already prepared (unit rows for cosine): the kernels score it as ip
        raise_status(self._kernel_batch(q, 0 if self.metric == "cosine" else self._mode, nprobe,
                                        D, I), "q")
        return D, I

    # -- persistence -------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"centroids": self.centroids, "codes": self.codes, "ids": self.ids,
                "offsets": self.offsets, "nlist": self.nlist, "nprobe": self.nprobe,
                "seed": self.seed, "niter": self.niter}

    def _set_state(self, state: dict[str, Any]) -> None:
        for key in ("nlist", "nprobe", "seed", "niter"):
            setattr(self, key, int(state[key]))
        self.centroids = np.ascontiguousarray(state["centroids"], dtype=np.float32)
        self._cnorms = np.einsum("ij,ij->i", self.centroids, self.centroids)
        self.codes = np.ascontiguousarray(state["codes"])
        self.ids, self.offsets = state["ids"], state["offsets"]
        self._norms = (np.einsum("ij,ij->i", self.codes, self.codes) if self._flat
                       else np.zeros(0, np.float32))
