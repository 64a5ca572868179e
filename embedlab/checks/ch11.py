"""Checks for chapter 11: the anisotropic loss (warm-up), the score-aware encoder built from
scratch (coordinate descent over the subspaces), and a memory calculator.

References are computed another way: the loss from explicit projections, plain PQ from faiss's
``ProductQuantizer``, coordinate-wise optimality by trying every single-code change, on random
data drawn afresh on every run.
"""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise


def _loss(x, xt, eta):
    """eta |r_par|^2 + |r_perp|^2, with r_par the projection of r = x - x~ on the line of x."""
    x = np.asarray(x, dtype=np.float64)
    r = x - np.asarray(xt, dtype=np.float64)
    coef = (r * x).sum(1) / (x * x).sum(1)
    r_par = coef[:, None] * x
    r_perp = r - r_par
    return eta * (r_par ** 2).sum(1) + (r_perp ** 2).sum(1)


# --------------------------------------------------------------------------- 11.loss
loss = exercise("11.loss", name="anisotropic_loss", points=2,
    reference=("embedlab.index.anisotropic:anisotropic_loss",))


@loss.check("returns eta |r_par|^2 + |r_perp|^2 per row, with r_par the part of x - x~ along x")
def _(fn):
    x = np.array([[3.0, 0.0], [0.0, 2.0]])
    xt = np.array([[2.0, 1.0], [0.5, 2.5]])
    got = np.asarray(fn(x, xt, 5.0), dtype=float)
    assert got.shape == (2,), f"one loss per row, got shape {got.shape}"
    np.testing.assert_allclose(got, [5.0 + 1.0, 0.25 + 5 * 0.25])


@loss.check("holds on random vectors of any length (normalise x inside)")
def _(fn):
    rng = np.random.default_rng()
    x = rng.normal(size=(50, 16)) * rng.uniform(0.1, 5, size=(50, 1))
    xt = x + 0.1 * rng.normal(size=x.shape)
    for e in (1.0, float(rng.uniform(2, 10)), 20.0):
        np.testing.assert_allclose(np.asarray(fn(x, xt, e), dtype=float), _loss(x, xt, e),
                                   rtol=1e-6)


# --------------------------------------------------------------------------- 11.encode
enc = exercise("11.encode", name="anisotropic_encode", points=6,
    reference=("embedlab.index.anisotropic:anisotropic_encode",))

_D, _M, _NBITS = 24, 6, 4


def _case(rng, n=1500):
    """Unit vectors with structure, and plain PQ codebooks trained on them by faiss."""
    import faiss

    basis = rng.normal(size=(6, _D))
    total = max(n, 1000)  # faiss wants at least 39 training points per centroid
    x = rng.normal(size=(total, 6)) @ basis + 0.4 * rng.normal(size=(total, _D))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    pq = faiss.ProductQuantizer(_D, _M, _NBITS)
    pq.train(x)
    books = faiss.vector_to_array(pq.centroids).reshape(_M, 2 ** _NBITS, _D // _M)
    return x[:n], books.astype(np.float32)


def _decode(codes, books):
    return np.concatenate([books[j][codes[:, j]] for j in range(books.shape[0])], axis=1)


def _codes(fn, x, books, eta):
    codes = np.asarray(fn(x, books, eta))
    assert codes.shape == (len(x), _M), f"expected codes of shape {(len(x), _M)}, got {codes.shape}"
    assert np.issubdtype(codes.dtype, np.integer), f"codes must be integers, got {codes.dtype}"
    assert codes.min() >= 0 and codes.max() < 2 ** _NBITS, "codes out of range"
    return codes.astype(np.int64)


def _nearest_codes(x, books):
    dsub = books.shape[2]
    return np.stack([((x[:, None, j * dsub:(j + 1) * dsub].astype(np.float64) - books[j][None])
                      ** 2).sum(-1).argmin(1) for j in range(books.shape[0])], axis=1)


@enc.check("with eta = 1 the loss is the plain squared error: the codes are the nearest "
           "centroids, subspace by subspace")
def _(fn):
    rng = np.random.default_rng()
    x, books = _case(rng, n=400)
    got = _codes(fn, x, books, 1.0)
    want = _nearest_codes(x, books)
    err = lambda c: ((x - _decode(c, books)) ** 2).sum(1)  # noqa: E731
    assert np.allclose(err(got), err(want), atol=1e-6), f"{(got != want).any(1).sum()} rows differ"


@enc.check("the score-aware loss falls below plain PQ's at the same code size (eta > 1)")
def _(fn):
    rng = np.random.default_rng()
    x, books = _case(rng)
    eta = float(rng.uniform(3.0, 8.0))
    plain = _loss(x, _decode(_nearest_codes(x, books), books), eta).mean()
    mine = _loss(x, _decode(_codes(fn, x, books, eta), books), eta).mean()
    assert mine < 0.97 * plain, f"mean loss {mine:.5f}, plain PQ's {plain:.5f} (eta={eta:.2f})"


@enc.check("ends at a coordinate-wise optimum: no single code change lowers a row's loss "
           "(sweep until nothing moves)")
def _(fn):
    rng = np.random.default_rng()
    x, books = _case(rng, n=300)
    eta = float(rng.uniform(3.0, 8.0))
    codes = _codes(fn, x, books, eta)
    base = _loss(x, _decode(codes, books), eta)
    for j in range(_M):
        for c in range(2 ** _NBITS):
            trial = codes.copy()
            trial[:, j] = c
            gain = base - _loss(x, _decode(trial, books), eta)
            worst = int(gain.argmax())
            assert gain[worst] <= 1e-7 * (1 + base[worst]), (
                f"row {worst}: code {c} in subspace {j} would lower the loss by {gain[worst]:.2e}")


@enc.check("works for rows of any length (the loss uses the direction of x)")
def _(fn):
    rng = np.random.default_rng()
    x, books = _case(rng, n=300)
    eta = float(rng.uniform(3.0, 8.0))
    scaled = x * rng.uniform(0.8, 1.25, size=(len(x), 1)).astype(np.float32)
    plain = _loss(scaled, _decode(_nearest_codes(scaled, books), books), eta).mean()
    mine = _loss(scaled, _decode(_codes(fn, scaled, books, eta), books), eta).mean()
    assert mine < plain, f"mean loss {mine:.5f}, plain PQ's {plain:.5f}"


# --------------------------------------------------------------------------- 11.memory
mem = exercise("11.memory", name="index_memory_bytes", points=3)


@mem.check("flat: 4 bytes per float32 coordinate (100M x 1024-d = 409.6 GB)")
def _(fn):
    assert int(fn("flat", 100_000_000, 1024, 64, 1)) == 409_600_000_000
    assert int(fn("flat", 10, 3, 1, 1)) == 120


@mem.check("pq: m one-byte codes per vector plus the codebooks (256 centroids x dim floats)")
def _(fn):
    for n, dim, m in ((1_000_000, 768, 48), (100_000_000, 1024, 64), (5, 8, 2)):
        assert int(fn("pq", n, dim, m, 1)) == n * m + 256 * dim * 4, (n, dim, m)


@mem.check("ivfpq: codes and an 8-byte id per vector, plus centroids and codebooks")
def _(fn):
    for n, dim, m, nlist in ((1_000_000_000, 768, 48, 65_536), (1000, 64, 8, 10)):
        want = n * (m + 8) + nlist * dim * 4 + 256 * dim * 4
        assert int(fn("ivfpq", n, dim, m, nlist)) == want, (n, dim, m, nlist)


@mem.check("raises ValueError for an unknown kind")
def _(fn):
    try:
        fn("lsh", 10, 10, 2, 1)
    except ValueError:
        return
    raise AssertionError("no ValueError for kind='lsh'")
