"""Checks for chapter 10: level sampling, SEARCH-LAYER, the neighbour-selection heuristic, and the
memory of an HNSW index."""

from __future__ import annotations

import math

import numpy as np

from embedlab.checks import exercise
from embedlab.index.hnsw import hnsw_nbytes, random_level, search_layer, select_neighbors


def _knn_graph(x: np.ndarray, m: int) -> list[list[int]]:
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    nbrs = np.argsort(d, axis=1, kind="stable")[:, :m]
    graph: list[set[int]] = [set() for _ in range(len(x))]
    for i, row in enumerate(nbrs):
        for j in row:
            graph[i].add(int(j))
            graph[int(j)].add(i)
    return [sorted(s) for s in graph]


class _CountingGraph(list):
    """A list of neighbour lists that counts how many times a point's list is read."""

    reads = 0

    def __getitem__(self, i):
        self.reads += 1
        return super().__getitem__(i)


def _pairs(result) -> list[tuple[float, int]]:
    return [(float(d), int(i)) for d, i in result]


# --------------------------------------------------------------------------- 10.level
level = exercise("10.level", name="random_level", points=2)


@level.check("returns floor(-ln(u) * mL) as an int (u = 1 gives level 0)")
def _(fn):
    for mL in (1 / math.log(16), 1 / math.log(4), 0.5):
        for u in (1.0, 0.9, 0.5, 0.2, 1 / 16 + 1e-9, 1 / 16 - 1e-9, 1e-3, 1e-9):
            got = fn(u, mL)
            assert isinstance(got, (int, np.integer)), f"return an int, got {type(got).__name__}"
            assert int(got) == random_level(u, mL), f"u={u}, mL={mL:.3f}"


@level.check("gives the law P(level >= l) = M^-l when mL = 1/ln M (draw u in (0, 1])")
def _(fn):
    rng = np.random.default_rng(10)
    u = 1.0 - rng.random(40_000)
    levels = np.array([fn(float(v), 1 / math.log(8)) for v in u])
    assert abs(np.mean(levels >= 1) - 1 / 8) < 0.01
    assert abs(np.mean(levels >= 2) - 1 / 64) < 0.004


@level.check("raises ValueError when u is not in (0, 1]")
def _(fn):
    for bad in (0.0, -0.5, 1.5):
        try:
            fn(bad, 0.5)
        except ValueError:
            continue
        raise AssertionError(f"no ValueError for u={bad}")


# --------------------------------------------------------------------------- 10.search_layer
beam = exercise("10.search_layer", name="search_layer", points=4)


def _cases():
    rng = np.random.default_rng(100)
    for n, dim, m in ((60, 2, 3), (200, 5, 4), (300, 8, 6)):
        x = rng.normal(size=(n, dim))
        graph = _knn_graph(x, m)
        for _ in range(4):
            q = rng.normal(size=dim)
            yield x, graph, q, int(rng.integers(n))


@beam.check("with ef = 1 it is greedy routing: returns [(distance, id)] of the local minimum")
def _(fn):
    for x, graph, q, entry in _cases():
        got, want = _pairs(fn(x, graph, q, entry, 1)), search_layer(x, graph, q, entry, 1)
        assert len(got) == 1, f"ef=1 must return one pair, got {len(got)}"
        assert got[0][1] == want[0][1], f"entry {entry}: stopped at {got[0][1]}, not {want[0][1]}"


@beam.check("returns the ef nearest points found, nearest first, as (squared L2 distance, id)")
def _(fn):
    for x, graph, q, entry in _cases():
        for ef in (4, 10, 30):
            got, want = _pairs(fn(x, graph, q, entry, ef)), search_layer(x, graph, q, entry, ef)
            assert [i for _, i in got] == [i for _, i in want], f"ef={ef}, entry={entry}"
            np.testing.assert_allclose([d for d, _ in got], [d for d, _ in want], rtol=1e-6,
                                       err_msg="distances are squared L2")


@beam.check("stops when the nearest candidate is further than the furthest of the ef best")
def _(fn):
    for x, graph, q, entry in _cases():
        mine, ref = _CountingGraph(graph), _CountingGraph(graph)
        fn(x, mine, q, entry, 5)
        search_layer(x, ref, q, entry, 5)
        # (a little slack for reading a neighbour list twice per expansion)
        assert mine.reads <= 2 * ref.reads + 2, (f"read {mine.reads} neighbour lists where "
                                                 f"{ref.reads} suffice: check the stop condition")


@beam.check("never visits a point twice and returns the whole graph when ef >= n")
def _(fn):
    x = np.arange(12, dtype=float)[:, None]
    ring = [[(i - 1) % 12, (i + 1) % 12] for i in range(12)]
    got = _pairs(fn(x, ring, np.array([3.2]), 9, 50))
    assert sorted(i for _, i in got) == list(range(12)), "every point once"
    assert [i for _, i in got][:3] == [3, 4, 2]


# --------------------------------------------------------------------------- 10.heuristic
heur = exercise("10.heuristic", name="select_neighbors_heuristic", points=3)


@heur.check("keeps a candidate only if it is closer to the base point than to every kept one")
def _(fn):
    pts = np.array([[0.0, 0.0], [1.0, 0.1], [1.15, -0.1], [1.3, 0.2], [1.2, 0.0],
                    [-0.8, 1.6], [-1.5, -1.3]])
    got = [int(i) for i in fn(pts, pts[0], [1, 2, 3, 4, 5, 6], 3)]
    assert got == [1, 5, 6], f"got {got}: the cluster at x ~ 1.2 deserves one link, not three"


@heur.check("walks the candidates nearest first, whatever order they are given in")
def _(fn):
    rng = np.random.default_rng(11)
    for trial in range(30):
        x = rng.normal(size=(80, 3))
        cands = rng.choice(np.arange(1, 80), size=25, replace=False).tolist()
        m = int(rng.integers(2, 9))
        got = [int(i) for i in fn(x, x[0], cands, m)]
        want = select_neighbors(x, x[0], cands, m, heuristic=True, metric="l2")
        assert got == want, f"trial {trial}: got {got}, expected {want}"


@heur.check("returns at most m ids, and fewer when the heuristic rejects the rest")
def _(fn):
    x = np.array([[0.0], [1.0], [2.0], [3.0], [-1.0]])
    assert [int(i) for i in fn(x, x[0], [1, 2, 3, 4], 4)] == [1, 4]
    assert [int(i) for i in fn(x, x[0], [1, 4, 2], 1)] == [1]


# --------------------------------------------------------------------------- 10.memory
mem = exercise("10.memory", name="hnsw_memory_bytes", points=2)


@mem.check("counts float32 vectors, 2M links + a count per point on layer 0, and M links + a "
           "count for each of the 1/(M-1) upper layers a point reaches on average")
def _(fn):
    for n, dim, M in ((1_000_000, 4, 16), (10_000, 1024, 32), (100_000_000, 128, 8),
                      (5_000, 50, 4)):
        got, want = float(fn(n, dim, M)), float(hnsw_nbytes(n, dim, M))
        assert abs(got - want) <= 1e-4 * want + 1, (f"n={n}, dim={dim}, M={M}: "
                                                     f"{got:.0f} vs {want:.0f}")


@mem.check("puts 100M x 1024-d vectors with M = 32 at about 436 GB")
def _(fn):
    assert abs(fn(100_000_000, 1024, 32) / 1e9 - 436) < 1
