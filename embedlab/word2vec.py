"""word2vec from scratch: skip-gram and CBOW with negative sampling.

Mikolov, Chen, Corrado and Dean, "Efficient Estimation of Word Representations in Vector Space"
(2013), and Mikolov, Sutskever, Chen, Corrado and Dean, "Distributed Representations of Words and
Phrases and their Compositionality" (NeurIPS 2013). Every detail below follows the reference C
program (word2vec.c) and gensim, so the two can be compared on equal terms:

* **Skip-gram with negative sampling (SGNS)**, paper eq. (4). For an input word with vector
  ``v`` (a row of ``syn0``), a true context word with output vector ``u_o`` (a row of
  ``syn1neg``) and ``k`` noise words ``u_1..u_k``, the loss is

      L = -log sigma(u_o . v) - sum_i log sigma(-u_i . v).

  Its gradients are ``dL/d(u_o . v) = sigma(u_o . v) - 1`` and ``dL/d(u_i . v) = sigma(u_i . v)``,
  so one SGD step moves each output vector by ``alpha * (label - sigma(score)) * v`` and ``v``
  by the sum of ``alpha * (label - sigma(score)) * u``. ``sgns_loss`` writes this loss in torch.
* **CBOW**: the input is the mean of the context words' vectors; it predicts the centre word with
  the same loss, and the input's gradient is added to every context vector (as word2vec.c does).
* **Noise distribution**: unigram counts raised to 0.75, paper section 2.2; drawn by binary
  search in a cumulative table (gensim's ``cum_table``), see ``noise_distribution``.
* **Subsampling** of frequent words, paper section 2.3 (``keep_probability``).
* **Dynamic window**: for each centre word an effective window ``b`` is drawn uniformly in
  ``1..window``, so near words are seen more often than far ones.
* **Learning rate** decays linearly from ``alpha`` to ``min_alpha`` over all training words.

The inner loops are numba functions that do exactly one SGD step per (input, target) pair, the
way word2vec.c does; a single linear-congruential random stream (word2vec.c's
``next_random = next_random * 25214903917 + 11``, kept to 48 bits as gensim does) drives
subsampling, window sizes and negative draws, always through its high 32 bits (``next >> 16``),
so one thread is deterministic for a given ``seed`` and the window sizes are uniform.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numba import njit

from embedlab.text import build_vocab

__all__ = ["Word2Vec", "UnknownWordError", "keep_probability", "noise_distribution",
           "noise_cum_table", "sgns_loss", "sgd_pair_step", "draw_noise", "corpus_ids",
           "KeyedVectorsMixin", "progress", "window_examples", "plot_window_examples"]

_LCG_MUL = np.uint64(25214903917)
_LCG_ADD = np.uint64(11)
_LCG_MASK = np.uint64((1 << 48) - 1)      # gensim keeps the stream to 48 bits


class UnknownWordError(ValueError, KeyError):
    """A word that is not in the model's vocabulary (a ``ValueError`` and a ``KeyError``)."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- the formulas
def keep_probability(counts, sample: float = 1e-3, formula: str = "word2vec.c") -> np.ndarray:
    """Probability of keeping each occurrence of a word when subsampling frequent words.

    With ``f = count / total`` the word's frequency and ``t = sample``:

    * ``"paper"`` (Mikolov et al. 2013b, eq. 5): discard with probability ``1 - sqrt(t / f)``,
      so keep ``min(1, sqrt(t / f))``;
    * ``"word2vec.c"`` (what the released code and gensim actually do):
      keep ``min(1, (sqrt(f / t) + 1) * t / f)`` = ``min(1, sqrt(t / f) + t / f)``.

    The second keeps a little more of every word and never removes a word whose frequency is
    below about 2.6 t. ``sample = 0`` switches subsampling off (every probability is 1).
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"counts must be a non-empty 1-d array, got shape {c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise ValueError("counts must be finite and positive")
    if not (isinstance(sample, (int, float)) and 0 <= sample < 1):
        raise ValueError(f"sample must be a float in [0, 1), got {sample!r}")
    if sample == 0:
        return np.ones_like(c)
    f = c / c.sum()
    if formula == "paper":
        p = np.sqrt(sample / f)
    elif formula == "word2vec.c":
        p = (np.sqrt(f / sample) + 1.0) * sample / f
    else:
        raise ValueError(f"formula must be 'paper' or 'word2vec.c', got {formula!r}")
    return np.minimum(p, 1.0)


def noise_distribution(counts, power: float = 0.75) -> np.ndarray:
    """The negative-sampling distribution ``P_n(w) = count(w)^power / sum_v count(v)^power``."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"counts must be a non-empty 1-d array, got shape {c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise ValueError("counts must be finite and positive")
    w = c**power
    return w / w.sum()


def noise_cum_table(counts, power: float = 0.75, domain: int = 2**31 - 1) -> np.ndarray:
    """Cumulative integer table of ``count^power``: draw ``r`` uniform in ``[0, table[-1])`` and
    the noise word is the first index with ``table[i] > r`` (a binary search). gensim's layout."""
    p = noise_distribution(counts, power)
    table = np.round(np.cumsum(p) * domain).astype(np.int64)
    table[-1] = domain
    return table


def sgns_loss(v, u_pos, u_neg):
    """The SGNS loss of a batch, written plainly in torch (mean over the batch).

    ``v``: (B, d) input vectors; ``u_pos``: (B, d) output vectors of the true words;
    ``u_neg``: (B, k, d) output vectors of the noise words. Returns
    ``mean_b [-log sigma(u_pos . v) - sum_i log sigma(-u_neg_i . v)]``.
    """
    import torch
    import torch.nn.functional as F

    for name, t in (("v", v), ("u_pos", u_pos), ("u_neg", u_neg)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if v.ndim != 2 or u_pos.shape != v.shape:
        raise ValueError(f"v and u_pos must both be (B, d), got {tuple(v.shape)} and "
                         f"{tuple(u_pos.shape)}")
    if u_neg.ndim != 3 or u_neg.shape[0] != v.shape[0] or u_neg.shape[2] != v.shape[1]:
        raise ValueError(f"u_neg must be (B, k, d) = ({v.shape[0]}, k, {v.shape[1]}), got "
                         f"{tuple(u_neg.shape)}")
    pos = (u_pos * v).sum(-1)                          # (B,)
    neg = torch.einsum("bkd,bd->bk", u_neg, v)         # (B, k)
    return (-F.logsigmoid(pos) - F.logsigmoid(-neg).sum(-1)).mean()


# --------------------------------------------------------------------------- numba kernels
@njit(cache=True, fastmath=True, inline="always")
def _next(state):
    """Advance the 48-bit stream and return its high 32 bits (gensim's ``random_int32``).

    The low bits of a power-of-two linear-congruential stream repeat with short periods (the
    lowest bit alternates), so every draw uses the high bits, never ``next % n`` directly.
    """
    state[0] = (state[0] * _LCG_MUL + _LCG_ADD) & _LCG_MASK
    return state[0] >> np.uint64(16)


@njit(cache=True, fastmath=True, inline="always")
def _draw_noise(cum_table, state):
    r = np.int64(_next(state) % np.uint64(cum_table[-1]))
    return np.searchsorted(cum_table, r, side="right")


@njit(cache=True, fastmath=True)
def _sgd_pair(syn0, syn1neg, l1, neu1e, target, negative, cum_table, state, alpha, loss):
    """One negative-sampling SGD step. ``l1`` is the input vector (a row of syn0 or the CBOW
    mean); its gradient is accumulated into ``neu1e``; output rows of syn1neg are updated here.
    Returns the loss of this pair added to ``loss``."""
    dim = l1.shape[0]
    for d in range(negative + 1):
        if d == 0:
            word = target
            label = 1.0
        else:
            word = _draw_noise(cum_table, state)
            if word == target:
                continue
            label = 0.0
        out = syn1neg[word]
        f = np.float32(0.0)
        for k in range(dim):
            f += l1[k] * out[k]
        if f > 30.0:
            sig = 1.0
            nls = 0.0 if label == 1.0 else f           # -log sigma(-f) ~ f
        elif f < -30.0:
            sig = 0.0
            nls = -f if label == 1.0 else 0.0
        else:
            e = math.exp(-f)
            sig = 1.0 / (1.0 + e)
            nls = math.log1p(e) if label == 1.0 else math.log1p(e) + f
        loss += nls
        g = np.float32((label - sig) * alpha)
        for k in range(dim):
            neu1e[k] += g * out[k]
            out[k] += g * l1[k]
    return loss


@njit(cache=True, fastmath=True)
def _train_chunk(corpus, starts, s_begin, s_end, syn0, syn1neg, keep_int, cum_table, window,
                 negative, sg, alpha0, min_alpha, words_done, total_words, state, out,
                 window_counts):
    """Train on sentences ``s_begin..s_end`` of the flat ``corpus`` (word ids, sentences at
    ``starts``). Returns the number of corpus words visited; ``out`` gets (loss sum, pairs) and
    ``window_counts[b]`` counts the centre words that drew the effective window ``b``."""
    dim = syn0.shape[1]
    neu1e = np.zeros(dim, dtype=np.float32)
    neu1 = np.zeros(dim, dtype=np.float32)
    longest = 1
    for s in range(s_begin, s_end):
        longest = max(longest, starts[s + 1] - starts[s])
    buf = np.empty(longest, dtype=np.int32)          # whole sentences, however long
    loss = 0.0
    pairs = 0
    seen = 0
    span = alpha0 - min_alpha
    for s in range(s_begin, s_end):
        a = starts[s]
        b = starts[s + 1]
        progress = (words_done + seen) / total_words
        alpha = max(min_alpha, alpha0 - span * progress)
        seen += b - a
        # subsampling: keep word w when keep_int[w] >= a 32-bit random number (gensim's test)
        n = 0
        for t in range(a, b):
            w = corpus[t]
            if keep_int[w] < np.int64(_next(state)):
                continue
            buf[n] = w
            n += 1
        for i in range(n):
            reduced = np.int64(_next(state) % np.uint64(window))
            eff = window - reduced                       # effective window in 1..window
            window_counts[eff] += 1
            lo = max(0, i - eff)
            hi = min(n, i + eff + 1)
            centre = buf[i]
            if sg:
                for j in range(lo, hi):
                    if j == i:
                        continue
                    l1 = syn0[buf[j]]                  # skip-gram: context word -> centre
                    neu1e[:] = 0.0
                    loss = _sgd_pair(syn0, syn1neg, l1, neu1e, centre, negative, cum_table,
                                     state, alpha, loss)
                    for k in range(dim):
                        l1[k] += neu1e[k]
                    pairs += 1
            else:
                count = 0
                neu1[:] = 0.0
                for j in range(lo, hi):
                    if j == i:
                        continue
                    ctx = syn0[buf[j]]
                    for k in range(dim):
                        neu1[k] += ctx[k]
                    count += 1
                if count == 0:
                    continue
                inv = np.float32(1.0 / count)
                for k in range(dim):
                    neu1[k] *= inv                       # CBOW: mean of the context vectors
                neu1e[:] = 0.0
                loss = _sgd_pair(syn0, syn1neg, neu1, neu1e, centre, negative, cum_table,
                                 state, alpha, loss)
                for j in range(lo, hi):
                    if j == i:
                        continue
                    ctx = syn0[buf[j]]
                    for k in range(dim):
                        ctx[k] += neu1e[k]
                pairs += 1
    out[0] = loss
    out[1] = pairs
    return seen


def sgd_pair_step(syn0: np.ndarray, syn1neg: np.ndarray, input_word: int, target: int,
                  negative: int, cum_table: np.ndarray, seed: int, alpha: float) -> float:
    """One SGNS step of the training loop on one (input, target) pair, in place.

    Draws ``negative`` noise words from ``cum_table`` with the random stream started at
    ``seed`` (noise words equal to the target are skipped, as word2vec.c does), updates
    ``syn1neg`` rows and then ``syn0[input_word]``, and returns the pair's loss before the step.
    The notebook uses it to show that this update is ``-alpha`` times the torch gradient.
    """
    if syn0.dtype != np.float32 or syn1neg.dtype != np.float32:
        raise TypeError("syn0 and syn1neg must be float32 arrays")
    neu1e = np.zeros(syn0.shape[1], dtype=np.float32)
    state = np.array([seed], dtype=np.uint64)
    loss = _sgd_pair(syn0, syn1neg, syn0[input_word], neu1e, int(target), int(negative),
                     cum_table, state, float(alpha), 0.0)
    syn0[input_word] += neu1e
    return float(loss)


def draw_noise(cum_table: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` noise words drawn exactly as the training loop draws them from stream ``seed``."""
    state = np.array([seed], dtype=np.uint64)
    return np.array([_draw_noise(cum_table, state) for _ in range(n)], dtype=np.int64)


def progress(iterable: Iterable, **kwargs: Any) -> Iterable:
    """A ``tqdm.auto`` bar over ``iterable`` that stays quiet when ``TQDM_DISABLE`` is set.

    tqdm reads ``TQDM_DISABLE`` for its console bar, but its notebook bar passes
    ``disable=False`` explicitly and draws anyway; an executed build (papermill, nbval) would
    then keep a frozen bar in its output. Keyword arguments go to ``tqdm``.
    """
    from tqdm.auto import tqdm

    quiet = os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")
    return tqdm(iterable, disable=quiet or kwargs.pop("disable", False), **kwargs)


# --------------------------------------------------------------------------- shared lookups
class KeyedVectorsMixin:
    """Word lookups shared by Word2Vec and GloVe: ``vectors``, ``index_to_key``,
    ``key_to_index``, ``most_similar`` and ``similarity`` (cosine)."""

    vectors: np.ndarray
    index_to_key: list[str]
    key_to_index: dict[str, int]

    def _fitted(self) -> None:
        if getattr(self, "vectors", None) is None:
            raise ValueError(f"{type(self).__name__} is not trained yet: call fit(sentences)")

    def _index(self, word: str) -> int:
        self._fitted()
        if not isinstance(word, str):
            raise TypeError(f"word must be a str, got {type(word).__name__}")
        if word not in self.key_to_index:
            raise UnknownWordError(f"word {word!r} is not in the vocabulary "
                                   f"({len(self.index_to_key)} words, min_count applied)")
        return self.key_to_index[word]

    def __contains__(self, word: object) -> bool:
        return getattr(self, "key_to_index", None) is not None and word in self.key_to_index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self._index(word)]

    def unit_vectors(self) -> np.ndarray:
        """The vectors scaled to unit length (zero rows stay zero)."""
        self._fitted()
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return self.vectors / np.maximum(norms, 1e-12)

    def similarity(self, w1: str, w2: str) -> float:
        """Cosine similarity of two words."""
        a, b = self[w1], self[w2]
        return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))

    def most_similar(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        """The ``topn`` words with the highest cosine similarity to ``word``, itself excluded."""
        if not isinstance(topn, int) or isinstance(topn, bool) or topn < 1:
            raise ValueError(f"topn must be an int >= 1, got {topn!r}")
        i = self._index(word)
        unit = self.unit_vectors()
        sims = unit @ unit[i]
        sims[i] = -np.inf
        k = min(topn, len(sims) - 1)
        if k <= 0:
            return []
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.lexsort((top, -sims[top]))]
        return [(self.index_to_key[j], float(sims[j])) for j in top]


def _check_sentences(sentences) -> None:
    if isinstance(sentences, (str, bytes)) or not isinstance(sentences, Sequence):
        raise TypeError("sentences must be a list of token lists (list[list[str]]), got "
                        f"{type(sentences).__name__}")
    if len(sentences) == 0:
        raise ValueError("sentences is empty: the corpus needs at least one sentence")


def corpus_ids(sentences, key_to_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flatten sentences to word ids, dropping out-of-vocabulary words: ``(ids, starts)``,
    sentence ``s`` being ``ids[starts[s]:starts[s + 1]]``. Empty sentences are dropped."""
    ids: list[int] = []
    starts = [0]
    get = key_to_index.get
    for sentence in sentences:
        n0 = len(ids)
        ids.extend(i for i in (get(w) for w in sentence) if i is not None)
        if len(ids) > n0:
            starts.append(len(ids))
    return np.asarray(ids, dtype=np.int32), np.asarray(starts, dtype=np.int64)


def _check_int(name: str, value, low: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- the model
class Word2Vec(KeyedVectorsMixin):
    """Skip-gram (``sg=True``) or CBOW (``sg=False``) with negative sampling.

    Parameters follow gensim's names: ``vector_size`` (d), ``window`` (largest context
    distance), ``negative`` (noise words per true pair, k), ``sample`` (subsampling threshold t;
    0 disables), ``min_count`` (rarer words are dropped), ``epochs``, ``alpha`` (initial learning
    rate, decayed linearly to ``min_alpha``), ``ns_exponent`` (0.75), ``seed``.

    After ``fit(sentences)``: ``vectors`` (V, d) float32 input vectors (``syn0``), ``syn1neg``
    the output vectors, ``index_to_key`` (most frequent first), ``key_to_index``, ``counts``,
    ``loss_history`` (mean loss per pair for each chunk of training), ``words_seen`` and
    ``window_counts`` (how many centre words drew each effective window ``1..window``).
    """

    def __init__(self, vector_size: int = 100, window: int = 5, negative: int = 5,
                 sample: float = 1e-3, min_count: int = 5, sg: bool = True, epochs: int = 5,
                 alpha: float = 0.025, min_alpha: float = 1e-4, ns_exponent: float = 0.75,
                 seed: int = 0, progress: bool = False, chunks_per_epoch: int = 20):
        self.vector_size = _check_int("vector_size", vector_size, 1)
        self.window = _check_int("window", window, 1)
        self.negative = _check_int("negative", negative, 1)
        self.min_count = _check_int("min_count", min_count, 1)
        self.epochs = _check_int("epochs", epochs, 1)
        self.seed = _check_int("seed", seed, 0)
        self.chunks_per_epoch = _check_int("chunks_per_epoch", chunks_per_epoch, 1)
        if not (isinstance(sample, (int, float)) and 0 <= sample < 1):
            raise ValueError(f"sample must be a float in [0, 1), got {sample!r}")
        if not (isinstance(alpha, (int, float)) and alpha > 0):
            raise ValueError(f"alpha must be a positive float, got {alpha!r}")
        if not (isinstance(min_alpha, (int, float)) and 0 <= min_alpha <= alpha):
            raise ValueError(f"min_alpha must be a float in [0, alpha], got {min_alpha!r}")
        if not isinstance(sg, (bool, int, np.integer)) or int(sg) not in (0, 1):
            raise TypeError(f"sg must be True (skip-gram) or False (CBOW), got {sg!r}")
        self.sample = float(sample)
        self.alpha = float(alpha)
        self.min_alpha = float(min_alpha)
        self.ns_exponent = float(ns_exponent)
        self.sg = bool(sg)
        self.progress = bool(progress)
        self.vectors = None
        self.syn1neg = None
        self.index_to_key: list[str] = []
        self.key_to_index: dict[str, int] = {}
        self.counts: np.ndarray | None = None
        self.loss_history: list[float] = []
        self.words_seen = 0

    def build_vocab(self, sentences) -> Word2Vec:
        """Vocabulary (``min_count``, most frequent first) and freshly initialised weights:
        ``vectors`` uniform in ``[-0.5, 0.5) / d`` and ``syn1neg`` zero, as word2vec.c does."""
        _check_sentences(sentences)
        words, counts = build_vocab(sentences, self.min_count)
        self.index_to_key = words
        self.key_to_index = {w: i for i, w in enumerate(words)}
        self.counts = np.asarray(counts, dtype=np.int64)
        rng = np.random.default_rng(self.seed)
        v, d = len(words), self.vector_size
        self.vectors = ((rng.random((v, d), dtype=np.float32) - 0.5) / d).astype(np.float32)
        self.syn1neg = np.zeros((v, d), dtype=np.float32)
        return self

    def fit(self, sentences) -> Word2Vec:
        """Build the vocabulary and train for ``epochs`` passes over ``sentences``."""
        self.build_vocab(sentences)
        ids, starts = corpus_ids(sentences, self.key_to_index)
        keep = keep_probability(self.counts, self.sample)
        keep_int = np.round(keep * 2.0**32).astype(np.int64)
        cum_table = noise_cum_table(self.counts, self.ns_exponent)
        n_sent = len(starts) - 1
        total = int(len(ids)) * self.epochs
        state = np.array([self.seed * 1_000_003 + 1], dtype=np.uint64)
        out = np.zeros(2, dtype=np.float64)
        bounds = np.linspace(0, n_sent, min(self.chunks_per_epoch, n_sent) + 1).astype(np.int64)
        self.loss_history = []
        self.window_counts = np.zeros(self.window + 1, dtype=np.int64)
        done = 0
        steps = [(e, int(bounds[c]), int(bounds[c + 1])) for e in range(self.epochs)
                 for c in range(len(bounds) - 1)]
        if self.progress:
            steps = progress(steps, desc="sg" if self.sg else "cbow", unit="chunk")
        for _, s0, s1 in steps:
            done += _train_chunk(ids, starts, s0, s1, self.vectors, self.syn1neg, keep_int,
                                 cum_table, self.window, self.negative, self.sg, self.alpha,
                                 self.min_alpha, done, total, state, out,
                                 self.window_counts)
            if out[1] > 0:
                self.loss_history.append(float(out[0] / out[1]))
        self.words_seen = done
        return self


# --------------------------------------------------------------------------- pictures
def window_examples(tokens: Sequence[str], centre: int, b: int, noise: Sequence[str],
                    negative: int = 2) -> dict[str, list[tuple[Any, str, int]]]:
    """The labelled training examples that one centre position of a sentence gives.

    The context is every token within ``b`` positions of ``tokens[centre]`` (the window that
    position drew). Each true example takes the next ``negative`` words of ``noise`` as its
    noise examples (in training they are drawn from the unigram^0.75 distribution):

    * ``"skip-gram"``: ``(centre word, context word, 1)`` for each context word, each followed by
      ``(centre word, noise word, 0)`` (the paper's reading: the centre predicts its context);
    * ``"cbow"``: ``(tuple of the context words, centre word, 1)`` then
      ``(tuple of the context words, noise word, 0)``: the context together predicts the centre.
    """
    if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
        raise TypeError("tokens must be a list of str")
    n = len(tokens)
    centre = _check_int("centre", centre, 0)
    if centre >= n:
        raise ValueError(f"centre must be a position in 0..{n - 1}, got {centre}")
    b = _check_int("b", b, 1)
    negative = _check_int("negative", negative, 0)
    context = [tokens[j] for j in range(max(0, centre - b), min(n, centre + b + 1)) if j != centre]
    need = negative * (len(context) + 1)
    if isinstance(noise, str) or len(noise) < need:
        raise ValueError(f"noise must hold at least negative x (contexts + 1) = {need} words, "
                         f"got {0 if isinstance(noise, str) else len(noise)}")
    draws = iter(noise)
    word = tokens[centre]
    sg: list[tuple[Any, str, int]] = []
    for c in context:
        sg.append((word, c, 1))
        sg.extend((word, next(draws), 0) for _ in range(negative))
    ctx = tuple(context)
    cbow: list[tuple[Any, str, int]] = [(ctx, word, 1)]
    cbow.extend((ctx, next(draws), 0) for _ in range(negative))
    return {"skip-gram": sg, "cbow": cbow}


def plot_window_examples(tokens: Sequence[str], centre: int, b: int,
                         examples: dict[str, list[tuple[Any, str, int]]], ax: Any = None) -> Any:
    """Draw a sentence with its centre and window on top, and under it the labelled examples of
    :func:`window_examples` (skip-gram on the left, CBOW on the right). Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if ax is None:
        _, ax = plt.subplots(figsize=(11, 5.2))
    n = len(tokens)
    colours = {"centre": "tab:red", "context": "tab:blue", "outside": "lightgray",
               "noise": "tab:gray"}
    for j, t in enumerate(tokens):
        kind = ("centre" if j == centre else "context" if abs(j - centre) <= b else "outside")
        ax.text(j, 0, t, ha="center", va="center", fontsize=10,
                color="white" if kind != "outside" else "black",
                bbox={"boxstyle": "round", "facecolor": colours[kind], "edgecolor": "none"})
    lo, hi = max(0, centre - b) - 0.45, min(n - 1, centre + b) + 0.45
    ax.annotate("", xy=(lo, 0.55), xytext=(hi, 0.55),
                arrowprops={"arrowstyle": "<->", "color": "tab:blue"})
    ax.text(centre, 0.8, f"window b = {b}", ha="center", color="tab:blue")

    def row(x: float, y: float, inp: Any, target: str, label: int) -> None:
        shown = f"mean({', '.join(inp)})" if isinstance(inp, tuple) else inp
        ax.text(x, y, f"{shown}  ->  {target}", ha="left", va="center", fontsize=9,
                color=colours["context" if label else "noise"])
        ax.text(x - 0.3, y, str(label), ha="right", va="center", fontsize=9, fontweight="bold",
                color=colours["context" if label else "noise"])

    ax.text(0, -0.9, "skip-gram: label, input -> target", fontweight="bold")
    for k, ex in enumerate(examples["skip-gram"]):
        row(0.3, -1.4 - 0.42 * k, *ex)
    half = n / 2
    ax.text(half, -0.9, "CBOW: label, inputs -> target", fontweight="bold")
    for k, ex in enumerate(examples["cbow"]):
        row(half + 0.3, -1.4 - 0.42 * k, *ex)
    rows = max(len(examples["skip-gram"]), len(examples["cbow"]))
    ax.set(xlim=(-0.8, n - 0.2), ylim=(-1.6 - 0.42 * rows, 1.2), yticks=[],
           xticks=range(n), xlabel="position in the sentence",
           ylabel="training examples, label 1 = true, 0 = noise",
           title=f"One centre word, '{tokens[centre]}', and the examples its window gives")
    ax.legend(handles=[Patch(color=c, label=k) for k, c in colours.items()], loc="lower right",
              fontsize=8, ncol=2, title="word's role")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return ax.figure
