"""Checks for chapter 09: PQ encoding, the ADC look-up table, and the ADC scan."""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise
from embedlab.index.pq import adc_tables as _tables_reference
from embedlab.index.pq import encode as _encode_reference


def _books(seed=9, m=4, ksub=16, dsub=3):
    return np.random.default_rng(seed).standard_normal((m, ksub, dsub)).astype(np.float32)


# --------------------------------------------------------------------------- 09.pq_encode
enc = exercise("09.pq_encode", name="pq_encode", points=3)


@enc.check("returns an (n, m) array: for each subspace j, the nearest centroid of x's j-th slice")
def _(fn):
    books = _books()
    x = np.random.default_rng(1).standard_normal((300, 12)).astype(np.float32)
    got = np.asarray(fn(x, books))
    assert got.shape == (300, 4), f"expected shape (300, 4), got {got.shape}"
    want = _encode_reference(x, books)
    assert (got == want).mean() > 0.995, f"{(got != want).sum()} codes differ"


@enc.check("slices subspaces as consecutive blocks of d / m coordinates (x[:, j*dsub:(j+1)*dsub])")
def _(fn):
    books = np.zeros((2, 2, 2), dtype=np.float32)
    books[0, 1] = [5, 5]
    books[1, 1] = [-5, -5]
    x = np.array([[5, 5, 0, 0], [0, 0, -5, -5], [5, 5, -5, -5]], dtype=np.float32)
    assert np.asarray(fn(x, books)).tolist() == [[1, 0], [0, 1], [1, 1]]


# --------------------------------------------------------------------------- 09.adc_table
table = exercise("09.adc_table", name="adc_table", points=3)


@table.check("returns the (m, ksub) table T[j, c] = squared distance of q's j-th slice to "
             "centroid c of subspace j")
def _(fn):
    books = _books()
    q = np.random.default_rng(2).standard_normal(12).astype(np.float32)
    got = np.asarray(fn(q, books), dtype=np.float64)
    assert got.shape == (4, 16), f"expected shape (4, 16), got {got.shape}"
    want = _tables_reference(q[None], books, "l2")[0]
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4), "values differ from |q_j - C_j[c]|^2"


@table.check("summing T[j, code_j] over j gives the squared distance to the decoded vector")
def _(fn):
    books = _books(seed=3)
    q = np.random.default_rng(4).standard_normal(12).astype(np.float32)
    codes = np.array([3, 0, 15, 7])
    decoded = np.concatenate([books[j, codes[j]] for j in range(4)])
    t = np.asarray(fn(q, books), dtype=np.float64)
    assert np.isclose(sum(t[j, codes[j]] for j in range(4)), ((q - decoded) ** 2).sum(),
                      rtol=1e-4)


# --------------------------------------------------------------------------- 09.adc_scan
scan = exercise("09.adc_scan", name="adc_scan", points=4)


def _reference_scan(t, codes, k):
    d = t[np.arange(t.shape[0])[None, :], codes].sum(1)
    order = np.lexsort((np.arange(len(d)), d))[:k]
    return d[order], order


@scan.check("returns (distances, ids) of the k smallest sums of T[j, code_j], nearest first")
def _(fn):
    rng = np.random.default_rng(5)
    t = rng.random((6, 32))
    codes = rng.integers(0, 32, size=(500, 6))
    dist, ids = fn(t, codes, 10)
    want_d, want_i = _reference_scan(t, codes, 10)
    assert np.asarray(ids).tolist() == want_i.tolist(), "ids differ from the reference"
    assert np.allclose(np.asarray(dist, dtype=np.float64), want_d, rtol=1e-6)


@scan.check("breaks ties (vectors with identical codes) by the lower id, and handles k = n")
def _(fn):
    t = np.array([[0.0, 1.0], [0.0, 2.0]])
    codes = np.array([[1, 1], [0, 0], [1, 1], [0, 0], [0, 1]])
    dist, ids = fn(t, codes, 5)
    assert np.asarray(ids).tolist() == [1, 3, 4, 0, 2]
    assert np.allclose(np.asarray(dist, dtype=np.float64), [0, 0, 2, 3, 3])
