"""Checks for chapter 08: the k-means assignment step and IVF probing (choose, scan, merge)."""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise
from embedlab.index import IVFIndex
from embedlab.index.kmeans import assign as _assign_reference


def _labels(result) -> np.ndarray:
    return np.asarray(result).ravel().astype(np.int64)


# --------------------------------------------------------------------------- 08.assign
assign = exercise("08.assign", name="assign_step", points=3)


@assign.check("returns, for each row of x, the index of the nearest centroid (squared L2)")
def _(fn):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((400, 6)).astype(np.float32)
    c = rng.standard_normal((9, 6)).astype(np.float32)
    got = _labels(fn(x, c))
    assert got.shape == (400,), f"expected 400 labels, got shape {got.shape}"
    want = _assign_reference(x, c)[0]
    assert (got == want).mean() > 0.995, f"{(got != want).sum()} of 400 labels differ"


@assign.check("works on a hand-made example: nearest, not largest inner product")
def _(fn):
    x = np.array([[0.0, 0.0], [9.0, 9.0], [1.0, 0.2]], dtype=np.float32)
    c = np.array([[0.5, 0.0], [10.0, 10.0], [100.0, 0.0]], dtype=np.float32)
    assert _labels(fn(x, c)).tolist() == [0, 1, 0]


@assign.check("handles one centroid and one point, and ties go to the lower centroid index")
def _(fn):
    one = fn(np.ones((5, 3), np.float32), np.zeros((1, 3), np.float32))
    assert _labels(one).tolist() == [0] * 5
    x = np.zeros((1, 2), dtype=np.float32)
    c = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    assert _labels(fn(x, c)).tolist() == [0]


# --------------------------------------------------------------------------- 08.ivf_probe
probe = exercise("08.ivf_probe", name="ivf_search", points=4)


def _ivf_case(seed=0, n=3000, d=16, nlist=12):
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((n, d)).astype(np.float32)
    idx = IVFIndex(d, nlist=nlist, metric="ip", seed=seed)
    idx.train(xb)
    idx.add(xb)
    lists = [idx.ids[idx.offsets[i]:idx.offsets[i + 1]].copy() for i in range(nlist)]
    q = rng.standard_normal((20, d)).astype(np.float32)
    return idx, xb, lists, q


def _ids(result) -> list[int]:
    return [int(i) for i in np.asarray(result).ravel()]


@probe.check("probes the nprobe lists whose centroids have the largest inner product with q, "
             "and returns the same ids as IVFIndex.search")
def _(fn):
    idx, xb, lists, q = _ivf_case()
    for nprobe in (1, 3):
        _, want = idx.search(q, 10, nprobe=nprobe)
        for r in range(len(q)):
            got = _ids(fn(q[r], idx.centroids, lists, xb, 10, nprobe))
            assert got == want[r].tolist(), f"nprobe={nprobe}, query {r}: {got[:4]}..."


@probe.check("with nprobe = nlist it is exact: the true top-k by inner product, best first")
def _(fn):
    idx, xb, lists, q = _ivf_case(seed=1)
    exact = np.argsort(-(q @ xb.T), axis=1, kind="stable")[:, :5]
    for r in range(5):
        assert _ids(fn(q[r], idx.centroids, lists, xb, 5, len(lists))) == exact[r].tolist()


@probe.check("pads with -1 when the probed lists hold fewer than k vectors")
def _(fn):
    xb = np.array([[1, 0], [0.9, 0.1], [-1, 0], [0, 1]], dtype=np.float32)
    centroids = np.array([[1, 0], [-1, 0], [0, 1]], dtype=np.float32)
    lists = [np.array([0, 1]), np.array([2]), np.array([3])]
    got = _ids(fn(np.array([1.0, 0.0], np.float32), centroids, lists, xb, 4, 1))
    assert got == [0, 1, -1, -1], got
