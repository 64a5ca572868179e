"""Evaluating embeddings: intrinsic word benchmarks, then retrieval metrics.

Intrinsic word benchmarks ask whether the geometry agrees with people:

* **Analogy accuracy** (Mikolov, Chen, Corrado and Dean 2013, *Efficient Estimation of Word
  Representations in Vector Space*, the "Google" analogy set: 19,544 questions in 14 sections,
  5 semantic and 9 syntactic ``gram*`` ones). A question "a is to b as c is to d" is answered by
  3CosAdd, ``argmax_x cos(x, b - a + c)`` over unit vectors, the three input words excluded; it
  counts as correct when the answer is d.
* **Word-pair similarity** (WordSim-353, Finkelstein et al. 2002; SimLex-999, Hill, Reichart and
  Korhonen 2015): the Spearman rank correlation between people's ratings of word pairs and the
  cosine of the pairs' vectors.

Both follow gensim's ``KeyedVectors.evaluate_word_analogies`` and ``evaluate_word_pairs`` with
their defaults, so the numbers can be compared with published ones: words are matched case-
insensitively (upper-cased on both sides; of several case variants the first row, the most
frequent, is used), questions or pairs with a word outside the vocabulary are skipped, not
counted wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from embedlab.geometry import as_vectors, normalize

__all__ = [
    "AnalogyResult",
    "analogy_results",
    "analogy_accuracy",
    "is_syntactic",
    "rankdata",
    "spearman",
    "pair_scores",
    "similarity_spearman",
    "recall_at_k",
    "mrr",
    "ndcg",
    "per_query_metrics",
    "per_query_ranked",
    "ranked_metrics",
    "ranking_metrics",
]


# --------------------------------------------------------------------------- shared checks
def _check_vectors_words(vectors: object, words: Sequence[str]) -> np.ndarray:
    arr = as_vectors(vectors, "vectors", ndim=2)
    if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
        raise TypeError(f"words must be a sequence of str, got {type(words).__name__}")
    if len(words) != arr.shape[0]:
        raise ValueError(f"words has {len(words)} entries but vectors has {arr.shape[0]} rows")
    return arr


def _check_restrict(restrict_vocab: object, n: int) -> int:
    if restrict_vocab is None:
        return n
    if isinstance(restrict_vocab, bool) or not isinstance(restrict_vocab, (int, np.integer)):
        raise TypeError(f"restrict_vocab must be an integer, got {type(restrict_vocab).__name__}")
    if restrict_vocab < 1:
        raise ValueError(f"restrict_vocab must be >= 1, got {restrict_vocab}")
    return min(int(restrict_vocab), n)


def _vocab(words: Sequence[str], limit: int) -> dict[str, int]:
    """Upper-cased word -> its first row among the first ``limit`` rows (gensim's ``ok_vocab``)."""
    ok: dict[str, int] = {}
    for i in range(limit):
        w = words[i]
        if not isinstance(w, str):
            raise TypeError(f"words[{i}] must be a str, got {type(w).__name__}")
        ok.setdefault(w.upper(), i)
    return ok


# --------------------------------------------------------------------------- analogies
def is_syntactic(section: str) -> bool:
    """Google analogy sections named ``gram*`` are syntactic; the others are semantic."""
    return section.startswith("gram")


@dataclass
class AnalogyResult:
    """Per-section counts of an analogy evaluation."""

    correct: dict[str, int] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)  # all four words in vocabulary
    skipped: dict[str, int] = field(default_factory=dict)  # some word out of vocabulary

    @staticmethod
    def _ratio(c: int, n: int) -> float:
        return c / n if n else 0.0  # gensim scores a section with no question as 0.0

    def accuracy(self, sections: Sequence[str] | None = None) -> float:
        names = list(self.answered) if sections is None else list(sections)
        return self._ratio(sum(self.correct[s] for s in names),
                           sum(self.answered[s] for s in names))

    def as_dict(self) -> dict:
        sem = [s for s in self.answered if not is_syntactic(s)]
        syn = [s for s in self.answered if is_syntactic(s)]
        return {
            "total": self.accuracy(),
            "semantic": self.accuracy(sem),
            "syntactic": self.accuracy(syn),
            "per_section": {s: self._ratio(self.correct[s], self.answered[s])
                            for s in self.answered},
        }


def _check_questions(questions: object) -> Mapping[str, Sequence[Sequence[str]]]:
    if not isinstance(questions, Mapping):
        raise TypeError(
            "questions must be a dict section -> list of (a, b, c, d) word tuples "
            f"(what data.load('analogy-google') returns), got {type(questions).__name__}"
        )
    for section, rows in questions.items():
        if not isinstance(section, str):
            raise TypeError(f"questions: section names must be str, got {type(section).__name__}")
        for j, q in enumerate(rows):
            if isinstance(q, str) or len(q) != 4 or not all(isinstance(w, str) for w in q):
                raise ValueError(
                    f"questions[{section!r}][{j}] must be a tuple of 4 words, got {q!r}"
                )
    return questions


def analogy_results(
    vectors: object,
    words: Sequence[str],
    questions: Mapping[str, Sequence[Sequence[str]]],
    restrict_vocab: int = 30000,
    batch_size: int = 512,
) -> AnalogyResult:
    """Answer every analogy question by 3CosAdd and count, per section, what was right.

    The semantics are gensim's ``evaluate_word_analogies`` with ``case_insensitive=True`` and
    ``dummy4unknown=False``: only the first ``restrict_vocab`` rows are the vocabulary (rows are
    assumed sorted by frequency, as GloVe's are); words are upper-cased on both sides; a question
    with any word outside that vocabulary is skipped; the answer is the row maximising
    ``cos(x, b - a + c)`` over unit vectors, skipping every row whose upper-cased word is one of
    the three inputs. Questions are answered ``batch_size`` at a time with one matrix product.
    """
    arr = _check_vectors_words(vectors, words)
    limit = _check_restrict(restrict_vocab, arr.shape[0])
    _check_questions(questions)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an integer, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ok = _vocab(words, limit)
    # Rows that share an upper-cased word form one group; the answer is compared by group.
    group_of_key: dict[str, int] = {}
    group = np.empty(limit, dtype=np.int64)
    for i in range(limit):
        group[i] = group_of_key.setdefault(words[i].upper(), len(group_of_key))
    members: dict[int, list[int]] = {}
    if len(group_of_key) < limit:  # some word has several case variants
        for i, g in enumerate(group.tolist()):
            members.setdefault(g, []).append(i)
    unit = normalize(arr[:limit], "vectors").astype(np.float32)

    result = AnalogyResult()
    for section, rows in questions.items():
        result.correct.setdefault(section, 0)
        result.answered.setdefault(section, 0)
        result.skipped.setdefault(section, 0)
        known = []
        for q in rows:
            up = [w.upper() for w in q]
            if all(w in ok for w in up):
                known.append([ok[w] for w in up])
            else:
                result.skipped[section] += 1
        if not known:
            continue
        idx = np.asarray(known, dtype=np.int64)  # (n, 4) rows of a, b, c, d
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            target = unit[chunk[:, 1]] - unit[chunk[:, 0]] + unit[chunk[:, 2]]
            scores = target @ unit.T  # ranks like cosine: |target| is fixed per question
            rows_ = np.arange(len(chunk))[:, None]
            scores[rows_, chunk[:, :3]] = -np.inf
            if members:
                for r, q in enumerate(chunk):
                    for i in q[:3]:
                        scores[r, members.get(int(group[i]), [])] = -np.inf
            best = np.argmax(scores, axis=1)
            result.correct[section] += int(np.sum(group[best] == group[chunk[:, 3]]))
            result.answered[section] += len(chunk)
    return result


def analogy_accuracy(
    vectors: object,
    words: Sequence[str],
    questions: Mapping[str, Sequence[Sequence[str]]],
    restrict_vocab: int = 30000,
) -> dict:
    """Analogy accuracy by 3CosAdd, gensim's ``evaluate_word_analogies`` semantics.

    ``vectors`` is (n, d) and ``words`` its n words, most frequent first; ``questions`` is a
    dict section -> list of ``(a, b, c, d)`` ("a is to b as c is to d"), what
    ``data.load("analogy-google")`` returns. Only the first ``restrict_vocab`` words count
    (30,000 is customary for the Google set). Words are matched case-insensitively; questions
    with a word outside the restricted vocabulary are skipped; the three input words are
    excluded from the answers; the answer maximises ``cos(x, b - a + c)`` over unit vectors.

    Returns ``{"total": float, "semantic": float, "syntactic": float,
    "per_section": {section: float}}``, every value the fraction correct in [0, 1] among the
    questions answered (0.0 where none was answered, as gensim does). ``gram*`` sections are
    syntactic, the rest semantic. ``analogy_results`` gives the underlying counts.
    """
    return analogy_results(vectors, words, questions, restrict_vocab).as_dict()


# --------------------------------------------------------------------------- word-pair similarity
def rankdata(x: object) -> np.ndarray:
    """Ranks 1..n of ``x``, ties sharing their average rank (as ``scipy.stats.rankdata``)."""
    a = as_vectors(x, "x", ndim=1).astype(np.float64)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    # Start of each run of equal values, then the average of positions start+1 .. end.
    starts = np.r_[True, sorted_a[1:] != sorted_a[:-1]]
    run = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], len(a)] - 1
    avg = (first + last) / 2.0 + 1.0
    ranks = np.empty(len(a))
    ranks[order] = avg[run]
    return ranks


def spearman(x: object, y: object) -> float:
    """Spearman's rho: the Pearson correlation of the ranks of ``x`` and ``y``."""
    rx = rankdata(as_vectors(x, "x", ndim=1))
    ry = rankdata(as_vectors(y, "y", ndim=1))
    if len(rx) != len(ry):
        raise ValueError(f"x and y must have the same length, got {len(rx)} and {len(ry)}")
    if len(rx) < 2:
        raise ValueError(f"Spearman needs at least 2 pairs, got {len(rx)}")
    rx -= rx.mean()
    ry -= ry.mean()
    denom = np.sqrt((rx @ rx) * (ry @ ry))
    if denom == 0:
        raise ValueError("Spearman is undefined when x or y is constant")
    return float(rx @ ry / denom)


def pair_scores(
    vectors: object,
    words: Sequence[str],
    pairs: Sequence[Sequence],
    *,
    restrict_vocab: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(human, model, n_skipped)``: the human scores and cosines of the in-vocabulary pairs.

    Words are matched case-insensitively among the first ``restrict_vocab`` rows (all rows when
    ``None``); a pair with an unknown word is skipped and counted in ``n_skipped``.
    """
    arr = _check_vectors_words(vectors, words)
    limit = _check_restrict(restrict_vocab, arr.shape[0])
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise TypeError(
            f"pairs must be a list of (word1, word2, score), got {type(pairs).__name__}"
        )
    ok = _vocab(words, limit)
    human, left, right, skipped = [], [], [], 0
    for j, p in enumerate(pairs):
        if isinstance(p, str) or len(p) != 3 or not isinstance(p[0], str) \
                or not isinstance(p[1], str):
            raise ValueError(f"pairs[{j}] must be (word1, word2, score), got {p!r}")
        try:
            score = float(p[2])
        except (TypeError, ValueError):
            raise ValueError(f"pairs[{j}]: score must be a number, got {p[2]!r}") from None
        if not np.isfinite(score):
            raise ValueError(f"pairs[{j}]: score must be finite, got {score}")
        a, b = p[0].upper(), p[1].upper()
        if a not in ok or b not in ok:
            skipped += 1
            continue
        human.append(score)
        left.append(ok[a])
        right.append(ok[b])
    if not human:
        return np.zeros(0), np.zeros(0), skipped
    ua = normalize(arr[left], "vectors")
    ub = normalize(arr[right], "vectors")
    model = np.einsum("ij,ij->i", ua.astype(np.float64), ub.astype(np.float64))
    return np.asarray(human, dtype=np.float64), model, skipped


def similarity_spearman(
    vectors: object,
    words: Sequence[str],
    pairs: Sequence[Sequence],
    *,
    restrict_vocab: int | None = None,
) -> float:
    """Spearman's rho between human similarity ratings and the cosines of the word pairs.

    ``pairs`` is ``[(word1, word2, score), ...]`` (``data.load("wordsim353")`` or
    ``"simlex999"``). As gensim's ``evaluate_word_pairs``: words are matched case-insensitively,
    pairs with a word outside the vocabulary (the first ``restrict_vocab`` rows; all of them by
    default) are skipped. Returns rho in [-1, 1]; fewer than two known pairs raise a
    ``ValueError``.
    """
    human, model, skipped = pair_scores(vectors, words, pairs, restrict_vocab=restrict_vocab)
    if len(human) < 2:
        raise ValueError(
            f"similarity_spearman: only {len(human)} pair(s) have both words in the vocabulary "
            f"({skipped} skipped); need at least 2"
        )
    return spearman(human, model)


# -- retrieval metrics (recall@k, MRR, nDCG) --
# Retrieval is judged on ranked lists: for each query the ids of the retrieved documents, best
# first, and the set of ids that are relevant. With one relevant document per query (the news
# headline -> article task) recall@k is the fraction of queries whose document is in the top k,
# and MRR the mean of 1 / its rank (Voorhees 1999, TREC-8 QA track). nDCG (Jarvelin and
# Kekalainen 2002) discounts each relevant hit by log2(rank + 1) and divides by the best possible.


def _check_ranked(ranked: object, relevant: object) -> tuple[np.ndarray, list[set[int]]]:
    r = np.asarray(ranked)
    if r.ndim != 2 or r.shape[0] == 0 or r.shape[1] == 0:
        raise ValueError(f"ranked must be a non-empty 2-d array (n_queries, n_ranked), "
                         f"got shape {r.shape}")
    if not np.issubdtype(r.dtype, np.integer):
        raise TypeError(f"ranked must hold integer ids, got dtype {r.dtype}")
    if isinstance(relevant, (str, bytes)):
        raise TypeError("relevant must be a sequence of ids or of id collections")
    rel = []
    for j, item in enumerate(relevant):  # type: ignore[union-attr]
        if isinstance(item, (int, np.integer)):
            rel.append({int(item)})
        else:
            try:
                rel.append({int(v) for v in item})
            except TypeError:
                raise TypeError(f"relevant[{j}] must be an id or a collection of ids, "
                                f"got {item!r}") from None
        if not rel[-1]:
            raise ValueError(f"relevant[{j}] is empty: every query needs a relevant id")
    if len(rel) != r.shape[0]:
        raise ValueError(f"relevant has {len(rel)} entries for {r.shape[0]} ranked queries")
    return r, rel


def _check_k(k: object, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n:
        raise ValueError(f"k = {k} is more than the {n} ranked ids per query")
    return int(k)


def recall_at_k(ranked: object, relevant: object, k: int) -> float:
    """Mean over queries of |relevant in the top k| / |relevant|."""
    r, rel = _check_ranked(ranked, relevant)
    k = _check_k(k, r.shape[1])
    return float(np.mean([len(rel_i.intersection(row[:k].tolist())) / len(rel_i)
                          for row, rel_i in zip(r, rel, strict=True)]))


def mrr(ranked: object, relevant: object) -> float:
    """Mean reciprocal rank of the first relevant id (0 when none is in the ranked list)."""
    r, rel = _check_ranked(ranked, relevant)
    out = []
    for row, rel_i in zip(r, rel, strict=True):
        hits = [i for i, v in enumerate(row.tolist()) if v in rel_i]
        out.append(1.0 / (hits[0] + 1) if hits else 0.0)
    return float(np.mean(out))


def ndcg(ranked: object, relevant: object, k: int) -> float:
    """Mean nDCG@k with binary relevance: sum of 1/log2(rank + 1) over hits, over the ideal."""
    r, rel = _check_ranked(ranked, relevant)
    k = _check_k(k, r.shape[1])
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    out = []
    for row, rel_i in zip(r, rel, strict=True):
        gains = np.array([v in rel_i for v in row[:k].tolist()], dtype=np.float64)
        out.append(float(gains @ disc) / float(disc[: min(k, len(rel_i))].sum()))
    return float(np.mean(out))


def _rank_scores(scores: object, relevant: object) -> tuple[np.ndarray, object]:
    """A checked (queries, documents) score matrix ranked in full (higher first, ties by document
    order), and ``relevant`` (by default query i's document is document i)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty (queries, documents) matrix, got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite (no NaN or inf)")
    if relevant is None:
        if s.shape[0] > s.shape[1]:
            raise ValueError(f"with relevant=None query i's document is document i, so there "
                             f"must be at least as many documents as queries, got {s.shape}")
        relevant = np.arange(s.shape[0])
    return np.argsort(-s, axis=1, kind="stable"), relevant


def ranking_metrics(scores: object, relevant: object = None, k: int = 10) -> dict[str, float]:
    """The four numbers of every retrieval table of the course, from a (queries, documents) score
    matrix ranked in full (higher first, ties by document order): ``recall@1``, ``recall@{k}``,
    ``mrr`` and ``ndcg@{k}``. ``relevant[i]`` holds query i's relevant document ids (one id or a
    list); by default query i's one relevant document is document i (a paired task)."""
    ranked, relevant = _rank_scores(scores, relevant)
    return ranked_metrics(ranked, relevant, k)


def ranked_metrics(ranked: object, relevant: object, k: int = 10) -> dict[str, float]:
    """The same four numbers from ranked ids instead of scores: ``ranked[i]`` lists query i's
    documents best first. It may be a shortlist (a re-ranked top k): a relevant document missing
    from it counts as not retrieved, and ``k`` may not exceed its length."""
    return {"recall@1": recall_at_k(ranked, relevant, 1),
            f"recall@{k}": recall_at_k(ranked, relevant, k),
            "mrr": mrr(ranked, relevant), f"ndcg@{k}": ndcg(ranked, relevant, k)}


def per_query_metrics(scores: object, relevant: object = None,
                      k: int = 10) -> dict[str, np.ndarray]:
    """The numbers of :func:`ranking_metrics` for each query separately, as float64 arrays of
    length n_queries (``recall@1``, ``recall@{k}``, ``rr`` the reciprocal rank, ``ndcg@{k}``).
    Their means are :func:`ranking_metrics`' values; two systems' arrays on the same queries feed
    :func:`embedlab.stats.paired_bootstrap`, which says whether their difference is more than
    noise. The whole ranking is used for ``rr`` (0 only when nothing relevant is ranked)."""
    ranked, relevant = _rank_scores(scores, relevant)
    return per_query_ranked(ranked, relevant, k)


def per_query_ranked(ranked: object, relevant: object, k: int = 10) -> dict[str, np.ndarray]:
    """:func:`per_query_metrics` from ranked ids (a shortlist allowed, as in
    :func:`ranked_metrics`)."""
    r, rel = _check_ranked(ranked, relevant)
    k = _check_k(k, r.shape[1])
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    r1, rk, rr, nd = [], [], [], []
    for row, rel_i in zip(r, rel, strict=True):
        ids = row.tolist()
        hits = [i for i, v in enumerate(ids) if v in rel_i]
        r1.append(len(rel_i.intersection(ids[:1])) / len(rel_i))
        rk.append(len(rel_i.intersection(ids[:k])) / len(rel_i))
        rr.append(1.0 / (hits[0] + 1) if hits else 0.0)
        gains = np.array([v in rel_i for v in ids[:k]], dtype=np.float64)
        nd.append(float(gains @ disc) / float(disc[: min(k, len(rel_i))].sum()))
    return {"recall@1": np.array(r1), f"recall@{k}": np.array(rk), "rr": np.array(rr),
            f"ndcg@{k}": np.array(nd)}
