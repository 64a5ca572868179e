"""GloVe from scratch: co-occurrence counts, the weighting f(x), AdaGrad.

Pennington, Socher and Manning, "GloVe: Global Vectors for Word Representation" (EMNLP 2014).

1. **Co-occurrence counts** ``X[i, j]``: every time word ``j`` occurs ``d`` positions from word
   ``i`` (``1 <= d <= window``, both directions), add ``1 / d`` (paper section 4.2: "word pairs
   that are d words apart contribute 1/d to the total count"). ``X`` is symmetric and sparse;
   ``cooccurrence_matrix`` builds it with a numba loop over the corpus and scipy's sparse sum.
2. **Weighting** (eq. 9): ``f(x) = (x / x_max)^alpha`` for ``x < x_max``, else 1, with
   ``x_max = 100`` and ``alpha = 3/4``: rare pairs count less, frequent ones are capped.
3. **Objective** (eq. 8), over the non-zero entries only:

       J = sum_{i,j: X_ij > 0} f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2.

4. **AdaGrad** (Duchi et al. 2011) exactly as the reference glove.c runs it: one step per
   non-zero entry in shuffled order, on the gradient of J / 2, with initial learning rate
   ``eta = 0.05``. Each parameter keeps a sum ``G`` of its squared scaled gradients, starting at
   1. A step with gradient ``g`` first moves the parameter by ``eta * g / sqrt(G)``, using the sum
   *before* this step, and only then adds ``(eta * g)^2`` to ``G``. The word-vector gradients are
   clipped to ``[-100, 100]`` first (glove.c's ``grad_clip_value``); the bias gradients are not.
5. The final vectors are ``W + W~`` (section 4.2): the two sets are equivalent up to their random
   start because X is symmetric, and summing them gives a small, steady gain.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numba import njit

from embedlab.text import build_vocab
from embedlab.word2vec import (
    KeyedVectorsMixin,
    _check_int,
    _check_sentences,
    corpus_ids,
    progress,
)

__all__ = ["GloVe", "cooccurrence_matrix", "glove_weight", "glove_loss"]


# --------------------------------------------------------------------------- the formulas
def glove_weight(x, x_max: float = 100.0, alpha: float = 0.75) -> np.ndarray:
    """``f(x) = (x / x_max)^alpha`` where ``x < x_max``, else 1 (paper eq. 9)."""
    if not (isinstance(x_max, (int, float)) and x_max > 0):
        raise ValueError(f"x_max must be a positive number, got {x_max!r}")
    if not (isinstance(alpha, (int, float)) and alpha > 0):
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")
    arr = np.asarray(x, dtype=np.float64)
    if np.any(arr < 0) or not np.all(np.isfinite(arr)):
        raise ValueError("x must hold finite counts >= 0")
    return np.where(arr < x_max, (arr / x_max) ** alpha, 1.0)


def glove_loss(W, W_tilde, b, b_tilde, rows, cols, counts, x_max: float = 100.0,
               alpha: float = 0.75):
    """The GloVe objective ``J`` (paper eq. 8) summed over the given non-zero entries.

    Works on numpy arrays or torch tensors (then it is differentiable): ``W``, ``W_tilde``
    (V, d); ``b``, ``b_tilde`` (V,); ``rows``, ``cols`` integer indices; ``counts`` the
    ``X[rows, cols]`` values, all > 0.
    """
    try:
        import torch
        is_torch = isinstance(W, torch.Tensor)
    except ImportError:  # pragma: no cover - torch is a course dependency
        is_torch = False
    if is_torch:
        x = counts
        if torch.any(x <= 0):
            raise ValueError("counts must be > 0 (only non-zero entries enter the loss)")
        f = torch.where(x < x_max, (x / x_max) ** alpha, torch.ones_like(x))
        diff = (W[rows] * W_tilde[cols]).sum(-1) + b[rows] + b_tilde[cols] - torch.log(x)
        return (f * diff**2).sum()
    x = np.asarray(counts, dtype=np.float64)
    if np.any(x <= 0):
        raise ValueError("counts must be > 0 (only non-zero entries enter the loss)")
    f = glove_weight(x, x_max, alpha)
    diff = (np.einsum("ij,ij->i", np.asarray(W)[rows], np.asarray(W_tilde)[cols])
            + np.asarray(b)[rows] + np.asarray(b_tilde)[cols] - np.log(x))
    return float((f * diff**2).sum())


# --------------------------------------------------------------------------- co-occurrences
@njit(cache=True)
def _window_pairs(ids, starts, s_begin, s_end, window, rows, cols, vals):
    """Each word with every earlier word of its sentence within ``window``: (earlier, later,
    1/distance). Returns how many entries it wrote (the caller sized the arrays)."""
    n = 0
    for s in range(s_begin, s_end):
        a = starts[s]
        b = starts[s + 1]
        for t in range(a, b):
            lo = max(a, t - window)
            for u in range(lo, t):
                rows[n] = ids[u]
                cols[n] = ids[t]
                vals[n] = 1.0 / (t - u)
                n += 1
    return n


def cooccurrence_matrix(ids: np.ndarray, starts: np.ndarray, vocab_size: int, window: int = 10,
                        max_entries: int = 4_000_000) -> sp.csr_matrix:
    """Symmetric co-occurrence counts with 1/distance weighting, as a float64 CSR matrix.

    ``ids`` is the corpus as word ids and ``starts`` the sentence offsets
    (``word2vec.corpus_ids``); windows never cross sentence boundaries. The pairs of at most
    ``max_entries`` window positions at a time are summed by scipy (duplicates add up), so
    memory stays bounded; the upper half ``U`` (earlier word, later word) gives ``X = U + U^T``.
    """
    window = _check_int("window", window, 1)
    vocab_size = _check_int("vocab_size", vocab_size, 1)
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    if starts.ndim != 1 or len(starts) < 1 or starts[0] != 0 or starts[-1] != len(ids):
        raise ValueError("starts must be sentence offsets from 0 to len(ids)")
    if len(ids) and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"ids must lie in [0, vocab_size={vocab_size})")
    lengths = np.diff(starts)
    # pairs per sentence: sum over positions of min(position, window)
    m = np.minimum(lengths, window)
    per_sentence = m * (2 * lengths - m - 1) // 2
    upper = sp.csr_matrix((vocab_size, vocab_size), dtype=np.float64)
    s = 0
    n_sent = len(lengths)
    while s < n_sent:
        e, total = s, 0
        while e < n_sent and (total + per_sentence[e] <= max_entries or e == s):
            total += int(per_sentence[e])
            e += 1
        rows = np.empty(total, dtype=np.int32)
        cols = np.empty(total, dtype=np.int32)
        vals = np.empty(total, dtype=np.float64)
        n = _window_pairs(ids, starts, s, e, window, rows, cols, vals)
        upper = upper + sp.csr_matrix((vals[:n], (rows[:n], cols[:n])),
                                      shape=(vocab_size, vocab_size))
        s = e
    X = (upper + upper.T).tocsr()
    X.sum_duplicates()
    X.sort_indices()
    return X


# --------------------------------------------------------------------------- training
GRAD_CLIP = 100.0  # glove.c's grad_clip_value: word-vector gradients are clipped to +-100


@njit(cache=True, fastmath=True)
def _adagrad_epoch(rows, cols, logx, fx, W, Wt, b, bt, gW, gWt, gb, gbt, eta):
    """One pass of AdaGrad over the entries in the order given; returns sum f(x) diff^2."""
    dim = W.shape[1]
    grad_i = np.empty(dim, dtype=W.dtype)
    grad_j = np.empty(dim, dtype=W.dtype)
    clip = GRAD_CLIP
    loss = 0.0
    for e in range(rows.shape[0]):
        i = rows[e]
        j = cols[e]
        wi = W[i]
        wj = Wt[j]
        diff = b[i] + bt[j] - logx[e]
        for k in range(dim):
            diff += wi[k] * wj[k]
        fdiff = fx[e] * diff                       # d(J/2)/d(w_i . w~_j)
        loss += np.float64(fdiff * diff)
        for k in range(dim):                       # both gradients from the old vectors
            grad_i[k] = min(max(fdiff * wj[k], -clip), clip)
            grad_j[k] = min(max(fdiff * wi[k], -clip), clip)
        _adagrad_step(wi, gW[i], grad_i, eta)
        _adagrad_step(wj, gWt[j], grad_j, eta)
        step = eta * fdiff                         # the biases' gradient is fdiff itself
        b[i] -= step / np.sqrt(gb[i])
        gb[i] += step * step
        bt[j] -= step / np.sqrt(gbt[j])
        gbt[j] += step * step
    return loss


@njit(cache=True, fastmath=True)
def _adagrad_step(w, gsq, grad, eta):
    """glove.c's AdaGrad: step by eta * grad / sqrt(sum so far), then add (eta * grad)^2."""
    for k in range(w.shape[0]):
        step = eta * grad[k]
        w[k] -= step / np.sqrt(gsq[k])
        gsq[k] += step * step


class GloVe(KeyedVectorsMixin):
    """GloVe word vectors trained with AdaGrad on window co-occurrence counts.

    ``vector_size`` (d), ``window`` (symmetric context, words closer count more: 1/d),
    ``x_max`` and ``alpha`` of the weighting, ``learning_rate`` (AdaGrad's initial step),
    ``epochs``, ``min_count``, ``seed``. After ``fit(sentences)``: ``vectors = W + W_tilde``
    (V, d) float32, ``W``, ``W_tilde``, ``b``, ``b_tilde``, ``cooccurrence`` (the CSR matrix X),
    ``index_to_key``, ``key_to_index``, ``counts`` and ``loss_history`` (J / nnz per epoch).
    """

    def __init__(self, vector_size: int = 50, window: int = 10, x_max: float = 100.0,
                 alpha: float = 0.75, learning_rate: float = 0.05, epochs: int = 25,
                 min_count: int = 5, seed: int = 0, progress: bool = False):
        self.vector_size = _check_int("vector_size", vector_size, 1)
        self.window = _check_int("window", window, 1)
        self.epochs = _check_int("epochs", epochs, 1)
        self.min_count = _check_int("min_count", min_count, 1)
        self.seed = _check_int("seed", seed, 0)
        for name, value in (("x_max", x_max), ("alpha", alpha),
                            ("learning_rate", learning_rate)):
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        self.x_max = float(x_max)
        self.alpha = float(alpha)
        self.learning_rate = float(learning_rate)
        self.progress = bool(progress)
        self.vectors = None
        self.index_to_key: list[str] = []
        self.key_to_index: dict[str, int] = {}
        self.loss_history: list[float] = []
        self.cooccurrence: sp.csr_matrix | None = None

    def fit(self, sentences) -> GloVe:
        """Vocabulary, co-occurrence counts, then ``epochs`` AdaGrad passes over them."""
        _check_sentences(sentences)
        words, counts = build_vocab(sentences, self.min_count)
        self.index_to_key = words
        self.key_to_index = {w: i for i, w in enumerate(words)}
        self.counts = np.asarray(counts, dtype=np.int64)
        ids, starts = corpus_ids(sentences, self.key_to_index)
        X = cooccurrence_matrix(ids, starts, len(words), self.window)
        self.cooccurrence = X
        return self.fit_cooccurrence(X)

    def fit_cooccurrence(self, X: sp.spmatrix) -> GloVe:
        """Train on a given (V, V) co-occurrence matrix (the vocabulary must be set)."""
        if not sp.issparse(X) or X.shape[0] != X.shape[1]:
            raise TypeError("X must be a square scipy.sparse matrix")
        if self.index_to_key and X.shape[0] != len(self.index_to_key):
            raise ValueError(f"X is {X.shape} but the vocabulary has {len(self.index_to_key)} "
                             "words")
        coo = X.tocoo()
        keep = coo.data > 0
        rows = coo.row[keep].astype(np.int32)
        cols = coo.col[keep].astype(np.int32)
        x = coo.data[keep].astype(np.float64)
        if len(x) == 0:
            raise ValueError("X has no positive entries: nothing to train on")
        logx = np.log(x).astype(np.float32)
        fx = glove_weight(x, self.x_max, self.alpha).astype(np.float32)
        v, d = X.shape[0], self.vector_size
        rng = np.random.default_rng(self.seed)
        f32 = np.float32
        self.W = ((rng.random((v, d), dtype=f32) - f32(0.5)) / f32(d))
        self.W_tilde = ((rng.random((v, d), dtype=f32) - f32(0.5)) / f32(d))
        self.b = ((rng.random(v, dtype=f32) - f32(0.5)) / f32(d))
        self.b_tilde = ((rng.random(v, dtype=f32) - f32(0.5)) / f32(d))
        gW, gWt = np.ones((v, d), dtype=f32), np.ones((v, d), dtype=f32)
        gb, gbt = np.ones(v, dtype=f32), np.ones(v, dtype=f32)
        self.loss_history = []
        epochs = range(self.epochs)
        if self.progress:
            epochs = progress(epochs, desc="glove", unit="epoch")
        for _ in epochs:
            order = rng.permutation(len(x))  # shuffled copies: the loop then reads in order
            loss = _adagrad_epoch(rows[order], cols[order], logx[order], fx[order], self.W,
                                  self.W_tilde, self.b, self.b_tilde, gW, gWt, gb, gbt,
                                  f32(self.learning_rate))
            self.loss_history.append(float(loss / len(x)))
        self.vectors = self.W + self.W_tilde
        return self
