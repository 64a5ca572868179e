"""Choosing an index: the memory calculator, the recommendation table, and sharded search."""

import numpy as np
import pytest

from embedlab.index import (
    FlatIndex,
    HNSWIndex,
    IVFIndex,
    PQIndex,
    ShardedIndex,
    memory_bytes,
    recommend,
)
from embedlab.index.recommend import estimate_latency_ms


def test_memory_calculator_known_answers():
    # the course's example: 100M x 1024 float32 is about 400 GB before any index structure
    assert memory_bytes("flat", 100_000_000, 1024) == 409_600_000_000
    # PQ with m=64 bytes per vector: 6.4 GB of codes plus 1 MB of codebooks
    assert memory_bytes("pq", 100_000_000, 1024, m=64) == 6_400_000_000 + 256 * 1024 * 4
    assert memory_bytes("ivfpq", 1000, 64, m=8, nlist=10) == 1000 * 16 + 10 * 64 * 4 + 256 * 64 * 4
    assert memory_bytes("ivf", 1000, 64, nlist=10) == 1000 * 64 * 4 + 8000 + 10 * 64 * 4
    hnsw = memory_bytes("hnsw", 1_000_000, 128, M=16)
    assert 1_000_000 * (128 * 4 + 33 * 4) < hnsw < 1_000_000 * (128 * 4 + 36 * 4)


def test_memory_calculator_agrees_with_the_indexes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 32)).astype(np.float32)
    flat = FlatIndex(32)
    flat.add(x)
    assert flat.nbytes == memory_bytes("flat", 2000, 32)
    pq = PQIndex(32, m=4, nbits=8)
    pq.train(x)
    pq.add(x)
    assert pq.nbytes == memory_bytes("pq", 2000, 32, m=4, nbits=8)
    ivf = IVFIndex(32, nlist=16)
    ivf.train(x)
    ivf.add(x)
    assert abs(ivf.nbytes - memory_bytes("ivf", 2000, 32, nlist=16)) / ivf.nbytes < 0.05
    h = HNSWIndex(32, M=8, ef_construction=16)
    h.add(x)
    assert abs(h.nbytes - memory_bytes("hnsw", 2000, 32, M=8)) / h.nbytes < 0.1


def test_recommend_reproduces_the_scale_table():
    kinds = {n: recommend(n, 768) for n in (100_000, 1_000_000, 10_000_000, 500_000_000,
                                            5_000_000_000)}
    assert kinds[100_000].index == "flat" and kinds[100_000].shards == 1
    assert kinds[1_000_000].index == "hnsw"
    assert kinds[10_000_000].index == "hnsw"
    assert kinds[500_000_000].index == "ivfpq" and kinds[500_000_000].shards == 1
    big = kinds[5_000_000_000]
    assert big.index == "ivfpq" and big.shards >= 5
    assert big.memory_bytes / big.shards <= 64e9
    assert "shards" in str(big)


def test_recommend_respects_each_constraint():
    # a bigger memory budget keeps HNSW longer
    assert recommend(50_000_000, 768).index == "ivfpq"
    assert recommend(50_000_000, 768, memory_budget_bytes=512 * 10**9).index == "hnsw"
    # a tight latency target rules exact search out
    assert recommend(100_000, 768, latency_ms=5.0).index == "hnsw"
    # a recall target above what PQ codes reach keeps full vectors (sharded HNSW)
    r = recommend(1_000_000_000, 768, target_recall=0.97)
    assert r.index == "hnsw" and r.shards > 1
    # a tight latency target at a billion needs more shards than memory alone would
    assert recommend(1_000_000_000, 768, latency_ms=5).shards > 1
    lat = [estimate_latency_ms("flat", n, 128) for n in (10_000, 100_000)]
    assert np.isclose(lat[1] / lat[0], 10)


def test_recommend_bad_input():
    with pytest.raises(ValueError, match="target_recall"):
        recommend(1000, 64, target_recall=1.5)
    with pytest.raises(ValueError, match="latency_ms"):
        recommend(1000, 64, latency_ms=0)
    with pytest.raises(ValueError, match="n must be"):
        recommend(0, 64)
    with pytest.raises(TypeError, match="dim must be an integer"):
        recommend(1000, "64")
    with pytest.raises(ValueError, match="kind must be one of"):
        memory_bytes("lsh", 10, 10)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_sharded_flat_search_equals_one_flat_index(metric):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1003, 16)).astype(np.float32)
    q = rng.normal(size=(20, 16)).astype(np.float32)
    one = FlatIndex(16, metric=metric)
    one.add(x)
    sharded = ShardedIndex(lambda: FlatIndex(16, metric=metric), 4)
    sharded.add(x)
    assert sharded.ntotal == 1003 and sharded.nbytes == one.nbytes
    d1, i1 = one.search(q, 10)
    d2, i2 = sharded.search(q, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(d1, d2, rtol=1e-5, atol=1e-5)


def test_sharded_hnsw_passes_parameters_and_matches_faiss_index_shards():
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(900, 8)).astype(np.float32)
    q = rng.normal(size=(10, 8)).astype(np.float32)
    sharded = ShardedIndex(lambda: HNSWIndex(8, metric="l2", M=8, ef_construction=32), 3)
    sharded.add(x)
    _, ids = sharded.search(q, 5, ef=64)
    shards = faiss.IndexShards(8, False, True)  # successive ids, like ours
    parts = []
    for s in range(3):
        f = faiss.IndexFlatL2(8)
        f.add(x[s * 300:(s + 1) * 300])
        parts.append(f)
        shards.add_shard(f)
    _, fids = shards.search(q, 5)
    assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids, fids, strict=True)]) > 0.95
    with pytest.raises(ValueError, match="ef must be >= k"):
        sharded.search(q, 5, ef=2)


def test_sharded_bad_input():
    with pytest.raises(TypeError, match="make_shard"):
        ShardedIndex(None, 2)
    s = ShardedIndex(lambda: FlatIndex(4), 3)
    with pytest.raises(ValueError, match="empty"):
        s.search(np.zeros((1, 4), np.float32), 1)
    with pytest.raises(ValueError, match="at least n_shards"):
        s.add(np.zeros((2, 4), np.float32))
    s.add(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="once"):
        s.add(np.eye(4, dtype=np.float32))


def test_recall_comes_from_measured_curves():
    from embedlab.index.recommend import Throughput, max_recall, recalls_from_curves

    rows = [{"library": "embedlab", "index": "IVFPQ", "recall": 0.41},
            {"library": "embedlab", "index": "IVF-PQ", "recall": 0.62},
            {"library": "embedlab", "index": "HNSW", "recall": 0.97},
            {"library": "faiss", "index": "HNSW", "recall": 0.999},   # a peer's: ignored
            {"library": "embedlab", "index": "AnisotropicPQ", "recall": 0.7}]  # no kind: skipped
    rec = recalls_from_curves(rows)
    assert rec == {"ivfpq": 0.62, "hnsw": 0.97}
    tp = Throughput(recalls=rec)
    assert max_recall("ivfpq", tp) == 0.62 and max_recall("hnsw", tp) == 0.97
    assert max_recall("flat", tp) == 1.0  # not measured: the exact index's recall
    # IVF-PQ capped at 0.62 cannot meet 0.9: a billion vectors go to sharded HNSW instead
    from embedlab.index import recommend

    assert recommend(10**9, 768, target_recall=0.9, throughput=tp).index == "hnsw"
    assert recommend(10**9, 768, target_recall=0.6, throughput=tp).index == "ivfpq"
    with pytest.raises(ValueError, match="no embedlab row"):
        recalls_from_curves([{"library": "faiss", "index": "HNSW", "recall": 0.9}])
    with pytest.raises(ValueError, match="recall must be in"):
        recalls_from_curves([{"index": "HNSW", "recall": 1.5}])
