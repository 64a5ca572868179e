"""Checks for chapter 04: masked mean pooling, the frequency-weighted (SIF) sentence vector, nDCG@k
(against scikit-learn) and one fine-tuning step with hard negatives (against autograd)."""

from __future__ import annotations

import numpy as np
import torch

from embedlab.checks import TORCH_LOSSES, exercise
from embedlab.encoders import pool as _pool


def _as_array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _batch(seed: int = 4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 7, 3, generator=g, dtype=torch.float64)
    lengths = [7, 1, 3, 5, 2]
    mask = torch.zeros(5, 7, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    return x, mask


# --------------------------------------------------------------------------- 04.mean_pool
mean_pool = exercise("04.mean_pool", name="mean_pool", points=3,
    reference=("embedlab.encoders:pool",))


@mean_pool.check("returns one vector per text, shape (B, d): the mean over the real tokens")
def _(fn):
    x, mask = _batch()
    got = _as_array(fn(x, mask))
    assert got.shape == (5, 3), f"shape {got.shape}, expected (5, 3)"
    assert np.allclose(got, _as_array(_pool(x, mask, "mean")), atol=1e-9), "values differ"


@mean_pool.check("ignores padding completely: padded positions may hold anything")
def _(fn):
    x, mask = _batch(5)
    noisy = x.clone()
    noisy[~mask] = 1e6
    assert np.allclose(_as_array(fn(noisy, mask)), _as_array(_pool(x, mask, "mean")),
                       atol=1e-6), "padding leaked into the mean"


@mean_pool.check("a text of one token returns that token's vector (divide by the real count)")
def _(fn):
    x, mask = _batch(6)
    assert np.allclose(_as_array(fn(x, mask))[1], _as_array(x[1, 0]), atol=1e-9)


# --------------------------------------------------------------------------- 04.sif
sif = exercise("04.sif", name="sif_embedding", points=3,
    reference=("embedlab.encoders:sif_weights",))


def _reference_sif(ids_list, vectors, counts, a):
    p = np.asarray(counts, dtype=np.float64) / np.sum(counts)
    w = a / (a + p)
    out = np.zeros((len(ids_list), vectors.shape[1]))
    for i, ids in enumerate(ids_list):
        out[i] = (w[ids, None] * vectors[ids]).sum(0) / w[ids].sum()
    return out


def _toy(seed=7):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(10, 4))
    counts = np.array([1000, 500, 100, 50, 10, 5, 3, 2, 1, 1])
    ids_list = [[0, 4, 9], [1, 1, 2, 3], [5], [0, 0, 0, 8]]
    return ids_list, vectors, counts


@sif.check("weights each word by a / (a + p(w)), p(w) = count / total count, then averages")
def _(fn):
    ids_list, vectors, counts = _toy()
    got = _as_array(fn(ids_list, vectors, counts, a=1e-2))
    assert got.shape == (4, 4), f"shape {got.shape}, expected (4, 4)"
    assert np.allclose(got, _reference_sif(ids_list, vectors, counts, 1e-2), atol=1e-9)


@sif.check("divides by the sum of the weights (a weighted mean, not a weighted sum)")
def _(fn):
    ids_list, vectors, counts = _toy(8)
    got = _as_array(fn([[3, 3, 3]], vectors, counts, a=1e-3))
    assert np.allclose(got[0], vectors[3], atol=1e-9), "a text of one repeated word is that word"


@sif.check("uses the a it is given: a large a makes the weights nearly equal (plain average)")
def _(fn):
    ids_list, vectors, counts = _toy(9)
    got = _as_array(fn(ids_list, vectors, counts, a=1e6))
    plain = np.stack([vectors[ids].mean(0) for ids in ids_list])
    assert np.allclose(got, plain, atol=1e-4)


# --------------------------------------------------------------------------- 04.ndcg
ndcg_ex = exercise("04.ndcg", name="ndcg_at_k", points=3,
    reference=("embedlab.evaluation:ndcg",))


def _fresh() -> np.random.Generator:
    return np.random.default_rng()


def _graded(rng: np.random.Generator, n_queries: int, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """Fresh random scores and graded relevance (0 to 3), every query with a relevant document."""
    scores = rng.normal(size=(n_queries, n_docs))
    rel = rng.integers(0, 4, size=(n_queries, n_docs)) * (rng.random((n_queries, n_docs)) < 0.3)
    rel[np.arange(n_queries), rng.integers(0, n_docs, n_queries)] = rng.integers(1, 4, n_queries)
    return scores, rel.astype(float)


@ndcg_ex.check("matches sklearn.metrics.ndcg_score on random graded relevance: gain rel_i, "
               "discount 1/log2(i + 1), divided by the ideal DCG, averaged over queries")
def _(fn):
    from sklearn.metrics import ndcg_score

    rng = _fresh()
    for k in (1, 3, 10):
        scores, rel = _graded(rng, int(rng.integers(3, 9)), int(rng.integers(12, 30)))
        got = float(fn(scores, rel, k))
        want = float(ndcg_score(rel, scores, k=k))
        assert abs(got - want) < 1e-9, f"k={k}: got {got}, sklearn gives {want}"


@ndcg_ex.check("one relevant document at rank r gives 1/log2(r + 1) inside the top k, 0 outside")
def _(fn):
    rng = _fresh()
    n = int(rng.integers(15, 25))
    r = int(rng.integers(1, 11))
    scores = -np.arange(n, dtype=float)[None]           # document i is ranked i + 1
    rel = np.zeros((1, n))
    rel[0, r - 1] = 1.0
    got = float(fn(scores, rel, 10))
    assert abs(got - 1 / np.log2(r + 1)) < 1e-9, f"rank {r}: got {got}, want {1 / np.log2(r + 1)}"
    rel = np.zeros((1, n))
    rel[0, 12] = 1.0
    assert abs(float(fn(scores, rel, 10))) < 1e-12, "a relevant document at rank 13 adds nothing"


@ndcg_ex.check("raises ValueError for a query with no relevant document (nDCG is undefined) "
               "and for k < 1")
def _(fn):
    from embedlab.checks import must_raise

    scores, rel = _graded(_fresh(), 3, 12)
    rel[1] = 0.0
    must_raise(fn, scores, rel, 5)
    scores, rel = _graded(_fresh(), 3, 12)
    must_raise(fn, scores, rel, 0)


# --------------------------------------------------------------------------- 04.hard_step
hard_step = exercise("04.hard_step", name="hard_negative_step", points=3,
    reference=("embedlab.contrastive:info_nce",), refuse_attrs=TORCH_LOSSES)


def _tiny(seed: int, d_in: int, d_out: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d_in, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, d_out)).double()


def _reference_loss(model, q, p, n, temperature):
    """The loss written out by hand: log-softmax over [positives; negatives] of every row."""
    a = model(q)
    c = torch.cat([model(p), model(n)])
    a = a / torch.sqrt((a * a).sum(1, keepdim=True))
    c = c / torch.sqrt((c * c).sum(1, keepdim=True))
    logits = (a @ c.T) / temperature
    b = len(q)
    return -(logits[torch.arange(b), torch.arange(b)] - torch.log(torch.exp(logits).sum(1))).mean()


def _setup():
    rng = _fresh()
    seed = int(rng.integers(1 << 30))
    b, d_in = int(rng.integers(4, 9)), int(rng.integers(5, 12))
    g = torch.Generator().manual_seed(seed)
    q, p, n = (torch.randn(b, d_in, generator=g, dtype=torch.float64) for _ in range(3))
    tau = float(rng.choice([0.05, 0.1, 0.5]))
    return seed, d_in, q, p, n, tau


@hard_step.check("returns the loss before the step: info_nce over 2B candidates per anchor "
                 "(every row's positive and every row's hard negative), embedded by the same "
                 "model and L2-normalised")
def _(fn):
    seed, d_in, q, p, n, tau = _setup()
    model = _tiny(seed, d_in, 6)
    want = float(_reference_loss(_tiny(seed, d_in, 6), q, p, n, tau).detach())
    got = float(fn(model, torch.optim.SGD(model.parameters(), lr=0.1), q, p, n, tau))
    assert abs(got - want) < 1e-8, f"loss {got}, expected {want}"


@hard_step.check("takes exactly one optimiser step on that loss: the weights must equal one SGD "
                 "step of autograd on the reference loss (zero the old gradients first)")
def _(fn):
    seed, d_in, q, p, n, tau = _setup()
    ref = _tiny(seed, d_in, 6)
    opt = torch.optim.SGD(ref.parameters(), lr=0.05)
    opt.zero_grad()
    _reference_loss(ref, q, p, n, tau).backward()
    opt.step()
    model = _tiny(seed, d_in, 6)
    for prm in model.parameters():                    # stale gradients the step must clear
        prm.grad = torch.ones_like(prm)
    fn(model, torch.optim.SGD(model.parameters(), lr=0.05), q, p, n, tau)
    for (name, a), b in zip(model.named_parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-10), f"parameter {name} differs after the step"


@hard_step.check("the step lowers the loss on the same batch (a small learning rate)")
def _(fn):
    seed, d_in, q, p, n, tau = _setup()
    model = _tiny(seed, d_in, 6)
    before = float(fn(model, torch.optim.SGD(model.parameters(), lr=1e-3), q, p, n, tau))
    after = float(_reference_loss(model, q, p, n, tau))
    assert after < before, f"loss {before} before the step, {after} after"


# --------------------------------------------------------------------------- 04.evaluate
evaluate = exercise("04.evaluate", name="evaluate_retrieval", points=6,
    reference=("embedlab.evaluation:ranking_metrics", "embedlab.evaluation:ranked_metrics"))
METRICS = ("recall@1", "recall@k", "mrr", "ndcg@k")


def _retrieval_case(rng: np.random.Generator):
    """Fresh queries, documents of mixed lengths and 1 to 3 relevant documents per query."""
    n_q, n_d, d = int(rng.integers(8, 30)), int(rng.integers(40, 120)), int(rng.integers(4, 16))
    docs = rng.normal(size=(n_d, d)) * rng.uniform(0.2, 5.0, size=(n_d, 1))
    relevant = [sorted(rng.choice(n_d, size=int(rng.integers(1, 4)), replace=False).tolist())
                for _ in range(n_q)]
    queries = np.stack([docs[r].mean(0) / np.linalg.norm(docs[r].mean(0)) for r in relevant])
    queries += rng.normal(scale=0.8, size=queries.shape)
    return queries, docs, relevant


def _reference_metrics(queries, docs, relevant, k):
    """A plain loop per query: cosine ranks, then each metric from its definition."""
    from sklearn.metrics import ndcg_score

    unit_d = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    r1 = rk = rr = 0.0
    truth, scores = [], []
    for q, rel in zip(queries, relevant, strict=True):
        s = unit_d @ (q / np.linalg.norm(q))
        ranking = sorted(range(len(s)), key=lambda j: -s[j])
        r1 += float(ranking[0] in rel) / len(rel)
        rk += len(set(ranking[:k]) & set(rel)) / len(rel)
        rr += 1.0 / (1 + min(ranking.index(j) for j in rel))
        truth.append(np.isin(np.arange(len(s)), rel).astype(float))
        scores.append(s)
    n = len(queries)
    return {"recall@1": r1 / n, "recall@k": rk / n, "mrr": rr / n,
            "ndcg@k": float(ndcg_score(np.array(truth), np.array(scores), k=k))}


@evaluate.check("returns a dict with recall@1, recall@k, mrr and ndcg@k, each a float in [0, 1]")
def _(fn):
    queries, docs, relevant = _retrieval_case(_fresh())
    got = fn(queries, docs, relevant, 10)
    assert isinstance(got, dict), f"expected a dict, got {type(got).__name__}"
    missing = [m for m in METRICS if m not in got]
    assert not missing, f"missing keys {missing}"
    for m in METRICS:
        v = got[m]
        assert isinstance(v, float) and 0.0 <= v <= 1.0, f"{m} = {v!r}: expected a float in [0, 1]"


@evaluate.check("matches every metric's definition (cosine ranking; several relevant documents "
                "per query; nDCG as scikit-learn computes it) on fresh random data")
def _(fn):
    rng = _fresh()
    for k in (1, 5, 10):
        queries, docs, relevant = _retrieval_case(rng)
        got, want = fn(queries, docs, relevant, k), _reference_metrics(queries, docs, relevant, k)
        for m in METRICS:
            assert abs(float(got[m]) - want[m]) < 1e-6, (
                f"k={k}: {m} = {float(got[m]):.6f}, expected {want[m]:.6f}")


@evaluate.check("ranks by cosine: rescaling a document vector changes nothing")
def _(fn):
    rng = _fresh()
    queries, docs, relevant = _retrieval_case(rng)
    scaled = docs * rng.uniform(0.01, 100.0, size=(len(docs), 1))
    a, b = fn(queries, docs, relevant, 10), fn(queries, scaled, relevant, 10)
    for m in METRICS:
        assert abs(float(a[m]) - float(b[m])) < 1e-9, f"{m} changed from {a[m]} to {b[m]}"


@evaluate.check("raises ValueError for k < 1, a query with no relevant document, a relevant id "
                "out of range, or queries and documents of different widths")
def _(fn):
    from embedlab.checks import must_raise

    queries, docs, relevant = _retrieval_case(_fresh())
    must_raise(fn, queries, docs, relevant, 0)
    must_raise(fn, queries, docs, [[]] + relevant[1:], 10)
    must_raise(fn, queries, docs, [[len(docs)]] + relevant[1:], 10)
    must_raise(fn, queries[:, :-1], docs, relevant, 10)
