"""HNSWIndex: recall next to hnswlib, graph invariants, the level law, the plain-Python steps,
save/load and bad input."""

import math

import numpy as np
import pytest

from embedlab.index import FlatIndex, HNSWIndex
from embedlab.index.base import normalize_rows
from embedlab.index.hnsw import (
    _search_layer,
    _select,
    _sorted_beam,
    hnsw_nbytes,
    random_level,
    search_layer,
    select_neighbors,
)


@pytest.fixture(scope="module")
def glove():
    from embedlab import data

    vectors, _ = data.load("glove-6b-50d")
    base = normalize_rows(vectors[:6000])
    queries = normalize_rows(vectors[200_000:201_000])  # held out from the base
    return base, queries


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(found, truth,
                                                                     strict=True)]))


@pytest.fixture(scope="module")
def built(glove):
    base, _ = glove
    idx = HNSWIndex(50, metric="ip", M=12, ef_construction=80, seed=3)
    idx.add(base[:2500])
    idx.add(base[2500:])  # two batches: the graph must grow across add calls
    return idx


def test_recall_within_002_of_hnswlib_at_same_parameters(glove, built):
    hnswlib = pytest.importorskip("hnswlib")
    base, queries = glove
    truth = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :10]
    peer = hnswlib.Index(space="ip", dim=50)
    peer.init_index(max_elements=len(base), ef_construction=80, M=12, random_seed=3)
    peer.set_num_threads(1)
    peer.add_items(base)
    for ef in (16, 64):
        peer.set_ef(ef)
        theirs = recall_at(peer.knn_query(queries, k=10)[0], truth)
        _, ids = built.search(queries, 10, ef=ef)
        ours = recall_at(ids, truth)
        assert abs(ours - theirs) <= 0.02, (ef, ours, theirs)
    assert ours > 0.9


def test_scores_are_exact_inner_products_best_first(glove, built):
    base, queries = glove
    scores, ids = built.search(queries[:20], 10, ef=50)
    assert ids.dtype == np.int64 and (ids >= 0).all()
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries[:20], base[ids]),
                               rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-7).all()
    assert set(built.last_search_stats) == {"hops", "ndis"}
    assert (built.last_search_stats["ndis"] >= built.last_search_stats["hops"]).all()


def test_l2_metric_finds_true_neighbours_on_random_points():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 16)).astype(np.float32)
    q = rng.normal(size=(50, 16)).astype(np.float32)
    idx = HNSWIndex(16, metric="l2", M=16, ef_construction=100)
    idx.add(x)
    dist, ids = idx.search(q, 5, ef=100)
    flat = FlatIndex(16, metric="l2")
    flat.add(x)
    tdist, tids = flat.search(q, 5)
    assert recall_at(ids, tids) >= 0.97
    np.testing.assert_allclose(dist, ((q[:, None, :] - x[ids]) ** 2).sum(-1), rtol=1e-4)
    assert (np.diff(dist, axis=1) >= 0).all()


def test_cosine_equals_ip_on_normalised_rows(glove):
    base, queries = glove
    raw = base[:1000] * np.linspace(0.5, 3, 1000, dtype=np.float32)[:, None]
    a = HNSWIndex(50, metric="cosine", M=8, ef_construction=40)
    a.add(raw)
    b = HNSWIndex(50, metric="ip", M=8, ef_construction=40)
    b.add(normalize_rows(raw))
    da, ia = a.search(queries[:30] * 7, 5, ef=20)
    db, ib = b.search(queries[:30], 5, ef=20)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_allclose(da, db, rtol=1e-5, atol=1e-6)


def test_graph_invariants(built):
    M, n = built.M, built.ntotal
    levels = built.levels
    assert built.levels.shape == (n,) and built.max_level == levels.max()
    assert levels[built.entry_point] == built.max_level
    for level in range(built.max_level + 1):
        cap = 2 * M if level == 0 else M
        deg = built.degrees(level)
        assert len(deg) == (levels >= level).sum()
        assert deg.max() <= cap and deg.min() >= (1 if len(deg) > 1 else 0)
        for i in np.flatnonzero(levels >= level)[:400]:
            nb = built.neighbors(int(i), level)
            assert len(set(nb.tolist())) == len(nb), "duplicate link"
            assert i not in nb, "self link"
            assert (levels[nb] >= level).all(), "link to a point absent from the layer"
    assert len(built.neighbors(int(np.argmin(levels)), int(levels.min()) + 1)) == 0
    # layer 0 is well connected: most points have more than M/2 links
    assert np.median(built.degrees(0)) > M / 2


def test_level_distribution_follows_ml_equals_one_over_ln_m():
    for M in (4, 16):
        idx = HNSWIndex(4, M=M, ef_construction=M, seed=1)
        assert math.isclose(idx.mL, 1 / math.log(M))
        levels = idx.draw_levels(400_000)
        for level in (1, 2):
            # P(level >= l) = exp(-l / mL) = M^-l; allow 5 binomial standard deviations
            p = M ** -level
            sd = math.sqrt(p * (1 - p) / len(levels))
            assert abs((levels >= level).mean() - p) < 5 * sd + 1e-6, (M, level)


def test_random_level_is_floor_of_minus_log_u_times_ml():
    mL = 1 / math.log(16)
    assert random_level(1.0, mL) == 0
    assert random_level(1 / 16 + 1e-12, mL) == 0 and random_level(1 / 16 - 1e-9, mL) == 1
    assert random_level(1 / 256 - 1e-12, mL) == 2
    with pytest.raises(ValueError, match="u must be"):
        random_level(0.0, mL)


def test_compiled_select_matches_plain_python(glove):
    base, _ = glove
    x = base[:300]
    rng = np.random.default_rng(5)
    for heuristic in (True, False):
        for trial in range(20):
            b = int(rng.integers(300))
            cand = rng.choice(np.delete(np.arange(300), b), size=40, replace=False)
            want = select_neighbors(x, x[b], cand.tolist(), 8, heuristic=heuristic, metric="ip")
            d = -(x[cand] @ x[b])
            order = np.argsort(d, kind="stable")
            out = np.empty(16, np.int32)
            cnt = _select(x, cand[order].astype(np.int32), d[order].astype(np.float32), 40, 8,
                          heuristic, False, out)
            assert out[:cnt].tolist() == want, (heuristic, trial)
    # the heuristic keeps spread-out neighbours: fewer than M when candidates cluster
    pts = np.array([[0, 0], [1, 0], [1.1, 0], [1.2, 0], [0, 1]], dtype=np.float32)
    assert select_neighbors(pts, pts[0], [1, 2, 3, 4], 3, heuristic=True) == [1, 4]
    assert select_neighbors(pts, pts[0], [1, 2, 3, 4], 3, heuristic=False) == [1, 4, 2]


def test_compiled_search_layer_matches_plain_python(built, glove):
    _, queries = glove
    x = built._x
    graph = [built.neighbors(i, 0).tolist() for i in range(built.ntotal)]
    g = built._graph
    n = built.ntotal
    for qi in range(10):
        q = queries[qi]
        entry = qi * 37
        want = search_layer(x, graph, q, entry, 32, metric="ip")
        visited = np.zeros(n, np.uint16)
        C, W = np.empty(n + 1, np.uint64), np.empty(34, np.uint64)
        fresh, fresh_d = np.empty(34, np.int32), np.empty(34, np.float32)
        stats = np.zeros(2, np.int64)
        d0 = -float(x[entry] @ q)
        nw = _search_layer(x, q, entry, np.float32(d0), 32, 0, g, False, visited, 1, C, W,
                           fresh, fresh_d, stats)
        dist, ids = np.empty(nw, np.float32), np.empty(nw, np.int64)
        _sorted_beam(W, nw, dist, ids)
        got = list(zip(dist.tolist(), ids.tolist(), strict=True))
        assert [i for _, i in got] == [i for _, i in want]
        np.testing.assert_allclose([d for d, _ in got], [d for d, _ in want], rtol=1e-4,
                                   atol=1e-5)


def test_heuristic_false_builds_a_valid_but_different_graph(glove):
    base, queries = glove
    a = HNSWIndex(50, M=8, ef_construction=40, heuristic=False)
    a.add(base[:1500])
    b = HNSWIndex(50, M=8, ef_construction=40, heuristic=True)
    b.add(base[:1500])
    assert (a.levels == b.levels).all()  # same seed, same levels
    differ = sum(not np.array_equal(a.neighbors(i), b.neighbors(i)) for i in range(200))
    assert differ > 50
    # the simple rule fills every list to M; the heuristic leaves some shorter
    assert a.degrees(0).mean() > b.degrees(0).mean()
    assert a.degrees(0).max() <= 16


def test_save_load_round_trip_and_continued_adds(tmp_path, glove):
    base, queries = glove
    a = HNSWIndex(50, metric="ip", M=8, ef_construction=40, seed=7)
    a.add(base[:1000])
    path = tmp_path / "hnsw.npz"
    a.save(path)
    b = HNSWIndex.load(path)
    assert (b.M, b.ef_construction, b.metric, b.ntotal) == (8, 40, "ip", 1000)
    for idx_pair in ((a, b),):
        da, ia = idx_pair[0].search(queries, 10, ef=30)
        db, ib = idx_pair[1].search(queries, 10, ef=30)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(da, db)
    # the level generator travels too: adding more after loading gives the same graph
    a.add(base[1000:1500])
    b.add(base[1000:1500])
    np.testing.assert_array_equal(a.levels, b.levels)
    np.testing.assert_array_equal(a.search(queries, 5, ef=20)[1], b.search(queries, 5, ef=20)[1])
    assert b.nbytes == a.nbytes > 1500 * 50 * 4


def test_nbytes_matches_the_memory_estimate(built):
    est = hnsw_nbytes(built.ntotal, built.dim, built.M)
    assert abs(built.nbytes - est) / est < 0.1, (built.nbytes, est)
    assert hnsw_nbytes(1_000_000, 128, 32) > 1_000_000 * 128 * 4 + 1_000_000 * 64 * 4


def test_same_seed_same_graph_other_seed_other_levels(glove):
    base, _ = glove
    a, b, c = (HNSWIndex(50, M=6, ef_construction=20, seed=s) for s in (1, 1, 2))
    for idx in (a, b, c):
        idx.add(base[:500])
    np.testing.assert_array_equal(a._links0, b._links0)
    assert not np.array_equal(a.levels, c.levels)


def test_fewer_points_than_k_pads_with_minus_one():
    x = np.eye(3, 8, dtype=np.float32)
    idx = HNSWIndex(8, metric="l2", M=4, ef_construction=8)
    idx.add(x)
    dist, ids = idx.search(x[:1], 5, ef=5)
    assert ids[0, 0] == 0 and sorted(ids[0, :3]) == [0, 1, 2]
    assert (ids[0, 3:] == -1).all() and np.isinf(dist[0, 3:]).all()
    idx_ip = HNSWIndex(8, metric="ip", M=4, ef_construction=8)
    idx_ip.add(x)
    scores, ids = idx_ip.search(x[:1], 5, ef=5)
    assert (ids[0, 3:] == -1).all() and (scores[0, 3:] == -np.inf).all()


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="M must be"):
        HNSWIndex(8, M=1)
    with pytest.raises(TypeError, match="M must be an integer"):
        HNSWIndex(8, M=4.5)
    with pytest.raises(ValueError, match="ef_construction must be >= M"):
        HNSWIndex(8, M=16, ef_construction=8)
    with pytest.raises(ValueError, match="metric must be one of"):
        HNSWIndex(8, metric="hamming")
    idx = HNSWIndex(8, metric="l2", M=4, ef_construction=8)
    with pytest.raises(ValueError, match="empty"):
        idx.search(np.zeros((1, 8), np.float32), 1)
    x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="8 columns"):
        idx.add(x[:, :7])
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        idx.add(bad)
    assert idx.ntotal == 0
    idx.add(x)
    with pytest.raises(ValueError, match="ef must be >= k"):
        idx.search(x[:2], 10, ef=5)
    with pytest.raises(ValueError, match="k must be"):
        idx.search(x[:2], 0)
    with pytest.raises(ValueError, match="8 columns"):
        idx.search(x[:2, :4], 1)
    with pytest.raises(ValueError, match="NaN"):
        idx.search(bad[3:4], 1)
    with pytest.raises(TypeError, match="unexpected"):
        idx.search(x[:2], 1, nprobe=3)
    with pytest.raises(TypeError, match="real numbers"):
        idx.search(np.array([["a"] * 8]), 1)


def test_visited_marks_are_reused_across_searches():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((600, 8)).astype(np.float32)
    idx = HNSWIndex(8, metric="l2", M=8, ef_construction=40, seed=0)
    idx.add(x)
    first = idx.search(x[:20], 5, ef=32)
    pool = idx._visited
    tag = idx._tag
    for i in range(20):  # one query at a time: same answers, same array, fresh tags
        D, ids = idx.search(x[i:i + 1], 5, ef=32)
        np.testing.assert_array_equal(ids[0], first[1][i])
    assert idx._visited is pool and idx._tag == tag + 20
    # a search touches only what it visits: far fewer marks than points carry the last tag
    marked = int((pool == idx._tag).sum())
    assert 0 < marked <= int(idx.last_search_stats["ndis"][0]) and marked < 600
    idx.add(x[:10])
    idx.search(x[:1], 5, ef=32)
    assert idx._visited is not pool and idx._visited.shape == (610,)


def test_a_rejected_query_leaves_no_stale_visited_marks():
    # the batch below marks points for three queries before its fourth is rejected: the next
    # searches must not take those marks for their own
    x = np.random.default_rng(4).normal(size=(400, 8)).astype(np.float32)
    idx = HNSWIndex(8, metric="l2", M=6, ef_construction=20, seed=0)
    idx.add(x)
    want = idx.search(x[:5], 4, ef=16)[1]
    bad = x[:5].copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        idx.search(bad, 4, ef=16)
    with pytest.raises(ValueError, match="NaN"):
        idx.search(bad[3:4], 4, ef=16)  # the one-query path
    np.testing.assert_array_equal(idx.search(x[:5], 4, ef=16)[1], want)
    for i in range(5):
        np.testing.assert_array_equal(idx.search(x[i:i + 1], 4, ef=16)[1][0], want[i])
