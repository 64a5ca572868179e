"""PQIndex and IVFPQIndex: faiss's code layout and size, ADC/SDC known answers, recall parity."""

import faiss
import numpy as np
import pytest

from embedlab.bench import load_dataset, recall_at_k
from embedlab.index import IVFPQIndex, PQIndex
from embedlab.index.pq import (
    adc_tables,
    code_size,
    decode,
    encode,
    pack_codes,
    reconstruction_error,
    unpack_codes,
)


@pytest.fixture(scope="module")
def glove():
    return load_dataset("glove", n_base=20000, n_query=1000, gt_k=10)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    return rng.standard_normal((3000, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def pq_small(small):
    idx = PQIndex(16, m=4, nbits=6, metric="l2", seed=0)
    idx.train(small)
    idx.add(small)
    return idx


@pytest.mark.parametrize("nbits", [1, 3, 5, 8, 11, 16])
def test_pack_unpack_round_trip_and_size(nbits):
    rng = np.random.default_rng(nbits)
    codes = rng.integers(0, 1 << nbits, size=(50, 7))
    packed = pack_codes(codes, nbits)
    assert packed.dtype == np.uint8 and packed.shape == (50, code_size(7, nbits))
    np.testing.assert_array_equal(unpack_codes(packed, 7, nbits), codes)


@pytest.mark.parametrize("nbits", [4, 6, 8])
def test_encoding_and_layout_match_faiss(small, nbits):
    ref = faiss.ProductQuantizer(16, 4, nbits)
    ref.train(small)
    books = faiss.vector_to_array(ref.centroids).reshape(4, 1 << nbits, 4)
    ours = pack_codes(encode(small, books), nbits)
    theirs = ref.compute_codes(small)
    assert ours.shape == theirs.shape  # code size equals faiss's
    assert (ours == theirs).all(axis=1).mean() > 0.999  # (float ties may differ)
    np.testing.assert_allclose(decode(unpack_codes(theirs, 4, nbits), books), ref.decode(theirs),
                               atol=1e-6)


def test_adc_distance_is_the_distance_to_the_reconstruction(small, pq_small):
    q = small[:20] + 0.3
    D, ids = pq_small.search(q, 5)
    rec = pq_small.reconstruct_n()
    exact = ((q[:, None, :] - rec[ids]) ** 2).sum(-1)
    np.testing.assert_allclose(D, exact, rtol=1e-4, atol=1e-4)
    # and the top-1 is the reconstruction nearest the query
    best = ((q[:, None, :] - rec[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(ids[:, 0], best)


def test_sdc_is_the_distance_between_reconstructions(small, pq_small):
    q = small[:20] + 0.3
    D, ids = pq_small.search(q, 5, symmetric=True)
    qrec = pq_small.decode(pq_small.encode(q))
    rec = pq_small.reconstruct_n()
    exact = ((qrec[:, None, :] - rec[ids]) ** 2).sum(-1)
    np.testing.assert_allclose(D, exact, rtol=1e-4, atol=1e-4)


def test_ip_tables_are_sub_products(small):
    books = np.random.default_rng(1).standard_normal((4, 8, 4)).astype(np.float32)
    lut = adc_tables(small[:3], books, "ip")
    np.testing.assert_allclose(lut[1, 2, 5], small[1, 8:12] @ books[2, 5], rtol=1e-5)


def test_reconstruction_error_falls_with_m(small):
    errs = []
    for m in (1, 2, 4, 8):
        idx = PQIndex(16, m=m, nbits=4, seed=0)
        idx.train(small)
        errs.append(reconstruction_error(small, idx.codebooks))
    assert errs == sorted(errs, reverse=True) and errs[-1] < 0.6 * errs[0]


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_pq_recall_within_003_of_faiss(glove, metric):
    ds = glove
    fm = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    ref = faiss.IndexPQ(ds.dim, 5, 6, fm)  # 30 bits: 4 bytes a vector
    ref.train(ds.xb)
    ref.add(ds.xb)
    ours = PQIndex(ds.dim, m=5, nbits=6, metric=metric, seed=0)
    ours.train(ds.xb)
    ours.add(ds.xb)
    for k in (10,):
        r_ours = recall_at_k(ours.search(ds.xq, k)[1], ds.gt, k)
        r_faiss = recall_at_k(ref.search(ds.xq, k)[1], ds.gt, k)
        assert abs(r_ours - r_faiss) <= 0.03, (r_ours, r_faiss)
    assert ours.codes.nbytes / ours.ntotal == ref.code_size == 4


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_ivfpq_recall_within_003_of_faiss(glove, metric):
    ds = glove
    fm = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    quant = faiss.IndexFlatL2(ds.dim) if metric == "l2" else faiss.IndexFlatIP(ds.dim)
    ref = faiss.IndexIVFPQ(quant, ds.dim, 64, 5, 6, fm)
    ref.train(ds.xb)
    ref.add(ds.xb)
    ours = IVFPQIndex(ds.dim, nlist=64, m=5, nbits=6, metric=metric, seed=0)
    ours.train(ds.xb)
    ours.add(ds.xb)
    for nprobe in (4, 16):
        ref.nprobe = nprobe
        r_ours = recall_at_k(ours.search(ds.xq, 10, nprobe=nprobe)[1], ds.gt, 10)
        r_faiss = recall_at_k(ref.search(ds.xq, 10)[1], ds.gt, 10)
        assert abs(r_ours - r_faiss) <= 0.03, (nprobe, r_ours, r_faiss)
    assert ours.codes.nbytes / ours.ntotal == ref.code_size


def test_ivfpq_scores_match_reconstructions(small):
    for metric in ("l2", "ip"):
        idx = IVFPQIndex(16, nlist=8, m=4, nbits=5, metric=metric, seed=0)
        idx.train(small)
        idx.add(small)
        q = small[:15] * 0.5
        D, ids = idx.search(q, 6, nprobe=8)
        rec = idx.reconstruct_all()[ids]
        exact = (((q[:, None, :] - rec) ** 2).sum(-1) if metric == "l2"
                 else np.einsum("qd,qkd->qk", q, rec))
        np.testing.assert_allclose(D, exact, rtol=1e-4, atol=1e-4)
        assert idx.codes.shape == (3000, code_size(4, 5))


@pytest.mark.parametrize("cls", [PQIndex, IVFPQIndex])
def test_save_load_round_trip(tmp_path, small, cls):
    kw = {"nlist": 8} if cls is IVFPQIndex else {}
    idx = cls(16, m=4, nbits=7, metric="cosine", seed=2, **kw)
    idx.train(small)
    idx.add(small)
    idx.save(tmp_path / "idx.npz")
    back = cls.load(tmp_path / "idx.npz")
    extra = {"nprobe": 3} if cls is IVFPQIndex else {}
    D1, I1 = idx.search(small[:40], 8, **extra)
    D2, I2 = back.search(small[:40], 8, **extra)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)
    assert back.nbytes == idx.nbytes


def test_bad_input(small):
    with pytest.raises(ValueError, match=r"nbits must be in 1..16"):
        PQIndex(16, m=4, nbits=17)
    with pytest.raises(ValueError, match=r"nbits must be in 1..16"):
        IVFPQIndex(16, nlist=4, m=4, nbits=0)
    with pytest.raises(ValueError, match=r"dim \(16\) must be divisible by m \(5\)"):
        PQIndex(16, m=5)
    with pytest.raises(ValueError, match=r"dim \(16\) must be divisible by m \(3\)"):
        IVFPQIndex(16, nlist=4, m=3)
    idx = PQIndex(16, m=4, nbits=8)
    with pytest.raises(ValueError, match="call train"):
        idx.search(small[:2], 1)
    with pytest.raises(ValueError, match="at least 2\\^nbits = 256"):
        idx.train(small[:100])
    ivf = IVFPQIndex(16, nlist=4, m=4, nbits=4)
    ivf.train(small)
    with pytest.raises(ValueError, match="nprobe must be in 1..4"):
        ivf.search(small[:2], 1, nprobe=5)
    with pytest.raises(ValueError, match="16 columns"):
        ivf.add(small[:2, :8])
    with pytest.raises(ValueError, match="NaN"):
        ivf.search(np.full((1, 16), np.nan), 1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        ivf.search(small[:1], 0)
