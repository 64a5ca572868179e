"""Checks for chapter 07: ranking by each metric, row normalisation, rank flips, metric choice."""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise, must_raise
from embedlab.geometry import cosine as _cosine
from embedlab.geometry import dot as _dot
from embedlab.geometry import euclidean as _euclidean
from embedlab.geometry import normalize as _normalize


def _ids(x) -> list[int]:
    return [int(i) for i in np.asarray(x).ravel()]


# --------------------------------------------------------------------------- 07.rank
rk = exercise("07.rank", name="rank", points=4)

_Q = np.array([1.0, 0.0])
_C = np.array([[0.3, 0.0], [3.0, 3.0], [1.0, 0.6]])  # A, B, C of the chapter


@rk.check("on the chapter's A, B, C: cosine ranks A first, dot B first, l2 C first")
def _(fn):
    assert _ids(fn(_Q, _C, "cosine"))[0] == 0, "cosine ignores length: A points the same way"
    assert _ids(fn(_Q, _C, "dot"))[0] == 1, "the dot product rewards the long vector B"
    assert _ids(fn(_Q, _C, "l2"))[0] == 2, "l2 ranks by smallest distance: C is nearest"


@rk.check("returns every row index, best first, like sorting embedlab.geometry's scores")
def _(fn):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 8)) * rng.uniform(0.2, 4, size=(200, 1))
    q = rng.normal(size=8)
    want = {"cosine": np.argsort(-_cosine(q, x), kind="stable"),
            "dot": np.argsort(-_dot(q, x), kind="stable"),
            "l2": np.argsort(_euclidean(q, x), kind="stable")}
    for metric, order in want.items():
        got = _ids(fn(q, x, metric))
        assert len(got) == 200, f"{metric}: returned {len(got)} indices for 200 rows"
        assert got == order.tolist(), f"{metric}: order differs at rank " \
            f"{next(i for i, (a, b) in enumerate(zip(got, order, strict=True)) if a != b)}"


@rk.check("on unit vectors all three metrics give the same order (||a-b||^2 = 2 - 2 cos)")
def _(fn):
    rng = np.random.default_rng(8)
    u = _normalize(rng.normal(size=(100, 6)))
    q = _normalize(rng.normal(size=6))
    a, b, c = (_ids(fn(q, u, m)) for m in ("cosine", "dot", "l2"))
    assert a == b == c


@rk.check("an unknown metric raises ValueError")
def _(fn):
    must_raise(fn, _Q, _C, "manhattan")


# --------------------------------------------------------------------------- 07.normalize_rows
nr = exercise("07.normalize_rows", name="normalize_rows", points=3)


@nr.check("every row gets length 1 and keeps its direction")
def _(fn):
    x = np.array([[3.0, 4.0], [0.0, -2.0], [1e-3, 1e-3]])
    got = np.asarray(fn(x), dtype=np.float64)
    np.testing.assert_allclose(got, _normalize(x), atol=1e-7)


@nr.check("keeps float32 input float32 and does not modify its input")
def _(fn):
    x = np.random.default_rng(9).normal(size=(50, 4)).astype(np.float32)
    before = x.copy()
    got = np.asarray(fn(x))
    assert got.dtype == np.float32, f"dtype {got.dtype}; divide without upcasting"
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)


@nr.check("a zero row raises ValueError (no NaN)")
def _(fn):
    must_raise(fn, np.array([[1.0, 1.0], [0.0, 0.0]]))


# --------------------------------------------------------------------------- 07.rank_flips
rf = exercise("07.rank_flips", name="rank_flips", points=3)


def _flips(ref: np.ndarray, test: np.ndarray, k: int) -> int:
    a = np.argsort(-ref, axis=1, kind="stable")[:, :k]
    b = np.argsort(-test, axis=1, kind="stable")[:, :k]
    return int((a != b).sum())


@rf.check("identical scores give 0 flips; one swap of neighbours 1 and 2 gives 2 flips")
def _(fn):
    ref = np.array([[0.9, 0.5, 0.8, 0.1]])
    assert int(fn(ref, ref.copy(), 3)) == 0
    swapped = np.array([[0.9, 0.81, 0.8, 0.1]])  # row order: 0, 1, 2 instead of 0, 2, 1
    assert int(fn(ref, swapped, 3)) == 2


@rf.check("counts positions among the top k only, summed over all query rows")
def _(fn):
    rng = np.random.default_rng(10)
    ref = rng.normal(size=(30, 400))
    test = ref + rng.normal(scale=0.02, size=ref.shape)
    for k in (1, 5, 10):
        assert int(fn(ref, test, k)) == _flips(ref, test, k), f"k={k}"


@rf.check("raise ValueError for k < 1 or mismatched shapes")
def _(fn):
    ref = np.zeros((2, 5))
    must_raise(fn, ref, ref, 0)
    must_raise(fn, ref, np.zeros((2, 6)), 3)


# --------------------------------------------------------------------------- 07.choose_metric
cmx = exercise("07.choose_metric", name="choose_metric", points=2)


@cmx.check("unit-length sentence embeddings: all metrics agree, so take the cheapest one")
def _(fn):
    assert fn("minilm_unit_vectors") == "dot"


@cmx.check("GloVe words, norms track frequency, you want meaning: ignore the length")
def _(fn):
    assert fn("glove_meaning") == "cosine"


@cmx.check("a two-tower recommender trained with the dot product: use what it was trained for")
def _(fn):
    assert fn("two_tower_dot_trained") == "dot"


@cmx.check("shops as (x, y) positions in km, nearest shop on foot: a real distance")
def _(fn):
    assert fn("shops_on_a_map") == "l2"
