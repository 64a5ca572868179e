"""Checks for chapter 05: mining hard negatives, and a contrastive training loop.

The mining reference is a brute-force sort written here; the training loop is judged by what it
does on held-out pairs the check draws itself (recall@10 against exact cosine search, before and
after training). Every run draws fresh data and fresh weights.
"""

from __future__ import annotations

import numpy as np
import torch

from embedlab.checks import TORCH_LOSSES, exercise, expect_array, must_raise


def _rng() -> np.random.Generator:
    return np.random.default_rng()


# --------------------------------------------------------------------------- 05.mining
mining = exercise("05.mining", name="mine_hard_negatives", points=3,
    reference=("embedlab.contrastive:mine_hard_negatives",))


def _mine_brute(scores, pos, k, margin):
    out = []
    for i, row in enumerate(np.asarray(scores, dtype=np.float64)):
        limit = row[pos[i]] - margin
        ok = [(-row[j], j) for j in range(len(row)) if j != pos[i] and row[j] <= limit]
        ids = [j for _, j in sorted(ok)][:k]
        out.append(ids + [-1] * (k - len(ids)))
    return out


def _ids(x, shape) -> list[list[int]]:
    return expect_array(x, shape, "the negatives").astype(int).tolist()


@mining.check("returns, per query, the highest-scoring documents other than the positive, best "
              "first, skipping those above positive - margin")
def _(fn):
    rng = _rng()
    for margin in (0.0, 0.05):
        q, d, k = int(rng.integers(3, 20)), int(rng.integers(10, 40)), int(rng.integers(1, 5))
        scores = rng.random((q, d))
        pos = rng.integers(0, d, size=q)
        assert _ids(fn(scores, pos, k, margin), (q, k)) == _mine_brute(scores, pos, k, margin), \
            f"margin={margin}: not the documents a full sort picks"


@mining.check("fills the slots no candidate survives with -1")
def _(fn):
    scores = np.array([[0.5, 0.45, 0.1]])
    assert _ids(fn(scores, np.array([0]), 3, 0.2), (1, 3)) == [[2, -1, -1]]


# --------------------------------------------------------------------------- 05.train
train = exercise("05.train", name="train_contrastive", points=6,
    reference=("embedlab.contrastive:train_pairs",
               "embedlab.encoders:train_encoder"),
    refuse_attrs=TORCH_LOSSES)


class _World:
    """Pairs of noisy views of one latent meaning, buried among nuisance dimensions."""

    def __init__(self, rng, d_latent=8, d_noise=24):
        self.rng, self.d_latent = rng, d_latent
        self.mix_q = rng.normal(size=(d_latent, d_latent))
        self.mix_d = self.mix_q + 0.3 * rng.normal(size=(d_latent, d_latent))
        self.d_noise = d_noise

    def pairs(self, n):
        z = self.rng.normal(size=(n, self.d_latent))

        def view(mix):
            clean = z @ mix + 0.3 * self.rng.normal(size=(n, self.d_latent))
            return np.hstack([clean, 3.0 * self.rng.normal(size=(n, self.d_noise))])

        return (torch.tensor(view(self.mix_q), dtype=torch.float32),
                torch.tensor(view(self.mix_d), dtype=torch.float32))


def _encoder(seed, d_in=32, d=16):
    torch.manual_seed(seed)
    return torch.nn.Linear(d_in, d)


def _recall_at_10(enc, q, d):
    with torch.no_grad():
        a = torch.nn.functional.normalize(enc(q), dim=1).double().numpy()
        b = torch.nn.functional.normalize(enc(d), dim=1).double().numpy()
    scores = a @ b.T  # exact search in float64
    rank = (scores > scores[np.arange(len(a)), np.arange(len(a))][:, None]).sum(1)
    return float((rank < 10).mean())


_RUNS: dict[int, tuple] = {}


def _trained(fn, n_hard):
    key = (id(fn), n_hard)
    if key not in _RUNS:
        rng = _rng()
        world = _World(rng)
        q, d = world.pairs(1024)
        q_test, d_test = world.pairs(400)
        enc = _encoder(int(rng.integers(1 << 30)))
        before = _recall_at_10(enc, q_test, d_test)
        opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
        losses = fn(enc, opt, q, d, epochs=3, batch_size=64, n_hard=n_hard, temperature=0.1,
                    seed=int(rng.integers(1 << 30)))
        after = _recall_at_10(enc, q_test, d_test)
        _RUNS[key] = (expect_array(losses, (None,), "the losses"), before, after)
    return _RUNS[key]


@train.check("with mined hard negatives, recall@10 on held-out pairs rises well above the "
             "untrained encoder's")
def _(fn):
    _, before, after = _trained(fn, 3)
    assert after > before + 0.2, f"held-out recall@10 {before:.2f} before, {after:.2f} after"


@train.check("returns one finite loss per optimiser step, and the last epoch's losses are lower "
             "than the first's")
def _(fn):
    losses, _, _ = _trained(fn, 3)
    steps_per_epoch = 1024 // 64
    assert len(losses) == 3 * steps_per_epoch, f"{len(losses)} losses, expected " \
        f"{3 * steps_per_epoch} (3 epochs of {steps_per_epoch} batches)"
    assert np.all(np.isfinite(losses)), "a loss is NaN or infinite"
    first, last = losses[:steps_per_epoch].mean(), losses[-steps_per_epoch:].mean()
    assert last < first, f"mean loss {first:.3f} in the first epoch, {last:.3f} in the last"


@train.check("works with in-batch negatives only (n_hard = 0) and still learns")
def _(fn):
    _, before, after = _trained(fn, 0)
    assert after > before + 0.2, f"n_hard=0: recall@10 {before:.2f} before, {after:.2f} after"


@train.check("raises ValueError when queries and documents differ in number")
def _(fn):
    enc = _encoder(0)
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    must_raise(fn, enc, opt, torch.zeros(8, 32), torch.zeros(7, 32))
