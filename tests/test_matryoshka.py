"""Matryoshka loss and truncation: parity with sentence-transformers and with plain torch,
funnel retrieval against exact search, the dimension helpers, and bad input."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embedlab.contrastive import info_nce
from embedlab.matryoshka import (
    FunnelIndex,
    MatryoshkaLoss,
    distance_concentration,
    funnel_search,
    storage_bytes,
    train_pairs,
    truncate,
)


def _rand(*shape, seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(grad)


class _FixedEmbeddings(torch.nn.Module):
    """A stand-in SentenceTransformer whose 'features' already are the embeddings."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, features):
        return {"sentence_embedding": features["emb"]}

    def get_embedding_dimension(self) -> int:
        return self.dim


def _st_matryoshka(a, p, dims, weights, tau):
    from sentence_transformers.sentence_transformer.losses import (
        MatryoshkaLoss as STMatryoshkaLoss,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model = _FixedEmbeddings(a.shape[1])
    loss = STMatryoshkaLoss(model, MultipleNegativesRankingLoss(model, scale=1.0 / tau),
                            list(dims), None if weights is None else list(weights))
    return loss([{"emb": a}, {"emb": p}], None)


def _plain_torch(a, p, dims, weights, tau):
    """The definition written out: slice, normalise, similarity / tau, cross-entropy."""
    weights = weights or [1.0] * len(dims)
    total = 0.0
    for m, w in zip(dims, weights, strict=True):
        am = a[:, :m] / a[:, :m].norm(dim=1, keepdim=True)
        pm = p[:, :m] / p[:, :m].norm(dim=1, keepdim=True)
        total = total + w * F.cross_entropy(am @ pm.T / tau, torch.arange(a.shape[0]))
    return total


@pytest.mark.parametrize("dims,weights,tau", [
    ([64, 32, 16, 8], None, 0.05),
    ([8, 16, 32, 64], [0.25, 0.5, 1.0, 2.0], 0.05),
    ([48, 12], [1.0, 3.0], 0.2),
])
def test_loss_and_gradients_match_sentence_transformers(dims, weights, tau):
    a, p = _rand(24, 64, seed=1, grad=True), _rand(24, 64, seed=2, grad=True)
    ours = MatryoshkaLoss(functools.partial(info_nce, temperature=tau), dims, weights)(a, p)
    st = _st_matryoshka(a, p, dims, weights, tau)
    assert abs(ours.item() - st.item()) < 1e-10
    g_ours = torch.autograd.grad(ours, [a, p])
    g_st = torch.autograd.grad(st, [a, p])
    for x, y in zip(g_ours, g_st, strict=True):
        assert torch.allclose(x, y, atol=1e-10)


def test_loss_and_gradients_match_plain_torch():
    a, p = _rand(16, 40, seed=3, grad=True), _rand(16, 40, seed=4, grad=True)
    dims, weights = [40, 20, 10, 5], [1.0, 1.0, 0.5, 0.5]
    ours = MatryoshkaLoss(info_nce, dims, weights)(a, p)
    plain = _plain_torch(a, p, dims, weights, 0.05)
    assert abs(ours.item() - plain.item()) < 1e-10
    for x, y in zip(torch.autograd.grad(ours, [a, p]), torch.autograd.grad(plain, [a, p]),
                    strict=True):
        assert torch.allclose(x, y, atol=1e-10)


def test_single_full_dim_is_the_base_loss_and_terms_add_up():
    a, p = _rand(10, 12, seed=5), _rand(10, 12, seed=6)
    assert torch.isclose(MatryoshkaLoss(info_nce, [12])(a, p), info_nce(a, p))
    loss = MatryoshkaLoss(info_nce, [12, 6, 3], [2.0, 1.0, 0.0])
    terms = loss.terms(a, p)
    assert sorted(terms) == [3, 6, 12]
    assert torch.isclose(loss(a, p), 2 * terms[12] + terms[6])
    # the zero-weighted size contributes nothing, but its own term is a real loss
    assert terms[3].item() > 0


def test_gradient_reaches_only_the_largest_prefix():
    a, p = _rand(8, 32, seed=7, grad=True), _rand(8, 32, seed=8)
    ga, = torch.autograd.grad(MatryoshkaLoss(info_nce, [16, 8])(a, p), [a])
    assert float(ga[:, 16:].abs().max()) == 0.0
    assert float(ga[:, :8].abs().max()) > 0.0


def test_truncate_torch_and_numpy():
    x = _rand(5, 10, seed=9, grad=True)
    t = truncate(x, 4)
    assert t.shape == (5, 4)
    assert torch.allclose(t.norm(dim=1), torch.ones(5, dtype=torch.float64))
    assert torch.allclose(t, x[:, :4] / x[:, :4].norm(dim=1, keepdim=True))
    t.sum().backward()                                     # gradients flow
    assert x.grad is not None and float(x.grad[:, 4:].abs().max()) == 0.0
    xn = np.arange(12, dtype=np.float64).reshape(3, 4) + 1
    tn = truncate(xn, 2)
    assert tn.dtype == np.float32 and tn.shape == (3, 2)
    np.testing.assert_allclose(tn[0], np.array([1, 2]) / np.sqrt(5), rtol=1e-6)
    np.testing.assert_allclose(truncate(xn, 4), xn / np.linalg.norm(xn, axis=1)[:, None],
                               rtol=1e-6)
    # a zero prefix stays zero instead of becoming NaN
    z = truncate(np.array([[0.0, 0.0, 1.0]]), 2)
    assert np.isfinite(z).all() and float(np.abs(z).max()) == 0.0


def test_bad_input():
    x = _rand(4, 8)
    for bad in (0, 9, -1):
        with pytest.raises(ValueError, match="dim"):
            truncate(x, bad)
    with pytest.raises(TypeError, match="dim"):
        truncate(x, 2.0)
    with pytest.raises(TypeError, match="x"):
        truncate([[1.0, 2.0]], 1)
    with pytest.raises(TypeError, match="x"):
        truncate(torch.ones(2, 3, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="increasing or strictly decreasing"):
        MatryoshkaLoss(info_nce, [8, 32, 16])
    with pytest.raises(ValueError, match="increasing or strictly decreasing"):
        MatryoshkaLoss(info_nce, [16, 16])
    with pytest.raises(ValueError, match=r"dims\[1\]"):
        MatryoshkaLoss(info_nce, [8, 0])
    with pytest.raises(TypeError, match="dims"):
        MatryoshkaLoss(info_nce, [])
    with pytest.raises(ValueError, match="weights"):
        MatryoshkaLoss(info_nce, [8, 4], [1.0])
    with pytest.raises(ValueError, match="weights"):
        MatryoshkaLoss(info_nce, [8, 4], [1.0, -1.0])
    with pytest.raises(TypeError, match="base_loss"):
        MatryoshkaLoss("info_nce", [8])
    with pytest.raises(ValueError, match="exceed the embedding size 8"):
        MatryoshkaLoss(info_nce, [16, 8])(x, x)
    with pytest.raises(ValueError, match="shape of anchors"):
        MatryoshkaLoss(info_nce, [4])(x, _rand(5, 8))


def test_funnel_equals_exact_search_with_a_full_shortlist_and_is_close_with_a_short_one():
    rng = np.random.default_rng(0)
    # the first 8 coordinates carry most of the signal, as in a Matryoshka embedding
    scale = np.r_[np.full(8, 3.0), np.full(56, 0.5)].astype(np.float32)
    xb = (rng.standard_normal((2000, 64)) * scale).astype(np.float32)
    q = (xb[:50] + 0.3 * rng.standard_normal((50, 64)) * scale).astype(np.float32)
    xn, qn = truncate(xb, 64), truncate(q, 64)
    full_scores = qn @ xn.T
    exact = np.argsort(-full_scores, axis=1, kind="stable")[:, :10]
    scores, ids = funnel_search(q, xb, 10, short_dim=8, shortlist=2000)
    # float32 rounding may swap two near-equal scores, never change them
    assert np.allclose(scores, np.take_along_axis(full_scores, exact, axis=1), atol=1e-5)
    assert np.mean([len(set(a) & set(b)) for a, b in zip(ids, exact, strict=True)]) >= 9.9
    _, ids = funnel_search(q, xb, 10, short_dim=8, shortlist=200)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact, strict=True)])
    assert overlap >= 0.9
    scores, _ = funnel_search(q, xb, 10, short_dim=8, shortlist=200)
    assert (np.diff(scores, axis=1) <= 1e-6).all()           # descending


def test_funnel_index_incremental_adds_bytes_and_query_blocks():
    rng = np.random.default_rng(2)
    xb = rng.standard_normal((300, 32)).astype(np.float32)
    q = rng.standard_normal((7, 32)).astype(np.float32)
    one = FunnelIndex(32, 8, query_block=3)
    one.add(xb[:100])
    one.add(xb[100:])
    assert one.ntotal == 300
    assert one.scan_nbytes == 300 * 8 * 4 and one.nbytes == 300 * 40 * 4
    s1, i1 = one.search(q, 5, shortlist=40)
    s2, i2 = funnel_search(q, xb, 5, short_dim=8, shortlist=40)
    assert (i1 == i2).all() and np.allclose(s1, s2)
    want = np.sort(truncate(q, 32) @ truncate(xb, 32).T, axis=1)[:, ::-1][:, :5]
    s3, _ = one.search(q, 5, shortlist=300)
    assert np.allclose(s3, want, atol=1e-5)
    with pytest.raises(ValueError, match="empty"):
        FunnelIndex(32, 8).search(q, 1)
    with pytest.raises(ValueError, match="32 columns"):
        one.add(xb[:, :16])


def test_funnel_bad_input():
    x = np.random.default_rng(1).standard_normal((20, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="short_dim"):
        funnel_search(x, x, 5, short_dim=9)
    with pytest.raises(ValueError, match="shortlist"):
        funnel_search(x, x, 5, short_dim=4, shortlist=3)
    with pytest.raises(ValueError, match="same dimension"):
        funnel_search(x[:, :4], x, 5, short_dim=4)
    with pytest.raises(ValueError, match="NaN"):
        funnel_search(np.full((1, 8), np.nan, np.float32), x, 5, short_dim=4)


def test_storage_arithmetic_and_concentration():
    assert storage_bytes(1, 3072) == 12_288
    assert storage_bytes(1, 3072) / storage_bytes(1, 512) == 6
    assert storage_bytes(1_000_000, 384, "int8") == 384_000_000
    assert storage_bytes(10, 100, "binary") == 10 * 13
    with pytest.raises(ValueError, match="dtype"):
        storage_bytes(1, 8, "float64")
    rng = np.random.default_rng(0)
    low = distance_concentration(rng.standard_normal((500, 2)))
    high = distance_concentration(rng.standard_normal((500, 1000)))
    assert 0 <= low < 0.1 and 0.7 < high < 1.0


def test_train_pairs_with_matryoshka_loss_reduces_it():
    from embedlab.encoders import BagOfEmbeddings, Vocabulary

    words = [f"w{i}" for i in range(40)]
    vocab = Vocabulary(words)
    vectors = np.random.default_rng(0).standard_normal((len(vocab), 16)).astype(np.float32)
    enc = BagOfEmbeddings(vocab, vectors)
    queries = [f"w{i} w{i + 1}" for i in range(0, 36, 2)]
    docs = [f"w{i + 1} w{i + 2} w{i}" for i in range(0, 36, 2)]
    loss = MatryoshkaLoss(functools.partial(info_nce, temperature=0.1), [16, 8, 4])
    losses = train_pairs(enc, queries, docs, loss, steps=30, batch_size=8, lr=0.05,
                         device="cpu", progress=False)
    assert len(losses) == 30 and np.mean(losses[-5:]) < np.mean(losses[:5])
    with pytest.raises(ValueError, match="pair up"):
        train_pairs(enc, queries, docs[:-1], loss, steps=1, device="cpu")


def test_published_dimensions_table() -> None:
    from embedlab.matryoshka import published_dimensions

    rows = published_dimensions()
    assert all({"model", "dims", "mteb", "matryoshka", "source"} <= set(r) for r in rows)
    assert all(r["source"] and 0 < r["mteb"] < 100 and r["dims"] >= 1 for r in rows)
    nomic = sorted((r["dims"], r["mteb"]) for r in rows if r["model"] == "nomic-embed-text-v1.5")
    assert len(nomic) >= 3 and all(b[1] > a[1] for a, b in zip(nomic, nomic[1:], strict=False))
    rows[0]["mteb"] = -1.0
    assert published_dimensions()[0]["mteb"] > 0
