"""Checks for chapter 15: the symmetric two-tower loss, the logQ-corrected in-batch loss and a
logQ-corrected two-tower trainer with streaming frequency estimates."""

from __future__ import annotations

import numpy as np
import torch

from embedlab.checks import TORCH_LOSSES, exercise, raises, value_and_grads


def _pair(seed: int, b: int = 6, d: int = 5):
    g = torch.Generator().manual_seed(seed + int(np.random.default_rng().integers(2**31)))
    return (torch.randn(b, d, generator=g, dtype=torch.float64),
            torch.randn(b, d, generator=g, dtype=torch.float64))


def _xent_rows(logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -log softmax at the diagonal, written out with logsumexp."""
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a @ b.T) / (a.norm(dim=1, keepdim=True) * b.norm(dim=1)[None, :])


def info_nce(a, b, temperature, symmetric=False):
    """The check's own InfoNCE: rows (a picks b), and with ``symmetric`` the columns too."""
    s = _cos(a, b) / temperature
    return (_xent_rows(s) + _xent_rows(s.T)) / 2 if symmetric else _xent_rows(s)


def in_batch_softmax_loss(u, v, log_q, temperature):
    """The check's own corrected in-batch softmax: column j's logits minus log_q[j]."""
    s = _cos(u, v) / temperature
    if log_q is not None:
        s = s - torch.as_tensor(log_q, dtype=s.dtype)[None, :]
    return _xent_rows(s)


# --------------------------------------------------------------------------- 15.symmetric_loss
sym = exercise("15.symmetric_loss", name="symmetric_loss", points=4,
    reference=("embedlab.twotower:two_tower_loss",
               "embedlab.contrastive:info_nce"),
    refuse_attrs=TORCH_LOSSES)


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
    loss, needs_grad, (grad_a, grad_b) = value_and_grads(fn, [a, b, 0.1], [0, 1])
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0, "return a scalar tensor"
    assert needs_grad and grad_a is not None and grad_b is not None, \
        "no gradient reached the towers"
    ref_a, ref_b = (t.detach().clone().requires_grad_(True) for t in (a, b))
    info_nce(ref_a, ref_b, temperature=0.1, symmetric=True).backward()
    assert torch.allclose(grad_a, ref_a.grad, atol=1e-6)
    assert torch.allclose(grad_b, ref_b.grad, atol=1e-6)


@sym.check("raises ValueError for mismatched shapes or a temperature <= 0")
def _(fn):
    a, b = _pair(6)
    assert raises(fn, a, b[:4], 0.1), "shapes (6, 5) and (4, 5) must raise ValueError"
    assert raises(fn, a, b, 0.0), "temperature 0 must raise ValueError"


# --------------------------------------------------------------------------- 15.logq_loss
logq = exercise("15.logq_loss", name="logq_loss", points=4,
    reference=("embedlab.twotower:in_batch_softmax_loss",), refuse_attrs=TORCH_LOSSES)


def _logq(b: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng()
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


# --------------------------------------------------------------------------- 15.logq_trainer
trainer = exercise("15.logq_trainer", name="LogQTrainer", points=8,
    reference=("embedlab.twotower:train_recommender",
               "embedlab.twotower:in_batch_softmax_loss"),
    refuse_attrs=TORCH_LOSSES)


class _Tiny(torch.nn.Module):
    """A tiny two-tower model the check builds: an id table per side, a linear layer on items."""

    def __init__(self, n_users: int, n_items: int, dim: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.u = torch.nn.Parameter(torch.randn(n_users, dim, generator=g, dtype=torch.float64))
        self.v = torch.nn.Parameter(torch.randn(n_items, dim, generator=g, dtype=torch.float64))
        self.w = torch.nn.Parameter(torch.eye(dim, dtype=torch.float64)
                                    + 0.3 * torch.randn(dim, dim, generator=g, dtype=torch.float64))

    def user_tower(self, ids):
        return self.u[ids]

    def item_tower(self, ids):
        return self.v[ids] @ self.w


class _Freq:
    """Algorithm 2 of Yi et al. 2019, written as a plain loop over Python floats."""

    def __init__(self, n: int, alpha: float):
        self.a, self.b, self.t, self.alpha = [0.0] * n, [1.0] * n, 0, alpha

    def update(self, ids) -> None:
        self.t += 1
        for i in sorted(set(int(x) for x in ids)):
            self.b[i] = (1 - self.alpha) * self.b[i] + self.alpha * (self.t - self.a[i])
            self.a[i] = float(self.t)


def _ref_loss(model, users, items, b, tau):
    """The corrected in-batch loss, by hand: logsumexp of each row minus its diagonal."""
    u, v = model.user_tower(users), model.item_tower(items)
    cos = (u @ v.T) / (u.norm(dim=1, keepdim=True) * v.norm(dim=1)[None, :])
    logits = cos / tau + torch.log(torch.as_tensor([b[int(i)] for i in items],
                                                   dtype=torch.float64))[None, :]
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()


def _f(x) -> float:
    return float(x.detach()) if isinstance(x, torch.Tensor) else float(x)


def _batches(rng, n_users, n_items, size, steps):
    pop = rng.dirichlet(np.ones(n_items) * 0.7)                  # skewed item popularity
    return [torch.as_tensor(np.stack([rng.integers(0, n_users, size),
                                      rng.choice(n_items, size, p=pop)], axis=1))
            for _ in range(steps)]


@trainer.check("update_frequency follows Algorithm 2 (t += 1, then B and A for each distinct "
               "item of the batch), step after step, on a fresh random stream")
def _(cls):
    seed = int(np.random.default_rng().integers(2**31))
    rng = np.random.default_rng(seed)
    n_items, alpha = int(rng.integers(5, 15)), float(rng.uniform(0.02, 0.3))
    model = _Tiny(3, n_items, 4, seed)
    tr = cls(model, torch.optim.SGD(model.parameters(), lr=0.1), n_items, 0.1, alpha)
    ref = _Freq(n_items, alpha)
    for step in range(30):
        ids = torch.as_tensor(rng.integers(0, n_items, int(rng.integers(1, 8))))
        tr.update_frequency(ids)
        ref.update(ids)
        got = np.asarray(torch.as_tensor(tr.B, dtype=torch.float64))
        assert np.allclose(got, ref.b, atol=1e-9), \
            f"seed {seed}, step {step + 1}: B = {np.round(got, 3)}, expected {np.round(ref.b, 3)}"


@trainer.check("the estimate tracks the true gap: an item seen every p steps ends with B near p")
def _(cls):
    rng = np.random.default_rng()
    n_items = 4
    periods = rng.integers(2, 9, n_items)
    model = _Tiny(2, n_items, 3, 0)
    tr = cls(model, torch.optim.SGD(model.parameters(), lr=0.1), n_items, 0.1, 0.1)
    for t in range(1, 400):
        seen = [i for i in range(n_items) if t % periods[i] == 0]
        tr.update_frequency(torch.as_tensor(seen, dtype=torch.long))
    got = np.asarray(torch.as_tensor(tr.B, dtype=torch.float64))
    assert np.allclose(got, periods, rtol=0.05), f"periods {periods.tolist()}, B {got.round(2)}"
    lq = np.asarray(tr.log_q(torch.arange(n_items)), dtype=np.float64)
    assert np.allclose(lq, -np.log(got), atol=1e-9), f"log_q must be log(1/B): {lq.round(3)}"


@trainer.check("the loss subtracts log q of the batch's own items: B of an item outside the "
               "batch changes nothing, B of an item inside it does (compare a hand-written loss)")
def _(cls):
    seed = int(np.random.default_rng().integers(2**31))
    rng = np.random.default_rng(seed)
    n_users, n_items, tau = 6, 12, float(rng.uniform(0.05, 0.5))
    model = _Tiny(n_users, n_items, 5, seed)
    tr = cls(model, torch.optim.SGD(model.parameters(), lr=0.1), n_items, tau, 0.1)
    b = rng.uniform(1.0, 30.0, n_items)
    tr.B = torch.as_tensor(b.copy())
    items = torch.as_tensor(rng.choice(n_items, 5, replace=False))
    users = torch.as_tensor(rng.integers(0, n_users, 5))
    got = _f(tr.loss(users, items))
    want = float(_ref_loss(model, users, items, b, tau).detach())
    assert abs(got - want) < 1e-8, f"seed {seed}: loss {got:.6f}, expected {want:.6f}"
    outside = next(i for i in range(n_items) if i not in set(items.tolist()))
    b2 = b.copy()
    b2[outside] *= 7
    tr.B = torch.as_tensor(b2)
    assert abs(_f(tr.loss(users, items)) - got) < 1e-10, "an item outside the batch changed it"
    b2[int(items[0])] *= 7
    tr.B = torch.as_tensor(b2)
    assert abs(_f(tr.loss(users, items)) - got) > 1e-6, "an in-batch item's q is ignored"


@trainer.check("step() equals an independent autograd reference on a tiny model: the same loss "
               "and the same parameters after three SGD steps (zero the gradients each step)")
def _(cls):
    import copy

    seed = int(np.random.default_rng().integers(2**31))
    rng = np.random.default_rng(seed)
    n_users, n_items, tau, lr = 7, 9, float(rng.uniform(0.1, 0.5)), 0.05
    model = _Tiny(n_users, n_items, 4, seed)
    ref_model = copy.deepcopy(model)
    tr = cls(model, torch.optim.SGD(model.parameters(), lr=lr), n_items, tau, 0.1)
    freq = _Freq(n_items, 0.1)
    for n, batch in enumerate(_batches(rng, n_users, n_items, 6, 3)):
        got = tr.step(batch)
        assert isinstance(got, float), f"step() must return a float, got {type(got).__name__}"
        freq.update(batch[:, 1])
        ref_model.zero_grad()
        want = _ref_loss(ref_model, batch[:, 0], batch[:, 1], freq.b, tau)
        want.backward()
        with torch.no_grad():
            for p in ref_model.parameters():
                p -= lr * p.grad
        assert abs(got - float(want)) < 1e-8, f"seed {seed}, step {n + 1}: loss {got:.6f}, " \
                                              f"expected {float(want):.6f}"
        for (name, p), q in zip(model.named_parameters(), ref_model.parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-8), f"seed {seed}, step {n + 1}: parameter " \
                                                    f"{name} differs from the reference"


@trainer.check("training lowers the corrected loss on a fixed batch, and bad input raises "
               "ValueError (a batch that is not (B, 2), a temperature <= 0)")
def _(cls):
    rng = np.random.default_rng()
    model = _Tiny(8, 8, 6, int(rng.integers(1000)))
    tr = cls(model, torch.optim.SGD(model.parameters(), lr=0.5), 8, 0.2, 0.1)
    batch = torch.as_tensor(np.stack([rng.permutation(8), rng.permutation(8)], axis=1))
    first = tr.step(batch)
    for _ in range(15):
        last = tr.step(batch)
    assert last < first, f"loss went from {first:.4f} to {last:.4f}"
    assert raises(tr.step, torch.zeros((4, 3), dtype=torch.long)), "a (4, 3) batch must raise"
    assert raises(cls, model, torch.optim.SGD(model.parameters(), lr=0.1), 8, 0.0), \
        "temperature 0 must raise ValueError"
