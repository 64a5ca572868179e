"""Checks for chapter 10: the level of a new point (warm-up), an HNSW index with filtered search
and deletions (the build), and the memory of an HNSW index.

The build's skeleton gives INSERT and the neighbour-selection heuristic (Algorithms 1 and 4 of
Malkov and Yashunin, which the chapter builds); the learner writes SEARCH-LAYER with a filter,
K-NN-SEARCH, and deletion with repair of the in-neighbours' lists (as FreshDiskANN repairs a
graph, Singh et al. 2021). The references are independent: brute force in float64, hnswlib at the
same ``M`` and ``ef_construction``, Algorithm 4 written again here, and the level law
``P(level >= l) = M^-l``. The data are fresh on every run.

What only a graph search does is checked from outside: the check hands the index a distance
function that counts in the grading process, and fills every copy of the vectors the index holds
with NaN, so the right neighbours come back only through that function; a search that scans every
point, or computes its distances some other way, fails.
"""

from __future__ import annotations

import math

import numpy as np

from embedlab.checks import exercise, is_remote, raises, trusted

# --------------------------------------------------------------------------- 10.level
level = exercise("10.level", name="random_level", points=2)


@level.check("returns floor(-ln(u) * mL) as an int (u = 1 gives level 0)")
def _(fn):
    rng = np.random.default_rng()
    for mL in (1 / math.log(16), 1 / math.log(4), 0.5):
        us = [1.0, 1 / 16 + 1e-9, 1 / 16 - 1e-9, 1e-9, *(1.0 - rng.random(20)).tolist()]
        for u in us:
            got = fn(u, mL)
            assert isinstance(got, (int, np.integer)), f"return an int, got {type(got).__name__}"
            # the level is the largest l with u <= exp(-l / mL)
            want = 0
            while u <= math.exp(-(want + 1) / mL) * (1 + 1e-12):
                want += 1
            assert int(got) == want, f"u={u}, mL={mL:.3f}: got {got}, expected {want}"


@level.check("gives the law P(level >= l) = M^-l when mL = 1/ln M (draw u in (0, 1])")
def _(fn):
    rng = np.random.default_rng()
    u = 1.0 - rng.random(40_000)
    levels = np.array(trusted(fn, "map_call", fn, [(float(v), 1 / math.log(8)) for v in u]))
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


# --------------------------------------------------------------------------- 10.hnsw
build = exercise("10.hnsw", name="HNSW", points=8,
                 reference=("embedlab.index.hnsw:search_layer", "embedlab.index.hnsw:HNSWIndex"))

_N, _DIM, _M, _EFC, _NQ = 1000, 16, 8, 64, 40
# Searches counted (each distance a call into this process) and their ef. At ef = k = 10 a graph
# walk on these points returns brute force's exact top 10 for about one query in five, so eight
# queries that all agree with a scan done while the vectors were visible are all but impossible
# for a real walk (at ef = 32 it was one check run in thirty, and nine in ten under a 30% filter).
_NCOUNT, _EF_COUNT = 8, 10
_CACHE: dict = {}


def _built(cls):
    """Build the learner's index once per grading run, on data drawn afresh. INSERT and the
    heuristic are the skeleton's; the graph depends on the learner's search_layer."""
    if _CACHE.get("cls") is cls:
        return _CACHE["index"], _CACHE["x"]
    _CACHE.clear()
    rng = np.random.default_rng()
    x = rng.normal(size=(_N, _DIM)).astype(np.float32)
    index = cls(M=_M, ef_construction=_EFC, seed=int(rng.integers(1 << 30)))
    index.add(x)
    _CACHE.update(cls=cls, index=index, x=x, counted=False, n=[0])
    return index, x


class _Counter:
    """The distance function the check hands the index: it counts every distance it computes
    here, in the grading process, from the check's own copy of the vectors."""

    def __init__(self, x: np.ndarray, n: list) -> None:
        self.x, self.n = x.astype(np.float64), n

    def __call__(self, q, ids):
        ids = [int(i) for i in ids]
        self.n[0] += len(ids)
        if not ids:
            return np.zeros(0)
        base = self.x[int(q)] if np.ndim(q) == 0 else np.asarray(q, dtype=np.float64)
        diff = self.x[ids] - base
        return np.einsum("ij,ij->i", diff, diff)


def _instrument(index, x) -> list:
    """Hand the index the counting distance function and fill every copy of the vectors it holds
    with NaN: from now on a search finds the right points only through self.dist."""
    if not _CACHE.get("counted"):
        from embedlab.sandbox import parent_side

        trusted(index, "poison_float_arrays", index, (_N, _DIM))
        index.dist = parent_side(_Counter(x, _CACHE["n"])) if is_remote(index) \
            else _Counter(x, _CACHE["n"])
        _CACHE["counted"] = True
    return _CACHE["n"]


def _uninstrument(index, x) -> None:
    """Give the index its vectors and its own distance function back (deletions repair the graph
    with many distances: they run where the index lives)."""
    if _CACHE.get("counted"):
        index.x = x.astype(np.float64)
        del index.dist
        _CACHE["counted"] = False


def _brute(x, q, k, keep=None):
    d = ((x.astype(np.float64)[None] - q.astype(np.float64)[:, None]) ** 2).sum(-1)
    if keep is not None:
        d[:, ~keep] = np.inf
    return np.argsort(d, axis=1, kind="stable")[:, :k], d


def _recall(got, truth) -> float:
    return float(np.mean([len(set(int(i) for i in a) & set(b.tolist())) / len(b)
                          for a, b in zip(got, truth, strict=True)]))


def _same_ids(counted, free) -> None:
    """The counted searches (vectors hidden, every distance through the check's self.dist) must
    return what the same searches returned where the index keeps its own vectors."""
    for a, b in zip(counted, free, strict=True):
        assert [int(i) for i in a] == [int(i) for i in b], (
            "with its vectors hidden and every distance through self.dist, the search returned "
            "other ids: it reads the vectors another way, or computes distances it does not count")


def _searches(index, q, k, ef, n, allowed=None) -> tuple[list, float]:
    """Run the searches; returns the ids and the mean distances computed per query."""
    before = n[0]
    got = [index.search(v, k, ef=ef, allowed=allowed) for v in q.astype(np.float64)]
    return got, (n[0] - before) / len(q)


def _select_ref(x, base: int, pool: list[int], m: int) -> list[int]:
    """Algorithm 4 over pool, in float64, (distance, id) order: the repair's reference."""
    xb = x.astype(np.float64)
    found = sorted((float(((xb[c] - xb[base]) ** 2).sum()), c) for c in pool)
    kept: list[int] = []
    for d_base, e in found:
        if not kept or min(float(((xb[e] - xb[r]) ** 2).sum()) for r in kept) >= d_base:
            kept.append(e)
            if len(kept) == m:
                break
    return kept


@build.check("search_layer walks the graph: with ef >= n it returns brute force's order on the "
             "points it reaches, as (squared distance, id) pairs; with ef = 16 it computes "
             "distances to far fewer than n points (every distance through self.dist)")
def _(cls):
    index, x = _built(cls)
    _uninstrument(index, x)
    rng = np.random.default_rng()
    q = rng.normal(size=(1, _DIM))  # one query: ef = n walks the whole graph
    order, d = _brute(x, q, _N)
    entry = int(index.entry)
    for r in range(len(q)):
        got = index.search_layer(q[r].astype(np.float64), entry, _N, 0)
        ids = [int(i) for _, i in got]
        assert len(ids) >= 0.95 * _N, f"reached {len(ids)} of {_N} points: is layer 0 connected?"
        want = [int(i) for i in order[r] if int(i) in set(ids)]
        assert ids == want, "the order differs from brute force's on the points reached"
        dist = np.array([float(v) for v, _ in got])
        assert np.allclose(dist, d[r, ids], rtol=1e-5), "the distances are not squared L2"
    n = _instrument(index, x)
    before = n[0]
    for v in rng.normal(size=(10, _DIM)):
        got = index.search_layer(v, entry, 16, 0)
        assert len(got) == 16, f"ef = 16 gave {len(got)} results"
    per = (n[0] - before) / 10
    assert 16 <= per < _N / 4, (f"{per:.0f} distances per search_layer call with ef = 16 on "
                                f"{_N} points: a beam search computes far fewer than n (and "
                                "at least ef); compute them all through self.dist")


@build.check("search: recall@10 at ef = 64 within 0.03 of hnswlib's at the same M and "
             f"ef_construction; at ef = {_EF_COUNT}, distances to fewer than half of the points "
             "per query, the same ids as where the index holds its vectors; "
             "k < 1 raises ValueError")
def _(cls):
    import hnswlib

    index, x = _built(cls)
    _uninstrument(index, x)
    rng = np.random.default_rng()
    q = rng.normal(size=(_NQ, _DIM)).astype(np.float32)
    truth, _ = _brute(x, q, 10)
    ref = hnswlib.Index(space="l2", dim=_DIM)
    ref.init_index(max_elements=_N, ef_construction=_EFC, M=_M, random_seed=int(rng.integers(99)))
    ref.set_num_threads(1)
    ref.add_items(x, np.arange(_N))
    ref.set_ef(64)
    theirs = _recall(ref.knn_query(q, k=10)[0], truth)
    free = [index.search(v, 10, ef=64) for v in q.astype(np.float64)]  # where the index lives
    mine = _recall(free, truth)
    assert mine >= theirs - 0.03, f"recall@10 {mine:.3f} against hnswlib's {theirs:.3f}"
    free = [index.search(v, 10, ef=_EF_COUNT) for v in q[:_NCOUNT].astype(np.float64)]
    n = _instrument(index, x)
    got, per = _searches(index, q[:_NCOUNT], 10, _EF_COUNT, n)
    _same_ids(got, free)
    assert 10 <= per < _N / 2, (f"{per:.0f} distances per query at ef = {_EF_COUNT} on {_N} "
                                "points: a graph search computes far fewer (through self.dist)")
    assert raises(index.search, q[0].astype(np.float64), 0), "k = 0 must raise ValueError"


@build.check("a filter (allowed: a boolean array by id) returns only allowed points: recall@10 "
             ">= 0.9 against brute force over a 30% filter, distances to fewer than 80% of the "
             f"points at ef = {_EF_COUNT}, and all k when a 2% filter leaves at least k")
def _(cls):
    index, x = _built(cls)
    _uninstrument(index, x)
    rng = np.random.default_rng()
    q = rng.normal(size=(12, _DIM))
    keep = rng.random(_N) < 0.3
    free = [index.search(v, 10, ef=64, allowed=keep) for v in q]  # where the index lives
    bad = [int(i) for ids in free for i in ids if not keep[int(i)]]
    assert not bad, f"returned {len(bad)} points the filter excludes, e.g. {bad[:3]}"
    rec = _recall(free, _brute(x, q, 10, keep)[0])
    assert rec >= 0.9, f"recall@10 {rec:.3f} over the allowed 30%: route through every point"
    rare = np.zeros(_N, dtype=bool)
    rare[rng.choice(_N, int(0.02 * _N), replace=False)] = True
    for v in q[:5]:
        ids = [int(i) for i in index.search(v, 10, ef=64, allowed=rare)]
        assert len(ids) == 10 and all(rare[i] for i in ids), (
            f"a 2% filter ({int(rare.sum())} points) gave {len(ids)} allowed ids, expected 10")
    free = [index.search(v, 10, ef=_EF_COUNT, allowed=keep) for v in q[:_NCOUNT]]
    n = _instrument(index, x)
    got, per = _searches(index, q[:_NCOUNT], 10, _EF_COUNT, n, allowed=keep)
    _same_ids(got, free)
    assert per < 0.8 * _N, f"{per:.0f} distances per filtered query on {_N} points"


@build.check("delete repairs the graph: each point that linked to the deleted one gets "
             "select() over its other neighbours and the deleted point's (both caps: at most "
             "2M links on layer 0, M above), no list keeps a deleted point, the entry point moves "
             "to the highest remaining level, and deleting twice raises ValueError")
def _(cls):
    index, x = _built(cls)
    _uninstrument(index, x)
    rng = np.random.default_rng()
    layers = index.layers
    victim = next(int(i) for i in rng.permutation(_N) if int(i) != int(index.entry))
    want = {}
    for lev in range(len(layers)):
        graph = layers[lev]
        if victim not in graph:
            continue
        for p, links in graph.items():
            if victim in links:
                pool = sorted({c for c in list(links) + list(graph[victim])
                               if c not in (victim, p)})
                want[(lev, p)] = _select_ref(x, p, pool, 2 * _M if lev == 0 else _M)
    index.delete(victim)
    after = index.layers
    for (lev, p), links in want.items():
        got = [int(e) for e in after[lev][p]]
        assert got == links, (f"after deleting {victim}, point {p} on layer {lev} links to "
                              f"{got[:6]}..., expected select() over its other neighbours and "
                              f"{victim}'s: {links[:6]}... (cap {2 * _M if lev == 0 else _M})")
    assert raises(index.delete, victim), "deleting a deleted point must raise ValueError"
    doomed = [int(i) for i in rng.permutation(_N)[: _N // 5] if int(i) != victim]
    doomed.append(int(index.entry))
    for i in dict.fromkeys(doomed):
        index.delete(i)
    gone = set(doomed) | {victim}
    levels = np.asarray(index.levels)
    for lev, graph in enumerate(index.layers):
        cap = 2 * _M if lev == 0 else _M
        for p, links in graph.items():
            links = [int(e) for e in links]
            assert int(p) not in gone, f"deleted point {p} still has a list on layer {lev}"
            assert len(links) <= cap, (f"point {p} has {len(links)} links on layer {lev}: layer 0 "
                                       f"keeps at most 2M = {2 * _M}, upper layers M = {_M}")
            assert not gone & set(links), f"point {p} still links to a deleted point"
    alive = [i for i in range(_N) if i not in gone]
    top = max(levels[alive])
    assert int(index.entry) == min(i for i in alive if levels[i] == top), (
        "the entry point must be the remaining point with the highest level (lowest id)")
    _CACHE["gone"] = gone


@build.check("after deleting a fifth of the points, search never returns one and keeps recall@10 "
             f">= 0.9 against brute force over the rest, and at ef = {_EF_COUNT} distances to "
             "fewer than half of the points per query")
def _(cls):
    index, x = _built(cls)
    gone = _CACHE.get("gone")
    if gone is None:  # the deletion check did not run to its end
        raise AssertionError("run after the deletion check: delete() did not complete")
    _uninstrument(index, x)
    rng = np.random.default_rng()
    q = rng.normal(size=(20, _DIM))
    keep = np.ones(_N, dtype=bool)
    keep[list(gone)] = False
    free = [index.search(v, 10, ef=64) for v in q]  # where the index lives
    back = [int(i) for ids in free for i in ids if int(i) in gone]
    assert not back, f"search returned deleted points {back[:3]}"
    rec = _recall(free, _brute(x, q, 10, keep)[0])
    assert rec >= 0.9, f"recall@10 {rec:.3f} over the points that remain"
    free = [index.search(v, 10, ef=_EF_COUNT) for v in q[:_NCOUNT]]
    n = _instrument(index, x)
    got, per = _searches(index, q[:_NCOUNT], 10, _EF_COUNT, n)
    _same_ids(got, free)
    assert per < _N / 2, f"{per:.0f} distances per query at ef = {_EF_COUNT} on {_N} points"


# --------------------------------------------------------------------------- 10.memory
mem = exercise("10.memory", name="hnsw_memory_bytes", points=2)


def _expected_bytes(n: int, dim: int, M: int) -> float:
    """Vectors, layer 0 (2M slots + a count), and the upper layers summed level by level."""
    upper_layers = sum(M ** -level for level in range(1, 64))  # E[levels above 0]
    return n * dim * 4 + n * (2 * M + 1) * 4 + n * upper_layers * (M + 1) * 4


@mem.check("counts float32 vectors, 2M links + a count per point on layer 0, and M links + a "
           "count for each of the 1/(M-1) upper layers a point reaches on average")
def _(fn):
    rng = np.random.default_rng()
    cases = [(1_000_000, 4, 16), (10_000, 1024, 32), (100_000_000, 128, 8)]
    cases += [(int(rng.integers(1000, 10 ** 7)), int(rng.integers(2, 2048)),
               int(rng.integers(4, 64))) for _ in range(3)]
    for n, dim, M in cases:
        got, want = float(fn(n, dim, M)), _expected_bytes(n, dim, M)
        assert abs(got - want) <= 1e-4 * want + 1, (f"n={n}, dim={dim}, M={M}: "
                                                     f"{got:.0f} vs {want:.0f}")


@mem.check("puts 100M x 1024-d vectors with M = 32 at about 436 GB")
def _(fn):
    assert abs(fn(100_000_000, 1024, 32) / 1e9 - 436) < 1
