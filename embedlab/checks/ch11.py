"""Checks for chapter 11: eta from the threshold, the anisotropic loss, and a memory calculator."""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise
from embedlab.index.anisotropic import anisotropic_eta, anisotropic_loss
from embedlab.index.recommend import memory_bytes

# --------------------------------------------------------------------------- 11.eta
eta = exercise("11.eta", name="eta", points=3)


@eta.check("integrates h_par = (d-1) int sin^(d-2) cos^2 and h_perp = int sin^d over "
           "[0, arccos T] and returns their ratio")
def _(fn):
    for T, d in ((0.1, 10), (0.2, 50), (0.3, 50), (0.5, 20)):
        got, want = float(fn(T, d)), anisotropic_eta(T, d)
        assert abs(got - want) <= 1e-3 * want, f"T={T}, d={d}: {got:.4f} vs {want:.4f}"


@eta.check("stays finite in high dimension (work in logs: sin^d underflows for d in the "
           "hundreds)")
def _(fn):
    for T, d in ((0.2, 384), (0.2, 1024)):
        got, want = float(fn(T, d)), anisotropic_eta(T, d)
        assert np.isfinite(got) and abs(got - want) <= 1e-3 * want, f"T={T}, d={d}: {got}"


@eta.check("gives eta = 1 at T = 0 (plain PQ) and grows with T")
def _(fn):
    assert abs(float(fn(0.0, 50)) - 1.0) < 1e-3
    vals = [float(fn(t, 50)) for t in (0.1, 0.2, 0.3)]
    assert vals[0] < vals[1] < vals[2]


# --------------------------------------------------------------------------- 11.loss
loss = exercise("11.loss", name="anisotropic_loss", points=2)


@loss.check("returns eta |r_par|^2 + |r_perp|^2 per row, with r_par the part of x - x~ along x")
def _(fn):
    x = np.array([[3.0, 0.0], [0.0, 2.0]])
    xt = np.array([[2.0, 1.0], [0.5, 2.5]])
    got = np.asarray(fn(x, xt, 5.0), dtype=float)
    assert got.shape == (2,), f"one loss per row, got shape {got.shape}"
    np.testing.assert_allclose(got, [5.0 + 1.0, 0.25 + 5 * 0.25])


@loss.check("agrees with the package on random vectors of any length (normalise x inside)")
def _(fn):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(50, 16)) * rng.uniform(0.1, 5, size=(50, 1))
    xt = x + 0.1 * rng.normal(size=x.shape)
    for e in (1.0, 3.7, 20.0):
        np.testing.assert_allclose(np.asarray(fn(x, xt, e), dtype=float),
                                   anisotropic_loss(x, xt, e), rtol=1e-6)


# --------------------------------------------------------------------------- 11.memory
mem = exercise("11.memory", name="index_memory_bytes", points=3)


@mem.check("flat: 4 bytes per float32 coordinate (100M x 1024-d = 409.6 GB)")
def _(fn):
    assert int(fn("flat", 100_000_000, 1024, 64, 1)) == 409_600_000_000
    assert int(fn("flat", 10, 3, 1, 1)) == memory_bytes("flat", 10, 3)


@mem.check("pq: m one-byte codes per vector plus the codebooks (256 centroids x dim floats)")
def _(fn):
    for n, dim, m in ((1_000_000, 768, 48), (100_000_000, 1024, 64), (5, 8, 2)):
        assert int(fn("pq", n, dim, m, 1)) == memory_bytes("pq", n, dim, m=m), (n, dim, m)


@mem.check("ivfpq: codes and an 8-byte id per vector, plus centroids and codebooks")
def _(fn):
    for n, dim, m, nlist in ((1_000_000_000, 768, 48, 65_536), (1000, 64, 8, 10)):
        assert int(fn("ivfpq", n, dim, m, nlist)) == memory_bytes("ivfpq", n, dim, m=m,
                                                                   nlist=nlist)


@mem.check("raises ValueError for an unknown kind")
def _(fn):
    try:
        fn("lsh", 10, 10, 2, 1)
    except ValueError:
        return
    raise AssertionError("no ValueError for kind='lsh'")
