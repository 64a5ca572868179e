"""sqlite-vec store (exact top-k, filters, joins, rollback, persistence), reciprocal rank fusion,
and the LanceDB helpers on a small table."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from embedlab.index import FlatIndex
from embedlab.vectordb import (
    SqliteVecStore,
    lance_build_ivfpq,
    lance_search,
    lance_table,
    reciprocal_rank_fusion,
)

N, D = 400, 24


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D)).astype(np.float32)
    q = rng.standard_normal((12, D)).astype(np.float32)
    sources = [("bbc", "reuters", "cnn")[i % 3] for i in range(N)]
    dates = [f"2017-{1 + i % 3:02d}-{1 + i % 28:02d}" for i in range(N)]
    texts = [f"text {i}" for i in range(N)]
    return x, q, sources, dates, texts


@pytest.fixture
def store(tmp_path, data):
    x, _, sources, dates, texts = data
    s = SqliteVecStore(tmp_path / "items.db", D)
    s.insert(range(N), x, source=sources, date=dates, text=texts)
    yield s
    s.close()


def _flat(x, q, k, metric="cosine"):
    index = FlatIndex(D, metric=metric)
    index.add(x)
    return index.search(q, k)


def test_top_k_equals_flat_ground_truth(store, data):
    x, q, *_ = data
    dist, ids = store.search(q, 10)
    scores, gt = _flat(x, q, 10)
    assert (ids == gt).all()
    np.testing.assert_allclose(dist, 1 - scores, atol=1e-5)     # cosine distance = 1 - cos
    assert (np.diff(dist, axis=1) >= 0).all()


def test_l2_metric_matches_flat(tmp_path, data):
    x, q, *_ = data
    s = SqliteVecStore(tmp_path / "l2.db", D, metric="l2", metadata=(), extra=())
    s.insert(range(N), x)
    dist, ids = s.search(q, 5)
    sq, gt = _flat(x, q, 5, metric="l2")
    assert (ids == gt).all()
    np.testing.assert_allclose(dist ** 2, sq, rtol=1e-4)          # sqlite-vec: plain L2
    s.close()


def test_metadata_filter_equals_filtered_brute_force(store, data):
    x, q, sources, dates, _ = data
    _, ids = store.search(q, 5, source="reuters", date=(">=", "2017-02-01"))
    keep = np.array([s == "reuters" and d >= "2017-02-01" for s, d in zip(sources, dates,
                                                                          strict=True)])
    sub = np.flatnonzero(keep)
    _, local = _flat(x[sub], q, 5)
    assert (ids == sub[local]).all()
    for row in store.rows(ids[0]):
        assert row["source"] == "reuters" and row["date"] >= "2017-02-01"
    with pytest.raises(ValueError, match="metadata columns"):
        store.search(q, 5, text="x")
    with pytest.raises(ValueError, match="operator"):
        store.search(q, 5, date=("LIKE", "2017%"))


def test_join_with_an_ordinary_table(store, data):
    x, q, sources, *_ = data
    conn = store.conn
    conn.execute("CREATE TABLE outlets(name TEXT PRIMARY KEY, country TEXT)")
    conn.executemany("INSERT INTO outlets VALUES (?, ?)",
                     [("bbc", "UK"), ("reuters", "UK"), ("cnn", "US")])
    rows = conn.execute(
        "WITH knn AS (SELECT id, source, distance FROM items WHERE embedding MATCH ? AND k = 10)"
        " SELECT knn.id, outlets.country FROM knn JOIN outlets ON outlets.name = knn.source"
        " ORDER BY knn.distance", (q[0].tobytes(),)).fetchall()
    _, gt = _flat(x, q[:1], 10)
    assert [r[0] for r in rows] == gt[0].tolist()
    country = {"bbc": "UK", "reuters": "UK", "cnn": "US"}
    assert [r[1] for r in rows] == [country[sources[i]] for i in gt[0]]


def test_rolled_back_insert_leaves_results_unchanged(store, data):
    x, q, *_ = data
    before = store.search(q, 10)
    near = q[:3] * 1.0                                      # exact copies of the queries
    with pytest.raises(RuntimeError, match="abort"):
        with store.conn:                                    # one transaction
            store.insert([10_000, 10_001, 10_002], near, source=["bbc"] * 3,
                         date=["2017-01-01"] * 3)
            assert (store.search(q[:3], 1)[1][:, 0] == [10_000, 10_001, 10_002]).all()
            raise RuntimeError("abort")
    after = store.search(q, 10)
    assert len(store) == N
    assert (after[1] == before[1]).all() and np.array_equal(after[0], before[0])


def test_persistence_across_connections_and_processes(tmp_path, data):
    x, q, sources, dates, texts = data
    path = tmp_path / "persist.db"
    s = SqliteVecStore(path, D)
    s.insert(range(N), x, source=sources, date=dates, text=texts)
    want = s.search(q, 10)[1]
    s.close()
    again = SqliteVecStore(path, D)
    assert len(again) == N and (again.search(q, 10)[1] == want).all()
    again.close()
    np.save(tmp_path / "q.npy", q)
    code = ("import numpy as np, sys; from embedlab.vectordb import SqliteVecStore; "
            f"s = SqliteVecStore(sys.argv[1], {D}); "
            "print(' '.join(map(str, s.search(np.load(sys.argv[2]), 10)[1].ravel())))")
    out = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "q.npy")],
                         capture_output=True, text=True, check=True).stdout
    assert [int(t) for t in out.split()] == want.ravel().tolist()


def test_store_bad_input(tmp_path, store, data):
    x, q, *_ = data
    with pytest.raises(ValueError, match=f"{D} columns"):
        store.insert([1], x[:1, :10])
    with pytest.raises(ValueError, match="one id per"):
        store.insert([1, 2], x[:1])
    with pytest.raises(ValueError, match="unknown columns"):
        store.insert([5000], x[:1], colour=["red"])
    with pytest.raises(ValueError, match="must be given"):
        store.insert([5000], x[:1], source=["bbc"])
    with pytest.raises(ValueError, match="queries"):
        store.search(q[:, :5], 3)
    with pytest.raises(ValueError, match="NaN"):
        store.search(np.full((1, D), np.nan, np.float32), 3)
    with pytest.raises(ValueError, match="k must"):
        store.search(q, 0)
    with pytest.raises(ValueError, match="metric"):
        SqliteVecStore(tmp_path / "bad.db", D, metric="dot")
    with pytest.raises(ValueError, match="identifier"):
        SqliteVecStore(tmp_path / "bad.db", D, table="items; DROP TABLE x")


def test_reciprocal_rank_fusion_known_answer():
    # a: ranks 1 and 2 -> 1/61 + 1/62; b: rank 2 and 1 -> the same; c: rank 3 in one list
    fused = reciprocal_rank_fusion([[7, 3, 9], [3, 7]], k=60)
    assert [i for i, _ in fused] == [3, 7, 9]                 # tie between 3 and 7: smaller id
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2][1] == pytest.approx(1 / 63)
    # an item first in one list and absent from the other loses to one second in both
    fused = reciprocal_rank_fusion([[1, 2], [3, 2]], k=0)
    assert dict(fused) == pytest.approx({1: 1.0, 3: 1.0, 2: 1.0})
    fused = reciprocal_rank_fusion([[1, 2], [3, 2]], k=60, top=1)
    assert fused[0][0] == 2 and len(fused) == 1
    weighted = reciprocal_rank_fusion([[1, 2], [2, 1]], k=60, weights=[2.0, 1.0])
    assert weighted[0][0] == 1
    assert reciprocal_rank_fusion([[4, -1, -1]]) == [(4, pytest.approx(1 / 61))]
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([[1], [2]], weights=[1.0])
    with pytest.raises(TypeError, match="rankings"):
        reciprocal_rank_fusion([])
    with pytest.raises(ValueError, match="k must"):
        reciprocal_rank_fusion([[1]], k=-1)


def test_lancedb_round_trip_and_ivfpq(tmp_path, data):
    import lancedb

    x, q, sources, *_ = data
    rng = np.random.default_rng(1)
    big = np.concatenate([x, rng.standard_normal((3000 - N, D)).astype(np.float32)])
    src = sources + ["other"] * (3000 - N)
    table = lance_table(tmp_path / "lance", "items", big, source=src)
    reopened = lancedb.connect(str(tmp_path / "lance")).open_table("items")
    assert reopened.count_rows() == 3000
    index = FlatIndex(D, metric="cosine")
    index.add(big)
    _, exact = index.search(q, 10)
    _, flat_ids = lance_search(reopened, q, 10)                # no index yet: exact scan
    assert (flat_ids == exact).all()
    lance_build_ivfpq(table, nlist=8, m=4, nbits=8)
    _, ann = lance_search(table, q, 10, nprobe=8, refine_factor=10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ann, exact, strict=True)])
    assert overlap >= 0.5
    _, filt = lance_search(table, q, 5, nprobe=8, where="source = 'bbc'")
    assert all(src[i] == "bbc" for i in filt.ravel() if i >= 0)
