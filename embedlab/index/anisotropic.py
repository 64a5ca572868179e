"""Score-aware (anisotropic) product quantisation, as in ScaNN (Guo, Sun, Lindgren, Geng, Simcha,
Chern and Kumar, "Accelerating Large-Scale Inference with Anisotropic Vector Quantization",
ICML 2020, arXiv:1908.10396).

Plain PQ picks codes that minimise the reconstruction error ``|x - x~|^2``. For maximum inner
product search that is the wrong target: what matters is the error of the *score* ``<q, x~>``
for the queries that score ``x`` highly, and those queries point roughly along ``x``. Split the
residual ``r = x - x~`` into the part parallel to ``x`` and the part orthogonal to it,

    r_par = (r . x / |x|^2) x,        r_perp = r - r_par.

For queries spread uniformly on the sphere and weighted by ``w(<q, x>) = 1[<q, x> >= T]``, the
expected squared score error is (the paper's Theorem 3.2)

    l(x, x~) = h_par |r_par|^2 + h_perp |r_perp|^2,

    h_par  = (d - 1) int_0^a sin^(d-2)(t) cos^2(t) dt,    h_perp = int_0^a sin^d(t) dt,

with ``a = arccos(T / |x|)``. Only their ratio ``eta = h_par / h_perp`` matters for choosing codes;
it grows with ``T`` and with ``d`` (for unit ``x``, ``eta / (d - 1) -> T^2 / (1 - T^2)`` as ``d``
grows, Theorem 3.4). ``eta = 1`` is plain PQ; ``eta > 1`` tolerates error orthogonal to ``x``
(which moves every score a little, in both directions) to cut error along ``x`` (which shifts the
scores of exactly the queries that rank ``x`` highly).

Writing ``x^ = x / |x|``, the loss is ``h_perp |r|^2 + (h_par - h_perp) (r . x^)^2``. Training
alternates, starting from plain PQ codebooks (section 4.2 of the paper):

1. **codes**: the loss couples the subspaces through ``r . x^``, so each point's codes are chosen
   by coordinate descent, one subspace at a time, with the others fixed;
2. **codebooks**: with codes fixed the loss is quadratic in the codewords, and each codeword
   ``c`` of subspace ``j`` has its own small ``dsub x dsub`` normal equations
   ``sum_i A_ij c = sum_i b_ij`` over the points coded with it, where
   ``A_ij = h_perp I + (h_par - h_perp) x^_ij x^_ij^T`` and ``b_ij`` is the same matrix applied to
   what that subspace has to explain.

Search is exactly PQ's asymmetric distance computation with inner-product tables: the codes are
as compact as plain PQ's, only better chosen.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from embedlab.index.base import check_int
from embedlab.index.pq import PQIndex, decode, encode, pack_codes, train_codebooks


def anisotropic_eta(T: float, dim: int, norm: float = 1.0, steps: int = 20_000) -> float:
    """``eta = h_par / h_perp`` for threshold ``T`` in ``dim`` dimensions (Theorem 3.2).

    The integrals over the angle ``t`` in ``[0, arccos(T / norm)]`` are taken numerically in log
    space (``sin^d`` underflows for large ``d``). ``T = 0`` gives ``eta = 1``, plain PQ's loss.
    """
    dim = check_int(dim, "dim", low=2)
    if not (isinstance(T, (int, float, np.floating)) and 0 <= T < norm):
        raise ValueError(f"T must be a number in [0, norm={norm}), got {T!r}")
    if T == 0:
        return 1.0
    a = math.acos(T / norm)
    t = np.linspace(0.0, a, steps + 1)[1:]  # sin(0) = 0 contributes nothing
    log_sin = np.log(np.sin(t))
    log_par = (dim - 2) * log_sin + 2 * np.log(np.abs(np.cos(t)) + 1e-300)
    log_perp = dim * log_sin
    shift = max(log_par.max(), log_perp.max())
    h_par = (dim - 1) * np.trapezoid(np.exp(log_par - shift), t)
    h_perp = np.trapezoid(np.exp(log_perp - shift), t)
    return float(h_par / h_perp)


def anisotropic_loss(x: np.ndarray, xq: np.ndarray, eta: float) -> np.ndarray:
    """Per-row loss ``eta |r_par|^2 + |r_perp|^2`` of reconstructions ``xq`` of rows ``x``
    (``h_perp`` scaled to 1)."""
    r = x.astype(np.float64) - xq
    xhat = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    par = np.einsum("ij,ij->i", r, xhat) ** 2
    return eta * par + (np.einsum("ij,ij->i", r, r) - par)


def anisotropic_encode(x: np.ndarray, codebooks: np.ndarray, eta: float,
                       codes: np.ndarray | None = None, sweeps: int = 2) -> np.ndarray:
    """Codes (n, m) minimising the anisotropic loss by coordinate descent over the subspaces.

    Starts from ``codes`` (default: the plain nearest-centroid codes). For subspace ``j`` with the
    others fixed, candidate codeword ``c`` leaves residual ``r_j = x_j - c`` there, so

        loss(c) = |r_other|^2 + |r_j|^2 + (eta - 1) (p_other + r_j . x^_j)^2

    where ``p_other = r_other . x^_other``: one ``(n, ksub)`` table per subspace.
    """
    m, ksub, dsub = codebooks.shape
    n = x.shape[0]
    x64 = x.astype(np.float64)
    xhat = x64 / np.maximum(np.linalg.norm(x64, axis=1, keepdims=True), 1e-30)
    codes = encode(x, codebooks) if codes is None else codes.copy()
    books = codebooks.astype(np.float64)
    rows = np.arange(n)
    # part[:, j] = r_j . x^_j, the share of subspace j in r . x^ (kept up to date)
    part = np.empty((n, m))
    tables = []
    for j in range(m):
        sl = slice(j * dsub, (j + 1) * dsub)
        xj, hj = x64[:, sl], xhat[:, sl]
        # |x_j - c|^2 and (x_j - c) . x^_j for every point and candidate c: (n, ksub) each
        sq = ((xj * xj).sum(axis=1)[:, None] - 2.0 * xj @ books[j].T
              + (books[j] ** 2).sum(axis=1)[None, :])
        dot = (xj * hj).sum(axis=1)[:, None] - hj @ books[j].T
        tables.append((sq, dot))
        part[:, j] = dot[rows, codes[:, j]]
    p_all = part.sum(axis=1)
    for _ in range(sweeps):
        changed = 0
        for j in range(m):
            sq, dot = tables[j]
            p_other = p_all - part[:, j]
            loss = sq + (eta - 1.0) * (p_other[:, None] + dot) ** 2
            best = np.argmin(loss, axis=1)
            changed += int((best != codes[:, j]).sum())
            codes[:, j] = best
            part[:, j] = dot[rows, best]
            p_all = p_other + part[:, j]
        if changed == 0:
            break
    return codes


def update_codebooks(x: np.ndarray, codes: np.ndarray, codebooks: np.ndarray,
                     eta: float) -> np.ndarray:
    """Re-fit every codeword to the anisotropic loss with the codes fixed (normal equations).

    Subspaces are updated one after another (each sees the others' newest codewords); a codeword
    no point uses keeps its value.
    """
    m, ksub, dsub = codebooks.shape
    books = codebooks.astype(np.float64).copy()
    x64 = x.astype(np.float64)
    xhat = x64 / np.maximum(np.linalg.norm(x64, axis=1, keepdims=True), 1e-30)
    recon = decode(codes, books)
    for j in range(m):
        sl = slice(j * dsub, (j + 1) * dsub)
        hj = xhat[:, sl]
        # what subspace j has to explain: the residual without its own contribution
        s = x64 - recon
        s[:, sl] += recon[:, sl]
        proj = np.einsum("ij,ij->i", s, xhat)  # s . x^ over all coordinates
        # b_i = s_j + (eta - 1) x^_j (s . x^);  A_i = I + (eta - 1) x^_j x^_j^T
        b = s[:, sl] + (eta - 1.0) * hj * proj[:, None]
        outer = (eta - 1.0) * hj[:, :, None] * hj[:, None, :]
        cj = codes[:, j]
        A = np.stack([np.bincount(cj, weights=col, minlength=ksub)
                      for col in outer.reshape(len(x), -1).T], axis=1).reshape(ksub, dsub, dsub)
        B = np.stack([np.bincount(cj, weights=col, minlength=ksub) for col in b.T], axis=1)
        counts = np.bincount(cj, minlength=ksub)
        A += counts[:, None, None] * np.eye(dsub)[None]
        used = counts > 0
        books[j, used] = np.linalg.solve(A[used], B[used][:, :, None])[:, :, 0]
        recon[:, sl] = books[j][codes[:, j]]
    return books.astype(np.float32)


class AnisotropicPQIndex(PQIndex):
    """PQ trained and encoded with ScaNN's score-aware loss; searched with inner-product ADC.

    ``AnisotropicPQIndex(dim, m=8, nbits=8, T=0.2, metric="ip", seed=0, niter=25,
    aniso_iter=5)``: ``T`` is the score threshold (on unit vectors) that sets
    ``eta = anisotropic_eta(T, dim)``; ``aniso_iter`` rounds of (codes, codebooks) refinement
    follow the plain k-means initialisation. Only ``"ip"`` and ``"cosine"`` make sense: the loss
    is about inner products.
    """

    def __init__(self, dim: int, m: int = 8, nbits: int = 8, T: float = 0.2,
                 metric: str = "ip", seed: int = 0, niter: int = 25,
                 aniso_iter: int = 5) -> None:
        if metric not in ("ip", "cosine"):
            raise ValueError(f"metric must be 'ip' or 'cosine' (the score-aware loss is defined "
                             f"for inner products), got {metric!r}")
        super().__init__(dim, m=m, nbits=nbits, metric=metric, seed=seed, niter=niter)
        if not isinstance(T, (int, float, np.floating)) or not 0 <= T < 1:
            raise ValueError(f"T must be a number in [0, 1), got {T!r}")
        self.T = float(T)
        self.aniso_iter = check_int(aniso_iter, "aniso_iter", low=0)
        self.eta = anisotropic_eta(self.T, self.dim) if self.T > 0 else 1.0
        self.train_loss: list[float] = []

    def _train(self, x: np.ndarray) -> None:
        books = train_codebooks(x, self.m, self.nbits, self.niter, self.seed)
        codes = encode(x, books)
        self.train_loss = [float(anisotropic_loss(x, decode(codes, books), self.eta).mean())]
        for _ in range(self.aniso_iter if self.eta != 1.0 else 0):  # eta = 1: plain PQ
            codes = anisotropic_encode(x, books, self.eta, codes)
            books = update_codebooks(x, codes, books, self.eta)
            self.train_loss.append(
                float(anisotropic_loss(x, decode(codes, books), self.eta).mean()))
        self.codebooks = books

    def encode(self, x: object) -> np.ndarray:
        """Unpacked codes (n, m) chosen by the anisotropic loss."""
        return anisotropic_encode(self._prepare(x, "x"), self.codebooks, self.eta)

    def _add(self, x: np.ndarray) -> None:
        packed = pack_codes(anisotropic_encode(x, self.codebooks, self.eta), self.nbits)
        self.codes = np.ascontiguousarray(np.concatenate([self.codes, packed]))

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "T": self.T, "aniso_iter": self.aniso_iter, "eta": self.eta}

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self.T, self.aniso_iter = float(state["T"]), int(state["aniso_iter"])
        self.eta = float(state["eta"])
        self.train_loss = []
