"""Anisotropic (score-aware) PQ: eta from T, the loss, each training step lowers it, the gain in
inner-product recall over plain PQ at equal code size, save/load and bad input."""

import math

import numpy as np
import pytest

from embedlab.index import AnisotropicPQIndex, FlatIndex, PQIndex
from embedlab.index.anisotropic import (
    anisotropic_encode,
    anisotropic_eta,
    anisotropic_loss,
    update_codebooks,
)
from embedlab.index.base import normalize_rows
from embedlab.index.pq import decode, encode, train_codebooks


@pytest.fixture(scope="module")
def glove():
    from embedlab import data

    vectors, _ = data.load("glove-6b-50d")
    rng = np.random.default_rng(0)
    rows = rng.permutation(60_000)
    return normalize_rows(vectors[rows[:6000]]), normalize_rows(vectors[rows[-300:]])


def test_eta_is_one_at_t_zero_grows_with_t_and_matches_the_large_d_limit():
    assert anisotropic_eta(0.0, 50) == 1.0
    etas = [anisotropic_eta(t, 50) for t in (0.1, 0.2, 0.3, 0.5)]
    assert all(a < b for a, b in zip(etas, etas[1:], strict=False))
    assert etas[0] > 1
    # Theorem 3.4: eta / (d - 1) -> T^2 / (1 - T^2) as d grows
    for T in (0.2, 0.4):
        d = 4000
        assert math.isclose(anisotropic_eta(T, d) / (d - 1), T**2 / (1 - T**2), rel_tol=0.02)


def test_eta_matches_a_direct_quadrature_in_low_dimension():
    # d = 4: h_par = 3 int sin^2 cos^2, h_perp = int sin^4, over [0, arccos T]
    T, d = 0.3, 4
    t = np.linspace(0, math.acos(T), 200_001)
    h_par = (d - 1) * np.trapezoid(np.sin(t) ** 2 * np.cos(t) ** 2, t)
    h_perp = np.trapezoid(np.sin(t) ** 4, t)
    assert math.isclose(anisotropic_eta(T, d), h_par / h_perp, rel_tol=1e-4)


def test_loss_splits_parallel_and_orthogonal_residuals():
    x = np.array([[3.0, 0.0]])
    assert np.isclose(anisotropic_loss(x, np.array([[2.0, 0.0]]), 5.0)[0], 5.0)  # parallel
    assert np.isclose(anisotropic_loss(x, np.array([[3.0, 1.0]]), 5.0)[0], 1.0)  # orthogonal
    assert np.isclose(anisotropic_loss(x, np.array([[2.0, 1.0]]), 1.0)[0], 2.0)  # eta 1 = L2


def test_each_step_lowers_the_anisotropic_loss(glove):
    x, _ = glove
    x = x[:3000]
    eta = anisotropic_eta(0.2, 50)
    books = train_codebooks(x, 10, 4, niter=10, seed=0)
    codes = encode(x, books)
    before = anisotropic_loss(x, decode(codes, books), eta).mean()
    codes2 = anisotropic_encode(x, books, eta, codes)
    mid = anisotropic_loss(x, decode(codes2, books), eta).mean()
    books2 = update_codebooks(x, codes2, books, eta)
    after = anisotropic_loss(x, decode(codes2, books2), eta).mean()
    assert mid < before and after < mid
    # coordinate descent can only lower each point's loss
    per_point = (anisotropic_loss(x, decode(codes2, books), eta)
                 <= anisotropic_loss(x, decode(codes, books), eta) + 1e-9)
    assert per_point.all()
    # with eta = 1 the encoding is plain nearest-centroid PQ
    assert (anisotropic_encode(x, books, 1.0) == codes).all()


def test_codebook_update_solves_the_normal_equations(glove):
    x, _ = glove
    x = x[:800].astype(np.float64)
    eta = 4.0
    books = train_codebooks(x.astype(np.float32), 5, 2, niter=5, seed=1)
    codes = encode(x.astype(np.float32), books)
    new = update_codebooks(x, codes, books, eta).astype(np.float64)
    base = anisotropic_loss(x, decode(codes, new), eta).mean()
    rng = np.random.default_rng(0)
    for _ in range(5):
        # subspaces are solved one after another, so the last one is exactly optimal given the
        # others: any small move of its codewords raises the loss
        moved = new.copy()
        moved[-1] += 1e-3 * rng.normal(size=new[-1].shape)
        assert anisotropic_loss(x, decode(codes, moved), eta).mean() > base
    assert base < anisotropic_loss(x, decode(codes, books), eta).mean()


def test_beats_plain_pq_on_inner_product_recall_at_equal_code_size(glove):
    x, q = glove
    flat = FlatIndex(50, metric="ip")
    flat.add(x)
    truth = flat.search(q, 10)[1]
    plain = PQIndex(50, m=25, nbits=4, metric="ip", seed=0)
    plain.train(x)
    plain.add(x)
    aniso = AnisotropicPQIndex(50, m=25, nbits=4, T=0.2, metric="ip", seed=0, aniso_iter=4)
    aniso.train(x)
    aniso.add(x)
    assert aniso.code_size == plain.code_size and aniso.nbytes == plain.nbytes

    def recall(ids):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)])

    r_plain, r_aniso = recall(plain.search(q, 10)[1]), recall(aniso.search(q, 10)[1])
    assert r_aniso > r_plain + 0.02, (r_aniso, r_plain)
    assert aniso.train_loss[-1] < aniso.train_loss[0]


def test_t_zero_is_plain_pq(glove):
    x, q = glove
    plain = PQIndex(50, m=10, nbits=4, metric="ip", seed=3)
    plain.train(x[:2000])
    plain.add(x[:2000])
    same = AnisotropicPQIndex(50, m=10, nbits=4, T=0.0, metric="ip", seed=3)
    same.train(x[:2000])
    same.add(x[:2000])
    np.testing.assert_array_equal(plain.codes, same.codes)
    np.testing.assert_array_equal(plain.search(q, 5)[1], same.search(q, 5)[1])


def test_save_load_round_trip(tmp_path, glove):
    x, q = glove
    a = AnisotropicPQIndex(50, m=10, nbits=4, T=0.3, metric="cosine", aniso_iter=2)
    a.train(x[:2000])
    a.add(x[:2000])
    a.save(tmp_path / "a.npz")
    b = AnisotropicPQIndex.load(tmp_path / "a.npz")
    assert (b.T, b.eta, b.metric) == (a.T, a.eta, "cosine")
    for r, s in zip(a.search(q, 10), b.search(q, 10), strict=True):
        np.testing.assert_array_equal(r, s)


def test_bad_input():
    with pytest.raises(ValueError, match="metric must be 'ip' or 'cosine'"):
        AnisotropicPQIndex(8, m=2, metric="l2")
    with pytest.raises(ValueError, match="T must be"):
        AnisotropicPQIndex(8, m=2, T=1.5)
    with pytest.raises(ValueError, match="T must be"):
        anisotropic_eta(-0.1, 10)
    with pytest.raises(ValueError, match="divisible"):
        AnisotropicPQIndex(10, m=3)
    idx = AnisotropicPQIndex(8, m=2, nbits=2)
    with pytest.raises(ValueError, match="train"):
        idx.add(np.ones((5, 8), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        idx.train(np.full((10, 8), np.nan, np.float32))
