"""IVF-PQ: an inverted file whose lists hold PQ codes of residuals (Jegou et al. 2011, section IV).

The coarse quantiser (k-means, ``nlist`` centroids) sends each vector to a list; what is encoded
is not the vector but its *residual* to the list's centroid, ``r(x) = x - c(x)``. Residuals of
all lists share one product quantiser trained on residuals: they are smaller and more alike than
the raw vectors, so the same ``m * nbits`` bits describe them more finely.

Search probes the ``nprobe`` best lists. For list ``l`` with centroid ``c_l``:

* l2: ``|y - c_l - q(r)|^2 = sum_j |(y - c_l)_j - C_j[c_j]|^2``, an ADC table built from the
  query's residual ``y - c_l``, one table per (query, list) pair (the paper's algorithm);
* ip / cosine: ``y . (c_l + q(r)) = y . c_l + sum_j y_j . C_j[c_j]``: one table per query,
  plus the per-list constant ``y . c_l``.

Stored per vector: ``ceil(m * nbits / 8)`` bytes of code plus its 8-byte id, as in faiss's
``IndexIVFPQ``.

Search is one compiled call per query (``embedlab.index.kernels.ivfpq_one``): centroid scan,
tables, and the probed lists' codes read in place; ``ivfpq_search_numpy`` is the readable version
with the same ids. Both build the tables and add up a code's entries in float32, in one fixed
order (the table's terms over a sub-vector's coordinates in order, a code's entries from the first
sub-quantiser to the last), as faiss does in float32; the per-list constant ``y . c_l`` and the
final score are float64. The float32 table of 48 x 256 entries is 48 KB, half the float64 one,
and each code costs ``m`` single-instruction look-ups.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedlab.index import kernels as K
from embedlab.index.base import check_int
from embedlab.index.ivf import IVFIndex
from embedlab.index.pq import (
    adc_table_f32,
    books_t32,
    check_pq_params,
    code_size,
    code_sums_f32,
    decode,
    encode,
    pack_codes,
    scan_codes,
    train_codebooks,
    unpack_codes,
)


def ivfpq_search_numpy(index: IVFPQIndex, q: np.ndarray, k: int,
                       nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The readable version of ``IVFPQIndex.search`` (same ids), one query at a time: rank the
    centroids, keep ``nprobe`` lists, score each list's codes, keep the k best (ties: lower id).

    Tables and sums are float32 in a fixed order (``adc_table_f32``, ``code_sums_f32``), the
    kernel's order; a code's score is ``q.c_l + sum`` in float64 for inner products (one table
    per query), and ``-sum`` for l2 (one table per list, from the residual ``q - c_l``)."""
    q = index._prepare(q, "q")
    k = check_int(k, "k")
    nprobe = index._nprobe(nprobe)
    l2 = index.metric == "l2"
    codes = unpack_codes(index.codes, index.m, index.nbits)
    cn = np.einsum("ij,ij->i", index.centroids, index.centroids)
    D = np.empty((q.shape[0], k), np.float32)
    I = np.empty((q.shape[0], k), np.int64)  # noqa: E741
    for r, qv in enumerate(q):
        cs = index.centroids @ qv
        if l2:
            cs = 2 * cs - cn
        lists = K.rank(cs, np.arange(index.nlist), nprobe)
        table = None if l2 else adc_table_f32(qv, index.codebooks, "ip")
        scores, ids = [], []
        for lst in lists:
            rows = np.arange(index.offsets[lst], index.offsets[lst + 1])
            if l2:
                table = adc_table_f32(qv - index.centroids[lst], index.codebooks, "l2")
                scores.append(-code_sums_f32(table, codes[rows]).astype(np.float64))
            else:
                bias = float(qv.astype(np.float64) @ index.centroids[lst].astype(np.float64))
                scores.append(bias + code_sums_f32(table, codes[rows]).astype(np.float64))
            ids.append(index.ids[rows])
        scores, ids = np.concatenate(scores), np.concatenate(ids)
        best = K.rank(scores, ids, k)
        D[r], I[r] = K.pad_results(-scores[best] if l2 else scores[best], ids[best], k, l2)
    return D, I


class IVFPQIndex(IVFIndex):
    """Inverted file with PQ-coded residuals (faiss ``IndexIVFPQ``, ``by_residual=True``).

    ``IVFPQIndex(dim, nlist=256, m=8, nbits=8, metric="l2", seed=0)``; ``train(x)`` runs the
    coarse k-means, then trains the PQ on residuals; ``search(q, k, nprobe=8)``.
    """

    _flat = False

    def __init__(self, dim: int, nlist: int = 256, m: int = 8, nbits: int = 8,
                 metric: str = "l2", nprobe: int = 1, seed: int = 0, niter: int = 10,
                 pq_niter: int = 25, query_block: int = 64) -> None:
        self.m, self.nbits = check_pq_params(check_int(dim, "dim"), m, nbits)
        self.pq_niter = check_int(pq_niter, "pq_niter", low=0)
        self.query_block = check_int(query_block, "query_block")
        self.codebooks = np.zeros((self.m, 1 << self.nbits, dim // self.m), np.float32)
        super().__init__(dim, nlist=nlist, metric=metric, nprobe=nprobe, seed=seed, niter=niter)

    @property
    def code_size(self) -> int:
        return code_size(self.m, self.nbits)

    def _train(self, x: np.ndarray) -> None:
        super()._train(x)
        residuals = x - self.centroids[self.assign(x)]
        self.codebooks = train_codebooks(residuals, self.m, self.nbits, self.pq_niter,
                                         self.seed + 1)

    def _add(self, x: np.ndarray) -> None:
        lists = self.assign(x)
        packed = pack_codes(encode(x - self.centroids[lists], self.codebooks), self.nbits)
        new_ids = np.arange(self.ntotal, self.ntotal + x.shape[0], dtype=np.int64)
        self._store(lists, packed, new_ids)

    def _reset(self) -> None:
        super()._reset()
        self.codes = np.zeros((0, self.code_size), dtype=np.uint8)

    def reconstruct_all(self) -> np.ndarray:
        """Every stored vector decoded (centroid + decoded residual), in id order."""
        lists = np.repeat(np.arange(self.nlist), self.list_sizes())
        rec = self.centroids[lists] + decode(unpack_codes(self.codes, self.m, self.nbits),
                                             self.codebooks)
        out = np.empty_like(rec)
        out[self.ids] = rec
        return out

    def _kernel_args(self) -> tuple:
        """The arrays the kernels read, in their order (made again only when training, adding
        or loading replaced one of them)."""
        cached = self.__dict__.get("_kargs")
        if (cached is None or cached[6] is not self.offsets or cached[0] is not self.centroids
                or cached[7] is not self.codebooks):
            cached = (self.centroids, *self._probe, books_t32(self), self._scan_codes,
                      self.ids, self.offsets, self.codebooks)
            self._kargs = cached
        return cached[:7]

    def _kernel_one(self, q, mode, nprobe, out_d, out_i):
        return K.ivfpq_one(*self._kernel_args(), q, mode, nprobe, out_d, out_i)

    def _kernel_batch(self, q, mode, nprobe, out_d, out_i):
        return K.ivfpq_batch(*self._kernel_args(), q, mode, nprobe, out_d, out_i,
                             self._centroid_scores(q, mode))

    @property
    def _scan_codes(self) -> np.ndarray:
        """The codes as the kernel reads them: one byte per sub-code (the stored codes when
        nbits = 8; an unpacked copy, made once, otherwise)."""
        return scan_codes(self)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "codebooks": self.codebooks, "m": self.m,
                "nbits": self.nbits, "pq_niter": self.pq_niter, "query_block": self.query_block}

    def _set_state(self, state: dict[str, Any]) -> None:
        for key in ("m", "nbits", "pq_niter", "query_block"):
            setattr(self, key, int(state[key]))
        self.codebooks = np.ascontiguousarray(state["codebooks"], dtype=np.float32)
        super()._set_state(state)
