"""Checks for chapter 14: overlap@k between two indexes' answers, and a chunker with overlap."""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise, raises
from embedlab.failure import overlap_at_k as _overlap
from embedlab.text import chunk as _chunk

# --------------------------------------------------------------------------- 14.overlap_at_k
ov = exercise("14.overlap_at_k", name="overlap_at_k", points=4)


@ov.check("counts shared ids in each query's top k, divided by k, averaged over queries")
def _(fn):
    a = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    b = np.array([[4, 3, 2, 9], [8, 7, 6, 5]])
    got = float(fn(a, b, 4))
    assert abs(got - 7 / 8) < 1e-12, f"k=4: got {got}, expected {7 / 8}"
    got = float(fn(a, b, 2))
    assert abs(got - 0.0) < 1e-12, f"k=2: only the first 2 columns count, got {got}"


@ov.check("agrees with embedlab.failure.overlap_at_k on random answers for several k")
def _(fn):
    rng = np.random.default_rng(14)
    a = np.stack([rng.permutation(30)[:12] for _ in range(25)])
    b = np.stack([rng.permutation(30)[:10] for _ in range(25)])
    for k in (1, 5, 10):
        got, want = float(fn(a, b, k)), _overlap(a, b, k)
        assert abs(got - want) < 1e-12, f"k={k}: got {got:.4f}, expected {want:.4f}"


@ov.check("ignores order within the top k and never matches the empty id -1")
def _(fn):
    assert abs(float(fn([[3, 1, 2]], [[2, 3, 1]], 3)) - 1.0) < 1e-12
    got = float(fn([[7, -1, -1]], [[7, -1, -1]], 3))
    assert abs(got - 1 / 3) < 1e-12, f"-1 is 'no result', not a shared id: got {got}"


@ov.check("raises ValueError for a different number of rows, k < 1 or k wider than the arrays")
def _(fn):
    a = np.array([[1, 2], [3, 4]])
    assert raises(fn, a, a[:1], 1), "2 rows vs 1 row must raise"
    assert raises(fn, a, a, 0), "k=0 must raise"
    assert raises(fn, a, a, 3), "k=3 with 2 columns must raise"


# --------------------------------------------------------------------------- 14.chunk_words
ch = exercise("14.chunk_words", name="chunk_words", points=4)


@ch.check("makes windows of `size` words stepping by size - overlap (the docstring's example)")
def _(fn):
    assert list(fn("a b c d e", 3, 1)) == ["a b c", "c d e"]
    words = " ".join(f"w{i}" for i in range(10))
    assert list(fn(words, 4, 2)) == ["w0 w1 w2 w3", "w2 w3 w4 w5", "w4 w5 w6 w7", "w6 w7 w8 w9"]


@ch.check("agrees with embedlab.text.chunk(method='fixed') for many sizes and overlaps")
def _(fn):
    rng = np.random.default_rng(4)
    text = " ".join(f"t{i}." if i % 7 == 6 else f"t{i}" for i in range(int(rng.integers(50, 90))))
    for size, overlap in ((1, 0), (5, 0), (5, 4), (16, 3), (100, 10)):
        got, want = list(fn(text, size, overlap)), _chunk(text, size, overlap)
        assert got == want, f"size={size}, overlap={overlap}: {len(got)} chunks, expected " \
                            f"{len(want)}"


@ch.check("loses no word and stops at the first window that reaches the end (whitespace too)")
def _(fn):
    assert list(fn("  one\ttwo \n three  ", 2, 0)) == ["one two", "three"]
    assert list(fn("x y", 5, 3)) == ["x y"]
    assert list(fn("a b c d", 2, 1)) == ["a b", "b c", "c d"]


@ch.check("raises ValueError for overlap >= size, a negative overlap, size < 1 or an empty text")
def _(fn):
    assert raises(fn, "a b c", 3, 3), "overlap == size must raise"
    assert raises(fn, "a b c", 3, 5), "overlap > size must raise"
    assert raises(fn, "a b c", 3, -1), "a negative overlap must raise"
    assert raises(fn, "a b c", 0, 0), "size 0 must raise"
    assert raises(fn, "   ", 3, 1), "an empty document must raise"
