"""Checks for chapter 16: the size-k heap, the quickselect partition step, the k-best merge."""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise
from embedlab.heap import k_closest_heap as _reference
from embedlab.heap import merge_k_best as _merge_reference


def _ids(result) -> list[int]:
    return [int(i) for i in np.asarray(result).ravel()]


def _by_sorting(points, k: int) -> list[int]:
    d = (np.asarray(points, dtype=np.float64) ** 2).sum(axis=1)
    return np.lexsort((np.arange(len(d)), d))[:k].tolist()


# --------------------------------------------------------------------------- 16.heap
heap = exercise("16.heap", name="k_closest_heap", points=4)


@heap.check("returns the indices of LeetCode's examples, nearest first")
def _(fn):
    assert _ids(fn([[1, 3], [-2, 2]], 1)) == [1]
    assert _ids(fn([[3, 3], [5, -1], [-2, 4]], 2)) == [0, 2]


@heap.check("agrees with sorting by squared distance on random points, for k = 1 and k = n too")
def _(fn):
    rng = np.random.default_rng(16)
    pts = rng.normal(size=(300, 2)) * 100
    for k in (1, 5, 50, 300):
        got, want = _ids(fn(pts, k)), _by_sorting(pts, k)
        first = next((r for r, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
        assert got == want, f"k={k}: differs from sorting at rank {first}"


@heap.check("breaks ties between equally distant points by the lower index (duplicates too)")
def _(fn):
    pts = [[3, 4], [0, 5], [5, 0], [0, 0], [3, 4], [-4, -3], [0, 0]]
    assert _ids(fn(pts, 3)) == [3, 6, 0]
    assert _ids(fn(pts, 7)) == _reference(np.array(pts), 7).tolist()


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


# --------------------------------------------------------------------------- 16.partition
part = exercise("16.partition", name="partition", points=3)


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
    rng = np.random.default_rng(3)
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


# --------------------------------------------------------------------------- 16.merge
merge = exercise("16.merge", name="merge_k_best", points=3)


def _same(got, want) -> None:
    d, i = got
    wd, wi = want
    assert _ids(i) == wi.tolist(), f"ids {_ids(i)} != expected {wi.tolist()}"
    assert np.allclose(np.asarray(d, dtype=float), wd), "distances do not match the ids"


@merge.check("merges sorted shard lists into the global k nearest, nearest first")
def _(fn):
    shards = [([0.1, 0.4, 0.9], [10, 11, 12]), ([0.2, 0.3, 0.35], [20, 21, 22])]
    _same(fn(shards, 4), _merge_reference(shards, 4))


@merge.check("agrees with one global search when a point set is split into shards")
def _(fn):
    rng = np.random.default_rng(5)
    pts = rng.normal(size=(400, 3))
    lists = []
    for ids in np.array_split(np.arange(400), 6):
        local = _reference(pts[ids], 8)
        lists.append(((pts[ids][local] ** 2).sum(1).tolist(), ids[local].tolist()))
    d, i = fn(lists, 8)
    assert _ids(i) == _by_sorting(pts, 8)


@merge.check("skips id -1 (empty slots) and pads with inf and -1 when fewer than k exist")
def _(fn):
    shards = [([0.5, np.inf], [3, -1]), ([0.25], [7]), ([], [])]
    _same(fn(shards, 4), _merge_reference(shards, 4))
