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
    # glove.c divides by the accumulator before adding this step's square: with sums at 1 the
    # first step is the plain eta * g, and the sums then hold 1 + (eta * g)^2
    for before, after, g in zip((W, Wt, b, bt), state, grads, strict=True):
        np.testing.assert_allclose(after, before - eta * g, atol=1e-6)
    for acc, g in zip(ones, grads, strict=True):
        np.testing.assert_allclose(acc, 1.0 + (eta * g) ** 2, rtol=1e-5)


def _reference_adagrad(W, Wt, b, bt, rows, cols, x, eta, epochs):
    """glove.c's update rule written out with float64 numpy, one entry at a time."""
    W, Wt, b, bt = (a.astype(np.float64) for a in (W, Wt, b, bt))
    G = [np.ones_like(a) for a in (W, Wt, b, bt)]
    f = glove_weight(x)
    for _ in range(epochs):
        for i, j, xv, fv in zip(rows, cols, x, f, strict=True):
            fdiff = fv * (W[i] @ Wt[j] + b[i] + bt[j] - np.log(xv))
            gi = np.clip(fdiff * Wt[j], -100, 100) * eta
            gj = np.clip(fdiff * W[i], -100, 100) * eta
            W[i] -= gi / np.sqrt(G[0][i])
            Wt[j] -= gj / np.sqrt(G[1][j])
            G[0][i] += gi**2
            G[1][j] += gj**2
            gb = eta * fdiff
            b[i] -= gb / np.sqrt(G[2][i])
            bt[j] -= gb / np.sqrt(G[3][j])
            G[2][i] += gb**2
            G[3][j] += gb**2
    return W, Wt, b, bt


def test_adagrad_epochs_follow_glove_c_update_order():
    """Several passes with repeated words: the step uses the sum before its own square."""
    rng = np.random.default_rng(2)
    V, d, n, eta = 5, 4, 12, np.float32(0.05)
    init = [rng.normal(0, 0.5, s).astype(np.float32) for s in ((V, d), (V, d), V, V)]
    rows = rng.integers(0, V, n).astype(np.int32)
    cols = rng.integers(0, V, n).astype(np.int32)
    x = rng.uniform(0.5, 200, n)
    expected = _reference_adagrad(*init, rows, cols, x, float(eta), epochs=3)
    state = [a.copy() for a in init]
    acc = [np.ones_like(a) for a in state]
    for _ in range(3):
        _adagrad_epoch(rows, cols, np.log(x).astype(np.float32),
                       glove_weight(x).astype(np.float32), *state, *acc, eta)
    for got, want in zip(state, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_word_vector_gradients_are_clipped_as_glove_c_does():
    W = np.full((2, 3), 20.0, np.float32)
    Wt = np.full((2, 3), 20.0, np.float32)
    b, bt = np.zeros(2, np.float32), np.zeros(2, np.float32)
    x = np.array([150.0])                           # f(x) = 1, diff = 1200 - log 150
    acc = [np.ones_like(a) for a in (W, Wt, b, bt)]
    _adagrad_epoch(np.array([0], np.int32), np.array([1], np.int32),
                   np.log(x).astype(np.float32), np.ones(1, np.float32), W, Wt, b, bt, *acc,
                   np.float32(0.05))
    np.testing.assert_allclose(W[0], 20.0 - 0.05 * 100.0, rtol=1e-6)   # clipped at 100
    diff = 1200.0 - np.log(150.0)
    np.testing.assert_allclose(b[0], -0.05 * diff, rtol=1e-5)          # biases are not


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
