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
from numba import njit

from embedlab.index.base import Index, as_matrix, check_int, finish_heaps, heap_push, new_heaps
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
    """Per-query look-up tables (nq, m, ksub): squared sub-distances (l2) or sub-products (ip)."""
    m, _, dsub = codebooks.shape
    qs = q.reshape(q.shape[0], m, dsub).transpose(1, 0, 2)  # (m, nq, dsub)
    ip = np.matmul(qs, codebooks.transpose(0, 2, 1))  # (m, nq, ksub)
    if metric == "l2":
        cn = np.einsum("mkd,mkd->mk", codebooks, codebooks)
        qn = np.einsum("mqd,mqd->mq", qs, qs)
        ip = qn[:, :, None] - 2.0 * ip + cn[:, None, :]
    return np.ascontiguousarray(ip.transpose(1, 0, 2), dtype=np.float32)


def sdc_table(codebooks: np.ndarray, metric: str) -> np.ndarray:
    """Centroid-to-centroid table (m, ksub, ksub) for symmetric distance computation."""
    ip = np.matmul(codebooks, codebooks.transpose(0, 2, 1))
    if metric == "l2":
        cn = np.einsum("mkd,mkd->mk", codebooks, codebooks)
        ip = cn[:, :, None] - 2.0 * ip + cn[:, None, :]
    return ip.astype(np.float32)


# --------------------------------------------------------------------------- the scan
@njit(cache=True, nogil=True, inline="always")
def read_code(codes, i, j, nbits):
    """Sub-code ``j`` of packed row ``i`` (LSB-first bits); ``nbits = 0``: already unpacked."""
    if nbits == 8 or nbits == 0:
        return np.int64(codes[i, j])
    bit = j * nbits
    byte = bit >> 3
    shift = bit & 7
    width = codes.shape[1]
    v = np.int64(codes[i, byte])
    if byte + 1 < width:
        v |= np.int64(codes[i, byte + 1]) << 8
    if byte + 2 < width:
        v |= np.int64(codes[i, byte + 2]) << 16
    return (v >> shift) & ((1 << nbits) - 1)


@njit(cache=True, nogil=True)
def adc_scan(codes, nbits, lut, sign, bias, ids, hd, hi, row):
    """Score every packed code against one query's table and push into heap ``row``.

    score = bias + sign * sum_j lut[j, code_j]   (sign = -1 turns distances into scores)
    """
    m = lut.shape[0]
    worst = hd[row, 0]
    for i in range(codes.shape[0]):
        s = 0.0
        for j in range(m):
            s += lut[j, read_code(codes, i, j, nbits)]
        s = bias + sign * s
        if s > worst:
            heap_push(hd, hi, row, s, ids[i])
            worst = hd[row, 0]


@njit(cache=True, nogil=True)
def _pq_scan_all(codes, nbits, luts, sign, hd, hi, block):
    """Every query against every code, the codes walked in cache-sized blocks.

    Codes of other widths than 8 bits are unpacked once per block, so the bit twiddling is paid
    once and not once per query.
    """
    n, m = codes.shape[0], luts.shape[1]
    ids = np.arange(n)
    buf = np.empty((block, m), dtype=np.uint16)
    for a in range(0, n, block):
        b = min(a + block, n)
        if nbits == 8:
            for qi in range(luts.shape[0]):
                adc_scan(codes[a:b], 8, luts[qi], sign, 0.0, ids[a:b], hd, hi, qi)
        else:
            for i in range(b - a):
                for j in range(m):
                    buf[i, j] = read_code(codes, a + i, j, nbits)
            for qi in range(luts.shape[0]):
                adc_scan(buf[:b - a], 0, luts[qi], sign, 0.0, ids[a:b], hd, hi, qi)


def finish_scores(hd: np.ndarray, hi: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Sort heaps best first; for l2 the scores were negated distances, so flip them back."""
    D, I = finish_heaps(hd, hi, "ip")  # noqa: E741
    if metric == "l2":
        D = -D
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

    def _search(self, q: np.ndarray, k: int, symmetric: bool = False,
                **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if kwargs:
            raise TypeError(f"PQIndex.search got unexpected arguments {sorted(kwargs)}")
        if symmetric:
            if self.nbits > 12:
                raise ValueError(f"symmetric search needs nbits <= 12 (a ksub x ksub table), "
                                 f"got nbits={self.nbits}")
            table = sdc_table(self.codebooks, self.metric)  # (m, ksub, ksub)
            qcodes = encode(q, self.codebooks)
            luts = np.ascontiguousarray(table[np.arange(self.m)[None, :], qcodes])
        else:
            luts = adc_tables(q, self.codebooks, self.metric)
        sign = -1.0 if self._l2 else 1.0
        hd, hi = new_heaps(q.shape[0], k)
        _pq_scan_all(self.codes, self.nbits, luts, sign, hd, hi, 8192)
        return finish_scores(hd, hi, self.metric)

    def _state(self) -> dict[str, Any]:
        return {"codebooks": self.codebooks, "codes": self.codes, "m": self.m,
                "nbits": self.nbits, "seed": self.seed, "niter": self.niter}

    def _set_state(self, state: dict[str, Any]) -> None:
        for key in ("m", "nbits", "seed", "niter"):
            setattr(self, key, int(state[key]))
        self.codebooks = state["codebooks"]
        self.codes = np.ascontiguousarray(state["codes"])


def reconstruction_error(x: object, codebooks: np.ndarray) -> float:
    """Mean squared error ``mean |x - q(x)|^2`` of PQ with ``codebooks`` on rows of ``x``."""
    x = as_matrix(x, codebooks.shape[0] * codebooks.shape[2], "x")
    err = x - decode(encode(x, codebooks), codebooks)
    return float(np.mean(np.sum(err.astype(np.float64) ** 2, axis=1)))
