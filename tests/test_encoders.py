"""Small sentence encoders: vocabulary, pooling, bag of embeddings, tiny transformer, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedlab.encoders import (
    PAD,
    UNK,
    BagOfEmbeddings,
    TinyTransformer,
    Vocabulary,
    pool,
    sif_weights,
    train_encoder,
)


@pytest.fixture(scope="module")
def tiny():
    vocab = Vocabulary(["cat", "dog", "stock", "market", "the"])
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(vocab), 6)).astype(np.float32)
    vectors[PAD] = 0
    return vocab, vectors


def test_vocabulary_ids(tiny):
    vocab, _ = tiny
    assert vocab.ids("The cat, the DOG!", max_len=10) == [6, 2, 6, 3]
    assert vocab.ids("cat zebra", max_len=10) == [2, UNK]
    assert vocab.ids("the the the", max_len=2) == [6, 6]
    with pytest.raises(ValueError, match="repeat"):
        Vocabulary(["a", "a"])


def test_pool_modes():
    x = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert pool(x, mask, "mean").tolist() == [[2.0, 4.0]]
    assert pool(x, mask, "max").tolist() == [[3.0, 6.0]]
    assert pool(x, mask, "cls").tolist() == [[1.0, 2.0]]
    w = torch.tensor([[3.0, 1.0, 50.0]])
    assert pool(x, mask, "weighted", w).tolist() == [[1.5, 3.0]]
    with pytest.raises(ValueError, match="mode"):
        pool(x, mask, "median")
    with pytest.raises(ValueError, match="weights"):
        pool(x, mask, "weighted")


def test_bag_of_embeddings_is_averaged_vectors(tiny):
    vocab, vectors = tiny
    enc = BagOfEmbeddings(vocab, vectors)
    got = enc.encode(["cat dog", "stock"])
    want = np.stack([vectors[2] + vectors[3], vectors[4]])
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert got.dtype == np.float32 and np.allclose(got, want, atol=1e-6)
    # SIF weights: the frequent word barely counts
    counts = np.array([0, 0, 1, 1, 1, 1, 10_000])
    w = sif_weights(counts, a=1e-3)
    assert w[PAD] == 0 and w[6] < 0.01 < 0.5 < w[2]
    sif = BagOfEmbeddings(vocab, vectors, pooling="weighted", token_weights=w)
    a, b = sif.encode(["the cat", "cat"])
    assert a @ b > 0.99
    with pytest.raises(ValueError, match="token_weights"):
        BagOfEmbeddings(vocab, vectors, pooling="weighted")
    with pytest.raises(ValueError, match="vectors"):
        BagOfEmbeddings(vocab, vectors[:3])


def test_encoders_reject_bad_texts(tiny):
    vocab, vectors = tiny
    enc = BagOfEmbeddings(vocab, vectors)
    with pytest.raises(TypeError, match="texts"):
        enc.tokenize("cat dog")
    with pytest.raises(ValueError, match="empty"):
        enc.tokenize([])
    # an empty string still gets a vector (one <unk> token)
    assert enc.encode([""]).shape == (1, 6)


def test_tiny_transformer_shapes_padding_and_dropout(tiny):
    vocab, vectors = tiny
    enc = TinyTransformer(vocab, vectors, d_model=8, nhead=2, num_layers=1, dim_feedforward=16,
                          dropout=0.5, max_len=16)
    x = enc.encode(["cat dog the", "stock"])
    assert x.shape == (2, 8) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    # padding must not change a text's vector: encode alone and in a batch with a longer text
    assert np.allclose(enc.encode(["stock"]), x[1:], atol=1e-5)
    # dropout makes two training-mode passes differ; eval mode is deterministic
    enc.train()
    tok = enc.tokenize(["cat dog the market"])
    assert not torch.allclose(enc.embed_tokens(tok), enc.embed_tokens(tok))
    enc.eval()
    assert torch.allclose(enc.embed_tokens(tok), enc.embed_tokens(tok))
    with pytest.raises(ValueError, match="divisible"):
        TinyTransformer(vocab, vectors, d_model=10, nhead=3)


def test_train_encoder_separates_pairs(tiny):
    vocab, vectors = tiny
    from embedlab.contrastive import info_nce

    enc = BagOfEmbeddings(vocab, vectors, out_dim=4)
    pairs = [("cat", "dog"), ("stock", "market")]

    def loss_fn(e, batch):
        return info_nce(e([a for a, _ in batch]), e([b for _, b in batch]), temperature=0.1)

    def forever():
        while True:
            yield pairs

    seen = []
    losses = train_encoder(enc, forever(), loss_fn, steps=50, lr=0.05, device="cpu",
                           callback=lambda s, v: seen.append(s), progress=False)
    assert seen == list(range(1, 51)) and losses[-1] < losses[0]
    z = enc.encode(["cat", "dog", "stock", "market"])
    assert z[0] @ z[1] > z[0] @ z[2] and z[2] @ z[3] > z[2] @ z[1]
    with pytest.raises(ValueError, match="steps"):
        train_encoder(enc, forever(), loss_fn, steps=0)
