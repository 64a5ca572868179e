"""Checks for chapter 13: truncating an embedding, and the Matryoshka loss around InfoNCE."""

from __future__ import annotations

import functools

import numpy as np
import torch

from embedlab.checks import exercise, raises
from embedlab.contrastive import info_nce as _info_nce
from embedlab.matryoshka import MatryoshkaLoss as _MatryoshkaLoss
from embedlab.matryoshka import truncate as _truncate


def _rand(*shape, seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(grad)



# --------------------------------------------------------------------------- 13.truncate
trunc = exercise("13.truncate", name="truncate", points=3)


@trunc.check("keeps the first dim coordinates of every row and rescales each row to length 1")
def _(fn):
    x = _rand(6, 10, seed=1)
    got = torch.as_tensor(fn(x, 4)).double()
    assert tuple(got.shape) == (6, 4), f"shape {tuple(got.shape)}, expected (6, 4)"
    assert torch.allclose(got, _truncate(x, 4), atol=1e-9)
    assert torch.allclose(torch.as_tensor(fn(x, 10)).double(), _truncate(x, 10), atol=1e-9)


@trunc.check("works on numpy arrays too (use operations that numpy and torch share, or convert)")
def _(fn):
    x = np.random.default_rng(2).standard_normal((5, 8))
    got = np.asarray(fn(x, 3), dtype=np.float64)
    assert got.shape == (5, 3), f"shape {got.shape}, expected (5, 3)"
    np.testing.assert_allclose(got, _truncate(x, 3), rtol=1e-5, atol=1e-6)


@trunc.check("lets gradients flow back to x (torch operations on a tensor, no .numpy())")
def _(fn):
    x = _rand(4, 6, seed=3, grad=True)
    out = fn(x, 3)
    assert isinstance(out, torch.Tensor) and out.requires_grad, "no gradient through the result"
    (g,) = torch.autograd.grad(out[:, 0].sum(), [x])
    (want,) = torch.autograd.grad(_truncate(x, 3)[:, 0].sum(), [x])
    assert torch.allclose(g, want, atol=1e-9)


@trunc.check("raises ValueError when dim < 1 or dim > the embedding size")
def _(fn):
    x = _rand(3, 5)
    for bad in (0, 6):
        assert raises(lambda b=bad: fn(x, b)), f"no ValueError for dim={bad}"


# --------------------------------------------------------------------------- 13.matryoshka
mrl = exercise("13.matryoshka_loss", name="matryoshka_loss", points=4,
               allow=("embedlab.contrastive.info_nce",))


def _ref(a, p, dims, weights, temperature):
    return _MatryoshkaLoss(functools.partial(_info_nce, temperature=temperature), dims,
                           weights)(a, p)


@mrl.check("equals the sum over dims of info_nce on the truncated batches (weights default to 1)")
def _(fn):
    a, p = _rand(16, 32, seed=4), _rand(16, 32, seed=5)
    for dims in ([32, 16, 8], [8, 16, 32], [32]):
        got, want = float(fn(a, p, dims)), float(_ref(a, p, dims, None, 0.05))
        assert abs(got - want) < 1e-6, f"dims={dims}: {got:.6f} vs {want:.6f}"


@mrl.check("multiplies each size's term by its weight and passes the temperature on")
def _(fn):
    a, p = _rand(12, 24, seed=6), _rand(12, 24, seed=7)
    got = float(fn(a, p, [24, 12, 6], [1.0, 0.5, 2.0], 0.1))
    want = float(_ref(a, p, [24, 12, 6], [1.0, 0.5, 2.0], 0.1))
    assert abs(got - want) < 1e-6, f"{got:.6f} vs {want:.6f}"


@mrl.check("is differentiable: its gradients match the reference (torch ops throughout)")
def _(fn):
    a, p = _rand(8, 16, seed=8, grad=True), _rand(8, 16, seed=9, grad=True)
    ga = torch.autograd.grad(fn(a, p, [16, 8, 4]), [a, p])
    gb = torch.autograd.grad(_ref(a, p, [16, 8, 4], None, 0.05), [a, p])
    assert max(float((x - y).abs().max()) for x, y in zip(ga, gb, strict=True)) < 1e-6


@mrl.check("raises ValueError for a size above the embedding size, or sizes out of order")
def _(fn):
    a = _rand(4, 8, seed=10)
    assert raises(lambda: fn(a, a, [16, 8])), "no ValueError for dims=[16, 8] at d=8"
    assert raises(lambda: fn(a, a, [4, 8, 2])), "no ValueError for dims=[4, 8, 2]"
