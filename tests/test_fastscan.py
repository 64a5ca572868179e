"""4-bit fast scan: block layout, uint8 tables, the shuffle, and exact re-ranking.

The fast scan must return exactly the ids of float ADC on the same codes (``pq_search_numpy``),
and the ``vpshufb`` route must give the same sums as the plain loop.
"""

import faiss
import numpy as np
import pytest

from embedlab import bench
from embedlab.index import AnisotropicPQIndex, PQIndex
from embedlab.index import fastscan as FS
from embedlab.index.pq import fastscan_blocks, pq_search_numpy, unpack_codes


def test_blocks_round_trip_and_layout():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 16, (70, 5)).astype(np.uint8)  # odd m, n not a multiple of 32
    blocks = FS.pack_blocks(codes)
    assert blocks.dtype == np.uint8 and blocks.size == 3 * 3 * 32  # 3 blocks x 3 pairs x 32
    np.testing.assert_array_equal(FS.unpack_blocks(blocks, 70, 5), codes)
    # vector 33 (block 1, lane 1), pair 1: codes 2 (low nibble) and 3 (high nibble)
    assert blocks[(1 * 3 + 1) * 32 + 1] == codes[33, 2] | (codes[33, 3] << 4)
    with pytest.raises(ValueError, match="4-bit"):
        FS.pack_blocks(np.array([[16]]))


def test_quantized_tables_bound_the_error_of_every_sum():
    rng = np.random.default_rng(1)
    t = rng.standard_normal((7, 16))
    q, a, bias = FS.quantize_tables(t)
    assert q.dtype == np.uint8 and q.shape == (8, 16) and q[7].sum() == 0
    assert q.max() == 255 and q.min(axis=1)[:7].tolist() == [0] * 7
    codes = rng.integers(0, 16, (500, 7))
    exact = t[np.arange(7), codes].sum(1)
    approx = q[np.arange(7), codes].sum(1) / a + bias
    assert np.abs(approx - exact).max() <= 7 * 0.5 / a + 1e-9  # half a step per sub-quantiser


@pytest.mark.parametrize("npairs", [1, 4, 13])
def test_shuffle_and_plain_loop_give_the_same_sums(npairs):
    rng = np.random.default_rng(npairs)
    codes = rng.integers(0, 16, (64, 2 * npairs)).astype(np.uint8)
    blocks = FS.pack_blocks(codes)
    qlut = rng.integers(0, 256, 2 * npairs * 16).astype(np.uint8)
    want = qlut.reshape(-1, 16)[np.arange(2 * npairs), codes].sum(1)
    thr = np.uint16(np.median(want))
    for b in range(2):
        acc_s = np.empty(32, np.uint16)
        mask_s = FS.lut16_block_scalar(blocks, b * npairs * 32, qlut, npairs, thr, acc_s)
        np.testing.assert_array_equal(acc_s, want[32 * b:32 * (b + 1)])
        lanes = sum(1 << v for v in range(32) if want[32 * b + v] >= thr)
        assert int(mask_s) == lanes
        if FS.SIMD:
            acc_v = np.empty(32, np.uint16)
            mask_v = _simd_block(blocks, b * npairs * 32, qlut, npairs, thr, acc_v)
            np.testing.assert_array_equal(acc_v, acc_s)
            assert int(mask_v) == lanes


from numba import njit  # noqa: E402


@njit(cache=True)
def _simd_block(blocks, start, qlut, npairs, thr, acc):
    return FS.lut16_block(blocks, start, qlut, npairs, thr, acc)


@pytest.mark.parametrize("metric", ["ip", "l2", "cosine"])
def test_fast_scan_returns_the_ids_of_float_adc(metric):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 24)).astype(np.float32)
    q = rng.standard_normal((40, 24)).astype(np.float32)
    idx = PQIndex(24, m=12, nbits=4, metric=metric, niter=5)
    idx.train(x)
    idx.add(x)
    D_np, I_np = pq_search_numpy(idx, q, 10)
    D, I = idx.search(q, 10)  # noqa: E741
    np.testing.assert_array_equal(I, I_np)
    np.testing.assert_allclose(D, D_np, rtol=1e-6, atol=1e-6)
    I1 = np.vstack([idx.search(q[i], 10)[1] for i in range(len(q))])
    np.testing.assert_array_equal(I1, I_np)
    # the blocked copy holds the stored codes
    np.testing.assert_array_equal(FS.unpack_blocks(fastscan_blocks(idx), 3000, 12),
                                  unpack_codes(idx.codes, 12, 4))


def test_fast_scan_with_fewer_vectors_than_k_and_many_ties():
    x = np.tile(np.eye(4, 8, dtype=np.float32), (5, 1))  # 20 rows, 4 distinct: many ties
    idx = PQIndex(8, m=4, nbits=4, metric="ip", niter=2)
    idx.train(np.vstack([x] * 1))
    idx.add(x)
    q = np.ones((2, 8), np.float32)
    np.testing.assert_array_equal(idx.search(q, 30)[1], pq_search_numpy(idx, q, 30)[1])
    assert (idx.search(q, 30)[1][:, 20:] == -1).all()


def test_anisotropic_4bit_uses_the_fast_scan_and_matches_scann_and_faiss_recall():
    ds = bench.load_dataset("glove", n_base=3000, n_query=200, gt_k=10)
    ours = AnisotropicPQIndex(50, m=25, nbits=4, T=0.2, aniso_iter=2)
    ours.train(ds.xb)
    ours.add(ds.xb)
    np.testing.assert_array_equal(ours.search(ds.xq, 10)[1], pq_search_numpy(ours, ds.xq, 10)[1])
    fs = faiss.IndexPQFastScan(50, 25, 4, faiss.METRIC_INNER_PRODUCT)
    fs.train(ds.xb)
    fs.add(ds.xb)
    r_ours = bench.recall_at_k(ours.search(ds.xq, 10)[1], ds.gt, 10)
    r_fs = bench.recall_at_k(fs.search(ds.xq, 10)[1], ds.gt, 10)
    assert ours.code_size == fs.code_size == 13
    assert r_ours >= r_fs - 0.02, (r_ours, r_fs)
