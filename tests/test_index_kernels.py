"""The compiled single-query paths give the ids of the readable numpy versions, for every index.

Identical ids is the contract of ``embedlab.index.kernels``: the kernels compute what decides a
ranking the way the numpy path does (or in float64 where the order of a sum cannot be matched), and
break ties towards the lower id like ``np.lexsort``. Small random data keeps compile time low.
"""

import numpy as np
import pytest

from embedlab.index import FlatIndex, HNSWIndex, IVFIndex, IVFPQIndex, PQIndex
from embedlab.index import kernels as K
from embedlab.index.flat import flat_search_numpy
from embedlab.index.hnsw import knn_search
from embedlab.index.ivf import ivf_search_numpy
from embedlab.index.ivfpq import ivfpq_search_numpy
from embedlab.index.pq import pq_search_numpy

METRICS = ["ip", "l2", "cosine"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1500, 16)).astype(np.float32)
    q = rng.standard_normal((60, 16)).astype(np.float32)
    return x, q


def _one_by_one(index, q, k, **kw):
    outs = [index.search(q[i], k, **kw) for i in range(len(q))]
    return np.vstack([d for d, _ in outs]), np.vstack([i for _, i in outs])


def test_topk_push_keeps_the_best_sorted_with_ties_to_the_lower_id():
    sd, si = np.empty(3), np.empty(3, np.int64)
    K.topk_reset(sd, si)
    for s, i in [(0.5, 7), (0.9, 3), (0.5, 2), (0.1, 1), (0.9, 8), (0.5, 0)]:
        K.topk_push(sd, si, s, i)
    assert sd.tolist() == [0.9, 0.9, 0.5] and si.tolist() == [3, 8, 0]
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.9, 0.5])
    ids = np.array([7, 3, 2, 1, 8, 0])
    assert ids[K.rank(scores, ids, 3)].tolist() == [3, 8, 0]


@pytest.mark.parametrize("metric", METRICS)
def test_flat_kernel_equals_numpy(data, metric):
    x, q = data
    idx = FlatIndex(16, metric=metric)
    idx.add(x)
    xs = idx.xb
    D_np, I_np = flat_search_numpy(xs, idx._prepare(q, "q"), 7, "ip" if metric == "cosine"
                                   else metric)
    D1, I1 = _one_by_one(idx, q, 7)
    D_b, I_b = idx.search(q, 7)           # a batch: blocked sgemm and the same selection
    D_few, I_few = idx.search(q[:5], 7)   # a few queries: the kernel in a loop
    np.testing.assert_array_equal(I1, I_np)
    np.testing.assert_array_equal(I_b, I_np)
    np.testing.assert_array_equal(I_few, I_np[:5])
    np.testing.assert_allclose(D1, D_np, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(D_b, D_np, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_ivf_kernel_equals_numpy(data, metric):
    x, q = data
    idx = IVFIndex(16, nlist=24, metric=metric)
    idx.train(x)
    idx.add(x)
    for nprobe in (1, 5, 24):
        _, I_np = ivf_search_numpy(idx, q, 10, nprobe)
        np.testing.assert_array_equal(_one_by_one(idx, q, 10, nprobe=nprobe)[1], I_np)
        np.testing.assert_array_equal(idx.search(q, 10, nprobe=nprobe)[1], I_np)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nbits", [8, 6])
def test_pq_kernel_equals_numpy(data, metric, nbits):
    x, q = data
    idx = PQIndex(16, m=4, nbits=nbits, metric=metric, niter=5)
    idx.train(x)
    idx.add(x)
    D_np, I_np = pq_search_numpy(idx, q, 10)
    D1, I1 = _one_by_one(idx, q, 10)
    np.testing.assert_array_equal(I1, I_np)
    np.testing.assert_array_equal(idx.search(q, 10)[1], I_np)
    np.testing.assert_allclose(D1, D_np, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nbits", [8, 5])  # 256 centroids: the SIMD table; 32: the plain loop
def test_ivfpq_kernel_equals_numpy(data, metric, nbits):
    x, q = data
    idx = IVFPQIndex(16, nlist=16, m=4, nbits=nbits, metric=metric, pq_niter=5)
    idx.train(x)
    idx.add(x)
    for nprobe in (1, 4):
        D_np, I_np = ivfpq_search_numpy(idx, q, 10, nprobe)
        D1, I1 = _one_by_one(idx, q, 10, nprobe=nprobe)
        np.testing.assert_array_equal(I1, I_np)
        np.testing.assert_array_equal(idx.search(q, 10, nprobe=nprobe)[1], I_np)
        np.testing.assert_allclose(D1, D_np, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_hnsw_kernel_equals_the_plain_python_walk(data, metric):
    x, q = data
    idx = HNSWIndex(16, metric=metric, M=8, ef_construction=40, seed=1)
    idx.add(x[:800])
    want = knn_search(idx, q[:25], 5, ef=20)
    np.testing.assert_array_equal(idx.search(q[:25], 5, ef=20)[1], want)
    np.testing.assert_array_equal(_one_by_one(idx, q[:25], 5, ef=20)[1], want)


def test_hnsw_visited_tags_wrap_around_without_stale_marks():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    idx = HNSWIndex(8, metric="l2", M=6, ef_construction=20, seed=0)
    idx.add(x)
    want = idx.search(x[:3], 4, ef=16)[1]
    buf = idx._buffers(16)
    buf[1] = 65533  # two searches before the uint16 tags run out
    buf[0][:7] = 65533  # marks left by the search that used that tag
    for _ in range(3):  # 65534, 65535, then the marks are cleared and the tags start again
        got = idx.search(x[:3], 4, ef=16)[1]
        np.testing.assert_array_equal(got, want)
    assert 0 < idx._tag < 10 and idx._visited.dtype == np.uint16
    assert idx._visited.max() <= idx._tag  # no mark from before the wrap survives


@pytest.mark.parametrize("make", [
    lambda: FlatIndex(16, metric="ip"),
    lambda: IVFIndex(16, nlist=8, metric="ip"),
    lambda: PQIndex(16, m=4, nbits=8, niter=3),
    lambda: IVFPQIndex(16, nlist=8, m=4, nbits=8, pq_niter=3),
    lambda: HNSWIndex(16, M=6, ef_construction=12),
    lambda: PQIndex(16, m=4, nbits=4, niter=3),
])
def test_one_query_path_rejects_nan_and_accepts_shapes(data, make):
    x, q = data
    idx = make()
    if idx.needs_training:
        idx.train(x[:500])
    idx.add(x[:500])
    bad = q[:1].copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        idx.search(bad, 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        idx.search(np.where(np.isnan(bad), np.inf, bad)[0], 3)
    a = idx.search(q[0], 3)[1]
    b = idx.search(q[:1], 3)[1]
    c = idx.search(q[:1].astype(np.float64), 3)[1]  # not float32: the general path
    assert a.shape == (1, 3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
