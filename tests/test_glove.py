"""GloVe: weighting, co-occurrence counts by brute force, the AdaGrad step against autograd."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from embedlab.glove import GloVe, _adagrad_epoch, cooccurrence_matrix, glove_loss, glove_weight
from embedlab.word2vec import UnknownWordError, corpus_ids


def brute_cooccurrence(sentences: list[list[int]], V: int, window: int) -> np.ndarray:
    X = np.zeros((V, V))
    for s in sentences:
        for i, a in enumerate(s):
            for j, b in enumerate(s):
                if 0 < abs(i - j) <= window:
                    X[a, b] += 1.0 / abs(i - j)
    return X


def test_glove_weight_known_values():
    f = glove_weight(np.array([0.0, 1.0, 50.0, 100.0, 1e4]))
    np.testing.assert_allclose(f, [0.0, 0.01**0.75, 0.5**0.75, 1.0, 1.0])
    assert glove_weight(10.0, x_max=10.0, alpha=0.5) == 1.0
    with pytest.raises(ValueError, match="x_max"):
        glove_weight(1.0, x_max=0)
    with pytest.raises(ValueError, match="x must hold finite counts"):
        glove_weight(np.array([-1.0]))


def test_cooccurrence_small_known_answer():
    # "a b c a" with window 2: (a,b) at 1 and 2 -> 1 + 1/2; (a,c) at 2 and 1 -> 1/2 + 1; (a,a) at 3
    ids, starts = corpus_ids([["a", "b", "c", "a"]], {"a": 0, "b": 1, "c": 2})
    X = cooccurrence_matrix(ids, starts, 3, window=2).toarray()
    np.testing.assert_allclose(X, [[0.0, 1.5, 1.5], [1.5, 0.0, 1.0], [1.5, 1.0, 0.0]])


@pytest.mark.parametrize("window", [1, 3, 10])
def test_cooccurrence_matches_brute_force_and_chunks(window):
    rng = np.random.default_rng(window)
    sents = [rng.integers(0, 12, size=rng.integers(1, 15)).tolist() for _ in range(60)]
    ids = np.concatenate([np.asarray(s) for s in sents]).astype(np.int32)
    starts = np.concatenate([[0], np.cumsum([len(s) for s in sents])]).astype(np.int64)
    X = cooccurrence_matrix(ids, starts, 12, window=window)
    small_chunks = cooccurrence_matrix(ids, starts, 12, window=window, max_entries=7)
    expected = brute_cooccurrence(sents, 12, window)
    assert sp.issparse(X)
    np.testing.assert_allclose(X.toarray(), expected)
    np.testing.assert_allclose(small_chunks.toarray(), expected)
    np.testing.assert_allclose(X.toarray(), X.toarray().T)


def test_glove_loss_numpy_and_torch_agree():
    rng = np.random.default_rng(0)
    V, d, n = 6, 3, 10
    W, Wt = rng.normal(size=(V, d)), rng.normal(size=(V, d))
    b, bt = rng.normal(size=V), rng.normal(size=V)
    rows, cols = rng.integers(0, V, n), rng.integers(0, V, n)
    x = rng.uniform(0.5, 300, n)
    expected = sum(glove_weight(x[t]) * (W[rows[t]] @ Wt[cols[t]] + b[rows[t]] + bt[cols[t]]
                                         - np.log(x[t]))**2 for t in range(n))
    assert glove_loss(W, Wt, b, bt, rows, cols, x) == pytest.approx(float(expected))
    tt = [torch.tensor(a) for a in (W, Wt, b, bt)]
    got = glove_loss(*tt, torch.tensor(rows), torch.tensor(cols), torch.tensor(x))
    assert got.item() == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="counts must be > 0"):
        glove_loss(W, Wt, b, bt, rows, cols, np.zeros(n))


def test_adagrad_step_uses_half_the_autograd_gradient():
    rng = np.random.default_rng(1)
    V, d, eta = 4, 5, np.float32(0.05)
    W = rng.normal(0, 0.5, (V, d)).astype(np.float32)
    Wt = rng.normal(0, 0.5, (V, d)).astype(np.float32)
    b = rng.normal(0, 0.5, V).astype(np.float32)
    bt = rng.normal(0, 0.5, V).astype(np.float32)
    x = np.array([7.0])
    tens = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in (W, Wt, b, bt)]
    loss = glove_loss(*tens, torch.tensor([1]), torch.tensor([2]), torch.tensor(x))
    loss.backward()
    grads = [t.grad.numpy() / 2 for t in tens]          # glove.c steps on d(J/2)
    state = [a.copy() for a in (W, Wt, b, bt)]
    ones = [np.ones_like(a) for a in state]
    got = _adagrad_epoch(np.array([1], np.int32), np.array([2], np.int32),
                         np.log(x).astype(np.float32), glove_weight(x).astype(np.float32),
                         *state, *ones, eta)
    assert got == pytest.approx(loss.item(), rel=1e-4)
    for before, after, g in zip((W, Wt, b, bt), state, grads, strict=True):
        expected = before - eta * g / np.sqrt(1.0 + g**2)
        np.testing.assert_allclose(after, expected, atol=1e-6)


def two_topics(n: int = 800, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    topics = [[f"animal{i}" for i in range(6)], [f"vehicle{i}" for i in range(6)]]
    return [[str(w) for w in rng.choice(topics[s % 2], size=7)] for s in range(n)]


def test_training_lowers_the_loss_and_groups_topics():
    sents = two_topics()
    m = GloVe(vector_size=10, window=4, epochs=30, min_count=1, x_max=10.0, seed=0).fit(sents)
    again = GloVe(vector_size=10, window=4, epochs=30, min_count=1, x_max=10.0, seed=0).fit(sents)
    np.testing.assert_array_equal(m.vectors, again.vectors)
    np.testing.assert_allclose(m.vectors, m.W + m.W_tilde)
    assert m.loss_history[-1] < 0.5 * m.loss_history[0]
    top = [w for w, _ in m.most_similar("animal0", topn=5)]
    assert all(w.startswith("animal") for w in top), top
    assert m.cooccurrence.shape == (12, 12)


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        GloVe().fit([])
    with pytest.raises(ValueError, match="removes every word"):
        GloVe(min_count=10).fit([["a", "b"]])
    with pytest.raises(ValueError, match="window must be an int >= 1"):
        GloVe(window=0)
    with pytest.raises(ValueError, match="x_max"):
        GloVe(x_max=-1.0)
    with pytest.raises(ValueError, match="ids must lie"):
        cooccurrence_matrix(np.array([0, 5]), np.array([0, 2]), 3)
    m = GloVe(vector_size=4, window=2, epochs=2, min_count=1).fit([["a", "b", "c"]] * 3)
    with pytest.raises(UnknownWordError, match="not in the vocabulary"):
        m.most_similar("zebra")
