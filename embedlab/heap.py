"""The k points closest to the origin (LeetCode 973), three ways.

Every nearest-neighbour scan ends in the same step: keep the k best of n candidates. Three
classic answers, each returning the indices of the k points nearest the origin, nearest first
(ties broken by the lower index, so all three agree exactly):

* ``k_closest_heap``: a size-k *max*-heap of the best so far. Each new point is compared with the
  worst kept point (the heap's root) and replaces it when closer: O(n log k) time, O(k) memory,
  one pass, so it works on a stream. HNSW's result set of size ``ef`` and the k-best merge of IVF
  lists are this heap.
* ``k_closest_quickselect``: Hoare's selection, partitioning around a random pivot until the k
  smallest sit in front: O(n) on average, O(n^2) worst case; then sort those k.
* ``k_closest_argpartition``: numpy's ``argpartition`` (introselect in C), the idiom used inside
  vectorised search code.

``k_closest(points, k)`` returns the points themselves, as LeetCode asks, using the heap.
``merge_k_best`` merges the sorted k-best lists of several shards into one.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence

import numpy as np


def _as_points(points: object) -> np.ndarray:
    try:
        arr = np.asarray(points)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise ValueError(f"points must be an (n, d) array of numbers: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"points must hold numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"points must be 2-D with shape (n, d), got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError("points contain NaN or inf")
    return arr


def _check_k(k: object, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n:
        raise ValueError(f"k must be <= the number of points ({n}), got {k}")
    return k


def squared_norms(points: object) -> np.ndarray:
    """Squared distance of each row to the origin (no square root: it keeps the order)."""
    arr = _as_points(points)
    return np.einsum("ij,ij->i", arr, arr)


class HeapCounter:
    """Counts pushes, pops and replacements, to show the n log k growth in the notebook."""

    def __init__(self) -> None:
        self.pushes = 0
        self.replaces = 0
        self.comparisons = 0

    @property
    def heap_ops(self) -> int:
        return self.pushes + self.replaces


def k_closest_heap(points: object, k: int, counter: HeapCounter | None = None) -> np.ndarray:
    """Indices of the k points nearest the origin via a size-k max-heap, nearest first.

    heapq is a min-heap, so we store ``(-distance, -index)``: the root is then the worst point
    kept (largest distance, and among equal distances the largest index).
    """
    d = squared_norms(points)
    k = _check_k(k, len(d))
    heap: list[tuple[float, int]] = []
    for i, di in enumerate(d.tolist()):
        item = (-di, -i)
        if len(heap) < k:
            heapq.heappush(heap, item)
            if counter:
                counter.pushes += 1
        else:
            if counter:
                counter.comparisons += 1
            if item > heap[0]:  # closer than the worst kept point
                heapq.heapreplace(heap, item)
                if counter:
                    counter.replaces += 1
    return np.array([-i for _, i in sorted(heap, reverse=True)], dtype=np.int64)


def expected_replacements(n: int, k: int) -> tuple[float, float]:
    """Mean and variance of the number of root replacements of :func:`k_closest_heap` when the
    n distances arrive in uniformly random order (no ties).

    The i-th point (i > k) replaces the root exactly when it is among the k smallest of the first
    i, which has probability k / i, independently of the other positions (the relative ranks of
    a random permutation are independent: Rényi's record theorem, Knuth TAOCP vol. 3, 5.1.1). So
    the count is a sum of independent Bernoulli(k / i): mean ``k (H_n - H_k)`` (about
    ``k ln(n / k)``) and variance ``sum (k / i)(1 - k / i)`` over i = k + 1 .. n.
    """
    for name, value in (("n", n), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    p = k / np.arange(k + 1, n + 1, dtype=np.float64)
    return float(p.sum()), float((p * (1 - p)).sum())


def _partition(d: list[float], idx: list[int], lo: int, hi: int, pivot_pos: int) -> int:
    """Lomuto partition of ``idx[lo:hi+1]`` by key ``(d[i], i)`` around the pivot's key.

    Afterwards every element left of the returned position has a smaller key than the pivot,
    every element right of it a larger one, and the pivot sits at the returned position.
    """
    idx[pivot_pos], idx[hi] = idx[hi], idx[pivot_pos]
    p = idx[hi]
    pkey = (d[p], p)
    store = lo
    for j in range(lo, hi):
        if (d[idx[j]], idx[j]) < pkey:
            idx[store], idx[j] = idx[j], idx[store]
            store += 1
    idx[store], idx[hi] = idx[hi], idx[store]
    return store


def k_closest_quickselect(points: object, k: int, seed: int = 0) -> np.ndarray:
    """Indices of the k points nearest the origin via quickselect (O(n) average), nearest first."""
    d = squared_norms(points).tolist()
    k = _check_k(k, len(d))
    idx = list(range(len(d)))
    rng = random.Random(seed)
    lo, hi = 0, len(idx) - 1
    while lo < hi:
        pos = _partition(d, idx, lo, hi, rng.randint(lo, hi))
        if pos == k - 1:
            break
        if pos < k - 1:
            lo = pos + 1
        else:
            hi = pos - 1
    best = idx[:k]
    best.sort(key=lambda i: (d[i], i))
    return np.array(best, dtype=np.int64)


def k_closest_argpartition(points: object, k: int) -> np.ndarray:
    """Indices of the k points nearest the origin via ``np.argpartition``, nearest first."""
    d = squared_norms(points)
    k = _check_k(k, len(d))
    if k < len(d):
        # Take every point tied with the k-th distance, so ties break by index as above.
        kth = np.partition(d, k - 1)[k - 1]
        cand = np.flatnonzero(d <= kth)
    else:
        cand = np.arange(len(d))
    order = np.lexsort((cand, d[cand]))
    return cand[order[:k]].astype(np.int64)


def k_closest(points: object, k: int) -> np.ndarray:
    """LeetCode 973: the k points nearest the origin (rows of ``points``), nearest first."""
    arr = _as_points(points)
    return arr[k_closest_heap(arr, k)]


def merge_k_best(
    lists: Sequence[tuple[Sequence[float], Sequence[int]]], k: int, largest: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Merge shards' sorted (scores, ids) lists into the global k best.

    Each shard returns its own top results sorted best first (ascending distances, or descending
    scores with ``largest=True``); ids of -1 mark empty slots and are skipped. Returns
    ``(scores, ids)`` of length k, padded with ``inf`` (or ``-inf``) and -1 when fewer exist.
    Ties break by the lower id.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    sign = -1.0 if largest else 1.0
    heads = []
    for s, (scores, ids) in enumerate(lists):
        if len(scores) != len(ids):
            raise ValueError(f"shard {s}: {len(scores)} scores but {len(ids)} ids")
        pairs = zip(scores, ids, strict=True)
        heads.append(((sign * float(sc), int(i)) for sc, i in pairs if int(i) != -1))
    out_s = np.full(k, -np.inf if largest else np.inf)
    out_i = np.full(k, -1, dtype=np.int64)
    for j, (key, i) in enumerate(heapq.merge(*heads)):
        if j == k:
            break
        out_s[j], out_i[j] = sign * key, i
    return out_s, out_i
