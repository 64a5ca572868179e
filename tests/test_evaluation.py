"""embedlab.evaluation: analogy accuracy and word-pair Spearman, and parity with gensim.

The parity tests run gensim's ``evaluate_word_analogies`` / ``evaluate_word_pairs`` on a slice of
GloVe (the course bars: analogy accuracy within 0.5 points, Spearman within 0.01);
``benchmarks/parity_geometry.py`` prints the same comparison on the full sets.
"""

import numpy as np
import pytest

from embedlab import data
from embedlab.evaluation import (
    analogy_accuracy,
    analogy_results,
    pair_scores,
    rankdata,
    similarity_spearman,
    spearman,
)
from embedlab.geometry import normalize

N_WORDS = 30_000
RESTRICT = 20_000
EVERY = 6  # every 6th question of each section: about 2,000 answerable


@pytest.fixture(scope="module")
def glove():
    vectors, words = data.load("glove-6b-50d")
    return vectors[:N_WORDS], words[:N_WORDS]


@pytest.fixture(scope="module")
def keyed(glove):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(glove[0].shape[1])
    kv.add_vectors(glove[1], glove[0])
    return kv


@pytest.fixture(scope="module")
def questions():
    q = data.load("analogy-google")
    return {s: rows[::EVERY] for s, rows in q.items()}


# --------------------------------------------------------------------------- toy answers
def _toy():
    # Two parallelograms: man:king :: woman:queen, and a syntactic one.
    rng = np.random.default_rng(0)
    base = {w: rng.normal(size=8) for w in ("man", "woman", "walk", "swim", "noise")}
    base["king"] = base["man"] + np.eye(8)[0] * 3
    base["queen"] = base["woman"] + np.eye(8)[0] * 3
    base["walked"] = base["walk"] + np.eye(8)[1] * 3
    base["swam"] = base["swim"] + np.eye(8)[1] * 3
    words = list(base)
    return np.stack([base[w] for w in words]), words


def test_toy_accuracy_sections_and_case_insensitivity():
    vectors, words = _toy()
    questions = {
        "family": [("man", "king", "woman", "queen"), ("MAN", "King", "WOMAN", "Queen"),
                   ("man", "king", "woman", "walk")],  # the third is answered wrong
        "gram7-past-tense": [("walk", "walked", "swim", "swam"),
                             ("walk", "walked", "fly", "flew")],  # OOV: skipped
    }
    res = analogy_accuracy(vectors, words, questions, restrict_vocab=100)
    assert set(res) == {"total", "semantic", "syntactic", "per_section"}
    assert res["per_section"] == {"family": pytest.approx(2 / 3), "gram7-past-tense": 1.0}
    assert res["semantic"] == pytest.approx(2 / 3)
    assert res["syntactic"] == 1.0
    assert res["total"] == pytest.approx(3 / 4)
    counts = analogy_results(vectors, words, questions, restrict_vocab=100)
    assert counts.skipped == {"family": 0, "gram7-past-tense": 1}
    assert counts.answered == {"family": 3, "gram7-past-tense": 1}


def test_restrict_vocab_skips_questions_beyond_the_cut():
    vectors, words = _toy()
    q = {"family": [("man", "king", "woman", "queen")]}
    # "queen" is row 6: with only the first 5 rows it is out of vocabulary, so nothing counts.
    res = analogy_results(vectors, words, q, restrict_vocab=5)
    assert res.answered["family"] == 0 and res.skipped["family"] == 1
    assert analogy_accuracy(vectors, words, q, restrict_vocab=5)["total"] == 0.0


def test_inputs_are_excluded_even_when_nearest():
    # d == b exactly would win if the inputs were not excluded.
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.01], [0.3, 1.0]])
    words = ["a", "b", "c", "d"]
    q = {"s": [("a", "b", "c", "d")]}
    assert analogy_accuracy(vectors, words, q)["total"] == 1.0


def test_batches_do_not_change_the_answer(glove, questions):
    v, w = glove
    a = analogy_results(v, w, questions, restrict_vocab=5_000, batch_size=7)
    b = analogy_results(v, w, questions, restrict_vocab=5_000, batch_size=10_000)
    assert a.correct == b.correct and a.answered == b.answered


def test_spearman_and_ranks_match_scipy():
    from scipy.stats import rankdata as sp_rank
    from scipy.stats import spearmanr

    rng = np.random.default_rng(5)
    x = rng.integers(0, 10, size=200).astype(float)  # many ties
    y = x + rng.normal(size=200) * 3
    np.testing.assert_allclose(rankdata(x), sp_rank(x))
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_similarity_spearman_known_answer_and_oov():
    vectors = normalize(np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.1]]))
    words = ["a", "b", "c", "d"]
    pairs = [("a", "b", 9.0), ("A", "c", 5.0), ("a", "d", 1.0), ("a", "zzz", 3.0)]
    assert similarity_spearman(vectors, words, pairs) == pytest.approx(1.0)
    human, model, skipped = pair_scores(vectors, words, pairs)
    assert skipped == 1 and list(human) == [9.0, 5.0, 1.0]
    np.testing.assert_allclose(model, [0.8, 0.0, vectors[3, 0]])


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_rejected_clearly():
    vectors, words = _toy()
    q = {"family": [("man", "king", "woman", "queen")]}
    with pytest.raises(ValueError, match="words has 2 entries"):
        analogy_accuracy(vectors, words[:2], q)
    with pytest.raises(TypeError, match="questions must be a dict"):
        analogy_accuracy(vectors, words, [("man", "king", "woman", "queen")])
    with pytest.raises(ValueError, match="tuple of 4 words"):
        analogy_accuracy(vectors, words, {"x": [("man", "king", "woman")]})
    with pytest.raises(ValueError, match="restrict_vocab must be >= 1"):
        analogy_accuracy(vectors, words, q, restrict_vocab=0)
    bad = vectors.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        analogy_accuracy(bad, words, q)
    zero = vectors.copy()
    zero[2] = 0.0
    with pytest.raises(ValueError, match="zero row"):
        analogy_accuracy(zero, words, q)
    with pytest.raises(ValueError, match="at least 2"):
        similarity_spearman(vectors, words, [("man", "king", 1.0), ("zzz", "king", 2.0)])
    with pytest.raises(ValueError, match="score must be a number"):
        similarity_spearman(vectors, words, [("man", "king", "high")])
    with pytest.raises(ValueError, match="same length"):
        spearman([1, 2, 3], [1, 2])


# --------------------------------------------------------------------------- parity with gensim
def _write_questions(path, questions):
    lines = []
    for section, rows in questions.items():
        lines.append(f": {section}")
        lines.extend(" ".join(q) for q in rows)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_analogy_accuracy_parity_with_gensim(glove, keyed, questions, tmp_path):
    v, w = glove
    path = tmp_path / "questions.txt"
    _write_questions(path, questions)
    score, sections = keyed.evaluate_word_analogies(str(path), restrict_vocab=RESTRICT)
    ours = analogy_accuracy(v, w, questions, restrict_vocab=RESTRICT)
    assert abs(ours["total"] - score) * 100 <= 0.5
    theirs = {s["section"]: s for s in sections}
    counts = analogy_results(v, w, questions, restrict_vocab=RESTRICT)
    for name in questions:
        n = len(theirs[name]["correct"]) + len(theirs[name]["incorrect"])
        assert counts.answered[name] == n, name
        assert abs(counts.correct[name] - len(theirs[name]["correct"])) <= max(1, 0.005 * n), name
    assert sum(counts.answered.values()) > 1500  # the slice really exercises the method


@pytest.mark.parametrize("name, filename", [("wordsim353", "wordsim353.tsv"),
                                            ("simlex999", "simlex999.txt")])
def test_similarity_spearman_parity_with_gensim(glove, keyed, name, filename):
    from gensim.test.utils import datapath

    v, w = glove
    pairs = data.load(name)
    _, spearman_g, oov = keyed.evaluate_word_pairs(datapath(filename), restrict_vocab=RESTRICT)
    ours = similarity_spearman(v, w, pairs, restrict_vocab=RESTRICT)
    assert abs(ours - spearman_g.statistic) <= 0.01
    _, _, skipped = pair_scores(v, w, pairs, restrict_vocab=RESTRICT)
    assert skipped == pytest.approx(oov / 100 * len(pairs), abs=0.5)


def test_case_variants_follow_gensim(tmp_path):
    """Of several case variants the first row is used, and no variant of an input may answer."""
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(6)
    base = rng.normal(size=(6, 10))
    # rows: man, king, woman, queen, then "Woman" (a variant of an input, placed where the
    # answer would be) and "QUEEN" (a later variant of the answer).
    target = base[1] - base[0] + base[2]
    vectors = np.vstack([base[:4], target, base[3] * 1.01])
    words = ["man", "king", "woman", "queen", "Woman", "QUEEN"]
    questions = {"family": [("Man", "KING", "woman", "Queen"), ("man", "king", "woman", "queen")]}
    ours = analogy_results(vectors, words, questions, restrict_vocab=6)
    kv = KeyedVectors(10)
    kv.add_vectors(words, vectors)
    path = tmp_path / "q.txt"
    _write_questions(path, questions)
    score, sections = kv.evaluate_word_analogies(str(path), restrict_vocab=6)
    assert ours.answered["family"] == 2 and ours.correct["family"] == 2
    assert ours.correct["family"] == len(sections[0]["correct"])
    assert analogy_accuracy(vectors, words, questions, restrict_vocab=6)["total"] == score


def test_ranking_metrics_known_answer_and_bad_input():
    from embedlab.evaluation import ranking_metrics

    # query 0's document ranks 3rd, query 1's first, query 2's 12th (beyond k = 10)
    scores = np.zeros((3, 12))
    scores[0] = np.linspace(1, 0, 12)
    scores[0, [0, 2]] = scores[0, [2, 0]]
    scores[1, 1] = 1.0
    scores[2] = np.linspace(1, 0, 12)[::-1]
    scores[2, [2, 0]] = scores[2, [0, 2]]     # document 2 takes the lowest score
    m = ranking_metrics(scores)
    assert m["recall@1"] == pytest.approx(1 / 3)
    assert m["recall@10"] == pytest.approx(2 / 3)
    assert m["mrr"] == pytest.approx((1 / 3 + 1 + 1 / 12) / 3)
    assert m["ndcg@10"] == pytest.approx((1 / np.log2(4) + 1) / 3)
    assert ranking_metrics(scores, relevant=[[0, 1], [1], [2]], k=5)["recall@5"] == \
        pytest.approx((1.0 + 1 + 0) / 3)
    with pytest.raises(ValueError, match="at least as many documents"):
        ranking_metrics(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="finite"):
        ranking_metrics(np.full((2, 2), np.nan))


def test_ranked_metrics_equal_ranking_metrics_and_read_a_shortlist():
    from embedlab.evaluation import ranked_metrics, ranking_metrics

    rng = np.random.default_rng(3)
    scores = rng.standard_normal((40, 60))
    ranked = np.argsort(-scores, axis=1, kind="stable")
    assert ranked_metrics(ranked, np.arange(40)) == ranking_metrics(scores)
    # a re-ranked shortlist of 3: query 0 finds its document second, query 1 not at all
    short = np.array([[5, 0, 7], [4, 2, 3]])
    m = ranked_metrics(short, [0, 1], k=3)
    assert m["recall@1"] == 0.0 and m["recall@3"] == pytest.approx(0.5)
    assert m["mrr"] == pytest.approx(0.25)
    assert m["ndcg@3"] == pytest.approx(1 / np.log2(3) / 2)
    with pytest.raises(ValueError, match="more than the 3 ranked ids"):
        ranked_metrics(short, [0, 1], k=10)
    with pytest.raises(TypeError, match="integer ids"):
        ranked_metrics(short.astype(float), [0, 1], k=3)


def test_per_query_metrics_average_to_ranking_metrics() -> None:
    from embedlab.evaluation import per_query_metrics, ranking_metrics

    rng = np.random.default_rng(7)
    s = rng.normal(size=(40, 60))
    s[np.arange(40), np.arange(40)] += 1.5
    pq, agg = per_query_metrics(s, k=10), ranking_metrics(s, k=10)
    assert pq["recall@1"].shape == (40,)
    for key in ("recall@1", "recall@10", "ndcg@10"):
        assert pq[key].mean() == pytest.approx(agg[key])
    assert pq["rr"].mean() == pytest.approx(agg["mrr"])
    # query 0's document ranked third: rr 1/3, nDCG 1/log2(4), not in the top 1
    s0 = np.array([[0.5, 0.9, 0.7, 0.1]])
    one = per_query_metrics(s0, [0], k=3)
    assert one["rr"][0] == pytest.approx(1 / 3) and one["recall@1"][0] == 0.0
    assert one["ndcg@3"][0] == pytest.approx(1 / np.log2(4))
    with pytest.raises(ValueError, match="finite"):
        per_query_metrics(np.array([[np.nan]]))
