"""Product quantisation (Jegou, Douze and Schmid, 2011, IEEE TPAMI 33(1)).

Split each d-dimensional vector into ``m`` sub-vectors of ``dsub = d / m`` coordinates and run a
separate k-means with ``ksub = 2^nbits`` centroids in each subspace. A vector is then stored as
``m`` centroid numbers, ``m * nbits`` bits in all (``m`` bytes for ``nbits = 8``), and stands for
the concatenation of its sub-centroids ``q(x) = [C_1[c_1], ..., C_m[c_m]]``: ``ksub^m``
representable points from only ``m * ksub`` stored centroids.

Distances never decompress the database. With query ``y`` split the same way,

* **asymmetric (ADC, eq. 13)**: ``|y - q(x)|^2 = sum_j |y_j - C_j[c_j(x)]|^2``. The ``m x ksub``
  table ``T[j, c] = |y_j - C_j[c]|^2`` is built once per query; each database vector then costs
  ``m`` table look-ups and additions. For inner products ``T[j, c] = y_j . C_j[c]``.
* **symmetric (SDC, eq. 12)**: the query is quantised too, and
  ``T[j, c] = |C_j[c_j(y)] - C_j[c]|^2`` comes from a precomputed centroid-to-centroid table.
  Cheaper per query, but it adds the query's own quantisation error, so ADC is more accurate
  (the paper's figure 4).

Codes are packed least-significant bit first into ``ceil(m * nbits / 8)`` bytes per vector, the
layout and code size of faiss's ``ProductQuantizer``; the scan reads them straight from there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedlab.index import fastscan as FS
from embedlab.index import kernels as K
from embedlab.index.base import Index, as_matrix, check_int, raise_status
from embedlab.index.kmeans import assign, kmeans


# --------------------------------------------------------------------------- the quantiser
def check_pq_params(dim: int, m: object, nbits: object) -> tuple[int, int]:
    m = check_int(m, "m")
    nbits = check_int(nbits, "nbits", low=1, high=16)
    if dim % m:
        raise ValueError(f"dim ({dim}) must be divisible by m ({m})")
    return m, nbits


def train_codebooks(x: np.ndarray, m: int, nbits: int, niter: int = 25,
                    seed: int = 0) -> np.ndarray:
    """One k-means per subspace: codebooks (m, 2^nbits, d / m) float32."""
    n, d = x.shape
    ksub = 1 << nbits
    if n < ksub:
        raise ValueError(f"training needs at least 2^nbits = {ksub} vectors, got {n}")
    dsub = d // m
    books = np.empty((m, ksub, dsub), dtype=np.float32)
    for j in range(m):
        sub = np.ascontiguousarray(x[:, j * dsub:(j + 1) * dsub])
        books[j] = kmeans(sub, ksub, niter=niter, seed=seed + j).centroids
    return books


def encode(x: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Nearest sub-centroid in each subspace: codes (n, m) int64."""
    m, _, dsub = codebooks.shape
    codes = np.empty((x.shape[0], m), dtype=np.int64)
    for j in range(m):
        codes[:, j] = assign(np.ascontiguousarray(x[:, j * dsub:(j + 1) * dsub]), codebooks[j])[0]
    return codes


def decode(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """The vectors the codes stand for: (n, m * dsub) float32."""
    m = codebooks.shape[0]
    return np.concatenate([codebooks[j][codes[:, j]] for j in range(m)], axis=1)


def code_size(m: int, nbits: int) -> int:
    """Bytes per packed code: ceil(m * nbits / 8), as faiss."""
    return (m * nbits + 7) // 8


def pack_codes(codes: np.ndarray, nbits: int) -> np.ndarray:
    """(n, m) integer codes -> (n, code_size) uint8, least-significant bit first."""
    n, m = codes.shape
    bits = (codes[:, :, None] >> np.arange(nbits)) & 1  # (n, m, nbits), LSB first
    return np.packbits(bits.reshape(n, m * nbits).astype(np.uint8), axis=1, bitorder="little")


def unpack_codes(packed: np.ndarray, m: int, nbits: int) -> np.ndarray:
    """Inverse of ``pack_codes``: (n, code_size) uint8 -> (n, m) int64."""
    bits = np.unpackbits(packed, axis=1, count=m * nbits, bitorder="little")
    bits = bits.reshape(packed.shape[0], m, nbits).astype(np.int64)
    return (bits << np.arange(nbits)).sum(axis=2)


def adc_tables(q: np.ndarray, codebooks: np.ndarray, metric: str) -> np.ndarray:
    """Per-query look-up tables (nq, m, ksub): squared sub-distances (l2) or sub-products (ip).

    Computed in float64 and rounded once to float32, so the compiled kernel
    (``kernels.pq_table``), which sums in another order, gets the same table.
    """
    m, _, dsub = codebooks.shape
    qs = q.astype(np.float64).reshape(q.shape[0], m, dsub).transpose(1, 0, 2)  # (m, nq, dsub)
    books = codebooks.astype(np.float64)
    if metric == "l2":
        out = np.empty((m, q.shape[0], books.shape[1]))
        for j in range(m):  # |q_j - c|^2 summed over the sub-vector, for every centroid c
            out[j] = ((qs[j][:, None, :] - books[j][None]) ** 2).sum(axis=2)
    else:
        out = np.matmul(qs, books.transpose(0, 2, 1))  # (m, nq, ksub)
    return np.ascontiguousarray(out.transpose(1, 0, 2), dtype=np.float32)


def adc_table_f32(q: np.ndarray, codebooks: np.ndarray, metric: str) -> np.ndarray:
    """One query's look-up table (m, ksub) in float32, the way IVF-PQ's kernel builds it
    (``kernels.pq_table32``): ``T[j, c] = sum_t q_{j,t} C_j[c, t]`` (l2: the squared
    differences), summed over ``t`` in order, every product and sum rounded to float32."""
    m, _, dsub = codebooks.shape
    qs = np.asarray(q, dtype=np.float32).reshape(m, dsub, 1)
    books = codebooks.transpose(0, 2, 1)  # (m, dsub, ksub)
    if metric == "l2":
        diff = qs - books
        terms = diff * diff  # (m, dsub, ksub): one term per coordinate t
    else:
        terms = qs * books
    table = terms[:, 0].copy()
    for t in range(1, dsub):
        table += terms[:, t]
    return table


def code_sums_f32(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``T[0, c_0] + T[1, c_1] + ... + T[m-1, c_{m-1}]`` for each row of ``codes`` (n, m),
    added left to right in float32 (the order of IVF-PQ's kernel, ``kernels.code_sums``)."""
    sums = table[0][codes[:, 0]].copy()
    for j in range(1, table.shape[0]):
        sums += table[j][codes[:, j]]
    return sums


def sdc_table(codebooks: np.ndarray, metric: str) -> np.ndarray:
    """Centroid-to-centroid table (m, ksub, ksub) for symmetric distance computation."""
    ip = np.matmul(codebooks, codebooks.transpose(0, 2, 1))
    if metric == "l2":
        cn = np.einsum("mkd,mkd->mk", codebooks, codebooks)
        ip = cn[:, :, None] - 2.0 * ip + cn[:, None, :]
    return ip.astype(np.float32)


# --------------------------------------------------------------------------- the scan
def scan_codes(index: Any) -> np.ndarray:
    """An index's codes with one byte per sub-code, as the kernels read them: the stored codes
    themselves when ``nbits = 8``; otherwise an unpacked copy, made once and kept (it is derived
    from ``codes``, so it is neither saved nor counted in ``nbytes``)."""
    if index.nbits == 8:
        return index.codes
    cached = getattr(index, "_unpacked", None)
    if cached is None or cached.shape[0] != index.codes.shape[0]:
        dtype = np.uint8 if index.nbits <= 8 else np.uint16
        cached = unpack_codes(index.codes, index.m, index.nbits).astype(dtype)
        index._unpacked = cached
    return cached


def fastscan_blocks(index: Any) -> np.ndarray:
    """4-bit codes in the fast scan's blocks of 32 vectors (``fastscan.pack_blocks``), made once
    and kept: the same bytes as ``codes`` in another order (a deployed index keeps one of the
    two; this one is derived, so neither saved nor counted twice in ``nbytes``)."""
    cached = getattr(index, "_blocks", None)
    if cached is None or getattr(index, "_blocks_n", -1) != index.codes.shape[0]:
        cached = FS.pack_blocks(unpack_codes(index.codes, index.m, 4))
        index._blocks, index._blocks_n = cached, index.codes.shape[0]
    return cached


def lut_buffer(index: Any) -> np.ndarray:
    """The look-up table the kernels fill for each query, kept per index and thread (float64
    while it fits the L1 cache, float32 above: ``kernels.lut_dtype``)."""
    m, ksub = index.codebooks.shape[0], index.codebooks.shape[1]
    flat = index._scratch(f"lut{K.lut_dtype(m, ksub).__name__}", m * ksub, K.lut_dtype(m, ksub))
    return flat[:m * ksub].reshape(m, ksub)


def books_for_kernels(index: Any) -> np.ndarray:
    """The codebooks as the kernels read them, (m, dsub, ksub) float64 (made once and kept;
    derived from ``codebooks``)."""
    cached = getattr(index, "_books_t", None)
    if cached is None or getattr(index, "_books_src", None) is not index.codebooks:
        cached = np.ascontiguousarray(index.codebooks.transpose(0, 2, 1), dtype=np.float64)
        index._books_t, index._books_src = cached, index.codebooks
    return cached


def books_t32(index: Any) -> np.ndarray:
    """The codebooks as IVF-PQ's table kernel reads them, (m, dsub, ksub) float32 (made once and
    kept; derived from ``codebooks``)."""
    cached = getattr(index, "_books_t32", None)
    if cached is None or getattr(index, "_books_t32_src", None) is not index.codebooks:
        cached = np.ascontiguousarray(index.codebooks.transpose(0, 2, 1), dtype=np.float32)
        index._books_t32, index._books_t32_src = cached, index.codebooks
    return cached


def pq_search_numpy(index: PQIndex, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The readable version of ``PQIndex.search`` (ADC, same ids): one table per query
    (``adc_tables``), every code scored by ``sum_j T[j, code_j]`` in float64 (``-distance`` for
    l2), the k best by ``np.lexsort`` (ties: lower id)."""
    q = index._prepare(q, "q")
    k = check_int(k, "k")
    l2 = index.metric == "l2"
    codes = unpack_codes(index.codes, index.m, index.nbits)
    tables = adc_tables(q, index.codebooks, "l2" if l2 else "ip")
    ids = np.arange(codes.shape[0])
    cols = np.arange(index.m)
    D = np.empty((q.shape[0], k), np.float32)
    I = np.empty((q.shape[0], k), np.int64)  # noqa: E741
    for r in range(q.shape[0]):
        scores = tables[r].astype(np.float64)[cols, codes].sum(axis=1)
        if l2:
            scores = -scores
        best = K.rank(scores, ids, k)
        D[r], I[r] = K.pad_results(-scores[best] if l2 else scores[best], best, k, l2)
    return D, I


class PQIndex(Index):
    """Product-quantisation index with ADC search (faiss ``IndexPQ``).

    ``PQIndex(dim, m=8, nbits=8, metric="l2", seed=0)``; ``train(x)`` learns the codebooks,
    ``add(x)`` stores ``ceil(m * nbits / 8)`` bytes per vector; ``search(q, k)`` uses ADC, and
    ``search(q, k, symmetric=True)`` SDC for comparison.
    """

    needs_training = True

    def __init__(self, dim: int, m: int = 8, nbits: int = 8, metric: str = "l2", seed: int = 0,
                 niter: int = 25) -> None:
        super().__init__(dim, metric)
        self.m, self.nbits = check_pq_params(self.dim, m, nbits)
        self.seed, self.niter = int(seed), check_int(niter, "niter", low=0)
        self.codebooks = np.zeros((self.m, 1 << self.nbits, self.dim // self.m), np.float32)
        self._reset()

    @property
    def code_size(self) -> int:
        return code_size(self.m, self.nbits)

    def _train(self, x: np.ndarray) -> None:
        self.codebooks = train_codebooks(x, self.m, self.nbits, self.niter, self.seed)

    def encode(self, x: object) -> np.ndarray:
        """Unpacked codes (n, m) of vectors ``x``."""
        return encode(self._prepare(x, "x"), self.codebooks)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Reconstructions of unpacked codes (n, m)."""
        return decode(np.asarray(codes, dtype=np.int64), self.codebooks)

    def reconstruct_n(self, i0: int = 0, n: int | None = None) -> np.ndarray:
        """Decoded stored vectors ``i0 .. i0 + n - 1``."""
        n = self.ntotal - i0 if n is None else n
        return self.decode(unpack_codes(self.codes[i0:i0 + n], self.m, self.nbits))

    def _add(self, x: np.ndarray) -> None:
        packed = pack_codes(encode(x, self.codebooks), self.nbits)
        self.codes = np.ascontiguousarray(np.concatenate([self.codes, packed]))

    def _reset(self) -> None:
        self.codes = np.zeros((0, self.code_size), dtype=np.uint8)

    _has_one = True

    def _search_one(self, q: np.ndarray, k: int, symmetric: bool = False,
                    **kwargs: Any) -> tuple[Any, Any]:
        if kwargs:
            raise TypeError(f"{type(self).__name__}.search got unexpected arguments "
                            f"{sorted(kwargs)}")
        if symmetric:
            return None, None
        D = np.empty((1, k), np.float32)
        I = np.empty((1, k), np.int64)  # noqa: E741
        if self.nbits == 4:
            return self._fastscan(q[None], self._mode, D, I)
        raise_status(K.pq_one(books_for_kernels(self), scan_codes(self), q, self._mode,
                              lut_buffer(self), D[0], I[0]), "q")
        return D, I

    def _fastscan(self, q: np.ndarray, mode: int, D: np.ndarray,
                  I: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: E741
        """4-bit codes: the register-table scan with exact re-ranking (``fastscan``), same ids as
        the float ADC scan."""
        n = self.codes.shape[0]
        status = FS.fastscan_batch(fastscan_blocks(self), (self.m + 1) // 2, n,
                                   books_for_kernels(self), q, mode,
                                   self._scratch("cand_i", n, np.int64),
                                   self._scratch("cand_s", n, np.uint16), D, I)
        raise_status(status, "q")
        return D, I

    def _search(self, q: np.ndarray, k: int, symmetric: bool = False,
                **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if kwargs:
            raise TypeError(f"{type(self).__name__}.search got unexpected arguments "
                            f"{sorted(kwargs)}")
        D = np.empty((q.shape[0], k), np.float32)
        I = np.empty((q.shape[0], k), np.int64)  # noqa: E741
        if not symmetric:
            mode = 0 if self.metric == "cosine" else self._mode  # q is already prepared
            if self.nbits == 4:
                return self._fastscan(q, mode, D, I)
            raise_status(K.pq_batch(books_for_kernels(self), scan_codes(self), q, mode,
                                    lut_buffer(self), D, I), "q")
            return D, I
        if self.nbits > 12:
            raise ValueError(f"symmetric search needs nbits <= 12 (a ksub x ksub table), "
                             f"got nbits={self.nbits}")
        table = sdc_table(self.codebooks, self.metric)  # (m, ksub, ksub)
        qcodes = encode(q, self.codebooks)
        luts = np.ascontiguousarray(table[np.arange(self.m)[None, :], qcodes])
        K.pq_batch_tables(scan_codes(self), luts, -1.0 if self._l2 else 1.0, D, I)
        return D, I

    def _state(self) -> dict[str, Any]:
        return {"codebooks": self.codebooks, "codes": self.codes, "m": self.m,
                "nbits": self.nbits, "seed": self.seed, "niter": self.niter}

    def _set_state(self, state: dict[str, Any]) -> None:
        for key in ("m", "nbits", "seed", "niter"):
            setattr(self, key, int(state[key]))
        self.codebooks = np.ascontiguousarray(state["codebooks"], dtype=np.float32)
        self.codes = np.ascontiguousarray(state["codes"])
        self._unpacked = self._blocks = None


def reconstruction_error(x: object, codebooks: np.ndarray) -> float:
    """Mean squared error ``mean |x - q(x)|^2`` of PQ with ``codebooks`` on rows of ``x``."""
    x = as_matrix(x, codebooks.shape[0] * codebooks.shape[2], "x")
    err = x - decode(encode(x, codebooks), codebooks)
    return float(np.mean(np.sum(err.astype(np.float64) ** 2, axis=1)))
