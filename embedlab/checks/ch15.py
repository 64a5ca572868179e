"""Checks for chapter 15: the symmetric two-tower loss and the logQ-corrected in-batch loss."""

from __future__ import annotations

import numpy as np
import torch

from embedlab.checks import exercise, raises
from embedlab.contrastive import info_nce
from embedlab.twotower import in_batch_softmax_loss


def _pair(seed: int, b: int = 6, d: int = 5):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, d, generator=g, dtype=torch.float64),
            torch.randn(b, d, generator=g, dtype=torch.float64))



# --------------------------------------------------------------------------- 15.symmetric_loss
sym = exercise("15.symmetric_loss", name="symmetric_loss", points=4)


@sym.check("equals the mean of the image->text and text->image cross-entropies (cosine / tau)")
def _(fn):
    for seed, tau in ((0, 0.1), (1, 0.5), (2, 1.0)):
        a, b = _pair(seed)
        got = float(fn(a, b, tau))
        want = float(info_nce(a, b, temperature=tau, symmetric=True))
        assert abs(got - want) < 1e-6, f"tau={tau}: got {got:.6f}, expected {want:.6f}"


@sym.check("uses cosine similarity: scaling a row must not change the loss")
def _(fn):
    a, b = _pair(3)
    scaled = a * torch.linspace(0.5, 4.0, len(a), dtype=a.dtype)[:, None]
    assert abs(float(fn(a, b, 0.1)) - float(fn(scaled, b, 0.1))) < 1e-6


@sym.check("is symmetric in its two towers and differs from the one-direction loss")
def _(fn):
    a, b = _pair(4)
    assert abs(float(fn(a, b, 0.2)) - float(fn(b, a, 0.2))) < 1e-6, "swap the towers: same loss"
    one_way = float(info_nce(a, b, temperature=0.2))
    assert abs(float(fn(a, b, 0.2)) - one_way) > 1e-4, "average BOTH directions, not rows only"


@sym.check("lets gradients flow to both towers (return a tensor, no .item() or numpy)")
def _(fn):
    a, b = _pair(5)
    a.requires_grad_(True)
    b.requires_grad_(True)
    loss = fn(a, b, 0.1)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0, "return a scalar tensor"
    loss.backward()
    ref_a, ref_b = (t.detach().clone().requires_grad_(True) for t in (a, b))
    info_nce(ref_a, ref_b, temperature=0.1, symmetric=True).backward()
    assert torch.allclose(a.grad, ref_a.grad, atol=1e-6)
    assert torch.allclose(b.grad, ref_b.grad, atol=1e-6)


@sym.check("raises ValueError for mismatched shapes or a temperature <= 0")
def _(fn):
    a, b = _pair(6)
    assert raises(fn, a, b[:4], 0.1), "shapes (6, 5) and (4, 5) must raise ValueError"
    assert raises(fn, a, b, 0.0), "temperature 0 must raise ValueError"


# --------------------------------------------------------------------------- 15.logq_loss
logq = exercise("15.logq_loss", name="logq_loss", points=4)


def _logq(b: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    q = rng.dirichlet(np.ones(b) * 0.5)
    return torch.tensor(np.log(q))


@logq.check("without log_q it is the plain in-batch softmax (users pick items, one direction)")
def _(fn):
    u, v = _pair(7)
    got = float(fn(u, v, None, 0.05))
    want = float(in_batch_softmax_loss(u, v, None, 0.05))
    assert abs(got - want) < 1e-6, f"got {got:.6f}, expected {want:.6f}"


@logq.check("subtracts log q of each COLUMN's item from the logits, after dividing by tau")
def _(fn):
    for seed, tau in ((8, 0.05), (9, 0.2)):
        u, v = _pair(seed)
        lq = _logq(len(u), seed)
        got = float(fn(u, v, lq, tau))
        want = float(in_batch_softmax_loss(u, v, lq, tau))
        assert abs(got - want) < 1e-6, f"tau={tau}: got {got:.6f}, expected {want:.6f}"


@logq.check("a constant log q changes nothing (softmax is shift invariant); a skewed one does")
def _(fn):
    u, v = _pair(10)
    base = float(fn(u, v, None, 0.1))
    const = torch.full((len(u),), -2.5, dtype=torch.float64)
    assert abs(float(fn(u, v, const, 0.1)) - base) < 1e-6
    assert abs(float(fn(u, v, _logq(len(u), 11), 0.1)) - base) > 1e-3


@logq.check("raises ValueError when log_q does not hold one value per row")
def _(fn):
    u, v = _pair(12)
    assert raises(fn, u, v, _logq(3, 0), 0.1), "log_q of length 3 for 6 rows must raise"
