"""Matryoshka embeddings: one vector whose every prefix is itself a usable embedding.

Matryoshka Representation Learning (Kusupati et al. 2022, "Matryoshka Representation
Learning", NeurIPS; eq. 1 of the paper) trains a d-dimensional encoder so that the first m
coordinates, for each m in a nested set M = {m_1 < m_2 < ... < d}, work on their own. With a
base loss L (here InfoNCE on anchor/positive pairs) and weights c_m,

    L_MRL = sum_{m in M} c_m * L( trunc_m(a), trunc_m(p) ),

where trunc_m keeps the first m coordinates of each row and re-normalises it to unit length.
The same forward pass serves every size, so the extra cost is only the small loss terms. After
training, a vector can be cut to any m in M (storage and search cost shrink by d / m) and loses
far less quality than cutting an encoder trained at full size only.

Two uses follow:

* **truncation**: store and search ``truncate(x, m)`` instead of ``x``;
* **funnel retrieval** (the paper's "adaptive retrieval", section 4.3): scan the whole base with
  a short prefix to get a shortlist, then re-rank only the shortlist with the full vectors.
  The scan costs m / d of a full scan; the re-rank is ``shortlist`` dot products per query.

``MatryoshkaLoss(base_loss, dims, weights=None)(anchors, positives)`` equals
sentence-transformers' ``MatryoshkaLoss`` wrapped around ``MultipleNegativesRankingLoss`` when
``base_loss`` is ``embedlab.contrastive.info_nce`` (its ``scale`` is 1 / temperature).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "PUBLISHED_DIMENSIONS",
    "PUBLISHED_STATEMENTS",
    "FunnelIndex",
    "MatryoshkaLoss",
    "distance_concentration",
    "funnel_search",
    "published_dimensions",
    "storage_bytes",
    "train_pairs",
    "truncate",
]


def _check_dim(dim: object, full: int, name: str = "dim") -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(dim).__name__}")
    dim = int(dim)
    if not 1 <= dim <= full:
        raise ValueError(f"{name} must be in 1..{full} (the embedding size), got {dim}")
    return dim


def truncate(x, dim: int):
    """The first ``dim`` coordinates of every row of ``x``, each row re-normalised to length 1.

    ``x`` is a torch tensor (gradients flow through) or a numpy array (float32 comes back), with
    the embedding on the last axis. A row whose prefix is all zeros stays zero.
    """
    if isinstance(x, torch.Tensor):
        if not torch.is_floating_point(x):
            raise TypeError(f"x must hold floating-point values, got dtype {x.dtype}")
        if x.ndim < 1:
            raise ValueError("x must have at least one dimension (the embedding axis)")
        d = _check_dim(dim, x.shape[-1])
        return F.normalize(x[..., :d], p=2, dim=-1)
    if isinstance(x, np.ndarray):
        if x.dtype == bool or not (np.issubdtype(x.dtype, np.floating)
                                   or np.issubdtype(x.dtype, np.integer)):
            raise TypeError(f"x must hold real numbers, got dtype {x.dtype}")
        if x.ndim < 1:
            raise ValueError("x must have at least one dimension (the embedding axis)")
        d = _check_dim(dim, x.shape[-1])
        out = np.asarray(x[..., :d], dtype=np.float32)
        norms = np.linalg.norm(out, axis=-1, keepdims=True)
        return np.ascontiguousarray(out / np.maximum(norms, 1e-12), dtype=np.float32)
    raise TypeError(f"x must be a torch.Tensor or a numpy array, got {type(x).__name__}")


def _check_dims(dims: object) -> list[int]:
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence) or len(dims) == 0:
        raise TypeError("dims must be a non-empty sequence of integers, e.g. [256, 128, 64, 32]")
    out = []
    for i, d in enumerate(dims):
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"dims[{i}] must be an integer, got {type(d).__name__}")
        if d < 1:
            raise ValueError(f"dims[{i}] must be >= 1, got {d}")
        out.append(int(d))
    steps = np.diff(out)
    if len(out) > 1 and not ((steps > 0).all() or (steps < 0).all()):
        raise ValueError(f"dims must be strictly increasing or strictly decreasing (distinct "
                         f"nested sizes), got {out}")
    return out


class MatryoshkaLoss:
    """``sum_m weight_m * base_loss(truncate(anchors, m), truncate(positives, m))``.

    ``base_loss(anchors, positives)`` is any loss of two (B, d) batches, e.g.
    ``embedlab.contrastive.info_nce`` (or a ``functools.partial`` of it with a temperature).
    ``dims`` are the nested sizes (strictly increasing or strictly decreasing, as the paper's
    M); ``weights`` default to 1 for every size (the paper's c_m = 1). The largest size may be
    smaller than the embedding; a size above it is a ``ValueError`` at call time.
    """

    def __init__(self, base_loss: Callable, dims: Sequence[int],
                 weights: Sequence[float] | None = None) -> None:
        if not callable(base_loss):
            raise TypeError(f"base_loss must be callable (anchors, positives) -> loss, "
                            f"got {type(base_loss).__name__}")
        self.base_loss = base_loss
        self.dims = _check_dims(dims)
        if weights is None:
            weights = [1.0] * len(self.dims)
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
            raise TypeError("weights must be None or a sequence of numbers, one per dim")
        if len(weights) != len(self.dims):
            raise ValueError(f"weights must have one entry per dim ({len(self.dims)}), "
                             f"got {len(weights)}")
        ws = []
        for i, w in enumerate(weights):
            if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)):
                raise TypeError(f"weights[{i}] must be a number, got {type(w).__name__}")
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"weights[{i}] must be a finite number >= 0, got {w}")
            ws.append(float(w))
        self.weights = ws

    def terms(self, anchors, positives) -> dict[int, torch.Tensor]:
        """The unweighted base loss at each size: ``{m: base_loss(trunc_m(a), trunc_m(p))}``."""
        for name, t in (("anchors", anchors), ("positives", positives)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.ndim != 2:
                raise ValueError(f"{name} must be (B, d), got shape {tuple(t.shape)}")
        if anchors.shape != positives.shape:
            raise ValueError(f"positives must have the shape of anchors {tuple(anchors.shape)}, "
                             f"got {tuple(positives.shape)}")
        full = anchors.shape[1]
        if max(self.dims) > full:
            raise ValueError(f"dims must not exceed the embedding size {full}, got {self.dims}")
        return {m: self.base_loss(truncate(anchors, m), truncate(positives, m))
                for m in self.dims}

    def __call__(self, anchors, positives) -> torch.Tensor:
        terms = self.terms(anchors, positives)
        return sum(w * terms[m] for m, w in zip(self.dims, self.weights, strict=True))

    def __repr__(self) -> str:
        name = getattr(self.base_loss, "__name__", type(self.base_loss).__name__)
        return f"MatryoshkaLoss({name}, dims={self.dims}, weights={self.weights})"


# --------------------------------------------------------------------------- training
def train_pairs(encoder, queries: Sequence[str], docs: Sequence[str], loss: Callable, *,
                steps: int, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                device: str | None = None, progress: bool = True) -> list[float]:
    """Train ``encoder`` on (query, doc) pairs with any ``loss(anchors, positives)``.

    The same sampling as ``embedlab.contrastive.train_pairs`` (batches drawn without
    replacement within an epoch, in-batch negatives), with the loss left open: pass
    ``info_nce`` for plain training or a ``MatryoshkaLoss`` around it. Returns the step losses.
    """
    from embedlab.encoders import epoch_batches, train_encoder

    if len(queries) != len(docs):
        raise ValueError(f"queries and docs must pair up, got {len(queries)} and {len(docs)}")
    if not callable(loss):
        raise TypeError("loss must be callable (anchors, positives) -> scalar tensor")
    if isinstance(batch_size, bool) or not 2 <= batch_size <= len(queries):
        raise ValueError(f"batch_size must be in [2, {len(queries)}], got {batch_size}")
    rng = np.random.default_rng(seed)

    def loss_fn(enc, idx):
        za = enc.embed_tokens(enc.tokenize([queries[i] for i in idx]))
        zp = enc.embed_tokens(enc.tokenize([docs[i] for i in idx]))
        return loss(za, zp)

    return train_encoder(encoder, epoch_batches(len(queries), batch_size, rng), loss_fn,
                         steps=steps, lr=lr, seed=seed,
                         device=device, progress=progress)


# --------------------------------------------------------------------------- retrieval
def _as_rows(x: object, name: str) -> np.ndarray:
    from embedlab.index.base import as_matrix

    return as_matrix(x, None, name)


class FunnelIndex:
    """Funnel (short-then-long) search by cosine similarity over stored full vectors.

    ``add`` keeps every vector twice: its first ``short_dim`` coordinates re-normalised (the
    part a scan reads, ``scan_nbytes``) and the full unit vector (read only for re-ranking).
    ``search(q, k, shortlist)``:

    1. scans every stored prefix with the query's prefix and keeps the ``shortlist`` best ids
       (exact search on the prefixes: a ``FlatIndex`` of ``short_dim``, its size-k heap);
    2. re-ranks those ids by their full-vector cosine and returns the best ``k``.

    Returns ``(scores, ids)`` as faiss does, each (n_queries, k), scores descending. With
    ``shortlist >= ntotal`` the result is exact full-vector search.
    """

    def __init__(self, dim: int, short_dim: int, query_block: int = 256) -> None:
        from embedlab.index import FlatIndex
        from embedlab.index.base import check_int

        self.dim = check_int(dim, "dim")
        self.short_dim = _check_dim(short_dim, self.dim, "short_dim")
        self.query_block = check_int(query_block, "query_block")
        self._full = np.zeros((0, self.dim), dtype=np.float32)
        self._scan = FlatIndex(self.short_dim, metric="ip")

    @property
    def ntotal(self) -> int:
        return int(self._full.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held: the prefixes plus the full vectors."""
        return int(self._full.nbytes + self.scan_nbytes)

    @property
    def scan_nbytes(self) -> int:
        """Bytes the scan reads per query: the prefixes only."""
        return int(self._scan.ntotal * self.short_dim * 4)

    def add(self, x) -> None:
        from embedlab.index.base import as_matrix, normalize_rows

        x = as_matrix(x, self.dim, "x")
        self._full = np.concatenate([self._full, normalize_rows(x)])
        self._scan.add(truncate(x, self.short_dim))

    def search(self, q, k: int, shortlist: int = 100) -> tuple[np.ndarray, np.ndarray]:
        from embedlab.index.base import as_matrix, check_int, normalize_rows

        if self.ntotal == 0:
            raise ValueError("the index is empty: add vectors before searching")
        q = as_matrix(q, self.dim, "q")
        k = check_int(k, "k", high=self.ntotal)
        shortlist = min(check_int(shortlist, "shortlist", low=k), self.ntotal)
        qn, qs = normalize_rows(q), truncate(q, self.short_dim)
        scores = np.empty((q.shape[0], k), dtype=np.float32)
        ids = np.empty((q.shape[0], k), dtype=np.int64)
        _, cand = self._scan.search(qs, shortlist)                 # the scan: (nq, shortlist)
        for a in range(0, q.shape[0], self.query_block):
            b = min(a + self.query_block, q.shape[0])
            c = cand[a:b]
            full = np.matmul(self._full[c], qn[a:b, :, None])[..., 0]     # the re-rank
            order = np.argsort(-full, axis=1, kind="stable")[:, :k]
            scores[a:b] = np.take_along_axis(full, order, axis=1)
            ids[a:b] = np.take_along_axis(c, order, axis=1)
        return scores, ids


def funnel_search(queries, base, k: int, short_dim: int, shortlist: int = 100
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One-off funnel search: ``FunnelIndex(d, short_dim)``, add ``base``, search ``queries``.

    ``(scores, ids)``, each (n_queries, k), full-vector cosines descending; ``shortlist`` is
    clipped to the base size and must be at least ``k``.
    """
    from embedlab.index.base import as_matrix

    q = as_matrix(queries, None, "queries")
    xb = as_matrix(base, None, "base")
    if q.shape[1] != xb.shape[1]:
        raise ValueError(f"queries and base must have the same dimension, "
                         f"got {q.shape[1]} and {xb.shape[1]}")
    index = FunnelIndex(xb.shape[1], short_dim)
    index.add(xb)
    return index.search(q, k, shortlist=shortlist)


# --------------------------------------------------------------------------- dimension
def distance_concentration(x, n_queries: int = 100, seed: int = 0) -> float:
    """Mean over sampled query rows of (nearest distance) / (farthest distance) to the others.

    Euclidean distances from each of ``n_queries`` random rows of ``x`` to every other row. As
    the dimension of i.i.d. data grows the ratio tends to 1: every point is about as far as every
    other (Beyer et al. 1999, "When Is 'Nearest Neighbor' Meaningful?").
    """
    xb = _as_rows(x, "x").astype(np.float64)
    if xb.shape[0] < 3:
        raise ValueError(f"x must have at least 3 rows, got {xb.shape[0]}")
    if isinstance(n_queries, bool) or not isinstance(n_queries, (int, np.integer)) \
            or n_queries < 1:
        raise ValueError(f"n_queries must be an integer >= 1, got {n_queries!r}")
    rng = np.random.default_rng(seed)
    rows = rng.choice(xb.shape[0], size=min(int(n_queries), xb.shape[0]), replace=False)
    sq = np.einsum("ij,ij->i", xb, xb)
    d2 = sq[rows, None] - 2 * xb[rows] @ xb.T + sq[None, :]
    d = np.sqrt(np.maximum(d2, 0.0))
    d[np.arange(len(rows)), rows] = np.nan                            # not oneself
    return float(np.mean(np.nanmin(d, axis=1) / np.nanmax(d, axis=1)))


_BYTES = {"float32": 4, "float16": 2, "int8": 1, "binary": 1 / 8}


def storage_bytes(n: int, dim: int, dtype: str = "float32") -> int:
    """Bytes to store ``n`` vectors of ``dim`` coordinates as ``dtype`` (float32, float16,
    int8 or binary = one bit per coordinate, rounded up to whole bytes per vector)."""
    from embedlab.index.base import check_int

    n = check_int(n, "n", low=0)
    dim = check_int(dim, "dim")
    if dtype not in _BYTES:
        raise ValueError(f"dtype must be one of {sorted(_BYTES)}, got {dtype!r}")
    return n * math.ceil(dim * _BYTES[dtype])


# --------------------------------------------------------------------------- published figures
# What published models report at each output size: the MTEB English average (a plain mean of
# task main scores) by model and dimension, each row with the page it comes from. Only
# figures read from those pages are listed; a model that publishes one size has one row.
_NOMIC = "nomic-ai/nomic-embed-text-v1.5 model card (Hugging Face), its Matryoshka table"
_BGE = "BAAI FlagEmbedding README / model cards: MTEB English average of the v1.5 models"
_OPENAI = ("OpenAI, 'New embedding models and API updates', 25 January 2024 (MTEB average of "
           "each model at its default size)")
PUBLISHED_DIMENSIONS: tuple[dict, ...] = (
    {"model": "nomic-embed-text-v1.5", "family": "nomic (one Matryoshka model)",
     "dims": 768, "mteb": 62.28, "matryoshka": True, "source": _NOMIC},
    {"model": "nomic-embed-text-v1.5", "family": "nomic (one Matryoshka model)",
     "dims": 512, "mteb": 61.96, "matryoshka": True, "source": _NOMIC},
    {"model": "nomic-embed-text-v1.5", "family": "nomic (one Matryoshka model)",
     "dims": 256, "mteb": 61.04, "matryoshka": True, "source": _NOMIC},
    {"model": "nomic-embed-text-v1.5", "family": "nomic (one Matryoshka model)",
     "dims": 128, "mteb": 59.34, "matryoshka": True, "source": _NOMIC},
    {"model": "nomic-embed-text-v1.5", "family": "nomic (one Matryoshka model)",
     "dims": 64, "mteb": 56.10, "matryoshka": True, "source": _NOMIC},
    {"model": "bge-small-en-v1.5", "family": "BGE v1.5 (three models)", "dims": 384,
     "mteb": 62.17, "matryoshka": False, "source": _BGE},
    {"model": "bge-base-en-v1.5", "family": "BGE v1.5 (three models)", "dims": 768,
     "mteb": 63.55, "matryoshka": False, "source": _BGE},
    {"model": "bge-large-en-v1.5", "family": "BGE v1.5 (three models)", "dims": 1024,
     "mteb": 64.23, "matryoshka": False, "source": _BGE},
    {"model": "text-embedding-ada-002", "family": "OpenAI", "dims": 1536, "mteb": 61.0,
     "matryoshka": False, "source": _OPENAI},
    {"model": "text-embedding-3-small", "family": "OpenAI", "dims": 1536, "mteb": 62.3,
     "matryoshka": True, "source": _OPENAI},
    {"model": "text-embedding-3-large", "family": "OpenAI", "dims": 3072, "mteb": 64.6,
     "matryoshka": True, "source": _OPENAI},
)


# Published statements about truncation that come without a table of figures.
PUBLISHED_STATEMENTS: tuple[dict, ...] = (
    {"statement": "text-embedding-3-large shortened to 256 dimensions still outperforms an "
                  "unshortened text-embedding-ada-002 (1,536 dimensions) on MTEB",
     "source": _OPENAI.split(" (")[0]},
    {"statement": "Matryoshka representations give up to 14x smaller embeddings than fixed-size "
                  "ones at the same ImageNet-1K classification accuracy",
     "source": "Kusupati et al. 2022, 'Matryoshka Representation Learning', NeurIPS, abstract"},
)


def published_dimensions() -> list[dict]:
    """A fresh copy of :data:`PUBLISHED_DIMENSIONS`: published MTEB English averages by model and
    output size, each with its source (model cards and the vendor's release notes).
    :data:`PUBLISHED_STATEMENTS` holds two published findings that come without such a table
    (OpenAI's shortened text-embedding-3-large against ada-002; Kusupati et al.'s ImageNet-1K
    result).
    """
    return [dict(row) for row in PUBLISHED_DIMENSIONS]
