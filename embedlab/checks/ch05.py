"""Checks for chapter 05: the similarity matrix with temperature, InfoNCE, hard-negative mining."""

from __future__ import annotations

import numpy as np
import torch

from embedlab.checks import exercise
from embedlab.contrastive import info_nce as _info_nce
from embedlab.contrastive import mine_hard_negatives as _mine
from embedlab.contrastive import similarity_matrix as _sim


def _t(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def _rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


# --------------------------------------------------------------------------- 05.similarity
sim = exercise("05.similarity", name="similarity_matrix", points=2)


@sim.check("returns cos(a_i, b_j) / temperature for every pair, shape (n, m)")
def _(fn):
    a, b = _rand(6, 5, seed=1), _rand(4, 5, seed=2)
    got = _t(fn(a, b, 0.1)).double()
    assert tuple(got.shape) == (6, 4), f"shape {tuple(got.shape)}, expected (6, 4)"
    assert torch.allclose(got, _sim(a, b, 0.1), atol=1e-9)


@sim.check("normalises the rows first: scaling a row does not change its similarities")
def _(fn):
    a, b = _rand(3, 4, seed=3), _rand(3, 4, seed=4)
    assert torch.allclose(_t(fn(7.5 * a, b, 1.0)).double(), _t(fn(a, b, 1.0)).double(),
                          atol=1e-9)


@sim.check("raises ValueError for a temperature <= 0")
def _(fn):
    a = _rand(2, 3)
    for tau in (0.0, -1.0):
        try:
            fn(a, a, tau)
        except ValueError:
            continue
        raise AssertionError(f"no ValueError for temperature {tau}")


# --------------------------------------------------------------------------- 05.info_nce
nce = exercise("05.info_nce", name="info_nce", points=4)


@nce.check("matches the reference InfoNCE with in-batch negatives (several temperatures)")
def _(fn):
    a, p = _rand(16, 8, seed=5), _rand(16, 8, seed=6)
    for tau in (0.05, 0.2, 1.0):
        got = float(fn(a, p, None, tau))
        want = float(_info_nce(a, p, temperature=tau))
        assert abs(got - want) < 1e-6, f"tau={tau}: {got:.6f} vs {want:.6f}"


@nce.check("adds every row's explicit negatives (B, m, d) as candidates for every anchor")
def _(fn):
    a, p, n = _rand(8, 6, seed=7), _rand(8, 6, seed=8), _rand(8, 3, 6, seed=9)
    got = float(fn(a, p, n, 0.05))
    want = float(_info_nce(a, p, n, temperature=0.05))
    assert abs(got - want) < 1e-6, f"{got:.6f} vs {want:.6f}"


@nce.check("is differentiable: its gradients match the reference (use torch ops throughout)")
def _(fn):
    a = _rand(8, 6, seed=10).requires_grad_()
    p = _rand(8, 6, seed=11).requires_grad_()
    ga = torch.autograd.grad(fn(a, p, None, 0.1), [a, p])
    gb = torch.autograd.grad(_info_nce(a, p, temperature=0.1), [a, p])
    assert max(float((x - y).abs().max()) for x, y in zip(ga, gb, strict=True)) < 1e-6


@nce.check("raises ValueError when anchors and positives have different batch sizes")
def _(fn):
    try:
        fn(_rand(4, 3), _rand(5, 3), None, 0.05)
    except ValueError:
        return
    raise AssertionError("no ValueError for 4 anchors and 5 positives")


# --------------------------------------------------------------------------- 05.mining
mining = exercise("05.mining", name="mine_hard_negatives", points=4)


def _ids(x) -> list[list[int]]:
    return np.asarray(x).astype(int).tolist()


@mining.check("returns the highest-scoring documents that are not the positive, best first "
              "(with margin 0, those scoring at most the positive's score)")
def _(fn):
    rng = np.random.default_rng(12)
    scores = rng.random((20, 50))
    pos = rng.integers(0, 50, size=20)
    assert _ids(fn(scores, pos, 3, 0.0)) == _ids(_mine(scores, pos, 3, margin=0.0))


@mining.check("skips likely false negatives: candidates scoring above positive - margin")
def _(fn):
    scores = np.array([[0.90, 0.88, 0.50, 0.70, 0.10], [0.20, 0.30, 0.95, 0.40, 0.94]])
    assert _ids(fn(scores, np.array([0, 2]), 2, 0.1)) == [[3, 2], [3, 1]]
    rng = np.random.default_rng(13)
    s = rng.random((30, 40))
    pos = rng.integers(0, 40, size=30)
    assert _ids(fn(s, pos, 4, 0.05)) == _ids(_mine(s, pos, 4, margin=0.05))


@mining.check("fills the slots no candidate survives with -1")
def _(fn):
    scores = np.array([[0.5, 0.45, 0.1]])
    assert _ids(fn(scores, np.array([0]), 3, 0.2)) == [[2, -1, -1]]
