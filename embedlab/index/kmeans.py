"""k-means clustering: Lloyd's iterations with random or k-means++ seeding.

Lloyd (1957, published 1982) alternates two steps that each lower the within-cluster sum of
squares ``sum_i |x_i - c_{a(i)}|^2``:

1. **assignment**: each point goes to its nearest centroid, ``a(i) = argmin_j |x_i - c_j|^2``
   (one matrix product per block of points, as in exact search: ``|c_j|^2 - 2 x_i.c_j``);
2. **update**: each centroid moves to the mean of its points.

Seeding: ``"random"`` picks k distinct training points (faiss's default); ``"k-means++"``
(Arthur and Vassilvitskii, 2007) picks the first centroid at random and each next one with
probability proportional to ``D(x)^2``, the squared distance to the nearest centroid so far,
which is O(log k)-competitive in expectation.

An empty cluster would keep a stale centroid forever, so it is re-seeded by splitting a large
cluster: it copies that cluster's centroid and the two are nudged apart by a tiny symmetric
perturbation (faiss's ``Clustering`` does the same). Like faiss, training uses at most
``max_points_per_centroid * k`` points, sampled at random.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embedlab.index.base import as_matrix, check_int

INITS = ("random", "k-means++")


@dataclass
class KMeansResult:
    """What ``kmeans`` returns: centroids (k, d), training labels, inertia after each step."""

    centroids: np.ndarray
    labels: np.ndarray
    inertia: list[float] = field(default_factory=list)
    n_split: int = 0  # empty clusters re-seeded over the run


def assign(x: np.ndarray, centroids: np.ndarray, block: int = 8192,
           metric: str = "l2") -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row of ``x``: ``(labels int64, squared distances float32)``.

    ``metric="ip"`` picks the centroid with the largest inner product instead (what faiss does
    when it trains an inner-product IVF); the distances returned are still squared L2.
    """
    x = as_matrix(x, None, "x")
    centroids = as_matrix(centroids, x.shape[1], "centroids")
    if metric not in ("l2", "ip"):
        raise ValueError(f"metric must be 'l2' or 'ip', got {metric!r}")
    cnorm = np.einsum("ij,ij->i", centroids, centroids)
    labels = np.empty(x.shape[0], dtype=np.int64)
    dist = np.empty(x.shape[0], dtype=np.float32)
    for i in range(0, x.shape[0], block):
        xb = x[i:i + block]
        ip = xb @ centroids.T
        d = cnorm[None, :] - 2.0 * ip  # |x|^2 is added below: it does not change the argmin
        lab = np.argmin(d, axis=1) if metric == "l2" else np.argmax(ip, axis=1)
        labels[i:i + block] = lab
        xn = np.einsum("ij,ij->i", xb, xb)
        dist[i:i + block] = np.maximum(d[np.arange(len(lab)), lab] + xn, 0.0)
    return labels, dist


def _kmeanspp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = x.shape[0]
    chosen = [int(rng.integers(n))]
    d2 = np.sum((x - x[chosen[0]]) ** 2, axis=1, dtype=np.float64)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # every point coincides with a centroid: fall back to unused points
            rest = np.setdiff1d(np.arange(n), chosen)
            chosen.append(int(rng.choice(rest)))
        else:
            chosen.append(int(rng.choice(n, p=d2 / total)))
        d2 = np.minimum(d2, np.sum((x - x[chosen[-1]]) ** 2, axis=1, dtype=np.float64))
    return x[chosen].copy()


def _split_empty(centroids: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> int:
    """Re-seed each empty centroid from a large cluster; returns how many were split."""
    eps = 1.0 / 1024.0
    n_split = 0
    for j in np.flatnonzero(counts == 0):
        p = (counts - 1).clip(min=0).astype(np.float64)
        if p.sum() == 0:
            break
        big = int(rng.choice(len(counts), p=p / p.sum()))
        centroids[j] = centroids[big]
        sign = np.where(np.arange(centroids.shape[1]) % 2 == 0, 1.0, -1.0).astype(np.float32)
        centroids[j] *= 1 + eps * sign
        centroids[big] *= 1 - eps * sign
        counts[j] = counts[big] // 2
        counts[big] -= counts[j]
        n_split += 1
    return n_split


def kmeans(x: object, k: int, niter: int = 20, init: str = "random", seed: int = 0,
           max_points_per_centroid: int = 256, metric: str = "l2", spherical: bool = False,
           verbose: bool = False) -> KMeansResult:
    """Cluster the rows of ``x`` (n, d) into ``k`` groups with ``niter`` Lloyd iterations.

    ``metric="ip"`` assigns points by largest inner product (the update is still the mean),
    as faiss's inner-product IVF training does. ``spherical=True`` rescales every centroid to unit
    length after each update (spherical k-means, Dhillon and Modha 2001), faiss's setting for
    inner-product IVF.

    Returns a ``KMeansResult``: ``centroids`` (k, d) float32, ``labels`` of the (possibly
    sub-sampled) training points, ``inertia`` (sum of squared distances) after each assignment.
    """
    x = as_matrix(x, None, "x")
    k = check_int(k, "k")
    niter = check_int(niter, "niter", low=0)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    n = x.shape[0]
    if k > n:
        raise ValueError(f"k must be <= the number of training points ({n}), got {k}")
    rng = np.random.default_rng(seed)
    max_n = check_int(max_points_per_centroid, "max_points_per_centroid") * k
    if n > max_n:
        x = x[np.sort(rng.choice(n, size=max_n, replace=False))]
        n = max_n
    if init == "random":
        centroids = x[rng.choice(n, size=k, replace=False)].copy()
    else:
        centroids = _kmeanspp(x, k, rng)
    if spherical:
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        centroids /= np.where(norms > 0, norms, 1.0)
    result = KMeansResult(centroids=centroids, labels=np.zeros(n, dtype=np.int64))
    for it in range(niter + 1):
        labels, dist = assign(x, centroids, metric=metric)
        result.inertia.append(float(dist.sum(dtype=np.float64)))
        if verbose:
            print(f"iteration {it}: inertia {result.inertia[-1]:.6g}")
        if it == niter:
            break
        counts = np.bincount(labels, minlength=k)
        sums = np.stack([np.bincount(labels, weights=x[:, j], minlength=k)
                         for j in range(x.shape[1])], axis=1)
        nonempty = counts > 0
        centroids[nonempty] = (sums[nonempty] / counts[nonempty, None]).astype(np.float32)
        result.n_split += _split_empty(centroids, counts, rng)
        if spherical:
            norms = np.linalg.norm(centroids, axis=1, keepdims=True)
            centroids /= np.where(norms > 0, norms, 1.0)
    result.centroids, result.labels = centroids, labels
    return result
