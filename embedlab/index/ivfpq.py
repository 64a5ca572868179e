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
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from embedlab.index.base import check_int, new_heaps
from embedlab.index.ivf import IVFIndex, top_lists
from embedlab.index.pq import (
    adc_scan,
    adc_tables,
    check_pq_params,
    code_size,
    decode,
    encode,
    finish_scores,
    pack_codes,
    train_codebooks,
    unpack_codes,
)


@njit(cache=True, nogil=True)
def _ivfpq_scan(codes, nbits, ids, offsets, probes, luts, bias, sign, hd, hi, q0):
    """Scan each query's probed lists; ``luts`` is (nq, P, m, ksub) with P = nprobe or 1."""
    per_probe = luts.shape[1] > 1
    for qi in range(probes.shape[0]):
        for p in range(probes.shape[1]):
            lst = probes[qi, p]
            a, b = offsets[lst], offsets[lst + 1]
            if a == b:
                continue
            lut = luts[qi, p] if per_probe else luts[qi, 0]
            adc_scan(codes[a:b], nbits, lut, sign, bias[qi, p], ids[a:b], hd, hi, q0 + qi)


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

    def _search(self, q: np.ndarray, k: int, nprobe: int | None = None,
                **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if kwargs:
            raise TypeError(f"IVFPQIndex.search got unexpected arguments {sorted(kwargs)}")
        nprobe = self._nprobe(nprobe)
        probes = top_lists(q, self.centroids, nprobe, self.metric)
        hd, hi = new_heaps(q.shape[0], k)
        sign = -1.0 if self._l2 else 1.0
        for q0 in range(0, q.shape[0], self.query_block):
            qb, pb = q[q0:q0 + self.query_block], probes[q0:q0 + self.query_block]
            if self._l2:  # one table per (query, list): from the residual y - c_l
                res = (qb[:, None, :] - self.centroids[pb]).reshape(-1, self.dim)
                luts = adc_tables(res, self.codebooks, "l2").reshape(
                    qb.shape[0], nprobe, self.m, -1)
                bias = np.zeros(pb.shape, dtype=np.float32)
            else:  # one table per query, plus y . c_l per list
                luts = adc_tables(qb, self.codebooks, "ip")[:, None]
                bias = np.einsum("qd,qpd->qp", qb, self.centroids[pb]).astype(np.float32)
            _ivfpq_scan(self.codes, self.nbits, self.ids, self.offsets, pb,
                        np.ascontiguousarray(luts), bias, sign, hd, hi, q0)
        return finish_scores(hd, hi, self.metric)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "codebooks": self.codebooks, "m": self.m,
                "nbits": self.nbits, "pq_niter": self.pq_niter, "query_block": self.query_block}

    def _set_state(self, state: dict[str, Any]) -> None:
        for key in ("m", "nbits", "pq_niter", "query_block"):
            setattr(self, key, int(state[key]))
        self.codebooks = state["codebooks"]
        super()._set_state(state)
