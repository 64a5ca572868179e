"""The two tasks every sentence-embedding chapter is measured on, identically.

* **News retrieval**: a headline is the query, its article the one relevant document. The news
  corpus (``data.load("news")``) has 3,824 articles; after dropping empty and duplicated
  headlines or texts, a fixed 800 pairs are held out for testing (chosen by a hash of the
  article id, so the split never depends on a random seed or on row order) and the rest are for
  training. Queries are ranked against the held-out articles by cosine similarity; we report
  recall@1, recall@10, MRR and nDCG@10.
* **Lee similarity**: the 50 documents of Lee, Pincombe and Welsh (2005) and their averaged human
  similarity ratings, 1,225 pairs (the upper triangle). We report Spearman's rho between the
  ratings and the cosine of the documents' embeddings.

Both take ``embed``: any callable from a list of texts to a float32 array (n, d), one row per
text (rows need not be normalised; cosine is used). ``retrieval_task`` also takes an optional
``embed_docs`` for asymmetric models (e.g. "query: " / "passage: " prefixes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np

from embedlab.evaluation import per_query_metrics, ranking_metrics, spearman

Embed = Callable[[Sequence[str]], np.ndarray]

N_TEST = 800

__all__ = ["N_TEST", "evaluate", "lee_paired_bootstrap", "lee_task", "news_pairs", "news_split",
           "retrieval_per_query", "retrieval_task"]


def news_pairs():
    """Headline/article pairs of the news corpus: a DataFrame with ``article_id, title, text``.

    Rows with an empty headline or text, and rows whose headline or text repeats an earlier
    row's, are dropped (a repeated headline would make the retrieval answer ambiguous).
    """
    from embedlab import data

    df = data.load("news")
    df = df[(df.title.str.strip() != "") & (df.text.str.strip() != "")]
    df = df[~df.title.duplicated() & ~df.text.duplicated()]
    return df[["article_id", "title", "text"]].reset_index(drop=True)


def news_split(n_test: int = N_TEST):
    """``(train, test)`` DataFrames: the ``n_test`` pairs with the smallest sha256 of their
    article id are the test set (fixed for everyone), the rest are for training."""
    df = news_pairs()
    if not 1 <= n_test < len(df):
        raise ValueError(f"n_test must be in [1, {len(df)}), got {n_test}")
    key = df.article_id.astype(str).map(lambda s: hashlib.sha256(s.encode()).hexdigest())
    order = np.argsort(key.to_numpy(), kind="stable")
    test = df.iloc[np.sort(order[:n_test])].reset_index(drop=True)
    train = df.iloc[np.sort(order[n_test:])].reset_index(drop=True)
    return train, test


def _embed(fn: Embed, texts: list[str], name: str) -> np.ndarray:
    if not callable(fn):
        raise TypeError(f"{name} must be a callable from a list of texts to an array, "
                        f"got {type(fn).__name__}")
    x = np.asarray(fn(texts))
    if x.ndim != 2 or x.shape[0] != len(texts):
        raise ValueError(f"{name} must return one row per text, shape ({len(texts)}, d); "
                         f"got {x.shape}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} returned NaN or inf")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def truncate_text(text: str, max_chars: int | None) -> str:
    """``text`` cut to at most ``max_chars`` characters, at a space when there is one."""
    if max_chars is None or len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    return cut[: cut.rfind(" ")] if " " in cut else cut


def _retrieval_scores(embed: Embed, n: int | None, max_chars: int | None,
                      embed_docs: Embed | None) -> np.ndarray:
    """Cosine similarities (n queries, n documents) of the held-out headlines and articles."""
    _, test = news_split()
    n = len(test) if n is None else n
    if not isinstance(n, (int, np.integer)) or not 10 <= n <= len(test):
        raise ValueError(f"n must be an integer in [10, {len(test)}], got {n!r}")
    test = test.iloc[:n]
    queries = test.title.tolist()
    docs = [truncate_text(t, max_chars) for t in test.text]
    q = _embed(embed, queries, "embed")
    d = _embed(embed_docs or embed, docs, "embed_docs")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"query and document embeddings differ in dimension: {q.shape[1]} "
                         f"and {d.shape[1]}")
    return q @ d.T


def retrieval_task(embed: Embed, n: int | None = None, max_chars: int | None = None,
                   embed_docs: Embed | None = None) -> dict[str, float]:
    """Headline -> article retrieval on the held-out pairs (the first ``n`` of them, all 800 by
    default; articles cut to ``max_chars``). Returns recall@1, recall@10, MRR and nDCG@10."""
    scores = _retrieval_scores(embed, n, max_chars, embed_docs)
    return {**ranking_metrics(scores), "n": int(scores.shape[0])}


def retrieval_per_query(embed: Embed, n: int | None = None, max_chars: int | None = None,
                        embed_docs: Embed | None = None) -> dict[str, np.ndarray]:
    """The numbers of :func:`retrieval_task` for each held-out query separately (``recall@1``,
    ``recall@10``, ``rr``, ``ndcg@10``, arrays of length n, in the same query order for every
    model), for a paired comparison of two models (``embedlab.stats.paired_bootstrap``)."""
    return per_query_metrics(_retrieval_scores(embed, n, max_chars, embed_docs))


def lee_task(embed: Embed) -> dict[str, float]:
    """Spearman's rho between the 1,225 human ratings of the Lee corpus and embedding cosines."""
    from embedlab import data

    docs, human = data.load("lee")
    x = _embed(embed, list(docs), "embed")
    iu = np.triu_indices(len(docs), k=1)
    return {"spearman": spearman(human[iu], (x @ x.T)[iu]), "n_pairs": int(len(iu[0]))}


def lee_paired_bootstrap(embed_a: Embed, embed_b: Embed, *, n_boot: int = 2000,
                         level: float = 0.95, seed: int = 0):
    """Model A's Lee Spearman minus model B's, with a paired bootstrap interval over documents.

    The rated pairs share documents, so they are not independent items: the bootstrap resamples
    the documents with replacement (a cluster bootstrap; Efron and Tibshirani 1993, ch. 16) and
    recomputes both Spearman correlations on the pairs among the drawn documents (a document
    drawn twice is not paired with itself). Returns an :class:`embedlab.stats.Interval` whose
    ``n`` is the number of documents."""
    from embedlab import data
    from embedlab.stats import Interval

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if int(n_boot) < 100:
        raise ValueError(f"n_boot must be at least 100, got {n_boot}")
    docs, human = data.load("lee")
    xa, xb = _embed(embed_a, list(docs), "embed_a"), _embed(embed_b, list(docs), "embed_b")
    ca, cb = xa @ xa.T, xb @ xb.T
    human = np.triu(human, 1) + np.triu(human, 1).T      # the file stores the upper triangle
    n = len(docs)
    iu = np.triu_indices(n, k=1)
    estimate = spearman(human[iu], ca[iu]) - spearman(human[iu], cb[iu])
    rng = np.random.default_rng(seed)
    diffs = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        idx = rng.integers(0, n, size=n)
        i, j = idx[iu[0]], idx[iu[1]]
        keep = i != j
        i, j = i[keep], j[keep]
        diffs[b] = spearman(human[i, j], ca[i, j]) - spearman(human[i, j], cb[i, j])
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(diffs, [a, 1.0 - a])
    return Interval(float(estimate), float(lo), float(hi), level, n)


def evaluate(embed: Embed, n: int | None = None, max_chars: int | None = None,
             embed_docs: Embed | None = None) -> dict[str, float]:
    """Both tasks at once: ``{"recall@1", "recall@10", "mrr", "ndcg@10", "n", "spearman"}``."""
    out = retrieval_task(embed, n=n, max_chars=max_chars, embed_docs=embed_docs)
    out["spearman"] = lee_task(embed)["spearman"]
    return out
