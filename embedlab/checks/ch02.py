"""Checks for chapter 02: the pairs of a dynamic window, and one epoch of skip-gram (SGNS).

The references are computed another way: the pairs by brute force over all positions, the
gradient by central finite differences of the loss, the subsampling rate from word2vec.c's
keep-probability, the dynamic window from its expected size. Every run draws a
fresh corpus, fresh counts and a fresh seed.
"""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise, expect_array


def _rng() -> np.random.Generator:
    return np.random.default_rng()


# --------------------------------------------------------------------------- 02.pairs
pairs = exercise("02.pairs", name="skipgram_pairs", points=2)


def _pairs_brute(sentence, sizes):
    n = len(sentence)
    return [(sentence[i], sentence[j]) for i in range(n) for j in range(n)
            if 0 < abs(i - j) <= sizes[i]]


@pairs.check("pairs each centre with every word at most sizes[i] positions away, inside the "
             "sentence, centre by centre, contexts left to right")
def _(fn):
    rng = _rng()
    for _ in range(5):
        n = int(rng.integers(1, 20))
        sentence = [int(w) for w in rng.integers(100, size=n)]
        sizes = [int(b) for b in rng.integers(1, 6, size=n)]
        got = [tuple(int(v) for v in p) for p in fn(sentence, sizes)]
        want = _pairs_brute(sentence, sizes)
        assert len(got) == len(want), f"{len(got)} pairs, expected {len(want)} for sizes {sizes}"
        assert got == want, "the right number of pairs, but not the right ones or order"


@pairs.check("handles the edges: an empty sentence, a one-word sentence, windows longer than the "
             "sentence")
def _(fn):
    assert list(fn([], [])) == [], "an empty sentence has no pairs"
    assert list(fn([7], [3])) == [], "a one-word sentence has no pairs"
    got = [tuple(p) for p in fn([1, 2, 3], [9, 9, 9])]
    assert got == _pairs_brute([1, 2, 3], [9, 9, 9]), f"got {got}"


# --------------------------------------------------------------------------- 02.sgns_epoch
epoch = exercise("02.sgns_epoch", name="sgns_epoch", points=6,
    reference=("embedlab.word2vec:_train_chunk",
               "embedlab.word2vec:_sgd_pair",
               "embedlab.word2vec:sgd_pair_step"))


def _topic_corpus(rng, groups=3, per_group=10, sentences=500):
    """Sentences that each use the words of one group: words of a group co-occur."""
    corpus = []
    zipf = 1.0 / np.arange(1, per_group + 1)
    zipf /= zipf.sum()
    for _ in range(sentences):
        g = int(rng.integers(groups))
        n = int(rng.integers(8, 13))
        corpus.append([int(g * per_group + w) for w in rng.choice(per_group, n, p=zipf)])
    return corpus, groups * per_group


def _init(rng, V, d):
    return ((rng.random((V, d)) - 0.5) / d), np.zeros((V, d))


_TOPIC_RUNS: dict[int, tuple] = {}


def _topic_run(fn):
    """One epoch on a fresh topic corpus, shared by the two checks that need it."""
    if id(fn) not in _TOPIC_RUNS:
        rng = _rng()
        corpus, V = _topic_corpus(rng)
        W_in, W_out = _init(rng, V, 16)
        out = fn(corpus, W_in, W_out, window=3, negative=5, sample=0, lr=0.05,
                 seed=int(rng.integers(1 << 30)))
        _TOPIC_RUNS.clear()
        _TOPIC_RUNS[id(fn)] = (fn, corpus, V, W_in, out)
    return _TOPIC_RUNS[id(fn)][1:]


def _losses(fn, *args, **kw):
    out = fn(*args, **kw)
    arr = expect_array(out, (None,), "the losses it returns")
    assert np.all(np.isfinite(arr)), "a loss is NaN or infinite"
    return arr


@epoch.check("returns one finite loss per (centre, context) pair, and the loss falls over the "
             "epoch (SGD on -log sigma(u_pos.v) - sum log sigma(-u_neg.v))")
def _(fn):
    corpus, V, W_in, out = _topic_run(fn)
    losses = _losses(lambda: out)
    assert len(losses) > 1000, f"only {len(losses)} losses for {sum(map(len, corpus))} tokens"
    fifth = len(losses) // 5
    first, last = losses[:fifth].mean(), losses[-fifth:].mean()
    assert last < first - 0.2, f"mean loss {first:.3f} over the first fifth, {last:.3f} over " \
        "the last: it should fall"


@epoch.check("after the epoch, words that co-occur have closer input vectors (cosine) than "
             "words that never do")
def _(fn):
    corpus, V, W_in, _ = _topic_run(fn)
    W = np.asarray(W_in, dtype=np.float64)
    W = W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)
    cos = W @ W.T
    group = np.arange(V) // 10
    same = (group[:, None] == group[None, :]) & ~np.eye(V, dtype=bool)
    other = group[:, None] != group[None, :]
    a, b = cos[same].mean(), cos[other].mean()
    assert a > b + 0.1, f"mean cosine {a:.3f} between co-occurring words, {b:.3f} between the " \
        "others: update W_in and W_out in place"


@epoch.check("each update is an SGD step along the loss gradient (compared with central finite "
             "differences of the loss; the check calls negative=0, sample=0)")
def _(fn):
    rng = _rng()
    V, d, lr = 3, 4, 1e-6
    W_in = rng.normal(size=(V, d)) * 0.5
    W_out = rng.normal(size=(V, d)) * 0.5
    a, b = (int(x) for x in rng.choice(V, 2, replace=False))
    corpus = [[a, b]]  # window 1: the pairs (a, context b) and (b, context a)

    def loss(wi, wo):  # the two positive pairs; the context word's vector is the input
        return sum(np.logaddexp(0.0, -(wo[c] @ wi[x])) for c, x in ((a, b), (b, a)))

    num_in, num_out = np.zeros_like(W_in), np.zeros_like(W_out)
    h = 1e-6
    for M, G in ((W_in, num_in), (W_out, num_out)):
        for idx in np.ndindex(M.shape):
            old = M[idx]
            M[idx] = old + h
            up = loss(W_in, W_out)
            M[idx] = old - h
            down = loss(W_in, W_out)
            M[idx] = old
            G[idx] = (up - down) / (2 * h)
    before_in, before_out = W_in.copy(), W_out.copy()
    losses = _losses(fn, corpus, W_in, W_out, window=1, negative=0, sample=0, lr=lr, seed=1)
    assert len(losses) == 2, f"a two-word sentence with window 1 has 2 pairs, got {len(losses)}"
    step_in = (W_in - before_in) / -lr
    step_out = (W_out - before_out) / -lr
    scale = max(np.abs(num_in).max(), np.abs(num_out).max())
    err = max(np.abs(step_in - num_in).max(), np.abs(step_out - num_out).max()) / scale
    assert err < 1e-3, f"the step differs from -lr * gradient by {err:.2e} (relative): check " \
        "the sign and which vector each gradient goes to"


@epoch.check("draws each window size uniformly from 1..window (word2vec's dynamic window): "
             "window + 1 contexts per token on average, not 2 * window")
def _(fn):
    rng = _rng()
    n, V = 2500, 50
    corpus = [list(map(int, rng.integers(V, size=n)))]
    W_in, W_out = _init(rng, V, 4)
    for window in (2, 5):
        losses = _losses(fn, corpus, W_in, W_out, window=window, negative=1, sample=0,
                         lr=1e-4, seed=int(rng.integers(1 << 30)))
        per_token = len(losses) / n
        assert abs(per_token - (window + 1)) < 0.1 * (window + 1), (
            f"window={window}: {per_token:.2f} contexts per token, expected about "
            f"{window + 1}")


@epoch.check("subsamples frequent words with word2vec.c's keep-probability "
             "(sqrt(f / t) + 1) * t / f, before the windows are drawn")
def _(fn):
    rng = _rng()
    V, n = 40, 4000
    p = np.r_[0.5, np.full(V - 1, 0.5 / (V - 1))]
    corpus = [list(map(int, rng.choice(V, size=n, p=p)))]
    counts = np.bincount(corpus[0], minlength=V).astype(np.float64)
    f = counts / counts.sum()
    t = 1e-2
    keep = np.minimum(1.0, (np.sqrt(f / t) + 1) * t / np.maximum(f, 1e-300))
    expected = float((counts * keep).sum() / counts.sum())
    W_in, W_out = _init(rng, V, 4)
    full = len(_losses(fn, corpus, W_in, W_out, window=3, negative=1, sample=0, lr=1e-4,
                       seed=int(rng.integers(1 << 30))))
    sub = len(_losses(fn, corpus, W_in, W_out, window=3, negative=1, sample=t, lr=1e-4,
                      seed=int(rng.integers(1 << 30))))
    ratio = sub / full
    assert abs(ratio - expected) < 0.08, f"sample={t} kept {ratio:.2f} of the pairs, expected " \
        f"about {expected:.2f} (the share of tokens kept)"
