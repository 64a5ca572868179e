"""Checks for chapter 03: AdaGrad on one parameter, and one GloVe epoch with glove.c's AdaGrad.

The one-parameter reference is a closed form (cumulative sums). The epoch's reference is written
here from glove.c's update (Pennington et al. 2014; glove.c): the accumulators of squared
gradients start at 1, and each step divides by the square root of the sum so far before adding
its own square. Every run draws fresh data.
"""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise, expect_array, expect_type


def _rng() -> np.random.Generator:
    return np.random.default_rng()


# --------------------------------------------------------------------------- 03.adagrad
ada = exercise("03.adagrad", name="adagrad_path", points=2,
    reference=("embedlab.glove:_adagrad_step",))


def _path_reference(grads, lr, x0):
    s = lr * np.asarray(grads, dtype=np.float64)
    before = 1.0 + np.concatenate([[0.0], np.cumsum(s * s)[:-1]])  # squares of earlier steps
    return x0 - np.cumsum(s / np.sqrt(before))


@ada.check("returns one value per gradient: the parameter after each step")
def _(fn):
    g = _rng().normal(size=7)
    expect_array(fn(g, 0.1, 0.0), (7,), "the path")


@ada.check("the first step is the plain step lr * g (the accumulator starts at 1), and each "
           "later step divides by sqrt(1 + the squares of the earlier steps) before adding its own")
def _(fn):
    rng = _rng()
    for _ in range(3):
        g = rng.normal(size=int(rng.integers(2, 30))) * rng.uniform(0.1, 5)
        lr, x0 = float(rng.uniform(0.01, 1.0)), float(rng.normal())
        got = expect_array(fn(g, lr, x0), (len(g),), "the path")
        want = _path_reference(g, lr, x0)
        assert np.allclose(got, want, rtol=1e-9, atol=1e-12), (
            f"step {int(np.argmax(np.abs(got - want)))} is off by "
            f"{np.abs(got - want).max():.2e}")


# --------------------------------------------------------------------------- 03.glove_epoch
epoch = exercise("03.glove_epoch", name="glove_epoch", points=6,
                 reference=("embedlab.glove:_adagrad_epoch", "embedlab.glove:_adagrad_step",
                            "embedlab.glove:GloVe.fit"))


def _problem(rng, V=30, d=6, nnz=200):
    flat = rng.choice(V * V, size=nnz, replace=False)
    rows, cols = (flat // V).astype(np.int64), (flat % V).astype(np.int64)
    x = np.round(rng.pareto(1.2, size=nnz) * 20 + 1, 2)  # some above x_max, most below
    params = [(rng.random((V, d)) - 0.5) / d, (rng.random((V, d)) - 0.5) / d,
              (rng.random(V) - 0.5) / d, (rng.random(V) - 0.5) / d]
    grad_sq = [np.ones((V, d)), np.ones((V, d)), np.ones(V), np.ones(V)]
    return params, grad_sq, rows, cols, x


def _copy(arrays):
    return [a.copy() for a in arrays]


CLIP = 100.0  # glove.c's grad_clip_value


def _reference(params, grad_sq, rows, cols, x, order, lr, x_max, alpha, accumulate_first=False,
               clip=CLIP):
    """glove.c's epoch written out: the word-vector gradients f(x) diff w are clipped to
    [-clip, clip] before the learning rate multiplies them; the biases' are not."""
    W, C, b, c = params
    gW, gC, gb, gc = grad_sq
    cost = 0.0
    for t in order:
        i, j = rows[t], cols[t]
        inner = float(np.dot(W[i], C[j])) + b[i] + c[j] - np.log(x[t])
        f = min(1.0, (x[t] / x_max) ** alpha)
        cost += 0.5 * f * inner * inner
        s = lr * f * inner
        dw = lr * np.clip(f * inner * C[j], -clip, clip)
        dc = lr * np.clip(f * inner * W[i], -clip, clip)
        if accumulate_first:
            gW[i] += dw * dw
            gC[j] += dc * dc
            gb[i] += s * s
            gc[j] += s * s
        W[i] = W[i] - dw / np.sqrt(gW[i])
        C[j] = C[j] - dc / np.sqrt(gC[j])
        b[i] -= s / np.sqrt(gb[i])
        c[j] -= s / np.sqrt(gc[j])
        if not accumulate_first:
            gW[i] += dw * dw
            gC[j] += dc * dc
            gb[i] += s * s
            gc[j] += s * s
    return cost


def _run(fn, params, grad_sq, rows, cols, x, order, lr=0.05, x_max=100.0, alpha=0.75):
    out = fn(params, grad_sq, rows, cols, x, order, lr=lr, x_max=x_max, alpha=alpha)
    cost = float(expect_type(out, (float, np.floating, int), "the epoch's cost"))
    assert np.isfinite(cost), f"the cost is {cost}"
    return cost


@epoch.check("the weighted least-squares cost it returns falls from one epoch to the next")
def _(fn):
    rng = _rng()
    params, grad_sq, rows, cols, x = _problem(rng)
    costs = []
    for _ in range(4):
        costs.append(_run(fn, params, grad_sq, rows, cols, x, rng.permutation(len(x)), lr=0.1))
    assert all(b < a for a, b in zip(costs, costs[1:], strict=False)), \
        f"costs over four epochs: {[round(c, 2) for c in costs]}"


@epoch.check("matches glove.c's epoch in the same order: vectors, biases, accumulators and the "
             "cost 0.5 * sum f(x) (w.c + b + c - log x)^2")
def _(fn):
    rng = _rng()
    params, grad_sq, rows, cols, x = _problem(rng)
    order = rng.permutation(len(x))
    ref_p, ref_g = _copy(params), _copy(grad_sq)
    want = _reference(ref_p, ref_g, rows, cols, x, order, 0.05, 50.0, 0.75)
    got = _run(fn, params, grad_sq, rows, cols, x, order, lr=0.05, x_max=50.0, alpha=0.75)
    assert abs(got - want) <= 1e-8 * max(1.0, abs(want)), f"cost {got:.6f}, expected {want:.6f}"
    names = ["W", "W_tilde", "b", "b_tilde", "grad_sq W", "grad_sq W_tilde", "grad_sq b",
             "grad_sq b_tilde"]
    for name, a, b in zip(names, params + grad_sq, ref_p + ref_g, strict=True):
        assert np.allclose(a, b, rtol=1e-9, atol=1e-12), \
            f"{name} differs from glove.c's by up to {np.abs(a - b).max():.2e} (update in place)"


@epoch.check("divides by the square root of the accumulated squared gradient BEFORE adding this "
             "step's square (glove.c; the accumulators start at 1)")
def _(fn):
    rng = _rng()
    params, grad_sq, rows, cols, x = _problem(rng, V=4, d=3, nnz=1)
    params[0] *= 20  # large steps, so that the order of the two rules shows
    params[1] *= 20
    x[:] = 1000.0
    order = np.array([0, 0, 0])  # the same entry three times: the order of the two rules shows
    first = _copy(params), _copy(grad_sq)
    _reference(*first, rows, cols, x, order, 0.3, 100.0, 0.75, accumulate_first=True)
    right = _copy(params), _copy(grad_sq)
    _reference(*right, rows, cols, x, order, 0.3, 100.0, 0.75)
    _run(fn, params, grad_sq, rows, cols, x, order, lr=0.3)
    if np.allclose(params[0], first[0][0], rtol=1e-9) and not np.allclose(params[0], right[0][0],
                                                                           rtol=1e-9):
        raise AssertionError("the steps shrink too fast: this adds the new square first")
    assert (np.allclose(params[0], right[0][0], rtol=1e-9, atol=1e-12)
            and np.allclose(params[2], right[0][2], rtol=1e-9, atol=1e-12)), \
        "three steps on one entry do not match glove.c's"


@epoch.check("clips each word-vector gradient component f(x) diff w to [-100, 100] before the "
             "learning rate multiplies it, as glove.c does (grad_clip_value); the biases' step is "
             "not clipped")
def _(fn):
    rng = _rng()
    params, grad_sq, rows, cols, x = _problem(rng, V=5, d=4, nnz=6)
    params[0] *= 400.0  # huge vectors: f(x) * diff * w runs far past 100
    params[1] *= 400.0
    x[:] = 500.0
    order = rng.permutation(len(x))
    ref_p, ref_g = _copy(params), _copy(grad_sq)
    _reference(ref_p, ref_g, rows, cols, x, order, 0.05, 100.0, 0.75)
    unclipped_p = _copy(params)
    _reference(unclipped_p, _copy(grad_sq), rows, cols, x, order, 0.05, 100.0, 0.75, clip=np.inf)
    _run(fn, params, grad_sq, rows, cols, x, order, lr=0.05)
    if np.allclose(params[0], unclipped_p[0], rtol=1e-9):
        raise AssertionError("the word vectors moved by the unclipped gradient: clip "
                             "f(x) * diff * w to [-100, 100] first")
    for name, a, b in (("W", params[0], ref_p[0]), ("W_tilde", params[1], ref_p[1]),
                       ("grad_sq W", grad_sq[0], ref_g[0]), ("b", params[2], ref_p[2])):
        assert np.allclose(a, b, rtol=1e-9, atol=1e-9), \
            f"{name} differs from glove.c's clipped step"
