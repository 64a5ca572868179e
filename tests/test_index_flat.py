"""FlatIndex and the shared index plumbing: known answers, parity with faiss, bad input."""

import faiss
import numpy as np
import pytest

from embedlab.index import FlatIndex
from embedlab.index.base import as_matrix, normalize_rows


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((3000, 24)).astype(np.float32)
    xq = rng.standard_normal((50, 24)).astype(np.float32)
    return xb, xq


def test_known_answer_l2_and_ip():
    x = np.array([[0, 0], [1, 0], [0, 2], [3, 3]], dtype=np.float32)
    l2 = FlatIndex(2, metric="l2")
    l2.add(x)
    D, ids = l2.search(np.array([[0.9, 0.1]]), 3)
    assert ids.tolist() == [[1, 0, 2]]
    np.testing.assert_allclose(D, [[0.02, 0.82, 4.42]], rtol=1e-5)
    ip = FlatIndex(2, metric="ip")
    ip.add(x)
    D, ids = ip.search(np.array([[1.0, 0.0]]), 2)
    assert ids.tolist() == [[3, 1]] and D.tolist() == [[3.0, 1.0]]


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_identical_to_faiss(data, metric):
    xb, xq = data
    ours = FlatIndex(24, metric=metric, query_block=16, db_block=700)  # blocks must not matter
    ours.add(xb[:1000])
    ours.add(xb[1000:])
    ref = faiss.IndexFlatIP(24) if metric == "ip" else faiss.IndexFlatL2(24)
    ref.add(xb)
    D, ids = ours.search(xq, 20)
    Dr, Ir = ref.search(xq, 20)
    np.testing.assert_array_equal(ids, Ir)
    np.testing.assert_allclose(D, Dr, rtol=1e-4, atol=1e-4)


def test_cosine_is_ip_on_unit_rows(data):
    xb, xq = data
    cos = FlatIndex(24, metric="cosine")
    cos.add(xb * 3.0)
    ip = FlatIndex(24, metric="ip")
    ip.add(normalize_rows(xb))
    Dc, Ic = cos.search(xq * 5.0, 10)
    Di, Ii = ip.search(normalize_rows(xq), 10)
    np.testing.assert_array_equal(Ic, Ii)
    np.testing.assert_allclose(Dc, Di, rtol=1e-5, atol=1e-6)
    assert np.all(Dc <= 1.0 + 1e-5)


def test_each_vector_finds_itself_and_results_are_sorted(data):
    xb, _ = data
    idx = FlatIndex(24, metric="l2")
    idx.add(xb)
    D, ids = idx.search(xb[:100], 5)
    assert (ids[:, 0] == np.arange(100)).all()
    assert np.all(np.diff(D, axis=1) >= 0)
    assert idx.ntotal == 3000 and idx.nbytes == 3000 * 24 * 4


def test_k_larger_than_n_pads_with_minus_one():
    idx = FlatIndex(3, metric="ip")
    idx.add(np.eye(3, dtype=np.float32))
    D, ids = idx.search(np.ones((1, 3)), 5)
    assert sorted(ids[0, :3].tolist()) == [0, 1, 2]
    assert ids[0, 3:].tolist() == [-1, -1] and np.isneginf(D[0, 3:]).all()
    l2 = FlatIndex(3, metric="l2")
    D, ids = l2.search(np.ones((2, 3)), 2)  # empty index
    assert (ids == -1).all() and np.isposinf(D).all()


def test_ties_go_to_the_lower_id():
    idx = FlatIndex(2, metric="l2")
    idx.add(np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.float32))
    _, ids = idx.search(np.zeros((1, 2)), 4)
    assert ids.tolist() == [[0, 1, 2, 3]]


def test_save_load_round_trip(tmp_path, data):
    xb, xq = data
    idx = FlatIndex(24, metric="cosine")
    idx.add(xb)
    idx.save(tmp_path / "flat.npz")
    back = FlatIndex.load(tmp_path / "flat.npz")
    D1, I1 = idx.search(xq, 7)
    D2, I2 = back.search(xq, 7)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)
    assert back.metric == "cosine" and back.ntotal == 3000


def test_bad_input():
    idx = FlatIndex(4, metric="l2")
    idx.add(np.ones((3, 4)))
    with pytest.raises(ValueError, match="4 columns"):
        idx.add(np.ones((2, 5)))
    with pytest.raises(ValueError, match="NaN"):
        idx.search(np.array([[0, np.nan, 0, 0]]), 1)
    with pytest.raises(ValueError, match="NaN or inf"):
        idx.add(np.array([[0, np.inf, 0, 0]]))
    with pytest.raises(ValueError, match="k must be >= 1"):
        idx.search(np.ones((1, 4)), 0)
    with pytest.raises(TypeError, match="k must be an integer"):
        idx.search(np.ones((1, 4)), 2.5)
    with pytest.raises(TypeError, match="real numbers"):
        idx.add(np.ones((1, 4), dtype=complex))
    with pytest.raises(TypeError, match="real numbers"):
        idx.add(np.array([["a", "b", "c", "d"]]))
    with pytest.raises(ValueError, match="2-D"):
        idx.search(np.ones((1, 2, 4)), 1)
    with pytest.raises(ValueError, match="metric must be one of"):
        FlatIndex(4, metric="cos")
    with pytest.raises(ValueError, match="dim must be >= 1"):
        FlatIndex(0)
    with pytest.raises(TypeError, match="unexpected"):
        idx.search(np.ones((1, 4)), 1, nprobe=2)


def test_load_checks_the_class(tmp_path):
    from embedlab.index import IVFIndex

    idx = FlatIndex(2)
    idx.add(np.ones((1, 2)))
    idx.save(tmp_path / "f.npz")
    with pytest.raises(ValueError, match="holds a FlatIndex, not a IVFIndex"):
        IVFIndex.load(tmp_path / "f.npz")


def test_as_matrix_accepts_one_row_and_ints():
    arr = as_matrix([1, 2, 3], 3)
    assert arr.shape == (1, 3) and arr.dtype == np.float32
