"""Checks for chapter 07: row normalisation (warm-up), and maximum inner product search reduced to
a Euclidean nearest-neighbour scan (the build).

References are brute force in float64 (``Q @ X.T``, explicit norms), on random data drawn afresh
on every run.
"""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise, must_raise

# --------------------------------------------------------------------------- 07.normalize_rows
nr = exercise("07.normalize_rows", name="normalize_rows", points=3,
    reference=("embedlab.geometry:normalize",))


@nr.check("every row gets length 1 and keeps its direction")
def _(fn):
    x = np.array([[3.0, 4.0], [0.0, -2.0], [1e-3, 1e-3]])
    got = np.asarray(fn(x), dtype=np.float64)
    np.testing.assert_allclose(got, [[0.6, 0.8], [0.0, -1.0], [2 ** -0.5, 2 ** -0.5]], atol=1e-7)
    rng = np.random.default_rng()
    y = rng.normal(size=(40, 7)) * rng.uniform(0.01, 100, size=(40, 1))
    lengths = np.sqrt((y ** 2).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(np.asarray(fn(y), dtype=np.float64), y / lengths, atol=1e-9)


@nr.check("keeps float32 input float32 and does not modify its input")
def _(fn):
    x = np.random.default_rng().normal(size=(50, 4)).astype(np.float32)
    before = x.copy()
    got = np.asarray(fn(x))
    assert got.dtype == np.float32, f"dtype {got.dtype}; divide without upcasting"
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(np.sqrt((got.astype(np.float64) ** 2).sum(1)), 1.0, rtol=1e-5)


@nr.check("a zero row raises ValueError (no NaN)")
def _(fn):
    must_raise(fn, np.array([[1.0, 1.0], [0.0, 0.0]]))


# --------------------------------------------------------------------------- 07.mips
mips = exercise("07.mips", name="MipsAsL2", points=6)


def _data(rng, n=800, d=12):
    """Rows whose norms vary over two orders of magnitude, as item vectors' do."""
    return rng.normal(size=(n, d)) * rng.lognormal(0.0, 1.0, size=(n, 1))


def _mips_truth(Q, X, k):
    scores = Q @ X.T
    ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, ids, axis=1), ids


def _result(out, nq, k):
    scores, ids = (np.asarray(a) for a in out)
    assert ids.shape == (nq, k) and scores.shape == (nq, k), (
        f"search must return (scores, ids) of shape ({nq}, {k}) each, got {scores.shape} and "
        f"{ids.shape}")
    return scores.astype(np.float64), ids.astype(np.int64)


@mips.check("lifts every base row to the same norm R, the largest norm, keeping its first d "
            "coordinates")
def _(cls):
    rng = np.random.default_rng()
    X = _data(rng)
    index = cls(X)
    base = np.asarray(index.base, dtype=np.float64)
    assert base.shape == (len(X), X.shape[1] + 1), (
        f"base: shape {base.shape}, expected one extra column")
    np.testing.assert_allclose(base[:, :-1], X, atol=1e-9)
    R = np.sqrt((X ** 2).sum(1)).max()
    np.testing.assert_allclose(np.sqrt((base ** 2).sum(1)), R, rtol=1e-9)
    q = np.asarray(index.lift_query(X[0]), dtype=np.float64)
    assert q.shape == (X.shape[1] + 1,) and q[-1] == 0.0, "the lifted query ends in a 0"


@mips.check("the nearest lifted rows are the largest inner products: ids and scores of brute "
            "force Q @ X.T, best first")
def _(cls):
    rng = np.random.default_rng()
    X, Q = _data(rng), _data(rng, n=60)
    index = cls(X)
    for k in (1, 10):
        scores, ids = _result(index.search(Q, k), len(Q), k)
        want_s, want_i = _mips_truth(Q, X, k)
        bad = np.flatnonzero((ids != want_i).any(axis=1))
        assert not len(bad), f"k={k}: {len(bad)} queries differ from brute force (first {bad[0]})"
        np.testing.assert_allclose(scores, want_s, rtol=1e-7, atol=1e-7)


@mips.check("does not lose the long vectors: plain L2 search on the raw rows would (the reduction "
            "is needed)")
def _(cls):
    rng = np.random.default_rng()
    X, Q = _data(rng), _data(rng, n=40)
    _, ids = _result(cls(X).search(Q, 5), len(Q), 5)
    _, want = _mips_truth(Q, X, 5)
    d2 = ((Q[:, None, :] - X[None]) ** 2).sum(-1)
    plain = np.argsort(d2, axis=1, kind="stable")[:, :5]
    assert (ids == want).all(), "the answer is not the maximum inner product"
    assert (plain != want).any(), "on this draw raw L2 agreed with MIPS; run the check again"


@mips.check("searches in blocks: block=7 gives the same answer as one big block; k = n works")
def _(cls):
    rng = np.random.default_rng()
    X, Q = _data(rng, n=120), _data(rng, n=30)
    index = cls(X)
    a = _result(index.search(Q, 10, block=7), len(Q), 10)
    b = _result(index.search(Q, 10, block=1000), len(Q), 10)
    assert (a[1] == b[1]).all(), "the block size changes the answer"
    _, full = _result(index.search(Q[:3], len(X)), 3, len(X))
    assert (full == _mips_truth(Q[:3], X, len(X))[1]).all(), "k = n: not every row, best first"


@mips.check("ties (duplicate rows) go to the lower id; k < 1 or k > n raises ValueError")
def _(cls):
    rng = np.random.default_rng()
    X = _data(rng, n=50)
    u = rng.normal(size=X.shape[1])
    u /= np.sqrt((u ** 2).sum())
    X[[5, 10, 30, 31]] = 100.0 * u  # four copies of the longest row, along the query
    index = cls(X)
    _, ids = _result(index.search(u[None], 4), 1, 4)
    assert ids[0].tolist() == [5, 10, 30, 31], f"got {ids[0].tolist()}"
    must_raise(index.search, X[:2], 0)
    must_raise(index.search, X[:2], 51)
