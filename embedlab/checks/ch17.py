"""Checks for chapter 17, the checklist review: one exercise per item of the checklist."""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise, raises

# --------------------------------------------------------------------------- 17.cosine_dot
cos = exercise("17.cosine_dot", name="cosine_via_dot", points=2)


def _cosine_loop(a, b):
    out = np.zeros((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i, j] = x @ y / (np.linalg.norm(x) * np.linalg.norm(y))
    return out


@cos.check("normalise each row once, then one matrix product gives every cosine")
def _(fn):
    rng = np.random.default_rng(17)
    a, b = rng.normal(size=(6, 9)) * 5, rng.normal(size=(4, 9)) * 0.1
    got = np.asarray(fn(a, b), dtype=np.float64)
    assert got.shape == (6, 4), f"expected shape (6, 4), got {got.shape}"
    assert np.allclose(got, _cosine_loop(a, b), atol=1e-5)


@cos.check("is unchanged when rows are rescaled (cosine ignores length)")
def _(fn):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(3, 4))
    scaled = a * np.array([[0.01], [1], [7], [100], [3]])
    assert np.allclose(np.asarray(fn(a, b)), np.asarray(fn(scaled, b)), atol=1e-5)


@cos.check("raises ValueError for an all-zero row (its cosine is undefined)")
def _(fn):
    assert raises(fn, np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 1.0]]))


# --------------------------------------------------------------------------- 17.temperature
temp = exercise("17.temperature", name="candidate_weights", points=2)


@temp.check("returns softmax(scores / temperature), summing to 1 (compare contrastive."
            "gradient_weights)")
def _(fn):
    from embedlab.contrastive import gradient_weights

    s = np.array([0.9, 0.7, 0.65, 0.1, -0.3])
    for tau in (0.05, 0.5, 2.0):
        got = np.asarray(fn(s, tau), dtype=np.float64)
        assert np.allclose(got, gradient_weights(s, tau), atol=1e-8), f"tau={tau}"


@temp.check("stays finite for a tiny temperature (subtract the max before exp)")
def _(fn):
    got = np.asarray(fn(np.array([0.9, 0.89, 0.1]), 1e-4), dtype=np.float64)
    assert np.isfinite(got).all() and abs(got.sum() - 1) < 1e-9
    assert got[0] > 0.999


@temp.check("raises ValueError for a temperature <= 0")
def _(fn):
    assert raises(fn, np.array([0.1, 0.2]), 0.0)
    assert raises(fn, np.array([0.1, 0.2]), -1.0)


# --------------------------------------------------------------------------- 17.index_memory
mem = exercise("17.index_memory", name="index_memory_bytes", points=2)


@mem.check("flat: 4 bytes per coordinate, n * dim * 4")
def _(fn):
    from embedlab.index.recommend import memory_bytes

    for n, d in ((10**6, 384), (10**7, 768), (10**9, 128)):
        assert int(fn("flat", n, d)) == memory_bytes("flat", n, d), f"n={n}, dim={d}"


@mem.check("ivfpq: per vector m = dim // 16 code bytes + an 8-byte id; plus centroids "
           "(nlist = 4 sqrt(n)) and codebooks (256 * dim floats): match recommend.memory_bytes")
def _(fn):
    from embedlab.index.recommend import memory_bytes

    for n, d in ((10**6, 384), (10**7, 768), (10**9, 128), (5000, 32)):
        got, want = int(fn("ivfpq", n, d)), memory_bytes("ivfpq", n, d)
        assert got == want, f"n={n}, dim={d}: got {got:,}, expected {want:,}"


@mem.check("raises ValueError for a kind other than 'flat' or 'ivfpq'")
def _(fn):
    assert raises(fn, "hnsw-ish", 10, 8)


# --------------------------------------------------------------------------- 17.matryoshka
mrl = exercise("17.matryoshka", name="truncate", points=2)


@mrl.check("keeps the first dim coordinates and re-normalises each row (embedlab.matryoshka)")
def _(fn):
    from embedlab.matryoshka import truncate

    rng = np.random.default_rng(5)
    x = rng.normal(size=(7, 32)).astype(np.float32)
    for d in (1, 8, 32):
        got = np.asarray(fn(x, d))
        assert got.shape == (7, d), f"dim={d}: shape {got.shape}"
        assert np.allclose(got, truncate(x, d), atol=1e-6), f"dim={d}"


@mrl.check("does not modify its input, and raises ValueError for dim < 1 or dim > width")
def _(fn):
    x = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    before = x.copy()
    fn(x, 2)
    assert np.array_equal(x, before), "the input array was changed in place"
    assert raises(fn, x, 0) and raises(fn, x, 5)


# --------------------------------------------------------------------------- 17.migration
mig = exercise("17.migration", name="migration_plan", points=2)

_STEPS = {"dual_write", "backfill", "shadow_read", "cutover", "rollback"}


@mig.check("returns the five steps dual_write, backfill, shadow_read, cutover, rollback, "
           "each once")
def _(fn):
    plan = list(fn())
    assert sorted(plan) == sorted(_STEPS), f"got {plan}"


@mig.check("orders them safely: dual writes before the backfill, the backfill and shadow reads "
           "before the cutover, the rollback (the escape hatch) after it")
def _(fn):
    plan = list(fn())
    pos = {s: i for i, s in enumerate(plan)}
    assert pos["dual_write"] < pos["backfill"], "start dual writes before the backfill, or " \
                                                "documents written during it are missed"
    assert pos["backfill"] < pos["cutover"] and pos["shadow_read"] < pos["cutover"]
    assert pos["rollback"] > pos["cutover"]


# --------------------------------------------------------------------------- 17.k_nearest
knn = exercise("17.k_nearest", name="k_nearest", points=2)


def _by_sorting(points, query, k):
    d = ((np.asarray(points, float) - np.asarray(query, float)) ** 2).sum(1)
    return np.lexsort((np.arange(len(d)), d))[:k].tolist()


@knn.check("returns the indices of the k points nearest the query, nearest first, ties by index")
def _(fn):
    rng = np.random.default_rng(9)
    pts = rng.integers(-5, 6, size=(200, 3)).astype(float)      # many ties
    for k in (1, 7, 200):
        q = rng.integers(-3, 4, size=3).astype(float)
        got = [int(i) for i in fn(pts, q, k)]
        assert got == _by_sorting(pts, q, k), f"k={k}"


@knn.check("raises ValueError for k < 1 or k > the number of points")
def _(fn):
    pts = np.zeros((3, 2))
    assert raises(fn, pts, np.zeros(2), 0) and raises(fn, pts, np.zeros(2), 4)
