"""Checks for chapter 04: masked mean pooling and the frequency-weighted (SIF) sentence vector."""

from __future__ import annotations

import numpy as np
import torch

from embedlab.checks import exercise
from embedlab.encoders import pool as _pool


def _as_array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _batch(seed: int = 4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 7, 3, generator=g, dtype=torch.float64)
    lengths = [7, 1, 3, 5, 2]
    mask = torch.zeros(5, 7, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    return x, mask


# --------------------------------------------------------------------------- 04.mean_pool
mean_pool = exercise("04.mean_pool", name="mean_pool", points=3)


@mean_pool.check("returns one vector per text, shape (B, d): the mean over the real tokens")
def _(fn):
    x, mask = _batch()
    got = _as_array(fn(x, mask))
    assert got.shape == (5, 3), f"shape {got.shape}, expected (5, 3)"
    assert np.allclose(got, _as_array(_pool(x, mask, "mean")), atol=1e-9), "values differ"


@mean_pool.check("ignores padding completely: padded positions may hold anything")
def _(fn):
    x, mask = _batch(5)
    noisy = x.clone()
    noisy[~mask] = 1e6
    assert np.allclose(_as_array(fn(noisy, mask)), _as_array(_pool(x, mask, "mean")),
                       atol=1e-6), "padding leaked into the mean"


@mean_pool.check("a text of one token returns that token's vector (divide by the real count)")
def _(fn):
    x, mask = _batch(6)
    assert np.allclose(_as_array(fn(x, mask))[1], _as_array(x[1, 0]), atol=1e-9)


# --------------------------------------------------------------------------- 04.sif
sif = exercise("04.sif", name="sif_embedding", points=3)


def _reference_sif(ids_list, vectors, counts, a):
    p = np.asarray(counts, dtype=np.float64) / np.sum(counts)
    w = a / (a + p)
    out = np.zeros((len(ids_list), vectors.shape[1]))
    for i, ids in enumerate(ids_list):
        out[i] = (w[ids, None] * vectors[ids]).sum(0) / w[ids].sum()
    return out


def _toy(seed=7):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(10, 4))
    counts = np.array([1000, 500, 100, 50, 10, 5, 3, 2, 1, 1])
    ids_list = [[0, 4, 9], [1, 1, 2, 3], [5], [0, 0, 0, 8]]
    return ids_list, vectors, counts


@sif.check("weights each word by a / (a + p(w)), p(w) = count / total count, then averages")
def _(fn):
    ids_list, vectors, counts = _toy()
    got = _as_array(fn(ids_list, vectors, counts, a=1e-2))
    assert got.shape == (4, 4), f"shape {got.shape}, expected (4, 4)"
    assert np.allclose(got, _reference_sif(ids_list, vectors, counts, 1e-2), atol=1e-9)


@sif.check("divides by the sum of the weights (a weighted mean, not a weighted sum)")
def _(fn):
    ids_list, vectors, counts = _toy(8)
    got = _as_array(fn([[3, 3, 3]], vectors, counts, a=1e-3))
    assert np.allclose(got[0], vectors[3], atol=1e-9), "a text of one repeated word is that word"


@sif.check("uses the a it is given: a large a makes the weights nearly equal (plain average)")
def _(fn):
    ids_list, vectors, counts = _toy(9)
    got = _as_array(fn(ids_list, vectors, counts, a=1e6))
    plain = np.stack([vectors[ids].mean(0) for ids in ids_list])
    assert np.allclose(got, plain, atol=1e-4)
