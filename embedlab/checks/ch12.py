"""Checks for chapter 12: reciprocal rank fusion, and a filtered k-NN query in SQL."""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise
from embedlab.vectordb import SqliteVecStore
from embedlab.vectordb import reciprocal_rank_fusion as _rrf


def _ids(result) -> list[int]:
    return [int(i) for i in np.asarray(result).ravel()]


# --------------------------------------------------------------------------- 12.rrf
rrf = exercise("12.rrf", name="rrf", points=3)


@rrf.check("scores each id by the sum of 1 / (k + rank) over the lists, ranks starting at 1")
def _(fn):
    assert _ids(fn([[7, 3, 9], [3, 7]], 60)) == [3, 7, 9]
    assert _ids(fn([[1, 2, 3], [4, 3, 1]], 60)) == [1, 3, 4, 2]


@rrf.check("an id missing from a list gets nothing from that list (no default rank)")
def _(fn):
    # 5 is first in one list only: 1/61; 6 is second in both lists: 2/62 > 1/61
    assert _ids(fn([[5, 6], [8, 6]], 60))[0] == 6


@rrf.check("uses k: with k = 0 a first place counts twice as much as a second")
def _(fn):
    assert _ids(fn([[1, 2], [2, 3], [1, 4]], 0))[:2] == [1, 2]
    assert _ids(fn([[10, 11], [11, 12], [12, 10]], 1000))[0] == 10


@rrf.check("agrees with the package on random rankings (ties go to the smaller id)")
def _(fn):
    rng = np.random.default_rng(12)
    for _ in range(5):
        lists = [rng.permutation(30)[:15].tolist() for _ in range(3)]
        want = [i for i, _ in _rrf(lists, k=60)]
        assert _ids(fn(lists, 60)) == want


# --------------------------------------------------------------------------- 12.filtered_knn
knn = exercise("12.filtered_knn", name="filtered_knn", points=4)


def _store(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    sources = ["rare" if i % 30 == 0 else ("a" if i % 2 else "b") for i in range(300)]
    dates = [f"2017-01-{1 + i % 28:02d}" for i in range(300)]
    store = SqliteVecStore(":memory:", 8, metadata=("source", "date"), extra=())
    store.insert(range(300), x, source=sources, date=dates)
    return store, rng.standard_normal((5, 8)).astype(np.float32)


@knn.check("returns the ids of the k nearest rows of the given source, nearest first")
def _(fn):
    store, q = _store(1)
    for row in q:
        want = store.search(row, 5, source="a")[1][0].tolist()
        assert _ids(fn(store.conn, row, 5, "a")) == want
    store.close()


@knn.check("filters inside the k-NN query (a pre-filter), not after an unfiltered top k")
def _(fn):
    store, q = _store(2)
    for row in q:
        want = store.search(row, 5, source="rare")[1][0].tolist()
        got = _ids(fn(store.conn, row, 5, "rare"))
        assert got == want, f"{len(got)} ids for the rare source, expected {len(want)}"
    store.close()


@knn.check("returns fewer than k ids when fewer rows match (10 'rare' rows, k = 20)")
def _(fn):
    store, q = _store(3)
    assert len(_ids(fn(store.conn, q[0], 20, "rare"))) == 10
    assert _ids(fn(store.conn, q[0], 20, "none of them")) == []
    store.close()
