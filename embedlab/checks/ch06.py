"""Checks for chapter 06: the SimCSE two-view forward pass and the uniformity measure."""

from __future__ import annotations

import numpy as np
import torch

from embedlab.checks import exercise
from embedlab.contrastive import info_nce as _info_nce
from embedlab.contrastive import uniformity as _uniformity
from embedlab.encoders import TinyTransformer, Vocabulary

_WORDS = ["the", "market", "fell", "rose", "court", "ruled", "team", "won", "storm", "hit"]
_TEXTS = ["the market fell", "the court ruled", "the team won", "the storm hit",
          "market rose", "team fell"]


def _encoder(dropout: float = 0.3) -> TinyTransformer:
    vocab = Vocabulary(_WORDS)
    rng = np.random.default_rng(6)
    vectors = rng.normal(size=(len(vocab), 8)).astype(np.float32)
    return TinyTransformer(vocab, vectors, d_model=8, nhead=2, num_layers=1, dim_feedforward=16,
                           dropout=dropout, max_len=8, seed=6)


def _reference(enc, tokens, temperature):
    enc.train()
    return _info_nce(enc.embed_tokens(tokens), enc.embed_tokens(tokens), temperature=temperature)


# --------------------------------------------------------------------------- 06.simcse
simcse = exercise("06.simcse", name="simcse_loss", points=4,
                  allow=("embedlab.contrastive.info_nce",))


@simcse.check("passes the batch through the encoder twice in training mode (two dropout masks) "
              "and returns info_nce(z1, z2, temperature)")
def _(fn):
    enc = _encoder()
    tokens = enc.tokenize(_TEXTS)
    for tau in (0.05, 0.5):
        torch.manual_seed(1)
        got = float(fn(enc, tokens, tau))
        torch.manual_seed(1)
        want = float(_reference(enc, tokens, tau))
        assert abs(got - want) < 1e-6, f"tau={tau}: {got:.5f} vs {want:.5f}"


@simcse.check("switches the encoder to training mode itself (dropout must be on)")
def _(fn):
    enc = _encoder()
    tokens = enc.tokenize(_TEXTS)
    enc.eval()
    torch.manual_seed(2)
    got = float(fn(enc, tokens, 0.05))
    torch.manual_seed(2)
    want = float(_reference(enc, tokens, 0.05))
    assert abs(got - want) < 1e-6, "with the encoder left in eval mode both views are identical"


@simcse.check("returns a loss that gradients flow through (do not detach or use no_grad)")
def _(fn):
    enc = _encoder()
    loss = fn(enc, enc.tokenize(_TEXTS), 0.05)
    assert isinstance(loss, torch.Tensor) and loss.requires_grad, "the loss has no graph"
    loss.backward()
    assert enc.embedding.weight.grad is not None


# --------------------------------------------------------------------------- 06.uniformity
unif = exercise("06.uniformity", name="uniformity", points=2)


@unif.check("returns log of the mean of exp(-t ||x_i - x_j||^2) over pairs i < j of unit rows")
def _(fn):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    for t in (2.0, 0.5):
        got, want = float(fn(x, t)), _uniformity(x, t)
        assert abs(got - want) < 1e-6, f"t={t}: {got:.5f} vs {want:.5f}"


@unif.check("normalises rows first: a collapsed set (all rows equal) scores 0")
def _(fn):
    x = torch.ones(10, 4, dtype=torch.float64) * torch.arange(1, 11, dtype=torch.float64)[:, None]
    assert abs(float(fn(x, 2.0))) < 1e-9
