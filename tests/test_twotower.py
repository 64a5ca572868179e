"""Two towers: CLIP's symmetric loss, zero-shot on digits, a recommender and the logQ fix."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embedlab import twotower as T
from embedlab.contrastive import info_nce


def _plain_symmetric(a, b, tau):
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    s = a @ b.T / tau
    loss = 0.0
    for i in range(len(a)):
        loss = loss - torch.log_softmax(s[i], 0)[i] - torch.log_softmax(s[:, i], 0)[i]
    return loss / (2 * len(a))


def test_two_tower_loss_is_clip_symmetric_cross_entropy_and_info_nce() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 5, generator=g, requires_grad=True)
    b = torch.randn(7, 5, generator=g, requires_grad=True)
    got = T.two_tower_loss(a, b, temperature=0.2)
    want = _plain_symmetric(a, b, 0.2)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(got, info_nce(a, b, temperature=0.2, symmetric=True))
    ga, gb = torch.autograd.grad(got, (a, b))
    wa, wb = torch.autograd.grad(want, (a, b))
    assert torch.allclose(ga, wa, atol=1e-5) and torch.allclose(gb, wb, atol=1e-5)
    # symmetric: swapping the towers gives the same loss
    assert torch.allclose(T.two_tower_loss(b, a, 0.2), got, atol=1e-6)


def test_two_tower_loss_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="text_emb"):
        T.two_tower_loss(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="temperature"):
        T.two_tower_loss(torch.randn(4, 3), torch.randn(4, 3), temperature=0.0)


def test_captions_follow_labels_and_are_seeded() -> None:
    y = np.array([7, 0, 3, 7])
    caps = T.digit_captions(y, seed=1)
    assert caps == T.digit_captions(y, seed=1)
    assert [c.split()[-1] for c in caps] == ["seven", "zero", "three", "seven"]
    assert all(any(c == t.format(c.split()[-1]) for t in T.TEMPLATES) for c in caps)
    with pytest.raises(ValueError, match="labels"):
        T.digit_captions([10])
    with pytest.raises(ValueError, match="template"):
        T.digit_captions([1], templates=["no slot"])


def test_text_tower_handles_unknown_and_empty_texts() -> None:
    tower = T.TextTower(["a", "handwritten", "seven"], dim=4)
    out = tower(["a handwritten seven", "", "zebra"])
    assert out.shape == (3, 4)
    assert torch.allclose(out[1], out[2])          # both pool only the unknown-word row
    with pytest.raises(TypeError, match="texts"):
        tower("a handwritten seven")


@pytest.fixture(scope="module")
def clip_model():
    from embedlab import data

    x, y = data.load("digits")
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(y))
    tr, te = perm[:1200], perm[1200:]
    words = [w for t in T.TEMPLATES for w in t.format("").split()] + list(T.DIGIT_NAMES)
    torch.manual_seed(0)
    model = T.TwoTower(T.ImageTower(32), T.TextTower(words, 32))
    losses = T.train_clip(model, x[tr], T.digit_captions(y[tr]), steps=120, batch_size=64,
                          temperature=0.1, device="cpu", progress=False)
    return model, x[te], y[te], losses


def test_clip_training_lowers_the_loss_and_classifies_zero_shot(clip_model) -> None:
    model, x, y, losses = clip_model
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10])
    # an unseen prompt ("a photo of a ..."): far above chance (0.1)
    acc = T.zero_shot_accuracy(model, x, y)
    assert acc > 0.8
    pred = T.zero_shot_predict(model, x, template="a handwritten {}")
    assert pred.shape == y.shape and set(np.unique(pred)) <= set(range(10))


def test_text_to_image_retrieval_finds_the_named_digit(clip_model) -> None:
    model, x, y, _ = clip_model
    queries = [f"a handwritten {n}" for n in T.DIGIT_NAMES]
    ids = T.retrieve_images(model, queries, x, k=10)
    assert ids.shape == (10, 10)
    precision = (y[ids] == np.arange(10)[:, None]).mean()
    assert precision > 0.8
    with pytest.raises(ValueError, match="k"):
        T.retrieve_images(model, queries, x, k=len(x) + 1)


def test_synthetic_interactions_are_seeded_skewed_and_follow_the_truth() -> None:
    d = T.synthetic_interactions(n_users=200, n_items=50, dim=8, per_user=30, seed=3)
    d2 = T.synthetic_interactions(n_users=200, n_items=50, dim=8, per_user=30, seed=3)
    assert np.array_equal(d.pairs, d2.pairs)
    assert d.pairs.shape == (6000, 2) and d.pairs[:, 1].max() < 50
    counts = np.bincount(d.pairs[:, 1], minlength=50)
    assert counts[:5].sum() > counts[-5:].sum() * 3          # popularity skew
    # the empirical item distribution matches the model's marginal
    p = np.exp(d.true_logits - d.true_logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert np.abs(counts / counts.sum() - p.mean(0)).max() < 0.02
    flat = T.synthetic_interactions(n_users=200, n_items=50, dim=8, zipf=0.0, seed=3)
    assert np.allclose(flat.popularity, 1 / 50)
    with pytest.raises(ValueError, match="zipf"):
        T.synthetic_interactions(zipf=-1.0)


def test_item_log_q_is_log_frequency() -> None:
    pairs = np.array([[0, 0], [1, 0], [2, 1], [3, 0]])
    lq = T.item_log_q(pairs, 3, smoothing=1.0)
    assert np.allclose(np.exp(lq), np.array([4, 2, 1]) / 7)
    with pytest.raises(ValueError, match="pairs"):
        T.item_log_q(np.zeros(4), 3)


def test_logq_correction_subtracts_log_q_from_each_column() -> None:
    g = torch.Generator().manual_seed(1)
    u, v = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    lq = torch.log(torch.tensor([0.5, 0.2, 0.1, 0.1, 0.05, 0.05]))
    logits = F.normalize(u, dim=-1) @ F.normalize(v, dim=-1).T / 0.1 - lq[None, :]
    want = F.cross_entropy(logits, torch.arange(6))
    assert torch.allclose(T.in_batch_softmax_loss(u, v, lq, 0.1), want)
    # a constant log q changes nothing (softmax is shift invariant)
    assert torch.allclose(T.in_batch_softmax_loss(u, v, torch.full((6,), -3.0), 0.1),
                          T.in_batch_softmax_loss(u, v, None, 0.1), atol=1e-6)
    with pytest.raises(ValueError, match="log_q"):
        T.in_batch_softmax_loss(u, v, lq[:3], 0.1)
    with pytest.raises(ValueError, match="log_q"):
        T.in_batch_softmax_loss(u, v, torch.full((6,), float("-inf")), 0.1)


def test_logq_correction_removes_the_popularity_bias() -> None:
    d = T.synthetic_interactions(n_users=400, n_items=200, dim=8, per_user=40, zipf=1.0,
                                 beta=10.0, seed=0)
    truth = d.true_top_k(10)
    out = {}
    for name, lq in (("plain", None), ("logq", T.item_log_q(d.pairs, d.n_items))):
        m = T.RecommenderTowers(d.n_users, d.n_items, dim=16, seed=0)
        T.train_recommender(m, d.pairs, steps=300, batch_size=256, lr=0.05, temperature=0.1,
                            log_q=lq, device="cpu", progress=False)
        rec = T.recommend_top_k(m, 10)
        out[name] = (T.recall_against_truth(rec, truth), rec.mean())
    # plain in-batch negatives push popular (low-id) items down: recommended ids run high
    assert out["plain"][1] > truth.mean() + 30
    assert out["logq"][0] > out["plain"][0] + 0.05
    assert abs(out["logq"][1] - truth.mean()) < abs(out["plain"][1] - truth.mean())


def test_recall_against_truth_known_answer() -> None:
    assert T.recall_against_truth([[1, 2], [3, 4]], [[2, 9], [3, 4]]) == 0.75
    with pytest.raises(ValueError, match="recommended"):
        T.recall_against_truth([[1, 2]], [[1, 2], [3, 4]])


def test_two_tower_loss_matches_sentence_transformers_symmetric_mnrl() -> None:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    tau = 0.1
    g = torch.Generator().manual_seed(3)
    a = torch.randn(12, 16, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(12, 16, generator=g, dtype=torch.float64, requires_grad=True)
    ref_loss = MultipleNegativesRankingLoss(model=None, scale=1.0 / tau,
                                            directions=("query_to_doc", "doc_to_query"),
                                            partition_mode="per_direction")
    ref = ref_loss.compute_loss_from_embeddings([a, b], None)
    ours = T.two_tower_loss(a, b, temperature=tau)
    assert abs(ours.item() - ref.item()) < 1e-9
    for g1, g2 in zip(torch.autograd.grad(ours, (a, b)), torch.autograd.grad(ref, (a, b)),
                      strict=True):
        assert float((g1 - g2).abs().max()) < 1e-9


def test_recall_per_user_and_published_embedders() -> None:
    rec = np.array([[1, 2, 3], [4, 5, 6]])
    truth = np.array([[1, 2, 9], [7, 8, 9]])
    per = T.recall_per_user(rec, truth)
    assert per.tolist() == [pytest.approx(2 / 3), 0.0]
    assert per.mean() == pytest.approx(T.recall_against_truth(rec, truth))
    rows = T.published_embedders()
    assert {r["modality"] for r in rows} == {"code", "image", "audio"}
    assert all(r["source"] and r["model"] for r in rows)
    assert all((r["figure"] is None) == (r["benchmark"] is None) for r in rows)
    assert all(r["modality"] == "audio" for r in T.published_embedders("audio"))
    rows[0]["model"] = "changed"
    assert T.published_embedders()[0]["model"] != "changed"
    with pytest.raises(ValueError, match="modality"):
        T.published_embedders("video")
