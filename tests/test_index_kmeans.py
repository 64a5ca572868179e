"""k-means: known answers, monotone inertia, empty clusters, both seedings, bad input."""

import numpy as np
import pytest

from embedlab.index import kmeans
from embedlab.index.kmeans import assign


def blobs(seed=0, per=200):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=np.float32)
    x = np.concatenate([c + rng.standard_normal((per, 2)).astype(np.float32) for c in centres])
    return x, centres


@pytest.mark.parametrize("init", ["random", "k-means++"])
def test_recovers_well_separated_blobs(init):
    x, centres = blobs()
    best = min((kmeans(x, 4, niter=20, init=init, seed=s) for s in range(3)),
               key=lambda r: r.inertia[-1])
    found = best.centroids[np.argsort(best.centroids @ np.array([1.0, 100.0]))]
    np.testing.assert_allclose(found, centres, atol=0.3)
    assert np.bincount(best.labels, minlength=4).tolist() == [200] * 4


def test_inertia_never_increases_and_is_seeded():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2000, 8)).astype(np.float32)
    r = kmeans(x, 16, niter=10, seed=3)
    assert len(r.inertia) == 11
    assert all(b <= a * (1 + 1e-5) for a, b in zip(r.inertia, r.inertia[1:], strict=False))
    r2 = kmeans(x, 16, niter=10, seed=3)
    np.testing.assert_array_equal(r.centroids, r2.centroids)
    labels, dist = assign(x, r.centroids)
    np.testing.assert_array_equal(labels, r.labels)
    np.testing.assert_allclose(dist.sum(), r.inertia[-1], rtol=1e-4)


def test_assign_matches_brute_force():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, 5)).astype(np.float32)
    c = rng.standard_normal((7, 5)).astype(np.float32)
    d = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    labels, dist = assign(x, c, block=64)
    np.testing.assert_array_equal(labels, d.argmin(1))
    np.testing.assert_allclose(dist, d.min(1), rtol=1e-4, atol=1e-4)


def test_empty_clusters_are_split_not_left_stale():
    # 3 distinct points repeated, k = 3: random seeding often picks duplicates -> empty clusters
    x = np.repeat(np.array([[0, 0], [5, 0], [0, 5]], dtype=np.float32), 50, axis=0)
    x = x + np.random.default_rng(0).standard_normal(x.shape).astype(np.float32) * 0.01
    splits = 0
    for seed in range(10):
        r = kmeans(x, 3, niter=10, seed=seed)
        splits += r.n_split
        assert (np.bincount(r.labels, minlength=3) > 0).all()
    assert splits > 0  # the situation did arise at least once


def test_subsampling_caps_training_points():
    x = np.random.default_rng(0).standard_normal((5000, 4)).astype(np.float32)
    r = kmeans(x, 10, niter=2, max_points_per_centroid=39)
    assert r.labels.shape == (390,)


def test_bad_input():
    x = np.zeros((10, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="k must be <= the number of training points"):
        kmeans(x, 11)
    with pytest.raises(ValueError, match="k must be >= 1"):
        kmeans(x, 0)
    with pytest.raises(ValueError, match="init must be one of"):
        kmeans(x, 2, init="kmeans++")
    with pytest.raises(ValueError, match="NaN"):
        kmeans(np.full((10, 2), np.nan), 2)
    with pytest.raises(ValueError, match="centroids must have 2 columns"):
        assign(x, np.zeros((3, 4)))
