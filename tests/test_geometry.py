"""embedlab.geometry: known answers, the unit-norm identity, bad input, GloVe facts."""

import numpy as np
import pytest

from embedlab import data
from embedlab.geometry import (
    WordIndex,
    analogy,
    as_vectors,
    common_pairs,
    cosine,
    cosine_matrix,
    dot,
    euclidean,
    lookup,
    most_similar,
    normalize,
    pca_project,
    spearman_difference,
)


@pytest.fixture(scope="module")
def glove():
    vectors, words = data.load("glove-6b-50d")
    return WordIndex(vectors[:50_000], words[:50_000])


# --------------------------------------------------------------------------- the three measures
def test_known_answers_on_small_vectors():
    a, b = np.array([3.0, 4.0]), np.array([4.0, 3.0])
    assert dot(a, b) == 24.0
    assert cosine(a, b) == pytest.approx(24 / 25)
    assert euclidean(a, b) == pytest.approx(np.sqrt(2))
    assert cosine([1, 0], [0, 1]) == pytest.approx(0.0)
    assert cosine([1, 0], [-2, 0]) == pytest.approx(-1.0)
    np.testing.assert_allclose(normalize([3, 4]), [0.6, 0.8])


def test_shapes_one_against_many_and_matrices():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(6, 7))
    assert dot(a, b).shape == (5, 6)
    assert cosine(a[0], b).shape == (6,)
    assert euclidean(a, b).shape == (5, 6)
    np.testing.assert_allclose(cosine(a, b)[2, 3], cosine(a[2], b[3]))
    np.testing.assert_allclose(euclidean(a, b)[4, 1], np.linalg.norm(a[4] - b[1]))
    np.testing.assert_allclose(euclidean(a[1], b), np.linalg.norm(b - a[1], axis=1))
    np.testing.assert_allclose(cosine_matrix(a), cosine(a, a))
    np.testing.assert_allclose(np.diag(cosine_matrix(a)), 1.0)


def test_unit_norm_identity_and_rankings_agree():
    rng = np.random.default_rng(1)
    u = normalize(rng.normal(size=(200, 16)))
    q = normalize(rng.normal(size=16))
    d2 = euclidean(q, u) ** 2
    np.testing.assert_allclose(d2, 2 - 2 * cosine(q, u), atol=1e-12)
    by_cos = np.argsort(-cosine(q, u), kind="stable")
    by_dot = np.argsort(-dot(q, u), kind="stable")
    by_l2 = np.argsort(euclidean(q, u), kind="stable")
    assert (by_cos == by_dot).all() and (by_cos == by_l2).all()


def test_normalize_keeps_float32_and_is_scale_invariant():
    x = np.random.default_rng(2).normal(size=(10, 4)).astype(np.float32)
    u = normalize(x)
    assert u.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(normalize(7.5 * x), u, rtol=1e-6)


def test_cosine_is_clipped_to_its_range():
    x = np.full(50, 0.1)
    assert cosine(x, x) == 1.0


# --------------------------------------------------------------------------- bad input
def test_zero_vector_is_a_clear_error_not_nan():
    with pytest.raises(ValueError, match="zero vector"):
        normalize([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"row 1"):
        normalize([[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="zero"):
        cosine([0.0, 0.0], [1.0, 2.0])


@pytest.mark.parametrize("bad", [[1.0, np.nan], [np.inf, 1.0]])
def test_nan_and_inf_are_rejected(bad):
    with pytest.raises(ValueError, match="NaN or inf"):
        cosine(bad, [1.0, 1.0])
    with pytest.raises(ValueError, match="NaN or inf"):
        dot([1.0, 1.0], bad)


def test_mismatched_dimensions_are_rejected():
    with pytest.raises(ValueError, match="same dimension"):
        dot([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="same dimension"):
        euclidean(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match="same dimension"):
        cosine([1.0, 2.0], np.ones((3, 4)))


def test_wrong_types_and_shapes():
    with pytest.raises(TypeError, match="x must"):
        as_vectors("abc")
    with pytest.raises(TypeError, match="real numbers"):
        normalize(np.array([1 + 2j]))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        normalize(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="array of numbers"):
        normalize([[1.0, 2.0], [3.0]])


def test_word_index_rejects_mismatch_and_unknown_words():
    with pytest.raises(ValueError, match="2 entries but vectors has 3 rows"):
        WordIndex(np.ones((3, 2)), ["a", "b"])
    wi = WordIndex(np.eye(3), ["a", "b", "c"])
    with pytest.raises(KeyError, match="'zzz' is not in the vocabulary"):
        most_similar(wi, None, "zzz")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        analogy(wi, None, "a", "b", "zzz")
    with pytest.raises(ValueError, match="topn"):
        most_similar(wi, None, "a", topn=0)
    with pytest.raises(ValueError, match="method"):
        analogy(wi, None, "a", "b", "c", method="3cosdiv")
    with pytest.raises(ValueError, match="same dimension"):
        most_similar(wi, None, np.ones(5))


# --------------------------------------------------------------------------- neighbours, analogies
def test_most_similar_excludes_the_query_and_breaks_ties_by_index():
    vecs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.6, 0.8]])
    words = ["q", "twin", "up", "long", "mid"]
    got = most_similar(vecs, words, "q", topn=3)
    assert [w for w, _ in got] == ["twin", "long", "mid"]
    assert got[0][1] == pytest.approx(1.0) and got[2][1] == pytest.approx(0.6)
    raw = most_similar(vecs, words, "q", topn=2, normalized=False)
    assert [w for w, _ in raw] == ["long", "twin"]  # the raw dot favours the long vector
    assert most_similar(vecs, words, "q", topn=10, exclude=["twin"])[0][0] == "long"
    assert len(most_similar(vecs, words, "q", topn=10)) == 4


def test_analogy_on_a_constructed_parallelogram():
    # b - a + c lands exactly on d; the inputs themselves are never returned.
    a, b, c = np.array([1.0, 0, 0, 0]), np.array([1.0, 1, 0, 0]), np.array([1.0, 0, 1, 0])
    d = b - a + c
    other = np.array([0.0, 0, 0, 1])
    wi = WordIndex(np.stack([a, b, c, d, other]), ["a", "b", "c", "d", "o"])
    for method in ("3cosadd", "3cosmul"):
        got = analogy(wi, None, "a", "b", "c", topn=2, method=method)
        assert got[0][0] == "d"
        assert {w for w, _ in got}.isdisjoint({"a", "b", "c"})


def test_analogy_3cosadd_matches_the_offset_formula():
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(300, 12))
    words = [f"w{i}" for i in range(300)]
    got = analogy(vecs, words, "w0", "w1", "w2", topn=5)
    u = normalize(vecs)
    scores = u @ (u[1] - u[0] + u[2])
    scores[[0, 1, 2]] = -np.inf
    assert [w for w, _ in got] == [words[i] for i in np.argsort(-scores)[:5]]


def test_pca_project_matches_the_svd_and_has_stable_signs():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 6)) * np.array([5, 3, 1, 1, 0.5, 0.1])
    p = pca_project(x, 2)
    assert p.shape == (40, 2)
    np.testing.assert_allclose(p.mean(axis=0), 0.0, atol=1e-10)
    var = p.var(axis=0)
    sv = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    np.testing.assert_allclose(var * len(x), sv[:2] ** 2, rtol=1e-10)
    np.testing.assert_allclose(pca_project(-x, 2), -p)  # directions flip with the data
    with pytest.raises(ValueError, match="n_components"):
        pca_project(x, 7)


# --------------------------------------------------------------------------- GloVe facts
def test_glove_cosines_and_king_queen(glove):
    assert cosine(glove["king"], glove["queen"]) == pytest.approx(0.784, abs=1e-3)
    assert cosine(glove["king"], glove["banana"]) == pytest.approx(0.221, abs=1e-3)
    assert analogy(glove, None, "man", "king", "woman")[0][0] == "queen"
    assert analogy(glove, None, "man", "king", "woman", method="3cosmul")[0][0] == "queen"
    assert most_similar(glove, None, "france", topn=5)[0][0] in {"belgium", "french", "spain"}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gensim's most_similar_cosmul
def test_glove_neighbours_agree_with_gensim(glove):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(glove.vectors.shape[1])
    kv.add_vectors(glove.words, glove.vectors)
    for word in ("frog", "computer", "paris"):
        ours = [w for w, _ in most_similar(glove, None, word, topn=10)]
        theirs = [w for w, _ in kv.most_similar(word, topn=10)]
        assert ours == theirs
    ours = [w for w, _ in analogy(glove, None, "man", "king", "woman", topn=5)]
    theirs = [w for w, _ in kv.most_similar(positive=["king", "woman"], negative=["man"], topn=5)]
    assert ours == theirs
    ours = [w for w, _ in analogy(glove, None, "paris", "france", "rome", topn=5,
                                  method="3cosmul")]
    theirs = [w for w, _ in kv.most_similar_cosmul(positive=["france", "rome"],
                                                   negative=["paris"], topn=5)]
    assert ours == theirs


def test_lookup_returns_rows_in_order(glove):
    m = lookup(glove, None, ["queen", "king"])
    np.testing.assert_array_equal(m, np.stack([glove["queen"], glove["king"]]))


# --------------------------------------------------------------------------- comparing two models
def test_common_pairs_keeps_pairs_every_vocabulary_knows():
    pairs = [("Cat", "dog", 7.0), ("cat", "car", 2.0), ("sun", "moon", 6.0)]
    assert common_pairs(pairs, ["cat", "dog", "car"], ["CAT", "DOG", "sun"]) == [pairs[0]]
    assert common_pairs(pairs, ["cat", "dog", "car", "sun", "moon"]) == pairs
    with pytest.raises(ValueError, match="vocabulary"):
        common_pairs(pairs)
    with pytest.raises(ValueError, match=r"pairs\[0\]"):
        common_pairs([("cat", "dog")], ["cat"])


def test_spearman_difference_matches_scipy_and_brackets_it():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    human = rng.normal(size=300).round(1)                      # ties, as human ratings have
    good = human + rng.normal(scale=0.5, size=300)
    poor = human + rng.normal(scale=3.0, size=300)
    iv = spearman_difference(human, good, poor, n_boot=500, seed=1)
    expected = spearmanr(human, good).statistic - spearmanr(human, poor).statistic
    assert iv.estimate == pytest.approx(expected, abs=1e-12)
    assert iv.lo < iv.estimate < iv.hi and iv.lo > 0 and iv.n == 300
    same = spearman_difference(human, good, good, n_boot=200)
    assert same.estimate == 0 and same.lo == 0 and same.hi == 0
    noise = spearman_difference(human, good, good + rng.normal(scale=0.01, size=300),
                                n_boot=500)
    assert noise.lo <= 0 <= noise.hi
    assert spearman_difference(human, good, poor, n_boot=500, seed=1) == iv   # seeded


def test_spearman_difference_rejects_bad_input():
    x = np.arange(10.0)
    with pytest.raises(ValueError, match="same pairs"):
        spearman_difference(x, x, x[:5])
    with pytest.raises(ValueError, match="at least 3"):
        spearman_difference(x[:2], x[:2], x[:2])
    with pytest.raises(ValueError, match="n_boot"):
        spearman_difference(x, x, x, n_boot=10)
    with pytest.raises(ValueError, match="level"):
        spearman_difference(x, x, x, level=1.5)
    with pytest.raises(ValueError, match="NaN"):
        spearman_difference(x, x, np.r_[x[:-1], np.nan])


def test_the_bootstrap_ranks_rows_like_scipy():
    from scipy.stats import rankdata

    from embedlab.geometry import _average_ranks, _rank_codes

    rng = np.random.default_rng(3)
    for _ in range(30):
        x = rng.integers(0, rng.integers(1, 20), size=(rng.integers(1, 40), rng.integers(1, 30)))
        np.testing.assert_allclose(_average_ranks(_rank_codes(x.astype(float))),
                                   rankdata(x, axis=-1))
