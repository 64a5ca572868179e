"""Checks for chapter 08: the k-means assignment step (warm-up), and an IVF index built from
scratch: k-means with empty-cluster repair, the inverted lists, and search with nprobe.

The references are brute force in float64 and scikit-learn's k-means; every run draws fresh
random data. One check forces an empty cluster (most rows are copies of one point, so several
initial centroids coincide).
"""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise


def _labels(result) -> np.ndarray:
    return np.asarray(result).ravel().astype(np.int64)


# --------------------------------------------------------------------------- 08.assign
assign = exercise("08.assign", name="assign_step", points=3,
                  reference=("embedlab.index.kmeans:assign",))


@assign.check("returns, for each row of x, the index of the nearest centroid (squared L2)")
def _(fn):
    rng = np.random.default_rng()
    x = rng.standard_normal((400, 6)).astype(np.float32)
    c = rng.standard_normal((9, 6)).astype(np.float32)
    got = _labels(fn(x, c))
    assert got.shape == (400,), f"expected 400 labels, got shape {got.shape}"
    want = ((x[:, None, :].astype(np.float64) - c[None, :, :]) ** 2).sum(-1).argmin(axis=1)
    assert (got == want).mean() > 0.995, f"{(got != want).sum()} of 400 labels differ"


@assign.check("works on a hand-made example: nearest, not largest inner product")
def _(fn):
    x = np.array([[0.0, 0.0], [9.0, 9.0], [1.0, 0.2]], dtype=np.float32)
    c = np.array([[0.5, 0.0], [10.0, 10.0], [100.0, 0.0]], dtype=np.float32)
    assert _labels(fn(x, c)).tolist() == [0, 1, 0]


@assign.check("handles one centroid and one point, and ties go to the lower centroid index")
def _(fn):
    one = fn(np.ones((5, 3), np.float32), np.zeros((1, 3), np.float32))
    assert _labels(one).tolist() == [0] * 5
    x = np.zeros((1, 2), dtype=np.float32)
    c = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    assert _labels(fn(x, c)).tolist() == [0]


# --------------------------------------------------------------------------- 08.ivf
ivf = exercise("08.ivf", name="IVF", points=6,
               reference=("embedlab.index.kmeans:kmeans", "embedlab.index.ivf:IVFIndex"))


def _data(rng, n=2000, d=12):
    return rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d)


def _brute(xb, q, k):
    d = ((xb[None, :, :] - q[:, None, :]) ** 2).sum(-1)
    ids = np.lexsort((np.broadcast_to(np.arange(len(xb)), d.shape), d), axis=1)[:, :k]
    return np.take_along_axis(d, ids, axis=1), ids


def _built(cls, x, nlist, niter=10, seed=0):
    index = cls(nlist, niter=niter, seed=seed)
    index.train(x)
    index.add(x)
    c = np.asarray(index.centroids, dtype=np.float64)
    assert c.shape == (nlist, x.shape[1]), (
        f"centroids: expected {(nlist, x.shape[1])}, got {c.shape}")
    assert np.isfinite(c).all(), "some centroids are NaN or inf (the mean of an empty cluster?)"
    assert len(index.lists) == nlist, f"expected {nlist} inverted lists, got {len(index.lists)}"
    return index, c


def _result(out, k):
    dist, ids = out
    ids = np.asarray(ids).ravel().astype(np.int64)
    dist = np.asarray(dist, dtype=np.float64).ravel()
    assert ids.shape == (k,) and dist.shape == (k,), (
        f"search must return (distances, ids) of shape ({k},), got {dist.shape} and {ids.shape}")
    return dist, ids


@ivf.check("train() runs k-means: its inertia is close to scikit-learn's KMeans on the same data")
def _(cls):
    from sklearn.cluster import KMeans

    rng = np.random.default_rng()
    x = _data(rng)
    _, c = _built(cls, x, 16, niter=15, seed=int(rng.integers(1000)))
    mine = ((x[:, None, :] - c[None]) ** 2).sum(-1).min(axis=1).sum()
    ref = KMeans(16, init="random", n_init=3, max_iter=15, random_state=0).fit(x).inertia_
    assert mine <= 1.1 * ref, f"inertia {mine:.1f} against scikit-learn's {ref:.1f}"


def _blobs(rng, n_blobs: int, per: int, d: int, spread: float = 60.0):
    """Well-separated blobs: k-means with k = n_blobs must end at each blob's exact mean."""
    centres = np.zeros((n_blobs, d))
    for j in range(n_blobs):
        centres[j, j % d] = spread * (1 + j // d) * (1 if j % 2 == 0 else -1)
    pts = np.concatenate([c + rng.normal(size=(per, d)) for c in centres])
    return pts[rng.permutation(len(pts))]


@ivf.check("the k-means update: at the end of train() every centroid is the mean of the points "
           "nearest to it (Lloyd's fixed point, on clustered data where k-means settles), and "
           "no cluster is empty")
def _(cls):
    rng = np.random.default_rng()
    x = _blobs(rng, 6, 40, 6)
    _, c = _built(cls, x, 5, niter=20, seed=int(rng.integers(1000)))
    labels = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(axis=1)
    for j in range(5):
        members = x[labels == j]
        assert len(members) > 0, f"centroid {j} ends with no point: repair empty clusters"
        assert np.allclose(c[j], members.mean(axis=0), atol=1e-6), (
            f"centroid {j} is {np.round(c[j][:3], 3)}..., the mean of its points is "
            f"{np.round(members.mean(axis=0)[:3], 3)}...: the update is the plain mean")


@ivf.check("add() files every vector once, in the list of its nearest centroid (squared L2)")
def _(cls):
    rng = np.random.default_rng()
    x = _data(rng)
    index, c = _built(cls, x, 10)
    ids = np.concatenate([np.asarray(lst, dtype=np.int64) for lst in index.lists])
    assert np.array_equal(np.sort(ids), np.arange(len(x))), (
        "the lists must partition the ids 0..n-1")
    nearest = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(axis=1)
    for j, lst in enumerate(index.lists):
        lst = np.asarray(lst, dtype=np.int64)
        assert (nearest[lst] == j).all(), f"list {j} holds vectors nearer another centroid"


@ivf.check("search with nprobe = nlist is exact: brute force's k nearest and distances, nearest "
           "first, ties by the lower id")
def _(cls):
    rng = np.random.default_rng()
    x = _data(rng)
    index, _ = _built(cls, x, 12)
    q = _data(rng, n=20)
    wd, wi = _brute(x, q, 10)
    for r in range(len(q)):
        d, i = _result(index.search(q[r], 10, nprobe=12), 10)
        assert i.tolist() == wi[r].tolist(), f"query {r}: {i[:4].tolist()}... against {wi[r, :4]}"
        assert np.allclose(d, wd[r], rtol=1e-6, atol=1e-6), f"query {r}: distances differ"


@ivf.check("search with nprobe = 1 scans only the nearest centroid's list; recall rises with "
           "nprobe")
def _(cls):
    rng = np.random.default_rng()
    x = _data(rng)
    index, c = _built(cls, x, 16)
    q = _data(rng, n=30)
    _, wi = _brute(x, q, 10)
    recalls = []
    for nprobe in (1, 4, 16):
        hits = 0
        for r in range(len(q)):
            _, i = _result(index.search(q[r], 10, nprobe=nprobe), 10)
            if nprobe == 1:
                home = int(((c - q[r]) ** 2).sum(1).argmin())
                allowed = set(np.asarray(index.lists[home]).tolist()) | {-1}
                assert set(i.tolist()) <= allowed, f"query {r}: ids outside the probed list"
            hits += len(set(i.tolist()) & set(wi[r].tolist()))
        recalls.append(hits / (10 * len(q)))
    assert recalls == sorted(recalls) and recalls[-1] == 1.0, f"recall@10 by nprobe: {recalls}"


@ivf.check("handles an empty cluster: with most rows identical, k-means still ends with nlist "
           "distinct, non-empty clusters")
def _(cls):
    rng = np.random.default_rng()
    x = _data(rng, n=600)
    x[: 540] = x[0]  # 90% copies of one point: the initial centroids collide
    index, c = _built(cls, x, 8, seed=int(rng.integers(1000)))
    sizes = [len(lst) for lst in index.lists]
    assert min(sizes) > 0, f"list sizes after add: {sizes}"
    assert len(np.unique(c.round(9), axis=0)) == 8, "two centroids are equal"
    q = _data(rng, n=5)
    wd, wi = _brute(x, q, 5)
    for r in range(len(q)):
        _, i = _result(index.search(q[r], 5, nprobe=8), 5)
        assert sorted(set(i.tolist())) == sorted(set(wi[r].tolist())), "nprobe = nlist not exact"


@ivf.check("pads with distance inf and id -1 when the probed lists hold fewer than k vectors")
def _(cls):
    rng = np.random.default_rng()
    x = np.concatenate([rng.normal(size=(30, 4)), rng.normal(size=(30, 4)) + 50.0])
    index, _ = _built(cls, x, 2)
    d, i = _result(index.search(x[0], 40, nprobe=1), 40)
    assert (i[30:] == -1).all() and np.isinf(d[30:]).all(), f"ids {i[28:33].tolist()}"
