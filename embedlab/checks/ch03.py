"""Checks for chapter 03: the GloVe weighting f(x) and the GloVe loss."""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise
from embedlab.glove import glove_loss as _loss_reference
from embedlab.glove import glove_weight as _weight_reference

# --------------------------------------------------------------------------- 03.weight
weight = exercise("03.weight", name="glove_f", points=2)


@weight.check("f(x) = (x / x_max)^alpha below x_max (x_max = 100, alpha = 0.75 by default)")
def _(fn):
    xs = np.array([0.5, 1.0, 7.0, 42.0, 99.0])
    got = np.asarray(fn(xs), dtype=np.float64)
    assert np.allclose(got, _weight_reference(xs)), f"got {np.round(got, 4)}"
    got = np.asarray(fn(xs, x_max=10.0, alpha=0.5), dtype=np.float64)
    assert np.allclose(got, _weight_reference(xs, 10.0, 0.5)), "x_max and alpha must be used"


@weight.check("f(x) = 1 from x_max on: frequent pairs are capped, not boosted")
def _(fn):
    xs = np.array([100.0, 150.0, 1e6])
    assert np.allclose(np.asarray(fn(xs), dtype=np.float64), 1.0)


@weight.check("f(0) = 0 and f works element-wise on an array (use np.where, not an if)")
def _(fn):
    got = np.asarray(fn(np.array([0.0, 100.0, 25.0])), dtype=np.float64)
    assert got.shape == (3,) and got[0] == 0.0


# --------------------------------------------------------------------------- 03.loss
loss = exercise("03.loss", name="glove_objective", points=3)


def _problem(seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    V, d, n = 7, 4, 15
    W = torch.randn(V, d, generator=g, dtype=torch.float64).requires_grad_()
    Wt = torch.randn(V, d, generator=g, dtype=torch.float64).requires_grad_()
    b = torch.randn(V, generator=g, dtype=torch.float64).requires_grad_()
    bt = torch.randn(V, generator=g, dtype=torch.float64).requires_grad_()
    rows = torch.randint(0, V, (n,), generator=g)
    cols = torch.randint(0, V, (n,), generator=g)
    x = torch.rand(n, generator=g, dtype=torch.float64) * 250 + 0.2
    return W, Wt, b, bt, rows, cols, x


@loss.check("value: sum of f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2 over the entries")
def _(fn):
    import torch

    for seed in (0, 1):
        args = _problem(seed)
        got = fn(*args)
        assert isinstance(got, torch.Tensor) and got.ndim == 0, "return a scalar tensor"
        want = _loss_reference(*args)
        assert torch.allclose(got, want, rtol=1e-6), f"got {got.item():.4f}, " \
            f"expected {want.item():.4f}"


@loss.check("uses the weighting with x_max and alpha (counts above x_max weigh exactly 1)")
def _(fn):
    import torch

    args = _problem(2)
    got = fn(*args, x_max=10.0, alpha=0.5)
    want = _loss_reference(*args, x_max=10.0, alpha=0.5)
    assert torch.allclose(got, want, rtol=1e-6), "x_max and alpha must be used"


@loss.check("gradient: autograd through your loss matches the reference for W, W~, b and b~")
def _(fn):
    import torch

    args = _problem(3)
    fn(*args).backward()
    mine = [t.grad.clone() for t in args[:4]]
    ref = _problem(3)
    _loss_reference(*ref).backward()
    for name, a, t in zip(("W", "W_tilde", "b", "b_tilde"), mine, ref[:4], strict=True):
        assert torch.allclose(a, t.grad, rtol=1e-6, atol=1e-9), f"gradient of {name} differs"
