"""Contrastive learning: the InfoNCE loss, in-batch and hard negatives, and SimCSE.

InfoNCE (van den Oord, Li and Vinyals 2018, "Representation Learning with Contrastive Predictive
Coding", eq. 4) scores one positive against a set of negatives with a softmax. For a batch of
anchors a_i with positives p_i, cosine similarity s(x, y) = x.y / (|x||y|) and a temperature tau,

    L = -1/B sum_i log( exp(s(a_i, p_i)/tau) / sum_{c in C} exp(s(a_i, c)/tau) )

where the candidates C are every positive in the batch (the other rows' positives are the
"in-batch negatives", Henderson et al. 2017; Chen et al. 2020, SimCLR) plus, when given, every
row's explicit negatives. Written this way it is a B-way (or B(1 + n_neg)-way) classification:
cross-entropy of the similarity matrix divided by tau, with the diagonal as the labels. This is
sentence-transformers' ``MultipleNegativesRankingLoss`` with ``scale = 1 / temperature``.

Hard negatives are candidates that score high but are not the positive. ``mine_hard_negatives``
takes any score matrix (BM25 scores, or the model's own cosine similarities) and keeps the
top-scoring non-positives, after dropping likely false negatives: those that score within a
``margin`` of the positive (Moreira et al. 2024, "NV-Retriever", positive-aware mining).

SimCSE (Gao, Yao and Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence Embeddings")
feeds the same sentence through the encoder twice; the two dropout masks make two views, which
are each other's positive (eq. 4 of the paper is ``info_nce(z, z_prime)``). ``train_simcse``
implements it, plus the "same mask" ablation (both views identical), which collapses.

Alignment and uniformity (Wang and Isola 2020, "Understanding Contrastive Representation
Learning through Alignment and Uniformity on the Hypersphere", eqs. 2-3) measure what the loss
optimises: positives close together, all points spread over the sphere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "alignment",
    "bm25_scores",
    "check_embeddings",
    "gradient_weights",
    "info_nce",
    "infonce_row",
    "mine_hard_negatives",
    "similarity_matrix",
    "train_pairs",
    "train_simcse",
    "uniformity",
]


# --------------------------------------------------------------------------- input checks
def check_embeddings(x, name: str, ndim: int = 2) -> torch.Tensor:
    """``x`` as a floating tensor of ``ndim`` dimensions, or a clear error naming ``name``."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must hold floating-point values, got dtype {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch: expected at least one row")
    if x.shape[-1] == 0:
        raise ValueError(f"{name} has zero-length vectors: shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a positive number, got {type(temperature).__name__}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    return float(temperature)


# --------------------------------------------------------------------------- the loss
def similarity_matrix(a, b, temperature: float = 1.0) -> torch.Tensor:
    """Cosine similarities of every row of ``a`` (n, d) with every row of ``b`` (m, d), / tau."""
    a = check_embeddings(a, "a")
    b = check_embeddings(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same dimension, got {a.shape[1]} and {b.shape[1]}")
    tau = _check_temperature(temperature)
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / tau


def info_nce(anchors, positives, negatives=None, temperature: float = 0.05,
             symmetric: bool = False) -> torch.Tensor:
    """InfoNCE with in-batch negatives (and optional explicit negatives), cosine similarity.

    anchors, positives: (B, d). negatives: None or (B, n_neg, d); every row's negatives are
    candidates for every anchor, as are the other rows' positives. Returns the mean
    cross-entropy over the batch (a scalar tensor). ``symmetric=True`` averages it with the
    positive -> anchor direction (candidates: the anchors only), as CLIP does.
    """
    a = check_embeddings(anchors, "anchors")
    p = check_embeddings(positives, "positives")
    if p.shape != a.shape:
        raise ValueError(f"positives must have the shape of anchors {tuple(a.shape)}, "
                         f"got {tuple(p.shape)}")
    tau = _check_temperature(temperature)
    a = F.normalize(a, dim=-1)
    p = F.normalize(p, dim=-1)
    candidates = p
    if negatives is not None:
        n = check_embeddings(negatives, "negatives", ndim=3)
        if n.shape[0] != a.shape[0] or n.shape[2] != a.shape[1]:
            raise ValueError(f"negatives must have shape (B={a.shape[0]}, n_neg, d={a.shape[1]}), "
                             f"got {tuple(n.shape)}")
        n = F.normalize(n, dim=-1)
        # column j of the negatives for all rows, then column j+1 ...: (B * n_neg, d)
        candidates = torch.cat([p, n.transpose(0, 1).reshape(-1, a.shape[1])], dim=0)
    logits = a @ candidates.T / tau                      # (B, B * (1 + n_neg))
    labels = torch.arange(a.shape[0], device=a.device)
    loss = F.cross_entropy(logits, labels)
    if symmetric:
        loss = (loss + F.cross_entropy(p @ a.T / tau, labels)) / 2
    return loss


def gradient_weights(scores, temperature: float) -> np.ndarray:
    """How InfoNCE's gradient spreads over candidates: softmax(scores / tau).

    For one anchor with positive score s_0 and negative scores s_1..s_n, the gradient of the loss
    with respect to s_j (j >= 1) is softmax(s / tau)_j / tau: a low temperature puts nearly all
    of the weight on the hardest negatives. ``scores`` is 1-d; returns the softmax (sums to 1).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"scores must be a non-empty 1-d array, got shape {s.shape}")
    tau = _check_temperature(temperature)
    z = s / tau
    z = np.exp(z - z.max())
    return z / z.sum()


def infonce_row(similarities, temperature: float, positive: int = 0) -> dict[str, object]:
    """One anchor's InfoNCE at temperature tau: what the temperature explorer of chapter 05 shows.

    ``similarities`` (1-d, n candidates) are the anchor's cosine similarities with its in-batch
    candidates, the positive at index ``positive``. With p = softmax(s / tau) (van den Oord et
    al. 2018, eq. 4), the row's loss is -log p_positive and its gradient with respect to the
    similarities is (p - onehot(positive)) / tau: each negative j is pushed away with weight
    p_j / tau, the positive pulled with (1 - p_positive) / tau. Returns a dict with
    ``probabilities`` (p, sums to 1), ``gradient`` (dL/ds, signed), ``negative_weights``
    (p_j / tau, 0 at the positive), ``loss`` (a float) and ``positive``.
    """
    s = np.asarray(similarities, dtype=np.float64)
    if s.ndim != 1 or s.size < 2:
        raise ValueError(f"similarities must be a 1-d array of at least two candidates (the "
                         f"positive and a negative), got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("similarities must be finite (no NaN or inf)")
    if isinstance(positive, bool) or not isinstance(positive, (int, np.integer)) \
            or not 0 <= positive < s.size:
        raise ValueError(f"positive must be an index in [0, {s.size}), got {positive!r}")
    tau = _check_temperature(temperature)
    p = gradient_weights(s, tau)
    onehot = np.zeros_like(p)
    onehot[positive] = 1.0
    weights = p / tau
    weights[positive] = 0.0
    z = s / tau
    log_p = z[positive] - (z.max() + np.log(np.exp(z - z.max()).sum()))
    return {"probabilities": p, "gradient": (p - onehot) / tau, "negative_weights": weights,
            "loss": float(-log_p), "positive": int(positive)}


# --------------------------------------------------------------------------- hard negatives
def bm25_scores(queries: Sequence[str], corpus: Sequence[str], k1: float = 1.5,
                b: float = 0.75) -> np.ndarray:
    """BM25 scores (Robertson and Zaragoza 2009) of every query against every document.

    Uses ``bm25s`` with the course's tokeniser (``embedlab.text.tokenize``). Returns a dense
    float32 array (n_queries, n_docs); fine for the few thousand documents the course uses.
    """
    import bm25s

    from embedlab.text import tokenize

    if len(queries) == 0 or len(corpus) == 0:
        raise ValueError("queries and corpus must both be non-empty lists of strings")
    docs_tok = [tokenize(t) for t in corpus]
    vocab: dict[str, int] = {}
    for toks in docs_tok:
        for t in toks:
            vocab.setdefault(t, len(vocab))
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.index(bm25s.tokenization.Tokenized(
        ids=[[vocab[t] for t in toks] for toks in docs_tok], vocab=vocab), show_progress=False)
    out = np.zeros((len(queries), len(corpus)), dtype=np.float32)
    for i, q in enumerate(queries):
        toks = [t for t in tokenize(q) if t in vocab]
        if toks:  # a query with no known word scores 0 everywhere
            out[i] = retriever.get_scores(toks)
    return out


def mine_hard_negatives(scores, positive_ids, n_negatives: int = 1,
                        margin: float | None = None,
                        relative: bool = False, skip_top: int = 0) -> np.ndarray:
    """The ``n_negatives`` highest-scoring non-positive candidates of each query.

    scores: (n_queries, n_docs), any similarity (BM25, cosine); higher means more similar.
    positive_ids: (n_queries,) index of each query's positive document.
    With a ``margin``, a candidate is a likely false negative, and is skipped, when it scores too
    close to the positive: ``score > pos - margin`` (absolute margin), or with ``relative=True``
    ``score > pos * (1 - margin)`` (NV-Retriever's "TopK-PercPos"). ``margin=0`` skips only the
    candidates that outscore the positive; ``margin=None`` (the default) skips none.
    ``skip_top`` drops the first few surviving candidates as well. Returns int64
    (n_queries, n_negatives); -1 marks a slot no candidate could fill.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty 2-d array, got shape {s.shape}")
    pos = np.asarray(positive_ids)
    if pos.shape != (s.shape[0],) or not np.issubdtype(pos.dtype, np.integer):
        raise ValueError(f"positive_ids must be integers of shape ({s.shape[0]},), "
                         f"got {pos.dtype} {pos.shape}")
    if pos.min() < 0 or pos.max() >= s.shape[1]:
        raise ValueError(f"positive_ids must lie in [0, {s.shape[1]}), "
                         f"got {pos.min()}..{pos.max()}")
    if not isinstance(n_negatives, (int, np.integer)) or n_negatives < 1:
        raise ValueError(f"n_negatives must be an integer >= 1, got {n_negatives!r}")
    if margin is not None and (not np.isfinite(margin) or margin < 0):
        raise ValueError(f"margin must be None or a finite number >= 0, got {margin}")
    if skip_top < 0:
        raise ValueError(f"skip_top must be >= 0, got {skip_top}")
    rows = np.arange(s.shape[0])
    pos_score = s[rows, pos]
    allowed = s.copy()
    allowed[rows, pos] = -np.inf
    if margin is not None:
        limit = pos_score * (1 - margin) if relative else pos_score - margin
        allowed[allowed > limit[:, None]] = -np.inf
    order = np.argsort(-allowed, axis=1, kind="stable")
    out = np.full((s.shape[0], n_negatives), -1, dtype=np.int64)
    for i in rows:
        cand = order[i][np.isfinite(allowed[i, order[i]])][skip_top:skip_top + n_negatives]
        out[i, :len(cand)] = cand
    return out


# --------------------------------------------------------------------------- geometry
def alignment(x, y, alpha: float = 2.0) -> float:
    """Wang and Isola's alignment: E ||f(x) - f(y)||^alpha over positive pairs (lower is better)."""
    x = F.normalize(check_embeddings(x, "x").double(), dim=-1)
    y = F.normalize(check_embeddings(y, "y").double(), dim=-1)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    return float((x - y).norm(dim=1).pow(alpha).mean())


def uniformity(x, t: float = 2.0) -> float:
    """Wang and Isola's uniformity: log E exp(-t ||f(x) - f(y)||^2) over all pairs (lower is
    better, more uniform on the sphere)."""
    x = F.normalize(check_embeddings(x, "x").double(), dim=-1)
    if x.shape[0] < 2:
        raise ValueError("uniformity needs at least two rows in x")
    d2 = torch.pdist(x).pow(2)
    return float(torch.logsumexp(-t * d2, dim=0) - math.log(d2.numel()))


# --------------------------------------------------------------------------- training
def train_pairs(encoder, queries: Sequence[str], docs: Sequence[str], *, steps: int,
                batch_size: int = 64, temperature: float = 0.05, lr: float = 1e-3,
                hard_negatives: np.ndarray | None = None, symmetric: bool = False,
                seed: int = 0, device: str | None = None,
                callback: Callable[[int, float], None] | None = None,
                progress: bool = True) -> list[float]:
    """Train ``encoder`` on (query, doc) pairs with InfoNCE and in-batch negatives.

    Each step samples ``batch_size`` pairs (without replacement within an epoch). When
    ``hard_negatives`` (n_pairs, n_neg) indices into ``docs`` are given, those documents join the
    batch as explicit negatives (-1 entries are replaced by a random document). Returns the loss
    of every step.
    """
    from embedlab.encoders import epoch_batches, train_encoder

    if len(queries) != len(docs):
        raise ValueError(f"queries and docs must pair up, got {len(queries)} and {len(docs)}")
    if batch_size < 2 or batch_size > len(queries):
        raise ValueError(f"batch_size must be in [2, {len(queries)}], got {batch_size}")
    _check_temperature(temperature)
    if hard_negatives is not None:
        hard_negatives = np.asarray(hard_negatives)
        if hard_negatives.ndim != 2 or hard_negatives.shape[0] != len(queries):
            raise ValueError(f"hard_negatives must have shape ({len(queries)}, n_neg), "
                             f"got {hard_negatives.shape}")
    rng = np.random.default_rng(seed)

    def loss_fn(enc, idx):
        za = enc.embed_tokens(enc.tokenize([queries[i] for i in idx]))
        zp = enc.embed_tokens(enc.tokenize([docs[i] for i in idx]))
        zn = None
        if hard_negatives is not None:
            neg = hard_negatives[idx].copy()
            fill = neg < 0
            neg[fill] = rng.integers(0, len(docs), size=int(fill.sum()))
            flat = enc.embed_tokens(enc.tokenize([docs[j] for j in neg.reshape(-1)]))
            zn = flat.reshape(len(idx), neg.shape[1], -1)
        return info_nce(za, zp, zn, temperature=temperature, symmetric=symmetric)

    return train_encoder(encoder, epoch_batches(len(queries), batch_size, rng), loss_fn,
                         steps=steps, lr=lr, seed=seed,
                         device=device, callback=callback, progress=progress)


def train_simcse(encoder, sentences: Sequence[str], *, steps: int, batch_size: int = 64,
                 temperature: float = 0.05, lr: float = 1e-3, same_mask: bool = False,
                 seed: int = 0, device: str | None = None,
                 callback: Callable[[int, float], None] | None = None,
                 progress: bool = True) -> list[float]:
    """Unsupervised SimCSE: each sentence, encoded twice with dropout on, is its own positive.

    The two passes draw independent dropout masks, so the two views differ a little; InfoNCE
    pulls them together and pushes apart the other sentences of the batch. With
    ``same_mask=True`` both views are the same vector (the paper's "same dropout mask"
    ablation): the positive term is then constant and nothing stops the representation from
    degrading. The dropout rate is the encoder's own (set it when building the encoder).
    """
    from embedlab.encoders import epoch_batches, train_encoder

    if len(sentences) < 2:
        raise ValueError(f"sentences must hold at least two sentences, got {len(sentences)}")
    if batch_size < 2 or batch_size > len(sentences):
        raise ValueError(f"batch_size must be in [2, {len(sentences)}], got {batch_size}")
    _check_temperature(temperature)
    rng = np.random.default_rng(seed)

    def loss_fn(enc, idx):
        tokens = enc.tokenize([sentences[i] for i in idx])
        z1 = enc.embed_tokens(tokens)
        z2 = z1 if same_mask else enc.embed_tokens(tokens)
        return info_nce(z1, z2, temperature=temperature)

    return train_encoder(encoder, epoch_batches(len(sentences), batch_size, rng), loss_fn,
                         steps=steps, lr=lr, seed=seed,
                         device=device, callback=callback, progress=progress)
