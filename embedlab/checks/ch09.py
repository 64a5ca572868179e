"""Checks for chapter 09: the ADC look-up table (warm-up), and a product quantiser built from
scratch: per-subspace k-means, encoding, decoding and the ADC search.

The references are computed another way (explicit differences in float64) or come from faiss
(``ProductQuantizer``, ``IndexPQ``), on random data drawn afresh on every run.
"""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise


def _books(rng, m=4, ksub=16, dsub=3):
    return rng.standard_normal((m, ksub, dsub)).astype(np.float32)


# --------------------------------------------------------------------------- 09.adc_table
table = exercise("09.adc_table", name="adc_table", points=3)


@table.check("returns the (m, ksub) table T[j, c] = squared distance of q's j-th slice to "
             "centroid c of subspace j")
def _(fn):
    rng = np.random.default_rng()
    books = _books(rng)
    q = rng.standard_normal(12).astype(np.float32)
    got = np.asarray(fn(q, books), dtype=np.float64)
    assert got.shape == (4, 16), f"expected shape (4, 16), got {got.shape}"
    want = np.array([[float(((q[3 * j:3 * j + 3].astype(np.float64) - books[j, c]) ** 2).sum())
                      for c in range(16)] for j in range(4)])
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4), "values differ from |q_j - C_j[c]|^2"


@table.check("summing T[j, code_j] over j gives the squared distance to the decoded vector")
def _(fn):
    rng = np.random.default_rng()
    books = _books(rng)
    q = rng.standard_normal(12).astype(np.float32)
    codes = rng.integers(0, 16, size=4)
    decoded = np.concatenate([books[j, codes[j]] for j in range(4)])
    t = np.asarray(fn(q, books), dtype=np.float64)
    assert np.isclose(sum(t[j, codes[j]] for j in range(4)), ((q - decoded) ** 2).sum(),
                      rtol=1e-4)


# --------------------------------------------------------------------------- 09.pq
pq = exercise("09.pq", name="PQ", points=7,
              reference=("embedlab.index.pq:PQIndex", "embedlab.index.pq:train_codebooks"))

_D, _M, _NBITS = 32, 8, 6


def _data(rng, n):
    """Vectors with structure (a random low-rank part plus noise), as embeddings have."""
    basis = rng.normal(size=(8, _D))
    return (rng.normal(size=(n, 8)) @ basis + 0.5 * rng.normal(size=(n, _D))).astype(np.float32)


_CACHE: dict = {}


def _trained(cls, rng, n=3000):
    """Train the learner's class once per grading run (fresh data each run); the checks share it."""
    if _CACHE.get("cls") is cls:
        return _CACHE["index"], _CACHE["x"], _CACHE["books"]
    _CACHE.clear()
    x = _data(rng, n)
    index = cls(_M, nbits=_NBITS, niter=20, seed=int(rng.integers(1000)))
    index.train(x)
    books = np.asarray(index.codebooks, dtype=np.float64)
    want = (_M, 2 ** _NBITS, _D // _M)
    assert books.shape == want, f"codebooks: expected shape {want}, got {books.shape}"
    assert np.isfinite(books).all(), "the codebooks hold NaN or inf"
    _CACHE.update(cls=cls, index=index, x=x, books=books)
    return index, x, books


def _decode(codes, books):
    return np.concatenate([books[j][codes[:, j]] for j in range(books.shape[0])], axis=1)


def _codes(index, x):
    codes = np.asarray(index.encode(x))
    assert codes.shape == (len(x), _M), f"encode: expected shape {(len(x), _M)}, got {codes.shape}"
    assert np.issubdtype(codes.dtype, np.integer), f"codes must be integers, got {codes.dtype}"
    return codes.astype(np.int64)


@pq.check("train(): in every subspace, each centroid that holds slices ends as their mean "
          "(Lloyd's fixed point of the sub-quantiser's k-means, on clustered data)")
def _(cls):
    rng = np.random.default_rng()
    m, n, k = 3, 240, 4
    centres = rng.normal(size=(6, 2)) * 30.0
    parts = [centres[rng.integers(0, 6, n)] + rng.normal(size=(n, 2)) for _ in range(m)]
    x = np.concatenate(parts, axis=1).astype(np.float32)
    index = cls(m, nbits=2, niter=20, seed=int(rng.integers(1000)))
    index.train(x)
    books = np.asarray(index.codebooks, dtype=np.float64)
    assert books.shape == (m, k, 2), f"codebooks: expected shape {(m, k, 2)}, got {books.shape}"
    for j in range(m):
        sub = x[:, 2 * j:2 * j + 2].astype(np.float64)
        near = ((sub[:, None, :] - books[j][None]) ** 2).sum(-1).argmin(axis=1)
        held = [c for c in range(k) if (near == c).any()]
        assert len(held) >= k - 1, f"subspace {j}: only {len(held)} of {k} centroids hold slices"
        for c in held:
            members = sub[near == c]
            assert np.allclose(books[j, c], members.mean(axis=0), atol=1e-4), (
                f"subspace {j}: centroid {c} is {np.round(books[j, c], 3)}, the mean of its "
                f"slices {np.round(members.mean(axis=0), 3)}: the update is the plain mean")


@pq.check("encode() picks, in every subspace, the nearest centroid of that slice (consecutive "
          "blocks of d / m coordinates)")
def _(cls):
    rng = np.random.default_rng()
    index, x, books = _trained(cls, rng)
    codes = _codes(index, x[:400])
    dsub = _D // _M
    for j in range(_M):
        sub = x[:400, j * dsub:(j + 1) * dsub].astype(np.float64)
        d = ((sub[:, None, :] - books[j][None]) ** 2).sum(-1)
        chosen = d[np.arange(400), codes[:, j]]
        assert np.allclose(chosen, d.min(axis=1), atol=1e-6), f"subspace {j}: not the nearest"


@pq.check("train() runs k-means in each subspace: reconstruction error within 10% of faiss's "
          "ProductQuantizer with the same m and nbits")
def _(cls):
    import faiss

    rng = np.random.default_rng()
    index, x, books = _trained(cls, rng)
    mine = ((x - _decode(_codes(index, x), books)) ** 2).sum(1).mean()
    ref = faiss.ProductQuantizer(_D, _M, _NBITS)
    ref.train(x)
    theirs = ((x - ref.decode(ref.compute_codes(x))) ** 2).sum(1).mean()
    assert mine <= 1.1 * theirs, f"mean squared error {mine:.3f}, faiss {theirs:.3f}"


@pq.check("decode() rebuilds each vector from its centroids, subspace by subspace")
def _(cls):
    rng = np.random.default_rng()
    index, x, books = _trained(cls, rng)
    codes = _codes(index, x[:50])
    got = np.asarray(index.decode(codes), dtype=np.float64)
    assert got.shape == (50, _D), f"decode: expected shape (50, {_D}), got {got.shape}"
    assert np.allclose(got, _decode(codes, books), atol=1e-5), "decoded vectors differ"


@pq.check("search() returns the k smallest ADC distances, nearest first: the exact squared "
          "distances from q to the decoded base vectors")
def _(cls):
    rng = np.random.default_rng()
    index, x, books = _trained(cls, rng)
    index.add(x)
    rebuilt = _decode(_codes(index, x), books)
    for q in _data(rng, 5).astype(np.float64):
        dist, ids = index.search(q, 10)
        ids = np.asarray(ids).ravel().astype(np.int64)
        d = ((rebuilt - q) ** 2).sum(1)
        want = np.lexsort((np.arange(len(d)), d))[:10]
        assert np.allclose(np.asarray(dist, dtype=np.float64).ravel(), d[want], rtol=1e-5,
                           atol=1e-4), "distances are not |q - decoded|^2"
        assert len(set(ids.tolist()) & set(want.tolist())) >= 9, f"ids {ids[:4].tolist()}..."


@pq.check("recall@10 within 0.03 of faiss's IndexPQ (same m and nbits) on fresh data")
def _(cls):
    import faiss

    rng = np.random.default_rng()
    index, x, _ = _trained(cls, rng)
    index.add(x)
    q = _data(rng, 300)
    d = (q.astype(np.float64) ** 2).sum(1)[:, None] - 2.0 * q.astype(np.float64) @ x.T.astype(
        np.float64) + (x.astype(np.float64) ** 2).sum(1)[None, :]
    truth = np.argsort(d, axis=1)[:, :10]
    ref = faiss.IndexPQ(_D, _M, _NBITS)
    ref.train(x)
    ref.add(x)
    theirs_ids = ref.search(q, 10)[1]
    mine_ids = np.stack([np.asarray(index.search(v, 10)[1]).ravel() for v in q.astype(np.float64)])

    def recall(ids):
        return np.mean([len(set(a.tolist()) & set(b.tolist())) / 10
                        for a, b in zip(ids, truth, strict=True)])

    mine, theirs = recall(mine_ids), recall(theirs_ids)
    assert mine >= theirs - 0.03, f"recall@10 {mine:.3f} against faiss's {theirs:.3f}"
