"""Checks for chapter 02: subsampling keep-probability, the noise table, the SGNS loss."""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise
from embedlab.word2vec import keep_probability as _keep_reference
from embedlab.word2vec import noise_distribution as _noise_reference
from embedlab.word2vec import sgns_loss as _sgns_reference

_COUNTS = np.array([50_000, 20_000, 3_000, 800, 120, 40, 9, 5, 5, 1])

# --------------------------------------------------------------------------- 02.keep_prob
keep = exercise("02.keep_prob", name="keep_prob", points=2)


@keep.check("uses word2vec.c's formula: (sqrt(f / t) + 1) * t / f with f = count / total")
def _(fn):
    for t in (1e-3, 1e-2, 1e-1):
        got = np.asarray(fn(_COUNTS, t), dtype=np.float64)
        assert got.shape == _COUNTS.shape, f"shape {got.shape}, expected {_COUNTS.shape}"
        want = _keep_reference(_COUNTS, t)
        assert np.allclose(got, want, atol=1e-9), f"t={t}: got {np.round(got[:3], 4)}, " \
            f"expected {np.round(want[:3], 4)}"


@keep.check("caps the probability at 1: rare words are always kept")
def _(fn):
    got = np.asarray(fn(_COUNTS, 1e-2), dtype=np.float64)
    assert got.max() <= 1.0 + 1e-12 and got[-1] == 1.0


@keep.check("returns all ones when sample = 0 (subsampling switched off)")
def _(fn):
    got = np.asarray(fn(_COUNTS, 0.0), dtype=np.float64)
    assert np.array_equal(got, np.ones(len(_COUNTS)))


# --------------------------------------------------------------------------- 02.noise_table
table = exercise("02.noise_table", name="unigram_table", points=3)


def _check_table(fn, counts, size, power):
    got = np.asarray(fn(counts, size, power))
    assert got.shape == (size,), f"the table must have exactly table_size={size} entries, " \
        f"got shape {got.shape}"
    assert np.issubdtype(got.dtype, np.integer), \
        f"entries must be integer word ids, got {got.dtype}"
    assert got.min() >= 0 and got.max() < len(counts), "word ids must lie in 0..V-1"
    share = np.bincount(got, minlength=len(counts))
    want = _noise_reference(counts, power) * size
    worst = np.abs(share - want).max()
    assert worst <= 1.0 + 1e-9, f"a word fills {worst:.2f} slots more or fewer than " \
        "P_n(w) * table_size"


@table.check("word w fills round(P_n(w) * table_size) slots (within one), P_n = count^0.75 / sum")
def _(fn):
    _check_table(fn, _COUNTS, 10_000, 0.75)
    _check_table(fn, _COUNTS[::-1].copy(), 1_000, 0.75)


@table.check("has exactly table_size entries even when the shares do not round evenly "
             "(round the cumulative sum, not each share)")
def _(fn):
    _check_table(fn, np.array([1, 1, 1]), 100, 0.75)
    _check_table(fn, np.array([7, 3, 3, 2, 1, 1, 1]), 997, 0.75)


@table.check("respects the power argument (power = 1 is the plain unigram distribution)")
def _(fn):
    _check_table(fn, _COUNTS, 5_000, 1.0)
    _check_table(fn, _COUNTS, 5_000, 0.5)


# --------------------------------------------------------------------------- 02.sgns_loss
sgns = exercise("02.sgns_loss", name="sgns_loss_batch", points=3)


def _batch(seed, scale=1.0):
    import torch

    g = torch.Generator().manual_seed(seed)
    v = (torch.randn(6, 8, generator=g) * scale).requires_grad_()
    up = (torch.randn(6, 8, generator=g) * scale).requires_grad_()
    un = (torch.randn(6, 4, 8, generator=g) * scale).requires_grad_()
    return v, up, un


@sgns.check("value: mean over the batch of -log sigma(u_pos . v) - sum_k log sigma(-u_neg_k . v)")
def _(fn):
    import torch

    for seed in (0, 1):
        v, up, un = _batch(seed)
        got = fn(v, up, un)
        assert isinstance(got, torch.Tensor) and got.ndim == 0, "return a scalar tensor"
        want = _sgns_reference(v, up, un)
        assert torch.allclose(got, want, atol=1e-5), f"got {got.item():.5f}, " \
            f"expected {want.item():.5f}"


@sgns.check("gradient: autograd through your loss matches the reference for v, u_pos, u_neg "
            "(build it from torch operations only)")
def _(fn):
    import torch

    v, up, un = _batch(2)
    fn(v, up, un).backward()
    mine = [t.grad.clone() for t in (v, up, un)]
    v2, up2, un2 = _batch(2)
    _sgns_reference(v2, up2, un2).backward()
    for name, a, b in zip(("v", "u_pos", "u_neg"), mine, (v2.grad, up2.grad, un2.grad),
                          strict=True):
        assert torch.allclose(a, b, atol=1e-5), f"gradient of {name} differs"


@sgns.check("stays finite for large scores (use F.logsigmoid, not log(sigmoid(x)))")
def _(fn):
    import torch

    v, up, un = _batch(3, scale=30.0)
    got = fn(v, up, un)
    assert torch.isfinite(got), f"loss is {got.item()}"
    assert torch.allclose(got, _sgns_reference(v, up, un), rtol=1e-4)
