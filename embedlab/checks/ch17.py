"""Checks for chapter 17: the size-k heap over a stream, the quickselect partition step, the
k-best merge.

Every reference here is computed another way (a full sort in float64), and the random inputs are
fresh on every run. The heap is fed one-pass streams that stay in the grading process (the answer
reads them through the grader, which counts every row it hands out), and the peak memory of the
call is measured from outside the answer's process: an answer that keeps every point (a sort, a
list, an array) fails that check. The answer's own ``sift_up`` and ``sift_down`` are checked on
heaps the check builds, against the textbook moves (Williams 1964; CLRS ch. 6).
"""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise, peak_memory, sibling


def _ids(result) -> list[int]:
    return [int(i) for i in np.asarray(result).ravel()]


def _by_sorting(points, k: int) -> list[int]:
    d = (np.asarray(points, dtype=np.float64) ** 2).sum(axis=1)
    return np.lexsort((np.arange(len(d)), d))[:k].tolist()


class _OnePass:
    """An iterable over rows that can be walked once and counts the rows handed out."""

    def __init__(self, rows) -> None:
        self._rows, self.served, self._started = rows, 0, False

    def __iter__(self):
        if self._started:
            raise AssertionError("the points were iterated twice: a stream can be read only once")
        self._started = True
        for row in self._rows:
            self.served += 1
            yield row


def _stream(n: int, d: int, rng) -> tuple[np.ndarray, _OnePass]:
    pts = rng.normal(size=(n, d)) * 10

    def rows():
        for r in range(n):
            yield tuple(float(v) for v in pts[r])  # each row made on demand, then dropped

    return pts, _OnePass(rows())


def _peak_bytes(fn, n: int, k: int, rng) -> tuple[int, list[int], list[int]]:
    pts, stream = _stream(n, 2, rng)
    got, peak = peak_memory(fn, lambda: _ids(fn(stream, k)))
    assert stream.served == n, f"read {stream.served} of the {n} points"
    return peak, got, _by_sorting(pts, k)


# the textbook moves on a max-heap of (distance, index) entries, to compare the answer's with
def _sift_up_ref(heap: list, pos: int) -> None:
    while pos > 0 and heap[pos] > heap[(pos - 1) // 2]:
        parent = (pos - 1) // 2
        heap[pos], heap[parent] = heap[parent], heap[pos]
        pos = parent


def _sift_down_ref(heap: list, pos: int) -> None:
    n = len(heap)
    while 2 * pos + 1 < n:
        child = 2 * pos + 1
        if child + 1 < n and heap[child + 1] > heap[child]:
            child += 1
        if not heap[child] > heap[pos]:
            break
        heap[pos], heap[child] = heap[child], heap[pos]
        pos = child


def _random_heap(rng, size: int) -> list:
    heap: list = []
    for i in rng.permutation(10 * size)[:size].tolist():
        heap.append((float(rng.integers(0, 50)), int(i)))
        _sift_up_ref(heap, len(heap) - 1)
    return heap


# --------------------------------------------------------------------------- 17.heap
heap = exercise("17.heap", name="k_closest_heap", points=4, refuse=("heapq",),
                reference=("embedlab.heap:k_closest_heap",))


@heap.check("sift_up moves the new last entry up while it is worse than its parent (children of "
            "p at 2p + 1 and 2p + 2; worse = larger distance, then larger index)")
def _(fn):
    sift_up = sibling(fn, "sift_up")
    rng = np.random.default_rng()
    for size in (1, 2, 3, 7, 20, 63):
        base = _random_heap(rng, size)
        entry = (float(rng.integers(-5, 60)), int(rng.integers(1000, 2000)))
        got, want = base + [entry], base + [entry]
        sift_up(got, len(got) - 1)
        _sift_up_ref(want, len(want) - 1)
        assert [tuple(e) for e in got] == want, (
            f"on a heap of {size} entries, pushing {entry} gave {got[:6]}..., expected "
            f"{want[:6]}...")


@heap.check("sift_down moves the root down while a child is worse, swapping with the worse child")
def _(fn):
    sift_down = sibling(fn, "sift_down")
    rng = np.random.default_rng()
    for size in (1, 2, 3, 8, 31, 64):
        base = _random_heap(rng, size)
        entry = (float(rng.integers(-5, 60)), int(rng.integers(1000, 2000)))
        got, want = [entry] + base[1:], [entry] + base[1:]
        sift_down(got, 0)
        _sift_down_ref(want, 0)
        assert [tuple(e) for e in got] == want, (
            f"on a heap of {size} entries with root {entry}, got {got[:6]}..., expected "
            f"{want[:6]}...")


@heap.check("returns the indices of LeetCode's examples, nearest first")
def _(fn):
    assert _ids(fn([[1, 3], [-2, 2]], 1)) == [1]
    assert _ids(fn([[3, 3], [5, -1], [-2, 4]], 2)) == [0, 2]


@heap.check("agrees with sorting by squared distance on random points in d = 2..8, for k = 1 and "
            "k = n too")
def _(fn):
    rng = np.random.default_rng()
    for d in (2, 5, 8):
        pts = rng.normal(size=(int(rng.integers(200, 400)), d)) * 100
        for k in (1, 5, 50, len(pts)):
            got, want = _ids(fn(pts, k)), _by_sorting(pts, k)
            first = next((r for r, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                         None)
            assert got == want, f"d={d}, k={k}: differs from sorting at rank {first}"


@heap.check("breaks ties between equally distant points by the lower index (duplicates too)")
def _(fn):
    pts = [[3, 4], [0, 5], [5, 0], [0, 0], [3, 4], [-4, -3], [0, 0]]
    assert _ids(fn(pts, 3)) == [3, 6, 0]
    assert _ids(fn(pts, 7)) == _by_sorting(pts, 7)
    rng = np.random.default_rng()
    grid = rng.integers(-3, 4, size=(500, 2)).astype(float)  # many exact ties
    assert _ids(fn(grid, 40)) == _by_sorting(grid, 40)


@heap.check("handles negative and very large coordinates (compare squared distances, no sqrt)")
def _(fn):
    pts = [[-1e150, 0.0], [-3.0, -4.0], [1e150, 1e150], [2.0, -1.0]]
    assert _ids(fn(pts, 3)) == [3, 1, 0]


@heap.check("raises ValueError for k < 1 or k > the number of points")
def _(fn):
    for bad in (0, 4):
        try:
            fn([[1, 1], [2, 2], [3, 3]], bad)
        except ValueError:
            continue
        raise AssertionError(f"k={bad} did not raise ValueError")


@heap.check("reads a one-pass stream once, keeping O(k) memory: a heap of k entries, not every "
            "point (no list(), no sort of all points)")
def _(fn):
    rng = np.random.default_rng()
    _, got, want = _peak_bytes(fn, 2_000, 10, rng)  # a first run: allocator warm-up, not judged
    assert got == want, "on a one-pass generator of 2000 points the answer is wrong"
    small, got, want = _peak_bytes(fn, 5_000, 10, rng)
    assert got == want, "on a one-pass generator of 5000 points the answer is wrong"
    large, got, want = _peak_bytes(fn, 100_000, 10, rng)
    assert got == want, "on a one-pass generator of 100000 points the answer is wrong"
    # 100,000 two-float tuples alone take about 10 MB; a heap of 10 entries a few kB
    assert large < 3 * 2**20, (f"peak memory grew by {large / 2**20:.1f} MB on 100000 points with "
                               "k=10: the points are being kept")
    assert large < 2 * small + 2**20, (f"peak memory grows with n ({small / 2**20:.2f} MB at "
                                       f"5000 points, {large / 2**20:.2f} MB at 100000)")


# --------------------------------------------------------------------------- 17.partition
part = exercise("17.partition", name="partition", points=3,
                reference=("embedlab.heap:_partition", "embedlab.heap:k_closest_quickselect"))


def _check_partition(fn, values: list[float], pivot_index: int) -> None:
    pivot = values[pivot_index]
    arranged, p = fn(list(values), pivot_index)
    arranged = list(arranged)
    assert sorted(arranged) == sorted(values), "the result must be a rearrangement of the input"
    assert arranged[p] == pivot, f"the pivot {pivot} must end at the returned position {p}"
    assert all(v <= pivot for v in arranged[:p]), "everything left of the pivot must be <= it"
    assert all(v >= pivot for v in arranged[p + 1:]), "everything right of it must be >= it"


@part.check("puts the pivot at its sorted position, smaller values left, larger right")
def _(fn):
    _check_partition(fn, [7.0, 2.0, 9.0, 4.0, 1.0], 0)
    rng = np.random.default_rng()
    for _ in range(20):
        vals = rng.normal(size=int(rng.integers(1, 40))).round(3).tolist()
        _check_partition(fn, vals, int(rng.integers(0, len(vals))))


@part.check("works when the pivot is the smallest or the largest value, or the only one")
def _(fn):
    _check_partition(fn, [5.0, 3.0, 8.0, 1.0], 3)
    _check_partition(fn, [5.0, 3.0, 8.0, 1.0], 2)
    _check_partition(fn, [42.0], 0)


@part.check("copes with many equal values (duplicates of the pivot on either side)")
def _(fn):
    _check_partition(fn, [2.0, 2.0, 1.0, 2.0, 3.0, 2.0, 2.0], 3)
    _check_partition(fn, [1.0] * 10, 4)


# --------------------------------------------------------------------------- 17.merge
merge = exercise("17.merge", name="merge_k_best", points=3,
                 reference=("embedlab.heap:merge_k_best",))


def _merge_by_sorting(shards, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of all shards' entries by one global sort (ids -1 dropped, then padded)."""
    pairs = sorted((float(d), int(i)) for ds, ids in shards for d, i in zip(ds, ids, strict=True)
                   if int(i) != -1)[:k]
    pairs += [(float("inf"), -1)] * (k - len(pairs))
    return np.array([d for d, _ in pairs]), np.array([i for _, i in pairs])


def _same(got, want) -> None:
    d, i = got
    wd, wi = want
    assert _ids(i) == wi.tolist(), f"ids {_ids(i)} != expected {wi.tolist()}"
    assert np.allclose(np.asarray(d, dtype=float), wd), "distances do not match the ids"


@merge.check("merges sorted shard lists into the global k nearest, nearest first")
def _(fn):
    shards = [([0.1, 0.4, 0.9], [10, 11, 12]), ([0.2, 0.3, 0.35], [20, 21, 22])]
    _same(fn(shards, 4), _merge_by_sorting(shards, 4))


@merge.check("agrees with one global search when a point set is split into shards")
def _(fn):
    rng = np.random.default_rng()
    pts = rng.normal(size=(400, 3))
    lists = []
    for ids in np.array_split(rng.permutation(400), 6):
        local = _by_sorting(pts[ids], 8)
        lists.append(((pts[ids][local] ** 2).sum(1).tolist(), ids[local].tolist()))
    d, i = fn(lists, 8)
    assert _ids(i) == _by_sorting(pts, 8)


@merge.check("skips id -1 (empty slots) and pads with inf and -1 when fewer than k exist")
def _(fn):
    shards = [([0.5, np.inf], [3, -1]), ([0.25], [7]), ([], [])]
    _same(fn(shards, 4), _merge_by_sorting(shards, 4))
