"""info_nce against cross-entropy written out and against sentence-transformers; mining; SimCSE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embedlab.contrastive import (
    alignment,
    bm25_scores,
    gradient_weights,
    info_nce,
    infonce_row,
    mine_hard_negatives,
    similarity_matrix,
    train_pairs,
    train_simcse,
    uniformity,
)

TOL = 1e-6


def _inputs(b=8, d=16, n_neg=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, d, generator=g, dtype=torch.float64, requires_grad=True)
    p = torch.randn(b, d, generator=g, dtype=torch.float64, requires_grad=True)
    n = (torch.randn(b, n_neg, d, generator=g, dtype=torch.float64, requires_grad=True)
         if n_neg else None)
    return a, p, n


def _plain(a, p, n, tau, symmetric=False):
    """The loss written the long way: explicit cosines, log-softmax of row i, label i."""
    an = a / a.norm(dim=1, keepdim=True)
    pn = p / p.norm(dim=1, keepdim=True)
    rows = []
    for i in range(a.shape[0]):
        cands = [pn[j] for j in range(a.shape[0])]
        if n is not None:
            cands += [n[j, k] / n[j, k].norm()
                      for k in range(n.shape[1]) for j in range(n.shape[0])]
        logits = torch.stack([an[i] @ c for c in cands]) / tau
        rows.append(F.cross_entropy(logits[None], torch.tensor([i])))
    loss = torch.stack(rows).mean()
    if symmetric:
        back = torch.stack([F.cross_entropy((pn[i] @ an.T / tau)[None], torch.tensor([i]))
                            for i in range(a.shape[0])]).mean()
        loss = (loss + back) / 2
    return loss


def _grads(loss, tensors):
    return torch.autograd.grad(loss, [t for t in tensors if t is not None])


@pytest.mark.parametrize("n_neg", [0, 1, 3])
@pytest.mark.parametrize("tau", [0.05, 0.5])
@pytest.mark.parametrize("symmetric", [False, True])
def test_info_nce_matches_plain_cross_entropy(n_neg, tau, symmetric):
    a, p, n = _inputs(n_neg=n_neg, seed=n_neg)
    ours = info_nce(a, p, n, temperature=tau, symmetric=symmetric)
    ref = _plain(a, p, n, tau, symmetric)
    assert abs(ours.item() - ref.item()) < TOL
    for g1, g2 in zip(_grads(ours, (a, p, n)), _grads(ref, (a, p, n)), strict=True):
        assert float((g1 - g2).abs().max()) < TOL


def _mnrl(symmetric, tau):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    kw = dict(directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction") \
        if symmetric else {}
    return MultipleNegativesRankingLoss(model=None, scale=1.0 / tau, **kw)


@pytest.mark.parametrize("n_neg", [0, 2])
@pytest.mark.parametrize("symmetric", [False, True])
def test_info_nce_matches_sentence_transformers(n_neg, symmetric):
    tau = 0.05
    a, p, n = _inputs(b=16, d=32, n_neg=n_neg, seed=7)
    cols = [a, p] + ([n[:, k] for k in range(n_neg)] if n is not None else [])
    ref = _mnrl(symmetric, tau).compute_loss_from_embeddings(cols, None)
    ours = info_nce(a, p, n, temperature=tau, symmetric=symmetric)
    assert abs(ours.item() - ref.item()) < TOL
    for g1, g2 in zip(_grads(ours, (a, p, n)), _grads(ref, (a, p, n)), strict=True):
        assert float((g1 - g2).abs().max()) < TOL


def test_info_nce_known_values():
    # identical orthogonal anchors and positives: logits 1/tau on the diagonal, 0 elsewhere
    x = torch.eye(4, dtype=torch.float64)
    tau = 0.5
    expect = -np.log(np.exp(2.0) / (np.exp(2.0) + 3))
    assert abs(float(info_nce(x, x, temperature=tau)) - expect) < 1e-12
    # a batch of one with no negatives has nothing to contrast: loss 0
    assert float(info_nce(x[:1], x[:1])) == 0.0
    # scale invariance: cosine inside
    assert abs(float(info_nce(3 * x, x, temperature=tau)) - expect) < 1e-12


def test_info_nce_bad_input():
    a = torch.randn(4, 8)
    with pytest.raises(ValueError, match="positives"):
        info_nce(a, torch.randn(5, 8))
    with pytest.raises(ValueError, match="temperature"):
        info_nce(a, a, temperature=0)
    with pytest.raises(ValueError, match="temperature"):
        info_nce(a, a, temperature=-0.1)
    with pytest.raises(ValueError, match="empty"):
        info_nce(torch.randn(0, 8), torch.randn(0, 8))
    with pytest.raises(ValueError, match="negatives"):
        info_nce(a, a, torch.randn(3, 2, 8))
    with pytest.raises(ValueError, match="NaN"):
        info_nce(a, torch.full((4, 8), float("nan")))
    with pytest.raises(TypeError, match="anchors"):
        info_nce([[1.0]], a)
    with pytest.raises(TypeError, match="floating"):
        info_nce(torch.ones(4, 8, dtype=torch.long), a)


def test_similarity_matrix_and_gradient_weights():
    a, p, _ = _inputs()
    s = similarity_matrix(a, p, temperature=0.1)
    ref = F.cosine_similarity(a[:, None], p[None], dim=-1) / 0.1
    assert torch.allclose(s, ref, atol=1e-12)
    w = gradient_weights([0.9, 0.5, 0.1], 0.05)
    assert abs(w.sum() - 1) < 1e-12 and w[0] > 0.99
    flat = gradient_weights([0.9, 0.5, 0.1], 100.0)
    assert np.ptp(flat) < 0.01  # high temperature spreads the weight evenly
    with pytest.raises(ValueError, match="temperature"):
        gradient_weights([1.0], 0.0)


@pytest.mark.parametrize("tau", [0.01, 0.05, 0.5, 2.0])
@pytest.mark.parametrize("positive", [0, 3])
def test_infonce_row_matches_autograd(tau, positive):
    """The explorer's numbers: loss and gradient of one row against torch's cross-entropy."""
    rng = np.random.default_rng(int(tau * 100) + positive)
    s = rng.uniform(-1, 1, size=7)
    row = infonce_row(s, tau, positive=positive)
    st = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy((st / tau)[None], torch.tensor([positive]))
    (grad,) = torch.autograd.grad(loss, st)
    assert abs(row["loss"] - loss.item()) < 1e-9
    assert np.allclose(row["gradient"], grad.numpy(), atol=1e-9)
    p = row["probabilities"]
    assert abs(p.sum() - 1) < 1e-12 and np.allclose(p, torch.softmax(st / tau, 0).detach())
    w = row["negative_weights"]
    assert w[positive] == 0 and np.allclose(np.delete(w, positive), np.delete(p, positive) / tau)
    # the push on the negatives balances the pull on the positive
    assert abs(w.sum() - (1 - p[positive]) / tau) < 1e-9


def test_infonce_row_lower_tau_concentrates_on_the_hardest_negative():
    s = np.array([0.8, 0.7, 0.3, 0.1, 0.0])
    share = [infonce_row(s, t)["negative_weights"] for t in (0.02, 1.0)]
    share = [w[1] / w.sum() for w in share]
    assert share[0] > 0.99 > 0.4 > share[1]


def test_infonce_row_bad_input():
    with pytest.raises(ValueError, match="at least two"):
        infonce_row([0.5], 0.1)
    with pytest.raises(ValueError, match="finite"):
        infonce_row([0.5, float("nan")], 0.1)
    with pytest.raises(ValueError, match="positive"):
        infonce_row([0.5, 0.1], 0.1, positive=2)
    with pytest.raises(ValueError, match="temperature"):
        infonce_row([0.5, 0.1], 0.0)


def test_mine_hard_negatives_margin():
    scores = np.array([[0.9, 0.85, 0.5, 0.7, 0.1],
                       [0.2, 0.3, 0.95, 0.4, 0.94]])
    pos = np.array([0, 2])
    # no margin: the best non-positives
    assert mine_hard_negatives(scores, pos, 2).tolist() == [[1, 3], [4, 3]]
    # margin 0.1: 0.85 and 0.94 are too close to the positive (likely false negatives)
    assert mine_hard_negatives(scores, pos, 2, margin=0.1).tolist() == [[3, 2], [3, 1]]
    # relative margin 5%: keep scores below 95% of the positive's (0.855 and 0.9025)
    assert mine_hard_negatives(scores, pos, 1, margin=0.05, relative=True).tolist() == [[1], [3]]
    assert mine_hard_negatives(scores, pos, 1, skip_top=1).tolist() == [[3], [3]]
    # margin 0 drops only candidates that outscore the positive
    outscored = np.array([[0.5, 0.9, 0.4]])
    assert mine_hard_negatives(outscored, np.array([0]), 1).tolist() == [[1]]
    assert mine_hard_negatives(outscored, np.array([0]), 1, margin=0.0).tolist() == [[2]]
    # too few survivors: -1 fills the rest
    out = mine_hard_negatives(scores, pos, 4, margin=0.5)
    assert out.tolist() == [[4, -1, -1, -1], [3, 1, 0, -1]]
    with pytest.raises(ValueError, match="positive_ids"):
        mine_hard_negatives(scores, np.array([0, 5]), 1)
    with pytest.raises(ValueError, match="n_negatives"):
        mine_hard_negatives(scores, pos, 0)
    with pytest.raises(ValueError, match="margin"):
        mine_hard_negatives(scores, pos, 1, margin=-1)


def test_bm25_scores_rank_the_matching_document_first():
    corpus = ["the cat sat on the mat", "stock markets fell sharply today",
              "a recipe for lemon cake"]
    s = bm25_scores(["markets fell", "lemon cake recipe", "unknownword"], corpus)
    assert s.shape == (3, 3) and s.dtype == np.float32
    assert s[0].argmax() == 1 and s[1].argmax() == 2
    assert (s[2] == 0).all()
    with pytest.raises(ValueError, match="non-empty"):
        bm25_scores([], corpus)


def test_alignment_uniformity():
    x = torch.randn(64, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert alignment(x, x) == 0.0
    assert alignment(x, -x) == pytest.approx(4.0)  # antipodal: ||u - (-u)||^2 = 4
    collapsed = torch.ones(64, 8, dtype=torch.float64)
    assert uniformity(collapsed) == pytest.approx(0.0)  # all points equal: log 1
    assert uniformity(x) < -1.0  # spread points are more uniform (lower)
    with pytest.raises(ValueError, match="two rows"):
        uniformity(x[:1])


class _Toy(torch.nn.Module):
    """A stand-in encoder: one learned vector per character, averaged."""

    def __init__(self, dropout=0.0):
        super().__init__()
        self.emb = torch.nn.Embedding(128, 16)
        self.drop = torch.nn.Dropout(dropout)

    def tokenize(self, texts):
        width = max(len(t) for t in texts)
        ids = torch.zeros(len(texts), width, dtype=torch.long)
        for i, t in enumerate(texts):
            ids[i, : len(t)] = torch.tensor([ord(c) % 128 for c in t])
        return ids.to(self.emb.weight.device)

    def embed_tokens(self, ids):
        return self.drop(self.emb(ids)).mean(1)


def test_train_pairs_lowers_the_loss():
    words = [f"w{i:03d}" for i in range(64)]
    enc = _Toy()
    losses = train_pairs(enc, words, [w[::-1] for w in words], steps=60, batch_size=16,
                         temperature=0.1, lr=0.05, progress=False, device="cpu")
    assert len(losses) == 60 and np.mean(losses[-10:]) < np.mean(losses[:10])
    neg = np.zeros((64, 2), dtype=np.int64) - 1
    losses = train_pairs(_Toy(), words, words, steps=5, batch_size=8, hard_negatives=neg,
                         progress=False, device="cpu")
    assert len(losses) == 5
    with pytest.raises(ValueError, match="pair up"):
        train_pairs(enc, words, words[:3], steps=1)
    with pytest.raises(ValueError, match="batch_size"):
        train_pairs(enc, words, words, steps=1, batch_size=1)


def test_simcse_same_mask_has_a_constant_positive():
    words = [f"sentence {i}" for i in range(32)]
    # with the same mask both views coincide: the loss is that of z against itself
    losses = train_simcse(_Toy(dropout=0.3), words, steps=3, batch_size=8, same_mask=True,
                          lr=1e-9, progress=False, device="cpu")
    enc = _Toy(dropout=0.3)
    two_views = train_simcse(enc, words, steps=20, batch_size=8, lr=0.05, progress=False,
                             device="cpu")
    assert all(np.isfinite(losses)) and np.mean(two_views[-5:]) < np.mean(two_views[:5])
    with pytest.raises(ValueError, match="temperature"):
        train_simcse(enc, words, steps=1, batch_size=4, temperature=0.0)
