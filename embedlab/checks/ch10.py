"""Checks for chapter 10: the level of a new point (warm-up), an HNSW index built from scratch
(SEARCH-LAYER, the neighbour-selection heuristic and INSERT, Algorithms 1, 2 and 4 of Malkov and
Yashunin), and the memory of an HNSW index.

The references are independent: brute force in float64, hnswlib at the same ``M`` and
``ef_construction``, and the level law ``P(level >= l) = M^-l``. The data are fresh on every run.
The build is graded on what defines HNSW: degree caps (``M`` on upper layers, ``2M`` on layer 0),
every point on all layers up to its own, and recall@10 at ``ef = 64`` close to hnswlib's.
"""

from __future__ import annotations

import math

import numpy as np

from embedlab.checks import exercise, trusted

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
build = exercise("10.hnsw", name="HNSW", points=8)

_N, _DIM, _M, _EFC, _NQ = 1000, 16, 8, 64, 200
_CACHE: dict = {}


def _built(cls):
    """Build the learner's index once per grading run, on data drawn afresh."""
    if _CACHE.get("cls") is cls:
        return _CACHE["index"], _CACHE["x"]
    _CACHE.clear()
    rng = np.random.default_rng()
    x = rng.normal(size=(_N, _DIM)).astype(np.float32)
    index = cls(M=_M, ef_construction=_EFC, seed=int(rng.integers(1 << 30)))
    index.add(x)
    _CACHE.update(cls=cls, index=index, x=x)
    return index, x


def _brute(x, q, k):
    d = ((x.astype(np.float64)[None] - q.astype(np.float64)[:, None]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k], d


@build.check("keeps the degree caps: at most 2M links on layer 0 and M on every upper layer, to "
             "points of the same layer, never to itself")
def _(cls):
    index, _ = _built(cls)
    assert len(index.layers) >= 2, f"a graph of {_N} points with M = 8 has more than one layer"
    for layer, graph in enumerate(index.layers):
        cap = 2 * _M if layer == 0 else _M
        for node, links in graph.items():
            links = [int(e) for e in links]
            assert len(links) <= cap, (
                f"node {node} has {len(links)} links on layer {layer} (cap {cap})")
            assert node not in links, f"node {node} links to itself on layer {layer}"
            assert len(set(links)) == len(links), f"node {node} repeats a link on layer {layer}"
            missing = [e for e in links if e not in graph]
            assert not missing, f"node {node} links to {missing[:3]}, absent from layer {layer}"


@build.check("puts every point on layers 0 .. its own level, with P(level >= 1) about 1/M, and "
             "links every point on layer 0")
def _(cls):
    index, _ = _built(cls)
    levels = np.asarray(index.levels)
    assert levels.shape == (_N,), f"levels: expected {_N} entries, got {levels.shape}"
    for i, top in enumerate(levels.tolist()):
        for layer in range(len(index.layers)):
            assert (i in index.layers[layer]) == (layer <= top), f"point {i}, layer {layer}"
    share = float(np.mean(levels >= 1))
    assert abs(share - 1 / _M) < 0.04, f"{share:.3f} of points reach layer 1, expected ~{1 / _M}"
    empty = sum(1 for links in index.layers[0].values() if len(links) == 0)
    assert empty == 0, f"{empty} points have no link on layer 0"


@build.check("search_layer with ef >= n walks all of layer 0 it can reach and returns brute "
             "force's order as (squared distance, id) pairs")
def _(cls):
    index, x = _built(cls)
    rng = np.random.default_rng()
    q = rng.normal(size=(3, _DIM))
    order, d = _brute(x, q, _N)
    for r in range(3):
        got = index.search_layer(q[r].astype(np.float64), index.entry, _N, 0)
        ids = [int(i) for _, i in got]
        # a point can lose all its in-links to pruning, so "all" means nearly all
        assert len(ids) >= 0.95 * _N, f"reached {len(ids)} of {_N} points: is layer 0 connected?"
        reached = set(ids)
        want = [int(i) for i in order[r] if int(i) in reached]
        assert ids == want, "the order differs from brute force's on the points reached"
        dist = np.array([float(v) for v, _ in got])
        assert np.allclose(dist, d[r, ids], rtol=1e-5), "the distances are not squared L2"


@build.check("select keeps a candidate only if it is closer to the base than to every one kept "
             "(Algorithm 4), nearest first, at most m")
def _(cls):
    index, x = _built(cls)
    rng = np.random.default_rng()
    for _ in range(5):
        base = rng.normal(size=_DIM)
        cand = rng.choice(_N, 40, replace=False)
        found = [(float(((x[c] - base) ** 2).sum()), int(c)) for c in cand]
        kept = []
        for dist, e in sorted(found):
            if all(float(((x[e].astype(np.float64) - x[r]) ** 2).sum()) >= dist for r in kept):
                kept.append(e)
            if len(kept) == 6:
                break
        rng.shuffle(found)
        got = [int(i) for i in index.select(base, found, 6)]
        assert got == kept, f"kept {got}, expected {kept}"


@build.check("recall@10 at ef = 64 within 0.03 of hnswlib's at the same M and ef_construction "
             "(and within 0.05 at ef = 16, where the beam is narrow)")
def _(cls):
    import hnswlib

    index, x = _built(cls)
    rng = np.random.default_rng()
    q = rng.normal(size=(_NQ, _DIM)).astype(np.float32)
    truth, _ = _brute(x, q, 10)
    ref = hnswlib.Index(space="l2", dim=_DIM)
    ref.init_index(max_elements=_N, ef_construction=_EFC, M=_M, random_seed=int(rng.integers(1000)))
    ref.set_num_threads(1)
    ref.add_items(x, np.arange(_N))

    def recall(ids):
        return np.mean([len(set(list(a)) & set(b.tolist())) / 10
                        for a, b in zip(ids, truth, strict=True)])

    for ef, slack in ((64, 0.03), (16, 0.05)):
        ref.set_ef(ef)
        theirs = recall(ref.knn_query(q, k=10)[0])
        mine = recall([[int(i) for i in index.search(v, 10, ef=ef)] for v in q.astype(np.float64)])
        assert mine >= theirs - slack, (
            f"ef={ef}: recall@10 {mine:.3f} against hnswlib's {theirs:.3f}")


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
