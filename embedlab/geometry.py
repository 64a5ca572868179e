"""The geometry of meaning: length, angle and distance between embedding vectors.

An embedding maps each item (a word, a sentence) to a point in R^d so that related items land
close together. "Close" needs a measure; the three in everyday use are

* the dot product          ``dot(a, b) = sum_i a_i b_i``
* the cosine similarity    ``cos(a, b) = dot(a, b) / (||a|| ||b||)``, the angle alone
* the euclidean distance   ``||a - b|| = sqrt(sum_i (a_i - b_i)^2)``

For unit vectors they agree on every ranking, because ``||a - b||^2 = 2 - 2 cos(a, b)``
(expand the square: ``||a||^2 + ||b||^2 - 2 a.b`` with both norms 1). That is why search systems
normalise once, when vectors are indexed, and then use the cheapest of the three, the dot product.

Word analogies by vector arithmetic ("king - man + woman is close to queen") come from Mikolov,
Yih and Zweig (2013), *Linguistic Regularities in Continuous Space Word Representations*. The
two ways to score a candidate d for "a is to b as c is to ?" are from Levy and Goldberg (2014),
*Linguistic Regularities in Sparse and Explicit Word Representations*, eq. 3 and eq. 4:

* 3CosAdd: ``argmax_d cos(d, b) - cos(d, a) + cos(d, c)``, which for unit vectors ranks like
  ``cos(d, b - a + c)``;
* 3CosMul: ``argmax_d cos'(d, b) cos'(d, c) / (cos'(d, a) + eps)`` with ``cos' = (cos + 1) / 2``
  shifted into [0, 1], so one large term cannot swamp the others.

In both, the three input words are excluded from the answers: otherwise ``b`` or ``c`` itself is
usually the nearest vector.

Every function here rejects bad input with a ``ValueError`` or ``TypeError`` that names the
argument: NaN or inf, mismatched dimensions, zero vectors where a direction is needed, unknown
words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from embedlab.stats import Interval

__all__ = [
    "as_vectors",
    "normalize",
    "dot",
    "cosine",
    "euclidean",
    "cosine_matrix",
    "most_similar",
    "analogy",
    "pca_project",
    "lookup",
    "WordIndex",
    "UnknownWordError",
    "common_pairs",
    "spearman_difference",
]


class UnknownWordError(KeyError, ValueError):
    """A word that is not in the vocabulary (a ``KeyError`` and a ``ValueError`` both)."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else "unknown word"


# --------------------------------------------------------------------------- input checks
def as_vectors(x: object, name: str = "x", ndim: int | tuple[int, ...] = (1, 2),
               dtype: type | None = None) -> np.ndarray:
    """``x`` as a finite float array with ``ndim`` dimensions, or a clear error naming ``name``.

    Integer and boolean inputs are cast to float64; float16/32/64 keep their dtype unless
    ``dtype`` asks for another one.
    """
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged nested lists and the like
        raise ValueError(f"{name} must be an array of numbers: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in allowed:
        want = " or ".join(f"{n}-D" for n in allowed)
        raise ValueError(f"{name} must be {want}, got shape {arr.shape}")
    if arr.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one dimension per vector, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _same_dim(a: np.ndarray, b: np.ndarray, na: str = "a", nb: str = "b") -> None:
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"{na} and {nb} must have the same dimension, got {a.shape[-1]} and {b.shape[-1]}"
        )


# --------------------------------------------------------------------------- the three measures
def normalize(x: object, name: str = "x") -> np.ndarray:
    """``x / ||x||`` for one vector (1-D) or every row of a matrix (2-D), in ``x``'s float dtype.

    A zero vector has no direction, so it raises a ``ValueError`` (naming the first zero row)
    instead of returning NaN.
    """
    arr = as_vectors(x, name)
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    zero = norms[..., 0] == 0
    if zero.any():
        if arr.ndim == 1:
            raise ValueError(f"{name} is a zero vector: it has no direction to normalise")
        first = int(np.flatnonzero(zero)[0])
        raise ValueError(
            f"{name} has {int(zero.sum())} zero row(s) (first: row {first}): "
            "a zero vector has no direction to normalise"
        )
    return arr / norms


def dot(a: object, b: object) -> np.ndarray | float:
    """Dot products: a float for two vectors, ``(n,)`` for one against many, ``(n, m)`` for two
    matrices (``a @ b.T``)."""
    a_ = as_vectors(a, "a")
    b_ = as_vectors(b, "b")
    _same_dim(a_, b_)
    out = a_ @ b_.T
    return float(out) if out.ndim == 0 else out


def cosine(a: object, b: object) -> np.ndarray | float:
    """Cosine similarity ``a.b / (||a|| ||b||)``, shaped like ``dot``. Zero vectors raise."""
    a_ = normalize(a, "a")
    b_ = normalize(b, "b")
    _same_dim(a_, b_)
    out = a_ @ b_.T
    # Rounding can leave |cos| a hair above 1; the true value never is.
    out = np.clip(out, -1.0, 1.0)
    return float(out) if out.ndim == 0 else out


def euclidean(a: object, b: object) -> np.ndarray | float:
    """Euclidean distances ``||a - b||``, shaped like ``dot``.

    For matrices it uses ``||a||^2 + ||b||^2 - 2 a.b`` (one matrix product), clipped at 0
    because rounding can make a tiny distance slightly negative.
    """
    a_ = as_vectors(a, "a")
    b_ = as_vectors(b, "b")
    _same_dim(a_, b_)
    if a_.ndim == 1 and b_.ndim == 1:
        return float(np.linalg.norm(a_ - b_))
    aa = np.einsum("...i,...i->...", a_, a_)
    bb = np.einsum("...i,...i->...", b_, b_)
    sq = (aa[..., None] if a_.ndim == 2 else aa) + bb - 2.0 * (a_ @ b_.T)
    return np.sqrt(np.maximum(sq, 0.0))


def cosine_matrix(x: object) -> np.ndarray:
    """All pairwise cosines of the rows of ``x`` (n, d) -> (n, n)."""
    u = normalize(as_vectors(x, "x", ndim=2), "x")
    return np.clip(u @ u.T, -1.0, 1.0)


# --------------------------------------------------------------------------- words and vectors
class WordIndex:
    """A vocabulary and its vectors: word lookup, unit vectors computed once.

    ``vectors`` is (n, d); ``words`` the n words in row order (for GloVe: by frequency, most
    frequent first). A word that appears twice keeps its first (most frequent) row.
    """

    def __init__(self, vectors: object, words: Sequence[str]) -> None:
        self.vectors = as_vectors(vectors, "vectors", ndim=2)
        if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
            raise TypeError(f"words must be a sequence of str, got {type(words).__name__}")
        if len(words) != self.vectors.shape[0]:
            raise ValueError(
                f"words has {len(words)} entries but vectors has {self.vectors.shape[0]} rows"
            )
        self.words = list(words)
        self.key_to_index: dict[str, int] = {}
        for i, w in enumerate(self.words):
            if not isinstance(w, str):
                raise TypeError(f"words[{i}] must be a str, got {type(w).__name__}")
            self.key_to_index.setdefault(w, i)
        self._unit: np.ndarray | None = None

    @property
    def unit(self) -> np.ndarray:
        """Unit-length rows (computed on first use, then kept)."""
        if self._unit is None:
            self._unit = normalize(self.vectors, "vectors")
        return self._unit

    def index(self, word: str) -> int:
        """Row of ``word``; an unknown word raises ``UnknownWordError`` that says so."""
        if not isinstance(word, str):
            raise TypeError(f"word must be a str, got {type(word).__name__}")
        try:
            return self.key_to_index[word]
        except KeyError:
            raise UnknownWordError(f"word {word!r} is not in the vocabulary") from None

    def __contains__(self, word: object) -> bool:
        return word in self.key_to_index

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self.index(word)]


def _as_index(vectors: object, words: Sequence[str] | None) -> WordIndex:
    if isinstance(vectors, WordIndex):
        return vectors
    if words is None:
        raise TypeError("words is required when vectors is an array")
    return WordIndex(vectors, words)


def _check_topn(topn: object) -> int:
    if isinstance(topn, bool) or not isinstance(topn, (int, np.integer)):
        raise TypeError(f"topn must be an integer, got {type(topn).__name__}")
    if topn < 1:
        raise ValueError(f"topn must be >= 1, got {topn}")
    return int(topn)


def _top(scores: np.ndarray, topn: int, exclude: Sequence[int] = ()) -> list[int]:
    """Indices of the ``topn`` largest scores (ties: lower index first), skipping ``exclude``."""
    scores = scores.astype(np.float64, copy=True)
    if len(exclude):
        scores[list(exclude)] = -np.inf
    k = min(topn, len(scores) - len(set(exclude)))
    if k <= 0:
        return []
    cand = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    # Widen to every candidate tied with the k-th score so ties break by index.
    kth = np.min(scores[cand])
    cand = np.flatnonzero(scores >= kth)
    order = np.lexsort((cand, -scores[cand]))
    return [int(i) for i in cand[order[:k]]]


def most_similar(
    vectors: object,
    words: Sequence[str] | None,
    query: str | object,
    topn: int = 10,
    normalized: bool = True,
    exclude: Sequence[str] = (),
    restrict_vocab: int | None = None,
) -> list[tuple[str, float]]:
    """The ``topn`` nearest words to ``query`` (a word or a vector), best first.

    ``normalized=True`` ranks by cosine (unit vectors, then dot); ``normalized=False`` ranks by
    the raw dot product, which favours long vectors (in GloVe: frequent words). When ``query`` is
    a word, it is left out of its own answers; ``exclude`` leaves out more words.
    ``restrict_vocab`` searches only the first that many rows. ``vectors`` may be a
    ``WordIndex`` (then ``words`` may be ``None``). Returns ``[(word, score), ...]``.
    """
    wi = _as_index(vectors, words)
    topn = _check_topn(topn)
    limit = len(wi) if restrict_vocab is None else _check_topn(restrict_vocab)
    limit = min(limit, len(wi))
    skip = [wi.index(w) for w in exclude]
    if isinstance(query, str):
        qi = wi.index(query)
        skip.append(qi)
        q = wi.vectors[qi]
    else:
        q = as_vectors(query, "query", ndim=1)
        _same_dim(q, wi.vectors, "query", "vectors")
    if normalized:
        scores = wi.unit[:limit] @ normalize(q, "query").astype(wi.unit.dtype)
    else:
        scores = wi.vectors[:limit] @ q.astype(wi.vectors.dtype)
    skip = [i for i in skip if i < limit]
    return [(wi.words[i], float(scores[i])) for i in _top(scores, topn, skip)]


def analogy(
    vectors: object,
    words: Sequence[str] | None,
    a: str,
    b: str,
    c: str,
    topn: int = 1,
    method: str = "3cosadd",
    restrict_vocab: int | None = None,
    eps: float = 1e-3,
) -> list[tuple[str, float]]:
    """Answers to "``a`` is to ``b`` as ``c`` is to ?", best first, the inputs excluded.

    ``method="3cosadd"`` scores ``cos(d, b) - cos(d, a) + cos(d, c)`` (Mikolov et al. 2013;
    Levy and Goldberg 2014, eq. 3); ``"3cosmul"`` scores
    ``cos'(d, b) cos'(d, c) / (cos'(d, a) + eps)`` with ``cos' = (cos + 1) / 2`` (Levy and
    Goldberg 2014, eq. 4, eps = 0.001 as in the paper). ``king``, ``man``, ``woman`` is
    ``analogy(vectors, words, "man", "king", "woman")`` -> ``queen``.
    """
    wi = _as_index(vectors, words)
    topn = _check_topn(topn)
    if method not in ("3cosadd", "3cosmul"):
        raise ValueError(f"method must be '3cosadd' or '3cosmul', got {method!r}")
    limit = len(wi) if restrict_vocab is None else min(_check_topn(restrict_vocab), len(wi))
    ia, ib, ic = wi.index(a), wi.index(b), wi.index(c)
    unit = wi.unit[:limit]
    ca, cb, cc = (unit @ wi.unit[i] for i in (ia, ib, ic))
    if method == "3cosadd":
        scores = cb - ca + cc
    else:
        scores = ((cb + 1) / 2) * ((cc + 1) / 2) / ((ca + 1) / 2 + eps)
    skip = [i for i in (ia, ib, ic) if i < limit]
    return [(wi.words[i], float(scores[i])) for i in _top(scores, topn, skip)]


# --------------------------------------------------------------------------- pictures
def pca_project(x: object, n_components: int = 2, center: bool = True) -> np.ndarray:
    """Project the rows of ``x`` onto their top principal directions (SVD of the centred data).

    Signs are fixed so the largest-magnitude coordinate of each direction is positive, so the
    picture does not flip between runs or libraries.
    """
    arr = as_vectors(x, "x", ndim=2).astype(np.float64)
    n, d = arr.shape
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)):
        raise TypeError(f"n_components must be an integer, got {type(n_components).__name__}")
    if not 1 <= n_components <= min(n, d):
        raise ValueError(f"n_components must be in 1..{min(n, d)}, got {n_components}")
    if center:
        arr = arr - arr.mean(axis=0)
    _, _, vt = np.linalg.svd(arr, full_matrices=False)
    comps = vt[:n_components]
    signs = np.sign(comps[np.arange(n_components), np.argmax(np.abs(comps), axis=1)])
    return arr @ (comps * signs[:, None]).T


def lookup(vectors: object, words: Sequence[str] | None, items: Sequence[str]) -> np.ndarray:
    """The rows of ``items`` (a list of words) as an (len(items), d) matrix."""
    wi = _as_index(vectors, words)
    return wi.vectors[[wi.index(w) for w in items]]


# --------------------------------------------------------------------------- comparing two models
def common_pairs(pairs: Sequence[Sequence], *vocabularies: Sequence[str]) -> list[tuple]:
    """The rated word pairs ``(w1, w2, score)`` whose two words every vocabulary knows.

    Words are matched case-insensitively, as ``embedlab.evaluation.similarity_spearman`` matches
    them, so two models scored on the returned pairs are scored on the same pairs.
    """
    if not vocabularies:
        raise ValueError("common_pairs needs at least one vocabulary")
    known = [{w.upper() for w in vocab} for vocab in vocabularies]
    out = []
    for j, p in enumerate(pairs):
        if isinstance(p, str) or len(p) != 3:
            raise ValueError(f"pairs[{j}] must be (word1, word2, score), got {p!r}")
        if all(str(p[0]).upper() in k and str(p[1]).upper() in k for k in known):
            out.append(tuple(p))
    return out


def _rank_codes(x: np.ndarray) -> np.ndarray:
    """Dense integer codes of ``x`` (equal values share a code, order kept)."""
    return np.unique(x, return_inverse=True)[1].reshape(x.shape)


def _average_ranks(codes: np.ndarray) -> np.ndarray:
    """Ranks 1..n along each row of integer ``codes`` (B, n), ties sharing their average rank.

    No sort: count each code in each row; a value's rank is the number of smaller values in its
    row plus the middle of its own run, ``below + (count + 1) / 2``, the same as
    ``scipy.stats.rankdata`` (method "average"), for every row at once.
    """
    b, n = codes.shape
    m = int(codes.max()) + 1
    rows = np.arange(b, dtype=np.int64)[:, None]
    counts = np.bincount((codes + m * rows).ravel(), minlength=b * m).reshape(b, m)
    below = np.cumsum(counts, axis=1) - counts
    return (np.take_along_axis(below, codes, axis=1)
            + (np.take_along_axis(counts, codes, axis=1) + 1) / 2.0)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denom = np.sqrt((x * x).sum(-1) * (y * y).sum(-1))
    return (x * y).sum(-1) / np.where(denom == 0, np.nan, denom)


def spearman_difference(human: object, model_a: object, model_b: object, *, n_boot: int = 2000,
                        level: float = 0.95, seed: int = 0) -> Interval:
    """Spearman(human, model_a) - Spearman(human, model_b) on the same rated pairs, with a
    paired percentile-bootstrap interval.

    The pairs are resampled with replacement, the same resample for both models, and the two
    correlations recomputed on each (Efron and Tibshirani 1993, ch. 16): the interval says how
    much of a difference in rho the choice of pairs alone could make. ``human``, ``model_a``,
    ``model_b`` are 1-D arrays over the same pairs (the human ratings and each model's cosines,
    ``embedlab.evaluation.pair_scores`` on :func:`common_pairs`).
    """
    from embedlab.stats import Interval

    h = as_vectors(human, "human", ndim=1).astype(np.float64)
    a = as_vectors(model_a, "model_a", ndim=1).astype(np.float64)
    b = as_vectors(model_b, "model_b", ndim=1).astype(np.float64)
    if not len(h) == len(a) == len(b):
        raise ValueError(f"human, model_a and model_b must score the same pairs, got lengths "
                         f"{len(h)}, {len(a)} and {len(b)}")
    if len(h) < 3:
        raise ValueError(f"spearman_difference needs at least 3 pairs, got {len(h)}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise ValueError(f"n_boot must be an int >= 100, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    ch, ca, cb = (_rank_codes(v) for v in (h, a, b))
    rh, ra, rb = (_average_ranks(c[None]) for c in (ch, ca, cb))
    estimate = float(_pearson_rows(rh, ra)[0] - _pearson_rows(rh, rb)[0])
    idx = np.random.default_rng(seed).integers(0, len(h), size=(int(n_boot), len(h)))
    rh = _average_ranks(ch[idx])                  # the human ranks, once for both models
    diffs = _pearson_rows(rh, _average_ranks(ca[idx])) - _pearson_rows(rh, _average_ranks(cb[idx]))
    diffs = diffs[np.isfinite(diffs)]
    q = (1.0 - level) / 2.0
    lo, hi = np.quantile(diffs, [q, 1.0 - q])
    return Interval(estimate, float(lo), float(hi), level, len(h))
