"""Checks for chapter 18, the checklist review: one exercise per item of the checklist."""

from __future__ import annotations

import math

import numpy as np

from embedlab.checks import exercise, raises

# --------------------------------------------------------------------------- 18.cosine_dot
cos = exercise("18.cosine_dot", name="cosine_via_dot", points=2)


def _cosine_loop(a, b):
    out = np.zeros((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i, j] = x @ y / (np.linalg.norm(x) * np.linalg.norm(y))
    return out


@cos.check("normalise each row once, then one matrix product gives every cosine")
def _(fn):
    rng = np.random.default_rng()
    n, m, d = (int(x) for x in rng.integers(2, 12, size=3))
    a, b = rng.normal(size=(n, d)) * 5, rng.normal(size=(m, d)) * 0.1
    got = np.asarray(fn(a, b), dtype=np.float64)
    assert got.shape == (n, m), f"expected shape ({n}, {m}), got {got.shape}"
    assert np.allclose(got, _cosine_loop(a, b), atol=1e-5)


@cos.check("is unchanged when rows are rescaled (cosine ignores length)")
def _(fn):
    rng = np.random.default_rng()
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(3, 4))
    scaled = a * np.array([[0.01], [1], [7], [100], [3]])
    assert np.allclose(np.asarray(fn(a, b)), np.asarray(fn(scaled, b)), atol=1e-5)


@cos.check("raises ValueError for an all-zero row (its cosine is undefined)")
def _(fn):
    assert raises(fn, np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 1.0]]))


# --------------------------------------------------------------------------- 18.temperature
temp = exercise("18.temperature", name="candidate_weights", points=2)


@temp.check("returns softmax(scores / temperature), summing to 1 (compared with scipy's "
            "softmax on random scores)")
def _(fn):
    from scipy.special import softmax

    rng = np.random.default_rng()
    s = rng.uniform(-1, 1, size=int(rng.integers(2, 20)))
    for tau in (0.05, 0.5, 2.0, float(rng.uniform(0.01, 3))):
        got = np.asarray(fn(s, tau), dtype=np.float64)
        assert np.allclose(got, softmax(s / tau), atol=1e-8), f"tau={tau:.3g}"


@temp.check("stays finite for a tiny temperature (subtract the max before exp)")
def _(fn):
    got = np.asarray(fn(np.array([0.9, 0.89, 0.1]), 1e-4), dtype=np.float64)
    assert np.isfinite(got).all() and abs(got.sum() - 1) < 1e-9
    assert got[0] > 0.999


@temp.check("raises ValueError for a temperature <= 0")
def _(fn):
    assert raises(fn, np.array([0.1, 0.2]), 0.0)
    assert raises(fn, np.array([0.1, 0.2]), -1.0)


# --------------------------------------------------------------------------- 18.index_memory
mem = exercise("18.index_memory", name="index_memory_bytes", points=2)


def _sizes(rng):
    return [(10**6, 384), (10**9, 128)] + [(int(rng.integers(1, 10**8)), int(rng.integers(1, 2048)))
                                           for _ in range(4)]


def _ivfpq_bytes(n: int, dim: int) -> int:
    """The same conventions, added up part by part."""
    parts = {"codes": n * max(1, dim // 16), "ids": 8 * n,
             "centroids": 4 * dim * max(1, math.floor(4 * math.sqrt(n))),
             "codebooks": 4 * 256 * dim}
    return sum(parts.values())


@mem.check("flat: 4 bytes per coordinate, n * dim * 4")
def _(fn):
    for n, d in _sizes(np.random.default_rng()):
        assert int(fn("flat", n, d)) == 4 * n * d, f"n={n}, dim={d}"


@mem.check("ivfpq: per vector m = dim // 16 code bytes + an 8-byte id; plus centroids "
           "(nlist = 4 sqrt(n)) and codebooks (256 * dim floats): match recommend.memory_bytes")
def _(fn):
    for n, d in _sizes(np.random.default_rng()) + [(5000, 32), (3, 8)]:
        got, want = int(fn("ivfpq", n, d)), _ivfpq_bytes(n, d)
        assert got == want, f"n={n}, dim={d}: got {got:,}, expected {want:,}"


@mem.check("raises ValueError for a kind other than 'flat' or 'ivfpq'")
def _(fn):
    assert raises(fn, "hnsw-ish", 10, 8)


# --------------------------------------------------------------------------- 18.matryoshka
mrl = exercise("18.matryoshka", name="truncate", points=2)


@mrl.check("keeps the first dim coordinates and re-normalises each row to length 1")
def _(fn):
    rng = np.random.default_rng()
    width = int(rng.integers(4, 64))
    x = (rng.normal(size=(7, width)) * rng.uniform(0.1, 10, size=(7, 1))).astype(np.float32)
    for d in (1, int(rng.integers(2, width)), width):
        got = np.asarray(fn(x, d), dtype=np.float64)
        assert got.shape == (7, d), f"dim={d}: shape {got.shape}"
        head = x[:, :d].astype(np.float64)
        want = head / np.linalg.norm(head, axis=1, keepdims=True)
        assert np.allclose(got, want, atol=1e-5), f"dim={d}"


@mrl.check("does not modify its input, and raises ValueError for dim < 1 or dim > width")
def _(fn):
    x = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    before = x.copy()
    fn(x, 2)
    assert np.array_equal(x, before), "the input array was changed in place"
    assert raises(fn, x, 0) and raises(fn, x, 5)


# --------------------------------------------------------------------------- 18.migration
mig = exercise("18.migration", name="next_action", points=2)

_ACTIONS = {"backfill", "cutover", "done", "rollback", "shadow_read", "start_dual_write", "wait"}


def _status(rng, dual, backfilled, shadow_ok, serving, alarm=None):
    return {"dual_writes": dual, "backfilled": backfilled, "shadow_ok": shadow_ok,
            "serving": serving, "alarm": bool(rng.random() < 0.5) if alarm is None else alarm}


def _safe_action(st) -> str:
    """The one safe next action for a status (the check's own reading of the rules)."""
    if st["serving"] == "v2":
        return "rollback" if st["alarm"] else "done"
    if not st["dual_writes"]:
        return "start_dual_write"
    if not st["backfilled"]:
        return "backfill"
    if st["shadow_ok"] is None:
        return "shadow_read"
    return "cutover" if st["shadow_ok"] else "wait"


@mig.check("picks the one safe action for every status a migration passes through: no cutover "
           "before v2 is complete and its shadow answers were found good, no backfill before "
           "writes reach v2, an immediate rollback when v2 serves and the alarm is red")
def _(fn):
    rng = np.random.default_rng()
    states = [(False, False, None, "v1"), (True, False, None, "v1"), (True, True, None, "v1"),
              (True, True, True, "v1"), (True, True, False, "v1"), (True, True, True, "v2")]
    for i in rng.permutation(len(states) * 4):
        st = _status(rng, *states[i % len(states)])
        got, want = fn(dict(st)), _safe_action(st)
        assert got in _ACTIONS, f"{got!r} is not one of {sorted(_ACTIONS)}"
        assert got == want, f"status {st}: got {got!r}"


@mig.check("driven from the start by a simulated system (with an alarm after a random cutover), "
           "it reaches v2 serving and 'done' without an unsafe step")
def _(fn):
    rng = np.random.default_rng()
    for _ in range(5):
        st, trail, alarms = _status(rng, False, False, None, "v1", alarm=False), [], 0
        bad_v2 = bool(rng.random() < 0.5)         # v2 looks fine in shadow, fails in production
        for _ in range(12):
            act = fn(dict(st))
            trail.append(act)
            assert act == _safe_action(st), f"after {trail[:-1]}: {act!r} is unsafe for {st}"
            if act == "done":
                break
            if act == "start_dual_write":
                st["dual_writes"] = True
            elif act == "backfill":
                st["backfilled"] = True
            elif act == "shadow_read":
                st["shadow_ok"] = True
            elif act == "cutover":
                st["serving"], st["alarm"] = "v2", bad_v2 and alarms == 0
            elif act == "rollback":
                st["serving"], st["alarm"], alarms = "v1", False, alarms + 1
                st["shadow_ok"] = None                # fixed v2, to be checked again
        assert trail[-1] == "done", f"never finished: {trail}"


# --------------------------------------------------------------------------- 18.k_nearest
knn = exercise("18.k_nearest", name="k_nearest", points=2,
    reference=("embedlab.heap:k_closest_heap",))


def _by_sorting(points, query, k):
    d = ((np.asarray(points, float) - np.asarray(query, float)) ** 2).sum(1)
    return np.lexsort((np.arange(len(d)), d))[:k].tolist()


@knn.check("returns the indices of the k points nearest the query, nearest first, ties by index")
def _(fn):
    rng = np.random.default_rng()
    pts = rng.integers(-5, 6, size=(200, 3)).astype(float)      # many ties
    for k in (1, 7, 200):
        q = rng.integers(-3, 4, size=3).astype(float)
        got = [int(i) for i in fn(pts, q, k)]
        assert got == _by_sorting(pts, q, k), f"k={k}"


@knn.check("raises ValueError for k < 1 or k > the number of points")
def _(fn):
    pts = np.zeros((3, 2))
    assert raises(fn, pts, np.zeros(2), 0) and raises(fn, pts, np.zeros(2), 4)
