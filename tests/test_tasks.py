"""The two evaluation tasks and the retrieval metrics they report."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab import tasks
from embedlab.evaluation import mrr, ndcg, recall_at_k


def test_retrieval_metrics_known_answers():
    ranked = np.array([[3, 1, 2], [0, 2, 1], [2, 0, 1]])
    gold = [1, 0, 5]
    assert recall_at_k(ranked, gold, 1) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, gold, 2) == pytest.approx(2 / 3)
    assert mrr(ranked, gold) == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert ndcg(ranked, gold, 3) == pytest.approx((1 / np.log2(3) + 1 + 0) / 3)
    # several relevant ids per query
    assert recall_at_k(np.array([[4, 5, 6]]), [{4, 6, 9}], 3) == pytest.approx(2 / 3)
    ideal = 1 + 1 / np.log2(3)
    assert ndcg(np.array([[5, 4, 6]]), [{4, 6}], 3) == pytest.approx(
        (1 / np.log2(3) + 1 / np.log2(4)) / ideal)


def test_retrieval_metrics_bad_input():
    ranked = np.array([[0, 1]])
    with pytest.raises(ValueError, match="k"):
        recall_at_k(ranked, [0], 0)
    with pytest.raises(ValueError, match="k = 3"):
        ndcg(ranked, [0], 3)
    with pytest.raises(ValueError, match="relevant has"):
        mrr(ranked, [0, 1])
    with pytest.raises(TypeError, match="integer"):
        mrr(np.array([[0.5, 1.0]]), [0])
    with pytest.raises(ValueError, match="empty"):
        mrr(ranked, [set()])


def test_news_split_is_fixed_and_disjoint():
    from embedlab import data

    train, test = tasks.news_split()
    assert len(test) == tasks.N_TEST and len(train) == len(tasks.news_pairs()) - tasks.N_TEST
    assert len(train) > 2000
    assert not set(train.article_id) & set(test.article_id)
    # the capstone's sealed headlines are in neither split
    assert not set(data.sealed_ids()) & (set(train.article_id) | set(test.article_id))
    again = tasks.news_split()[1]
    assert again.article_id.tolist() == test.article_id.tolist()
    assert (test.title.str.len() > 0).all() and not test.title.duplicated().any()
    with pytest.raises(ValueError, match="n_test"):
        tasks.news_split(0)


def _oracle(texts):
    """Every headline and article of a test pair gets the same one-hot vector."""
    _, test = tasks.news_split()
    idx = {t: i for i, t in enumerate(test.title)}
    idx.update({tasks.truncate_text(t, 300): i for i, t in enumerate(test.text)})
    out = np.zeros((len(texts), tasks.N_TEST), dtype=np.float32)
    for r, t in enumerate(texts):
        out[r, idx[t]] = 1.0
    return out


def test_retrieval_task_oracle_and_random():
    res = tasks.retrieval_task(_oracle, n=100, max_chars=300)
    assert res["recall@1"] == 1.0 and res["mrr"] == 1.0 and res["n"] == 100
    rng = np.random.default_rng(0)
    rand = tasks.retrieval_task(lambda t: rng.normal(size=(len(t), 32)), n=200, max_chars=300)
    assert rand["recall@10"] < 0.2  # chance is 10 / 200
    with pytest.raises(ValueError, match="one row per text"):
        tasks.retrieval_task(lambda t: np.zeros((1, 4)), n=20)
    with pytest.raises(ValueError, match="n must be"):
        tasks.retrieval_task(_oracle, n=5)
    with pytest.raises(TypeError, match="callable"):
        tasks.retrieval_task("not a function")


def test_retrieval_per_query_means_are_the_task_metrics():
    import zlib

    def noisy(texts):            # the oracle's one-hot rows plus noise: some queries miss
        noise = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=tasks.N_TEST)
                 for t in texts]
        return _oracle(texts) + 0.12 * np.array(noise)

    per = tasks.retrieval_per_query(noisy, n=150, max_chars=300)
    agg = tasks.retrieval_task(noisy, n=150, max_chars=300)
    assert set(per) == {"recall@1", "recall@10", "rr", "ndcg@10"}
    assert all(v.shape == (150,) for v in per.values())
    for k, a in [("recall@1", "recall@1"), ("recall@10", "recall@10"), ("rr", "mrr"),
                 ("ndcg@10", "ndcg@10")]:
        assert abs(per[k].mean() - agg[a]) < 1e-12
    assert 0 < per["recall@1"].mean() < 1        # the noise makes some queries miss
    with pytest.raises(ValueError, match="n must be"):
        tasks.retrieval_per_query(_oracle, n=3)


def test_lee_task_known_extremes():
    from embedlab import data

    docs, human = data.load("lee")
    lookup = {d: i for i, d in enumerate(docs)}
    # embeddings whose cosines reproduce the human matrix up to a monotone map: rho = 1
    sym = np.triu(human, 1) + np.triu(human, 1).T  # the file stores the upper triangle
    w, v = np.linalg.eigh(sym + 50 * np.eye(50))
    root = v * np.sqrt(w)
    res = tasks.lee_task(lambda texts: root[[lookup[t] for t in texts]])
    assert res["n_pairs"] == 1225 and res["spearman"] > 0.9
    rng = np.random.default_rng(1)
    assert abs(tasks.lee_task(lambda t: rng.normal(size=(len(t), 64)))["spearman"]) < 0.15


def test_lee_paired_bootstrap():
    from embedlab import data

    docs, human = data.load("lee")
    lookup = {d: i for i, d in enumerate(docs)}
    sym = np.triu(human, 1) + np.triu(human, 1).T
    w, v = np.linalg.eigh(sym + 50 * np.eye(50))
    root = v * np.sqrt(w)

    def oracle(texts):
        return root[[lookup[t] for t in texts]]

    rng = np.random.default_rng(3)
    noise = rng.normal(size=(50, 64))

    def random(texts):
        return noise[[lookup[t] for t in texts]]

    iv = tasks.lee_paired_bootstrap(oracle, random, n_boot=300)
    expect = tasks.lee_task(oracle)["spearman"] - tasks.lee_task(random)["spearman"]
    assert abs(iv.estimate - expect) < 1e-12 and iv.n == 50
    assert iv.lo > 0.5 and iv.lo <= iv.estimate <= iv.hi
    same = tasks.lee_paired_bootstrap(oracle, oracle, n_boot=100)
    assert same.estimate == same.lo == same.hi == 0.0
    with pytest.raises(ValueError, match="n_boot"):
        tasks.lee_paired_bootstrap(oracle, random, n_boot=10)


def test_truncate_text():
    assert tasks.truncate_text("alpha beta gamma", 12) == "alpha beta"
    assert tasks.truncate_text("alpha", None) == "alpha"
