"""IVFIndex: exact at nprobe = nlist, recall parity with faiss IndexIVFFlat, save/load, errors."""

import faiss
import numpy as np
import pytest

from embedlab.bench import recall_at_k
from embedlab.index import FlatIndex, IVFIndex


def mixture(n, d=32, clusters=100, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32) * 2
    return (centres[rng.integers(clusters, size=n)]
            + rng.standard_normal((n, d)).astype(np.float32))


@pytest.fixture(scope="module")
def data():
    xb, xq = mixture(20000), mixture(2000, seed=1)
    return xb, xq


@pytest.fixture(scope="module")
def ground_truth(data):
    xb, xq = data
    out = {}
    for metric in ("l2", "ip"):
        flat = FlatIndex(32, metric=metric)
        flat.add(xb)
        out[metric] = flat.search(xq, 10)[1]
    return out


@pytest.fixture(scope="module")
def built(data):
    xb, _ = data
    out = {}
    for metric in ("l2", "ip"):
        idx = IVFIndex(32, nlist=64, metric=metric, seed=0)
        idx.train(xb)
        idx.add(xb)
        out[metric] = idx
    return out


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_nprobe_nlist_is_exact(data, built, metric):
    xb, xq = data
    flat = FlatIndex(32, metric=metric)
    flat.add(xb)
    D, ids = built[metric].search(xq[:200], 10, nprobe=64)
    Df, If = flat.search(xq[:200], 10)
    np.testing.assert_array_equal(ids, If)
    np.testing.assert_allclose(D, Df, rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def glove():
    from embedlab.bench import load_dataset

    return load_dataset("glove", n_base=20000, n_query=2000, gt_k=10)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_recall_within_002_of_faiss(glove, metric):
    ds = glove
    fm = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    quant = faiss.IndexFlatL2(ds.dim) if metric == "l2" else faiss.IndexFlatIP(ds.dim)
    ref = faiss.IndexIVFFlat(quant, ds.dim, 64, fm)
    ref.train(ds.xb)
    ref.add(ds.xb)
    ours = IVFIndex(ds.dim, nlist=64, metric=metric, seed=0)
    ours.train(ds.xb)
    ours.add(ds.xb)
    for nprobe in (4, 16):
        ref.nprobe = nprobe
        r_ours = recall_at_k(ours.search(ds.xq, 10, nprobe=nprobe)[1], ds.gt, 10)
        r_faiss = recall_at_k(ref.search(ds.xq, 10)[1], ds.gt, 10)
        assert abs(r_ours - r_faiss) <= 0.02, (nprobe, r_ours, r_faiss)


def test_lists_partition_the_ids_and_recall_grows_with_nprobe(data, ground_truth, built):
    idx = built["l2"]
    assert idx.list_sizes().sum() == idx.ntotal == 20000
    assert sorted(idx.ids.tolist()) == list(range(20000))
    xb, xq = data
    # every stored vector sits in the list of its nearest centroid
    d = ((xb[:500, None, :] - idx.centroids[None]) ** 2).sum(-1).argmin(1)
    lists = np.repeat(np.arange(64), idx.list_sizes())
    where = np.empty(20000, dtype=np.int64)
    where[idx.ids] = lists
    np.testing.assert_array_equal(where[:500], d)
    recalls = [recall_at_k(idx.search(xq, 10, nprobe=p)[1], ground_truth["l2"], 10)
               for p in (1, 2, 8, 32)]
    assert recalls == sorted(recalls) and recalls[-1] > 0.95


def test_default_nprobe_and_results_sorted(data, built):
    _, xq = data
    D, ids = built["ip"].search(xq[:50], 5)
    D1, I1 = built["ip"].search(xq[:50], 5, nprobe=1)
    np.testing.assert_array_equal(ids, I1)
    assert np.all(np.diff(D, axis=1) <= 0)


def test_few_candidates_pad_with_minus_one():
    x = np.array([[0, 0], [0.1, 0], [10, 10], [10.1, 10]], dtype=np.float32)
    idx = IVFIndex(2, nlist=2, metric="l2")
    idx.train(x)
    idx.add(x)
    D, ids = idx.search(np.array([[0, 0]]), 4, nprobe=1)
    assert ids[0, :2].tolist() == [0, 1] and ids[0, 2:].tolist() == [-1, -1]
    assert np.isposinf(D[0, 2:]).all()


def test_save_load_round_trip(tmp_path, data, built):
    _, xq = data
    built["ip"].save(tmp_path / "ivf.npz")
    back = IVFIndex.load(tmp_path / "ivf.npz")
    for nprobe in (1, 5):
        D1, I1 = built["ip"].search(xq[:100], 10, nprobe=nprobe)
        D2, I2 = back.search(xq[:100], 10, nprobe=nprobe)
        np.testing.assert_array_equal(I1, I2)
        np.testing.assert_array_equal(D1, D2)


def test_incremental_add_keeps_ids_in_add_order(data):
    xb, xq = data
    one = IVFIndex(32, nlist=16, seed=1)
    one.train(xb[:5000])
    one.add(xb[:5000])
    two = IVFIndex(32, nlist=16, seed=1)
    two.train(xb[:5000])
    two.add(xb[:2000])
    two.add(xb[2000:5000])
    np.testing.assert_array_equal(one.search(xq[:50], 5, nprobe=3)[1],
                                  two.search(xq[:50], 5, nprobe=3)[1])
    two.reset()
    assert two.ntotal == 0 and (two.search(xq[:2], 3)[1] == -1).all()


def test_bad_input(data):
    xb, _ = data
    idx = IVFIndex(32, nlist=8)
    with pytest.raises(ValueError, match="call train"):
        idx.search(xb[:2], 3)
    with pytest.raises(ValueError, match="call train"):
        idx.add(xb[:2])
    with pytest.raises(ValueError, match="at least nlist=8"):
        idx.train(xb[:5])
    idx.train(xb[:1000])
    with pytest.raises(ValueError, match="nprobe must be in 1..8"):
        idx.search(xb[:2], 3, nprobe=9)
    with pytest.raises(ValueError, match="nprobe must be in 1..8"):
        idx.search(xb[:2], 3, nprobe=0)
    with pytest.raises(ValueError, match="32 columns"):
        idx.add(xb[:2, :16])
    with pytest.raises(ValueError, match="k must be >= 1"):
        idx.search(xb[:2], 0)
    with pytest.raises(ValueError, match="nprobe must be in 1..4"):
        IVFIndex(32, nlist=4, nprobe=5)
