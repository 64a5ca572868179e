"""embedlab.explore_space: the pure function against brute force, the figure, bad input."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from embedlab.explore_space import (  # noqa: E402
    plot_word_view,
    render_word,
    vector_strips,
    word_view,
)
from embedlab.geometry import UnknownWordError, WordIndex  # noqa: E402

A = 1 / np.sqrt(2)
PARALLELOGRAM = {"man": [A, 0, A, 0], "woman": [0, A, A, 0],
                 "king": [A, 0, 0, A], "queen": [0, A, 0, A]}


def _space(n_noise: int = 60, d: int = 8, seed: int = 0) -> WordIndex:
    """Four unit vectors with queen - king = woman - man exactly, then random words."""
    rng = np.random.default_rng(seed)
    exact = np.array([np.r_[v, np.zeros(d - 4)] for v in PARALLELOGRAM.values()])
    noise = rng.normal(size=(n_noise, d))
    return WordIndex(np.vstack([exact, noise]), list(PARALLELOGRAM) +
                     [f"w{i}" for i in range(n_noise)])


def _unit(index: WordIndex) -> np.ndarray:
    v = np.asarray(index.vectors, dtype=np.float64)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_neighbours_are_the_brute_force_cosine_ranking():
    index = _space(seed=3)
    unit = _unit(index)
    for word in ("king", "w5", "w17"):
        view = word_view(index, word, k=6)
        q = index.words.index(word)
        cos = unit @ unit[q]
        cos[q] = -np.inf
        expected = [index.words[i] for i in np.argsort(-cos)[:6]]
        assert [w for w, _ in view.neighbours] == expected
        np.testing.assert_allclose([c for _, c in view.neighbours], np.sort(cos)[::-1][:6],
                                   atol=1e-9)
        assert view.labels[0] == word and view.word == word


def test_the_analogy_answer_and_its_arrow_parallel_to_the_relation():
    view = word_view(_space(), "king", k=4, relation=("man", "woman"))
    assert view.answer == "queen"
    start, end = view.analogy_arrow
    r0, r1 = view.relation_arrow
    # an exact offset in the full space stays exact under the linear 2-D projection
    np.testing.assert_allclose(end - start, r1 - r0, atol=1e-9)
    np.testing.assert_allclose(start, view.position("king"))
    np.testing.assert_allclose(end, view.position("queen"))
    np.testing.assert_allclose(r0, view.position("man"))


def test_the_answer_is_brute_force_3cosadd_with_the_inputs_excluded():
    index = _space(n_noise=80, seed=5)
    unit = _unit(index)
    a, b, c = "w1", "w2", "w3"
    ia, ib, ic = (index.words.index(w) for w in (a, b, c))
    scores = unit @ (unit[ib] - unit[ia] + unit[ic])
    scores[[ia, ib, ic]] = -np.inf
    view = word_view(index, c, k=3, relation=(a, b))
    assert view.answer == index.words[int(np.argmax(scores))]


def test_coordinates_are_a_centred_projection_of_the_words_on_show():
    index = _space(seed=7)
    view = word_view(index, "w9", k=7)
    r0, r1 = view.relation_arrow                                # the relation lies on axis 1
    assert abs(r1[1] - r0[1]) < 1e-9 and r1[0] > r0[0]
    assert view.xy.shape == (len(view.labels), 2)
    assert len(set(view.labels)) == len(view.labels)           # each word drawn once
    np.testing.assert_allclose(view.xy.mean(axis=0), 0.0, atol=1e-9)
    unit = _unit(index)[[index.words.index(w) for w in view.labels]]
    full = np.linalg.norm(unit[:, None] - unit[None], axis=-1)
    flat = np.linalg.norm(view.xy[:, None] - view.xy[None], axis=-1)
    assert np.all(flat <= full + 1e-9)                          # a projection never stretches


def test_typed_words_are_stripped_and_lower_cased_and_restrict_vocab_applies():
    index = _space(seed=1)
    assert word_view(index, "  King ", k=2).word == "king"
    view = word_view(index, "king", k=3, restrict_vocab=10)
    assert all(index.words.index(w) < 10 for w, _ in view.neighbours)
    assert index.words.index(view.answer) < 10


def test_bad_input_and_unknown_words():
    index = _space()
    with pytest.raises(UnknownWordError, match="zebra"):
        word_view(index, "zebra")
    with pytest.raises(UnknownWordError, match="dog"):
        word_view(index, "king", relation=("dog", "woman"))
    with pytest.raises(TypeError, match="index"):
        word_view(np.eye(3), "king")
    with pytest.raises(TypeError, match="word"):
        word_view(index, 3)
    with pytest.raises(ValueError, match="k must"):
        word_view(index, "king", k=0)
    with pytest.raises(ValueError, match="relation"):
        word_view(index, "king", relation=("man",))
    with pytest.raises(ValueError, match="not on show"):
        word_view(index, "king", k=2).position("w40")


def test_the_figure_shows_the_word_its_neighbours_and_two_arrows():
    view = word_view(_space(), "king", k=4)
    fig = plot_word_view(view)
    ax = fig.axes[0]
    texts = {t.get_text() for t in ax.texts}
    assert {"king", "queen", "man", "woman"} <= texts
    assert {w for w, _ in view.neighbours} <= texts
    assert "king" in ax.get_title() and "queen" in ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None
    arrows = [t for t in ax.texts if t.get_text() == "" and t.arrow_patch is not None]
    assert len(arrows) == 2


def test_render_word_survives_a_half_typed_word():
    index = _space()
    fig = render_word(index, "kin", "man -> woman", k=3)
    assert "not in the vocabulary" in fig.axes[0].get_title()
    fig = render_word(index, "king", "man -> woman", k=3)
    assert "queen" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="a -> b"):
        render_word(index, "king", "man, woman")


def test_vector_strips_draws_one_row_per_item_on_a_symmetric_scale():
    m = np.array([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0]])
    fig = vector_strips(m, ["a", "b"], ["x", "y", "z"], title="t")
    ax = fig.axes[0]
    image = ax.images[0]
    np.testing.assert_allclose(image.get_array(), m)
    assert image.get_clim() == (-2.0, 2.0)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    with pytest.raises(ValueError, match="row_labels"):
        vector_strips(m, ["a"])
    with pytest.raises(ValueError, match="column_labels"):
        vector_strips(m, ["a", "b"], ["x"])


def test_relation_plane_puts_the_relation_on_the_first_axis():
    from embedlab.explore_space import relation_plane

    rng = np.random.default_rng(2)
    x = rng.normal(size=(12, 6))
    direction = x[1] - x[0]
    xy = relation_plane(x, direction)
    assert xy.shape == (12, 2)
    np.testing.assert_allclose(xy.mean(axis=0), 0.0, atol=1e-12)
    # the relation's own arrow lies on the first axis, with its full length
    np.testing.assert_allclose(xy[1] - xy[0], [np.linalg.norm(direction), 0.0], atol=1e-9)
    # the second axis is orthogonal to the first: projected lengths never exceed the true ones
    full = np.linalg.norm(x[:, None] - x[None], axis=-1)
    flat = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    assert np.all(flat <= full + 1e-9)
    with pytest.raises(ValueError, match="zero vector"):
        relation_plane(x, np.zeros(6))
    with pytest.raises(ValueError, match="dimensions"):
        relation_plane(x, np.ones(5))
