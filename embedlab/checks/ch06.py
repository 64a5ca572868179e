"""Checks for chapter 06: alignment of two views, and one SimCSE training step.

The references are computed here another way: alignment in float64 numpy; the SimCSE step with
autograd on a deep copy of the encoder and its own optimizer, the two dropout views drawn under
the same torch seed as the learner's (Gao et al. 2021: unsupervised SimCSE, InfoNCE over the
in-batch second views). Every run draws fresh weights, texts and seeds.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from embedlab.checks import TORCH_LOSSES, exercise, expect_type, must_raise
from embedlab.encoders import TinyTransformer, Vocabulary

_WORDS = ["the", "market", "fell", "rose", "court", "ruled", "team", "won", "storm", "hit",
          "city", "vote", "price", "oil", "late", "early"]


def _rng() -> np.random.Generator:
    return np.random.default_rng()


def _encoder(rng, dropout: float = 0.3) -> TinyTransformer:
    vocab = Vocabulary(_WORDS)
    vectors = rng.normal(size=(len(vocab), 8)).astype(np.float32)
    return TinyTransformer(vocab, vectors, d_model=8, nhead=2, num_layers=1, dim_feedforward=16,
                           dropout=dropout, max_len=8, seed=int(rng.integers(1 << 30)))


def _texts(rng, n: int) -> list[str]:
    return [" ".join(rng.choice(_WORDS, size=int(rng.integers(2, 6)))) for _ in range(n)]


# --------------------------------------------------------------------------- 06.alignment
align = exercise("06.alignment", name="alignment", points=2,
    reference=("embedlab.contrastive:alignment",))


def _align_ref(z1, z2, alpha):
    a = np.asarray(z1, dtype=np.float64)
    b = np.asarray(z2, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((np.linalg.norm(a - b, axis=1) ** alpha).mean())


@align.check("returns the mean over rows of ||z1_i/|z1_i| - z2_i/|z2_i| ||^alpha as a float")
def _(fn):
    rng = _rng()
    for alpha in (2.0, 1.0):
        z1 = rng.normal(size=(int(rng.integers(3, 20)), 7)) * rng.uniform(0.1, 10)
        z2 = z1 + rng.normal(size=z1.shape)
        got = float(expect_type(fn(torch.tensor(z1), torch.tensor(z2), alpha),
                                (float, np.floating, torch.Tensor), "alignment"))
        want = _align_ref(z1, z2, alpha)
        assert abs(got - want) < 1e-6, f"alpha={alpha}: {got:.5f}, expected {want:.5f}"


@align.check("is 0 for two identical views and 4 for opposite ones (alpha = 2)")
def _(fn):
    z = torch.tensor(_rng().normal(size=(5, 4)))
    assert abs(float(fn(z, z.clone(), 2.0))) < 1e-9, "identical views must give 0"
    assert abs(float(fn(z, -z, 2.0)) - 4.0) < 1e-9, "opposite views must give 4"


# --------------------------------------------------------------------------- 06.simcse_step
step = exercise("06.simcse_step", name="simcse_step", points=6,
    reference=("embedlab.contrastive:train_simcse",), refuse_attrs=TORCH_LOSSES)


def _reference_step(enc, tokens, temperature, lr):
    opt = torch.optim.SGD(enc.parameters(), lr=lr)
    enc.train()
    opt.zero_grad()
    z1, z2 = enc.embed_tokens(tokens), enc.embed_tokens(tokens)
    a = z1 / z1.norm(dim=1, keepdim=True)
    b = z2 / z2.norm(dim=1, keepdim=True)
    sim = a @ b.T
    loss = -torch.log_softmax(sim / temperature, dim=1).diagonal().mean()
    loss.backward()
    opt.step()
    n = sim.shape[0]
    off = sim.detach()[~torch.eye(n, dtype=torch.bool)]
    return float(loss.detach()), float(sim.detach().diagonal().mean()), float(off.mean())


def _run(fn, enc, tokens, temperature, lr, seed):
    opt = torch.optim.SGD(enc.parameters(), lr=lr)
    enc.eval()  # the answer must switch dropout on itself
    torch.manual_seed(seed)
    out = fn(enc, opt, tokens, temperature)
    expect_type(out, dict, "simcse_step's result")
    for key in ("loss", "positive_cosine", "negative_cosine"):
        assert key in out, f"the result has no {key!r}"
    return out


def _setup():
    rng = _rng()
    enc = _encoder(rng)
    texts = _texts(rng, int(rng.integers(6, 12)))
    return rng, enc, enc.tokenize(texts)


@step.check("one step equals autograd's on InfoNCE between two dropout views (train mode, two "
            "calls of embed_tokens, cosine / temperature, the diagonal as the positives)")
def _(fn):
    rng, enc, tokens = _setup()
    ref = copy.deepcopy(enc)
    seed, tau, lr = int(rng.integers(1 << 30)), float(rng.choice([0.05, 0.1, 0.5])), 0.5
    out = _run(fn, enc, tokens, tau, lr, seed)
    torch.manual_seed(seed)
    want, _, _ = _reference_step(ref, tokens, tau, lr)
    assert abs(float(out["loss"]) - want) < 1e-4, f"loss {float(out['loss']):.5f}, expected " \
        f"{want:.5f}: embed the batch twice in training mode, nothing random in between"
    for a, b in zip(enc.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), "the parameters after the step differ from " \
            "autograd's: zero_grad, backward, then optimizer.step()"


@step.check("uses two different dropout masks: the positives are not identical views")
def _(fn):
    rng, enc, tokens = _setup()
    out = _run(fn, enc, tokens, 0.05, 0.0, int(rng.integers(1 << 30)))
    assert float(out["positive_cosine"]) < 1 - 1e-4, "positive cosine is 1: both views are the " \
        "same (dropout off? call encoder.train())"


@step.check("reports the mean cosine of the positive pairs and of all other pairs of the batch")
def _(fn):
    rng, enc, tokens = _setup()
    ref = copy.deepcopy(enc)
    seed = int(rng.integers(1 << 30))
    out = _run(fn, enc, tokens, 0.1, 0.1, seed)
    torch.manual_seed(seed)
    _, pos, neg = _reference_step(ref, tokens, 0.1, 0.1)
    assert abs(float(out["positive_cosine"]) - pos) < 1e-4, \
        f"positive_cosine {float(out['positive_cosine']):.4f}, expected {pos:.4f}"
    assert abs(float(out["negative_cosine"]) - neg) < 1e-4, \
        f"negative_cosine {float(out['negative_cosine']):.4f}, expected {neg:.4f}"


@step.check("raises ValueError for a temperature that is not positive")
def _(fn):
    _, enc, tokens = _setup()
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    must_raise(fn, enc, opt, tokens, 0.0)
