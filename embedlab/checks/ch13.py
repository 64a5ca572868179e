"""Checks for chapter 13: truncating an embedding, and one Matryoshka training step.

References are computed here another way: truncation from its formula in float64 numpy; the
training step with autograd on a copy of the encoder, the loss written with log-softmax over
each prefix (Kusupati et al. 2022, MRL). Every run draws fresh data and fresh weights.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from embedlab.checks import TORCH_LOSSES, exercise, expect_array, must_raise, value_and_grads


def _rng() -> np.random.Generator:
    return np.random.default_rng()


def _trunc_ref(x: np.ndarray, dim: int) -> np.ndarray:
    head = np.asarray(x, dtype=np.float64)[..., :dim]
    norm = np.sqrt((head**2).sum(-1, keepdims=True))
    return np.where(norm > 0, head / np.where(norm > 0, norm, 1), 0.0)


# --------------------------------------------------------------------------- 13.truncate
trunc = exercise("13.truncate", name="truncate", points=3,
    reference=("embedlab.matryoshka:truncate",))


@trunc.check("keeps the first dim coordinates of every row and rescales each row to length 1 "
             "(torch tensors and numpy arrays)")
def _(fn):
    rng = _rng()
    n, d = int(rng.integers(2, 9)), int(rng.integers(4, 20))
    x = rng.normal(size=(n, d))
    dim = int(rng.integers(1, d + 1))
    got = expect_array(fn(torch.tensor(x), dim), (n, dim), "truncate(tensor)")
    assert np.allclose(got, _trunc_ref(x, dim), atol=1e-6), "the torch result is not x[:, :dim] " \
        "divided by its length"
    got = expect_array(fn(x, dim), (n, dim), "truncate(array)")
    assert np.allclose(got, _trunc_ref(x, dim), atol=1e-6), "the numpy result is off"


@trunc.check("lets gradients flow back to x, and keeps an all-zero prefix finite (no NaN)")
def _(fn):
    x = torch.tensor(_rng().normal(size=(4, 6)))
    weight = torch.zeros(4, 3, dtype=torch.float64)
    weight[:, 0] = 1.0                                   # the gradient of out[:, 0].sum()
    out, needs_grad, (grad,) = value_and_grads(fn, [x, 3], [0], weight)
    assert isinstance(out, torch.Tensor) and needs_grad, "no gradient through the result"
    assert grad is not None and torch.isfinite(grad).all(), "no finite gradient reached x"
    ref = x.clone().requires_grad_(True)
    head = ref[:, :3]
    (head / head.norm(dim=1, keepdim=True))[:, 0].sum().backward()
    assert torch.allclose(grad, ref.grad, atol=1e-6), "the gradient differs from the formula's"
    z = np.zeros((2, 5))
    z[1, 4] = 1.0
    assert np.all(np.isfinite(np.asarray(fn(z, 3), dtype=np.float64))), "a zero prefix gave NaN"


@trunc.check("raises ValueError when dim < 1 or dim > the embedding size")
def _(fn):
    x = torch.zeros(3, 5)
    for bad in (0, 6):
        must_raise(fn, x, bad)


# --------------------------------------------------------------------------- 13.mrl_step
step = exercise("13.mrl_step", name="matryoshka_step", points=6,
    reference=("embedlab.matryoshka:MatryoshkaLoss",), refuse_attrs=TORCH_LOSSES)


def _pairs(rng, n, d_in=24, latent=6, noise=0.3):
    z = rng.normal(size=(n, latent))
    mix = _MIX.get(d_in)
    q = z @ mix + noise * rng.normal(size=(n, d_in))
    p = z @ mix + noise * rng.normal(size=(n, d_in))
    return torch.tensor(q, dtype=torch.float32), torch.tensor(p, dtype=torch.float32)


_MIX: dict[int, np.ndarray] = {}


def _encoder(rng, d_in=24, d=16):
    torch.manual_seed(int(rng.integers(1 << 30)))
    return torch.nn.Sequential(torch.nn.Linear(d_in, 32), torch.nn.Tanh(), torch.nn.Linear(32, d))


def _reference_loss(za, zp, dims, weights, temperature):
    total = 0.0
    for m, c in zip(dims, weights, strict=True):
        a = za[:, :m] / za[:, :m].norm(dim=1, keepdim=True)
        p = zp[:, :m] / zp[:, :m].norm(dim=1, keepdim=True)
        logp = torch.log_softmax(a @ p.T / temperature, dim=1)
        total = total - c * logp.diagonal().mean()
    return total


def _call(fn, enc, opt, q, p, dims, weights, temperature):
    out = fn(enc, opt, q, p, dims, weights=weights, temperature=temperature)
    assert isinstance(out, tuple) and len(out) == 2, \
        f"return (total_loss, per_size_losses), got {type(out).__name__}"
    return float(out[0]), out[1]


@step.check("one step equals autograd's on the weighted sum of InfoNCE over the re-normalised "
            "prefixes: same loss, same parameters after optimizer.step()")
def _(fn):
    rng = _rng()
    _MIX[24] = rng.normal(size=(6, 24))
    q, p = _pairs(rng, 32)
    enc = _encoder(rng)
    ref = copy.deepcopy(enc)
    opt = torch.optim.SGD(enc.parameters(), lr=0.5)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    dims, weights, tau = [16, 8, 4], [1.0, 0.5, 2.0], 0.1
    got, per = _call(fn, enc, opt, q, p, dims, weights, tau)
    ref_opt.zero_grad()
    want = _reference_loss(ref(q), ref(p), dims, weights, tau)
    want.backward()
    ref_opt.step()
    want = float(want.detach())
    assert abs(got - want) < 1e-4, f"loss {got:.5f}, expected {want:.5f}"
    for a, b in zip(enc.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), "the parameters after the step differ from " \
            "autograd's: zero the gradients, backward the weighted total, then step"
    assert set(map(int, per)) == set(dims), f"per-size losses for {sorted(per)}, expected {dims}"


@step.check("reports each size's own InfoNCE loss (unweighted) in the dict, keyed by size")
def _(fn):
    rng = _rng()
    _MIX[24] = rng.normal(size=(6, 24))
    q, p = _pairs(rng, 16)
    enc = _encoder(rng)
    with torch.no_grad():
        za, zp = enc(q), enc(p)
        want = {m: float(_reference_loss(za, zp, [m], [1.0], 0.05)) for m in (2, 8, 16)}
    opt = torch.optim.SGD(enc.parameters(), lr=0.0)
    _, per = _call(fn, enc, opt, q, p, [2, 8, 16], [3.0, 1.0, 1.0], 0.05)
    for m, w in want.items():
        assert m in per, f"no entry for size {m}"
        assert abs(float(per[m]) - w) < 1e-4, f"size {m}: {float(per[m]):.4f}, expected {w:.4f}"


@step.check("training with it makes the smallest prefix useful: recall@1 at 1/4 of the size rises "
            "on held-out pairs")
def _(fn):
    rng = _rng()
    _MIX[24] = rng.normal(size=(6, 24))
    enc = _encoder(rng)
    q_test, p_test = _pairs(rng, 200)

    def recall(m):
        with torch.no_grad():
            a = torch.nn.functional.normalize(enc(q_test)[:, :m], dim=1)
            b = torch.nn.functional.normalize(enc(p_test)[:, :m], dim=1)
        return float(((a @ b.T).argmax(1) == torch.arange(len(a))).float().mean())

    before = recall(4)
    opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
    for _ in range(40):
        q, p = _pairs(rng, 64)
        _call(fn, enc, opt, q, p, [4, 8, 16], None, 0.1)
    after = recall(4)
    assert after > before + 0.15, f"recall@1 with 4 of 16 dimensions: {before:.2f} before, " \
        f"{after:.2f} after 40 steps"


@step.check("raises ValueError when dims are not strictly ordered or exceed the embedding size")
def _(fn):
    rng = _rng()
    _MIX[24] = rng.normal(size=(6, 24))
    q, p = _pairs(rng, 8)
    enc = _encoder(rng)
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    for bad in ([4, 16, 8], [8, 8], [4, 32]):
        must_raise(fn, enc, opt, q, p, bad)
