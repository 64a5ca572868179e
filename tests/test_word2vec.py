"""word2vec: the formulas, one SGD step against torch autograd, determinism, parity with gensim."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from embedlab.text import build_vocab
from embedlab.word2vec import (
    UnknownWordError,
    Word2Vec,
    _draw_noise,
    _sgd_pair,
    corpus_ids,
    keep_probability,
    noise_cum_table,
    noise_distribution,
    sgns_loss,
)


def topic_corpus(n_sentences: int = 1200, seed: int = 0) -> list[list[str]]:
    """Two topics that never share a sentence: animals and vehicles, plus shared filler."""
    rng = np.random.default_rng(seed)
    topics = [[f"animal{i}" for i in range(8)], [f"vehicle{i}" for i in range(8)]]
    filler = ["the", "a", "and", "of"]
    out = []
    for s in range(n_sentences):
        words = topics[s % 2]
        sent = [str(w) for w in rng.choice(words, size=8)]
        sent.insert(int(rng.integers(0, 8)), filler[int(rng.integers(0, 4))])
        out.append(sent)
    return out


# --------------------------------------------------------------------------- formulas
def test_keep_probability_formulas():
    counts = np.array([1000, 100, 10, 1])
    f = counts / counts.sum()
    t = 1e-2
    paper = keep_probability(counts, t, formula="paper")
    np.testing.assert_allclose(paper, np.minimum(np.sqrt(t / f), 1.0))
    c_code = keep_probability(counts, t)
    np.testing.assert_allclose(c_code, np.minimum(np.sqrt(t / f) + t / f, 1.0))
    assert np.all(c_code >= paper) and c_code[0] < 1.0 and c_code[-1] == 1.0
    np.testing.assert_array_equal(keep_probability(counts, 0.0), np.ones(4))


def test_keep_probability_matches_gensim():
    from gensim.models import Word2Vec as GensimW2V

    sents = topic_corpus(300)
    g = GensimW2V(vector_size=8, min_count=1, sample=1e-2, workers=1, seed=0)
    g.build_vocab(sents)
    words, counts = build_vocab(sents, 1)
    ours = np.round(keep_probability(counts, 1e-2) * 2.0**32)
    theirs = np.array([g.wv.get_vecattr(w, "sample_int") for w in words], dtype=np.float64)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_noise_distribution_and_sampler():
    counts = np.array([81, 16, 1])
    p = noise_distribution(counts)
    np.testing.assert_allclose(p, np.array([27.0, 8.0, 1.0]) / 36.0)
    table = noise_cum_table(counts)
    state = np.array([12345], dtype=np.uint64)
    draws = np.array([_draw_noise(table, state) for _ in range(40_000)])
    freq = np.bincount(draws, minlength=3) / len(draws)
    np.testing.assert_allclose(freq, p, atol=0.01)


def test_sgns_loss_matches_formula():
    g = torch.Generator().manual_seed(0)
    v, up, un = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g), \
        torch.randn(4, 3, 6, generator=g)
    sig = torch.sigmoid
    manual = -(torch.log(sig((up * v).sum(1))) +
               torch.log(sig(-(un @ v.unsqueeze(2)).squeeze(2))).sum(1)).mean()
    assert torch.allclose(sgns_loss(v, up, un), manual, atol=1e-6)
    with pytest.raises(ValueError, match="u_neg"):
        sgns_loss(v, up, un[:, :, :5])
    with pytest.raises(TypeError, match="v must be a torch.Tensor"):
        sgns_loss(v.numpy(), up, un)


def test_one_sgd_step_is_minus_alpha_times_the_torch_gradient():
    rng = np.random.default_rng(1)
    V, d, k, alpha = 20, 8, 4, 0.05
    syn0 = rng.normal(0, 0.3, (V, d)).astype(np.float32)
    syn1 = rng.normal(0, 0.3, (V, d)).astype(np.float32)
    table = noise_cum_table(np.arange(V, 0, -1))
    inp, target = 3, 7
    # the noise words the step will draw, from a copy of the same random stream; pick a seed
    # whose k draws are distinct and differ from the target (a word drawn twice would see its
    # own first update on the second draw: the sequential SGD of word2vec.c)
    for seed in range(1, 1000):
        s = np.array([seed], dtype=np.uint64)
        noise = [int(_draw_noise(table, s)) for _ in range(k)]
        if len(set(noise)) == k and target not in noise:
            break
    v = torch.tensor(syn0[inp], requires_grad=True)
    u = torch.tensor(syn1, requires_grad=True)
    loss = sgns_loss(v[None], u[target][None], u[noise][None])
    loss.backward()
    s0, s1 = syn0.copy(), syn1.copy()
    neu1e = np.zeros(d, dtype=np.float32)
    pair_loss = _sgd_pair(s0, s1, s0[inp], neu1e, target, k, table,
                          np.array([seed], dtype=np.uint64), alpha, 0.0)
    s0[inp] += neu1e
    assert pair_loss == pytest.approx(loss.item(), rel=1e-4)
    np.testing.assert_allclose(s0[inp] - syn0[inp], -alpha * v.grad.numpy(), atol=1e-6)
    np.testing.assert_allclose(s1 - syn1, -alpha * u.grad.numpy(), atol=1e-5)


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("sg", [True, False])
def test_training_separates_topics_and_is_deterministic(sg):
    sents = topic_corpus()
    kw = dict(vector_size=16, window=3, negative=5, min_count=1, sample=0.0, epochs=5, sg=sg)
    m = Word2Vec(seed=0, **kw).fit(sents)
    again = Word2Vec(seed=0, **kw).fit(sents)
    other = Word2Vec(seed=1, **kw).fit(sents)
    np.testing.assert_array_equal(m.vectors, again.vectors)
    assert not np.array_equal(m.vectors, other.vectors)
    assert m.vectors.dtype == np.float32 and m.vectors.shape == (len(m.index_to_key), 16)
    for word in ("animal0", "vehicle3"):
        prefix = word[:-1]
        top = [w for w, _ in m.most_similar(word, topn=5)]
        assert all(w.startswith(prefix) for w in top), (word, top)
    assert m.loss_history[-1] < 0.8 * m.loss_history[0]
    assert m.words_seen == sum(map(len, sents)) * 5


def test_vocabulary_and_order_match_gensim():
    from gensim.models import Word2Vec as GensimW2V

    sents = topic_corpus(400, seed=3) + [["rare", "once"], ["the", "rare"]]
    g = GensimW2V(vector_size=8, min_count=2, workers=1, seed=0)
    g.build_vocab(sents)
    m = Word2Vec(vector_size=8, min_count=2).build_vocab(sents)
    assert m.index_to_key == list(g.wv.index_to_key)
    assert "once" not in m and "rare" in m


def test_corpus_ids_drops_unknown_words_and_empty_sentences():
    ids, starts = corpus_ids([["a", "x", "b"], ["x"], ["b"]], {"a": 0, "b": 1})
    assert ids.tolist() == [0, 1, 1] and starts.tolist() == [0, 2, 3]


def test_most_similar_orders_by_cosine():
    m = Word2Vec(vector_size=4, min_count=1, epochs=1).fit([["a", "b", "c", "d"]] * 3)
    m.vectors = np.array([[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 1, 0, 0], [-1, 0, 0, 0]],
                         dtype=np.float32)
    m.key_to_index = {"a": 0, "b": 1, "c": 2, "d": 3}
    m.index_to_key = ["a", "b", "c", "d"]
    assert [w for w, _ in m.most_similar("a", topn=3)] == ["b", "c", "d"]
    assert m.most_similar("a", topn=1)[0][1] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert m.similarity("a", "d") == pytest.approx(-1.0)


# --------------------------------------------------------------------------- bad input
def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        Word2Vec().fit([])
    with pytest.raises(ValueError, match="min_count=50 removes every word"):
        Word2Vec(min_count=50).fit([["a", "b"], ["a"]])
    with pytest.raises(ValueError, match="window must be an int >= 1"):
        Word2Vec(window=0)
    with pytest.raises(ValueError, match="negative"):
        Word2Vec(negative=0)
    with pytest.raises(ValueError, match="sample"):
        Word2Vec(sample=1.5)
    with pytest.raises(TypeError, match="list of token lists"):
        Word2Vec().fit("a sentence as one string")
    with pytest.raises(TypeError, match="list of token lists"):
        Word2Vec(min_count=1).fit(["abc", "def"])
    with pytest.raises(ValueError, match="not trained"):
        Word2Vec().most_similar("a")
    m = Word2Vec(vector_size=4, min_count=1, epochs=1).fit([["a", "b", "c"]])
    with pytest.raises(UnknownWordError, match="'zebra' is not in the vocabulary"):
        m.most_similar("zebra")
    with pytest.raises(KeyError):  # also a KeyError, as gensim raises
        m["zebra"]
    with pytest.raises(ValueError, match="topn"):
        m.most_similar("a", topn=0)


def test_long_sentences_are_trained_whole():
    rng = np.random.default_rng(5)
    long = [f"w{int(i)}" for i in rng.integers(0, 50, size=12_000)]  # longer than gensim's cap
    m = Word2Vec(vector_size=8, min_count=1, sample=0.0, epochs=1).fit([long])
    assert m.words_seen == 12_000
    assert len(m.loss_history) == 1 and np.isfinite(m.loss_history[0])


def test_news_sentences_slice_and_errors():
    from embedlab import data
    from embedlab.text import news_sentences, tokenize

    sents = news_sentences(3)
    first_title = data.load("news")["title"].iloc[0]
    assert sents[0] == tokenize(first_title)
    assert all(s and all(t == t.lower() for t in s) for s in sents)
    assert len(news_sentences(3, titles=False)) == len(sents) - 3
    with pytest.raises(ValueError, match="max_articles"):
        news_sentences(0)


# --------------------------------------------------------------------------- random draws
@pytest.mark.parametrize(("window", "sg"), [(4, True), (5, True), (4, False), (8, False)])
def test_effective_windows_are_uniform_in_training(window, sg):
    """The windows the training loop draws are uniform on 1..window (chi-square test).

    Low bits of the linear-congruential stream (``next % window``) have short periods, and the
    draws for subsampling and noise words sit between two window draws, so low bits give a
    lopsided distribution; the high bits (``next >> 16``, as gensim) do not.
    """
    from scipy.stats import chisquare

    m = Word2Vec(vector_size=8, window=window, negative=3, sample=1e-2, min_count=1, sg=sg,
                 epochs=2, seed=0).fit(topic_corpus(600))
    counts = m.window_counts[1:]
    assert m.window_counts[0] == 0 and counts.sum() > 5000
    p = chisquare(counts).pvalue
    assert p > 1e-3, (counts / counts.sum()).round(3).tolist()
    # and the statistic really can see a skew of that size: a 30% excess in one bin is rejected
    tilted = counts.astype(float).copy()
    tilted[0] *= 1.3
    assert chisquare(tilted, tilted.sum() / len(tilted) * np.ones(len(tilted))).pvalue < 1e-3


# --------------------------------------------------------------------------- pictures
def test_window_examples_for_one_centre():
    from embedlab.word2vec import window_examples

    toy = "the central bank raised interest rates again".split()
    noise = [f"n{i}" for i in range(20)]
    ex = window_examples(toy, centre=3, b=2, noise=noise, negative=2)
    sg, cbow = ex["skip-gram"], ex["cbow"]
    assert [e for e in sg if e[2] == 1] == [("raised", w, 1)
                                             for w in ("central", "bank", "interest", "rates")]
    assert len(sg) == 4 * 3 and sum(e[2] == 0 for e in sg) == 8
    assert sg[1] == ("raised", "n0", 0) and sg[2] == ("raised", "n1", 0)
    assert cbow[0] == (("central", "bank", "interest", "rates"), "raised", 1)
    assert [e[1] for e in cbow[1:]] == ["n8", "n9"] and all(e[2] == 0 for e in cbow[1:])
    # the window stops at the sentence's ends
    edge = window_examples(toy, centre=0, b=3, noise=noise, negative=0)
    assert [e[1] for e in edge["skip-gram"]] == ["central", "bank", "raised"]


def test_window_examples_rejects_bad_input():
    from embedlab.word2vec import window_examples

    toy = ["a", "b", "c"]
    with pytest.raises(ValueError, match="centre"):
        window_examples(toy, centre=3, b=1, noise=["x"] * 10)
    with pytest.raises(ValueError, match="b must"):
        window_examples(toy, centre=1, b=0, noise=["x"] * 10)
    with pytest.raises(ValueError, match="noise must hold at least"):
        window_examples(toy, centre=1, b=1, noise=["x"], negative=2)
    with pytest.raises(TypeError, match="tokens"):
        window_examples("a b c", centre=1, b=1, noise=[])


def test_plot_window_examples_draws_the_sentence_and_every_example():
    import matplotlib

    matplotlib.use("Agg")
    from embedlab.word2vec import plot_window_examples, window_examples

    toy = "the central bank raised interest rates".split()
    ex = window_examples(toy, centre=2, b=1, noise=[f"n{i}" for i in range(10)], negative=1)
    fig = plot_window_examples(toy, 2, 1, ex)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert all(t in texts for t in toy)
    assert sum("  ->  " in t for t in texts) == len(ex["skip-gram"]) + len(ex["cbow"])
    assert "bank" in ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert ax.get_legend() is not None


def test_progress_is_quiet_under_tqdm_disable(monkeypatch):
    from embedlab.word2vec import progress

    monkeypatch.setenv("TQDM_DISABLE", "1")
    bar = progress(range(3), desc="x")
    assert bar.disable and list(bar) == [0, 1, 2]
    monkeypatch.setenv("TQDM_DISABLE", "0")
    with open(os.devnull, "w") as sink:
        bar = progress(range(3), desc="x", file=sink)
        assert not bar.disable and list(bar) == [0, 1, 2]
