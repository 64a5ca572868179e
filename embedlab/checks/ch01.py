"""Checks for chapter 01: the cosine matrix, analogies with input exclusion, Spearman's rho."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from embedlab.checks import exercise, must_raise


def _fresh_rng() -> np.random.Generator:
    """A new, unseeded generator: every grading run draws different inputs."""
    return np.random.default_rng()


def _cosine_ref(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Independent reference: each pair's cosine from its own dot product and norms (a loop)."""
    out = np.empty((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i, j] = float(np.dot(x, y)) / (np.sqrt(np.dot(x, x)) * np.sqrt(np.dot(y, y)))
    return out


def _analogy_ref(vectors: np.ndarray, words: list[str], a: str, b: str, c: str) -> str:
    """Independent reference: 3CosAdd by a plain loop over the vocabulary."""
    where = {w: i for i, w in reversed(list(enumerate(words)))}
    unit = [v / np.sqrt(np.dot(v, v)) for v in np.asarray(vectors, dtype=np.float64)]
    target = unit[where[b]] - unit[where[a]] + unit[where[c]]
    best, best_score = None, -np.inf
    for i, u in enumerate(unit):
        if words[i] in (a, b, c):
            continue
        score = float(np.dot(u, target))
        if score > best_score:
            best, best_score = words[i], score
    return best


@lru_cache(maxsize=1)
def _glove(n: int = 50_000) -> tuple[np.ndarray, list[str]]:
    from embedlab import data

    vectors, words = data.load("glove-6b-50d")
    return vectors[:n], words[:n]


# --------------------------------------------------------------------------- 01.cosine_matrix
cm = exercise("01.cosine_matrix", name="cosine_matrix", points=4,
    reference=("embedlab.geometry:cosine_matrix", "embedlab.geometry:cosine"))


@cm.check("returns shape (len(A), len(B)) with known values: cos of 45 degrees is 0.7071")
def _(fn):
    got = np.asarray(fn(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]), np.array([[1.0, 1.0]])))
    assert got.shape == (3, 1), f"shape {got.shape}, expected (3, 1)"
    np.testing.assert_allclose(got.ravel(), [2 ** -0.5] * 3, atol=1e-6)
    got = np.asarray(fn(np.array([[1.0, 0.0]]), np.array([[-1.0, 0.0], [0.0, 5.0]])))
    np.testing.assert_allclose(got, [[-1.0, 0.0]], atol=1e-9)


@cm.check("matches every pair's cosine on fresh random matrices (normalise rows, then A @ B.T)")
def _(fn):
    rng = _fresh_rng()
    n, m, d = (int(v) for v in rng.integers(5, 40, size=3))
    a = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=(n, 1))
    b = rng.normal(size=(m, d))
    got = np.asarray(fn(a, b), dtype=np.float64)
    assert got.shape == (n, m), f"shape {got.shape}, expected ({n}, {m})"
    np.testing.assert_allclose(got, _cosine_ref(a, b), atol=1e-6)


@cm.check("a zero row has no direction: raise ValueError instead of returning NaN")
def _(fn):
    with np.errstate(all="ignore"):
        must_raise(fn, np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[1.0, 1.0]]))
        must_raise(fn, np.array([[1.0, 2.0]]), np.zeros((2, 2)))


@cm.check("raise ValueError when A and B have different numbers of columns")
def _(fn):
    must_raise(fn, np.ones((2, 3)), np.ones((2, 4)))


# --------------------------------------------------------------------------- 01.analogy
an = exercise("01.analogy", name="solve_analogy", points=4,
    reference=("embedlab.geometry:analogy", "embedlab.geometry:most_similar"))


@an.check("never answers with one of the three input words (exclude a, b and c)")
def _(fn):
    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.9, 0.1, 0.05], [0.2, 0.9, 0.3]])
    words = ["a", "b", "c", "d"]
    got = fn(vectors, words, "a", "b", "c")
    assert got == "d", f"answered {got!r}; b itself is nearest to b - a + c, so it must be skipped"


@an.check("answers like 3CosAdd over unit vectors on fresh random vectors of mixed lengths")
def _(fn):
    rng = _fresh_rng()
    vectors = rng.normal(size=(300, 20)) * rng.uniform(0.5, 3, size=(300, 1))
    words = [f"w{i}" for i in range(300)]
    for a, b, c in rng.integers(0, 300, size=(8, 3)):
        if len({a, b, c}) < 3:
            continue
        want = _analogy_ref(vectors, words, words[a], words[b], words[c])
        got = fn(vectors, words, words[a], words[b], words[c])
        assert got == want, f"{words[a]}:{words[b]}::{words[c]}:? gave {got!r}, expected {want!r}"


@an.check("on GloVe: man:king::woman:queen and paris:france::rome:italy")
def _(fn):
    vectors, words = _glove()
    assert fn(vectors, words, "man", "king", "woman") == "queen"
    assert fn(vectors, words, "paris", "france", "rome") == "italy"


@an.check("an unknown word raises KeyError or ValueError naming it")
def _(fn):
    vectors = np.eye(4)
    words = ["a", "b", "c", "d"]
    try:
        fn(vectors, words, "a", "b", "zebra")
    except (KeyError, ValueError) as exc:
        assert "zebra" in str(exc), "name the unknown word in the message"
    else:
        raise AssertionError("no error for the unknown word 'zebra'")


# --------------------------------------------------------------------------- 01.spearman
sp = exercise("01.spearman", name="spearman_rho", points=3,
    reference=("embedlab.evaluation:spearman", "embedlab.evaluation:rankdata"))


@sp.check("rho is 1 for any increasing relation and -1 for a decreasing one (ranks, not values)")
def _(fn):
    x = np.array([0.5, 2.0, 3.0, 7.0, 11.0])
    assert abs(fn(x, x ** 3) - 1.0) < 1e-9
    assert abs(fn(x, np.exp(-x)) + 1.0) < 1e-9


@sp.check("tied values share their average rank (as scipy.stats.rankdata does)")
def _(fn):
    from scipy.stats import spearmanr

    x = [1, 2, 2, 3, 3, 3, 4]
    y = [2, 1, 4, 3, 6, 5, 7]
    want = float(spearmanr(x, y).statistic)
    assert abs(fn(x, y) - want) < 1e-9, f"{fn(x, y):.6f} vs {want:.6f}"


@sp.check("agrees with scipy.stats.spearmanr on fresh random human-like ratings (many ties)")
def _(fn):
    from scipy.stats import spearmanr

    rng = _fresh_rng()
    n = int(rng.integers(50, 400))
    human = rng.integers(0, 11, size=n).astype(float)
    model = human / 10 + rng.normal(scale=0.3, size=n)
    want = float(spearmanr(human, model).statistic)
    assert abs(fn(human, model) - want) < 1e-9, f"{fn(human, model):.6f} vs {want:.6f}"


@sp.check("raise ValueError when x and y have different lengths")
def _(fn):
    must_raise(fn, [1.0, 2.0, 3.0], [1.0, 2.0])
