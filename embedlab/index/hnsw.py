"""Hierarchical navigable small-world graphs (Malkov and Yashunin, 2018, IEEE TPAMI 42(4);
arXiv:1603.09320).

An HNSW index is a stack of proximity graphs over the same points. Every point lives on layer 0;
a point reaches layer ``l`` with probability ``exp(-l / mL)``, because its top layer is drawn as

    level = floor(-ln(U) * mL),   U ~ Uniform(0, 1],   mL = 1 / ln(M)            (paper, 4.1)

so layer ``l`` holds about ``n / M^l`` points and the stack is about ``log_M n`` layers high.
Each point keeps at most ``M`` links on the layers above 0 and ``2 M`` on layer 0 (``Mmax``,
``Mmax0``). A search enters at the single point of the top layer, walks greedily towards the
query on each upper layer (few points, long links: the coarse "express lanes"), and on layer 0
runs a best-first beam search with a candidate heap and a result list of size ``ef``. Insertion
is a search for the new point itself, after which it is linked to ``M`` of the ``ef_construction``
nearest points found, on every layer up to its own.

The four algorithms of the paper map to the functions below:

* Algorithm 1, INSERT: ``_insert``;
* Algorithm 2, SEARCH-LAYER: ``_search_layer`` (and ``_greedy``, the same with ``ef = 1``);
* Algorithm 3, SELECT-NEIGHBORS-SIMPLE and Algorithm 4, SELECT-NEIGHBORS-HEURISTIC:
  ``_select`` (``heuristic=False`` / ``True``);
* Algorithm 5, K-NN-SEARCH: ``_search_batch``.

The loops are compiled with numba: a graph walk visits a few hundred points per query, one at a
time, which is exactly the kind of code a Python interpreter runs a hundred times too slowly.
``select_neighbors``, ``search_layer`` and ``random_level`` at the end of the module are the same
steps in plain Python, short enough to read next to the paper (the exercises check against them).

Distances: ``"l2"`` is the squared Euclidean distance; ``"ip"`` and ``"cosine"`` use ``-q.x`` as
the distance the graph is built and searched with (cosine on unit rows), and ``search`` returns
the inner product, best first, as every index here does.

Storage (int32 links, as faiss and hnswlib): layer 0 is an ``(n, 2M + 1)`` array, a node's link
count in column 0 and its links after it (hnswlib keeps the same header before each list); the
upper layers of node ``i`` are rows ``up_off[i] .. up_off[i] + level[i] - 1`` of an
``(S, M + 1)`` array, ``S = sum(level)``, laid out the same way.
"""

from __future__ import annotations

import heapq
import math
import threading
from typing import Any

import numpy as np
from numba import njit

from embedlab.index.base import (
    _F32,
    MODE_CODES,
    Index,
    as_matrix,
    check_int,
    raise_status,
)
from embedlab.index.kernels import NOT_FINITE, OK, prefetch_at, prepare_query

# =========================================================================== compiled kernels
# Floating-point reassociation lets LLVM vectorise the distance loops (SIMD partial sums); the
# flag must be on every kernel, since _dist is inlined into its callers and compiled with theirs.
FM = {"reassoc", "contract"}
_LOW = np.uint64(0xFFFFFFFF)
# Cache lines of a neighbour's vector requested ahead: all of a 50-d float32 row (200 bytes). A
# fixed count lets the compiler unroll the loop, which measured about 1 us a query faster on GloVe
# than a count computed from the dimension; a longer row's later lines follow its first ones into
# the hardware prefetcher's stream as the distance reads them.
_LINES = 4
_SIGN = np.uint32(0x80000000)


@njit(cache=True, nogil=True, fastmath=FM, inline="always")
def _dist(x, i, q, l2):
    """Distance from stored row ``i`` to vector ``q``: squared L2, or minus the inner product."""
    s = np.float32(0.0)
    if l2:
        for t in range(q.shape[0]):
            diff = x[i, t] - q[t]
            s += diff * diff
        return s
    for t in range(q.shape[0]):
        s += x[i, t] * q[t]
    return -s


# -- heap entries: (distance, id) in one uint64 ---------------------------------------------
# A heap entry is the distance's float32 bits, turned into an unsigned integer with the same order
# (flip every bit of a negative number, set the sign bit of a positive one), above the point's id.
# Comparing two entries is one integer comparison that orders by distance and then by id (the
# order of Python's ``(distance, id)`` tuples), and a heap step moves 8 bytes in one array
# instead of a key and an id in two.
@njit(cache=True, nogil=True, inline="always")
def _entry(bits, idx):
    """The heap entry of a distance (its float32 bits as uint32) and an id."""
    if bits & _SIGN:
        o = np.uint64(~bits & np.uint32(0xFFFFFFFF))
    else:
        o = np.uint64(bits | _SIGN)
    return (o << np.uint64(32)) | np.uint64(idx)


@njit(cache=True, nogil=True, inline="always")
def _entry_bits(entry):
    """The float32 bits of an entry's distance (``_entry`` undone)."""
    o = entry >> np.uint64(32)
    if o & np.uint64(0x80000000):
        return np.uint32(o & np.uint64(0x7FFFFFFF))
    return np.uint32(~o & _LOW)


@njit(cache=True, nogil=True, inline="always")
def _push(h, size, key):
    """Binary min-heap push of ``key`` on ``h[:size]``; returns the new size."""
    pos = size
    while pos > 0:
        parent = (pos - 1) >> 1
        if h[parent] <= key:
            break
        h[pos] = h[parent]
        pos = parent
    h[pos] = key
    return size + 1


@njit(cache=True, nogil=True, inline="always")
def _pop(h, size):
    """Remove the root of the min-heap ``h[:size]`` (read it first); returns the new size."""
    size -= 1
    key = h[size]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and h[child + 1] < h[child]:
            child += 1
        if h[child] >= key:
            break
        h[pos] = h[child]
        pos = child
    if size > 0:
        h[pos] = key
    return size


@njit(cache=True, nogil=True, inline="always")
def _links(g, node, level):
    """The neighbour list of ``node`` on ``level`` (a view into the graph arrays: column 0 of a
    row is its count, the links follow)."""
    if level == 0:
        return g[0][node, 1:1 + g[0][node, 0]]
    row = g[2][node] + level - 1
    return g[1][row, 1:1 + g[1][row, 0]]


@njit(cache=True, nogil=True, fastmath=FM)
def _greedy(x, q, ep, ep_d, level, g, l2, stats):
    """SEARCH-LAYER with ef = 1 (Algorithm 2): move to a closer neighbour while there is one."""
    changed = True
    while changed:
        changed = False
        stats[0] += 1  # one hop
        for e in _links(g, ep, level):
            d = _dist(x, e, q, l2)
            stats[1] += 1  # one distance computation
            if d < ep_d:
                ep_d = d
                ep = e
                changed = True
    return ep, ep_d


@njit(cache=True, nogil=True)
def _next_tag(visited, tag):
    """The next visited mark (hnswlib's ``VisitedListPool``: a point counts as visited when its
    mark equals the current search's tag, so a search never clears the array). The marks are
    uint16: after 65,535 searches the array is cleared once and the tags start again."""
    tag += 1
    if tag > 65535:
        visited[:] = 0
        tag = 1
    return tag


@njit(cache=True, nogil=True, fastmath=FM)
def _search_layer(x, q, ep, ep_d, ef, level, g, l2, visited, tag, C, W, fresh, fresh_d, stats):
    """SEARCH-LAYER (Algorithm 2): best-first beam search from ``ep`` on one layer.

    C, the candidates, is a min-heap of entries (``_entry``: distance, then id); W, the ``ef``
    best points found, is a max-heap kept as a min-heap of the entries' complements (``~e``), so
    that its root is the furthest. Returns |W|. ``fresh``/``fresh_d`` hold the unvisited
    neighbours of the point being expanded and their distances.

    Memory, not arithmetic, is what a graph walk waits for: every neighbour is a jump to an
    address the CPU cannot predict. So the unvisited neighbours of ``c`` are collected first and
    their vectors prefetched, then their distances computed in one tight loop (the reads overlap
    instead of waiting one after another), and the links of the next candidate to expand are
    prefetched while this one is processed (hnswlib does the same). A point's link count sits in
    the same row as its links, so expanding it reads one place, not two.
    """
    bits = fresh_d.view(np.uint32)
    fresh_d[0] = ep_d
    first = _entry(bits[0], ep)
    visited[ep] = tag                              # v <- ep
    nc = _push(C, 0, first)                        # C <- ep
    nw = _push(W, 0, ~first)                       # W <- ep
    hops = 0                                       # counted here, written to stats once
    ndis = 0
    while nc > 0:                                  # while |C| > 0
        top = C[0]                                 # c <- nearest element of C
        if top > ~W[0]:                            # if dist(c, q) > dist(furthest of W, q)
            break                                  #     all of W is evaluated
        c = np.int64(top & _LOW)
        nc = _pop(C, nc)                           # C <- C \ c
        if nc > 0:                                 # the next candidate's links, ahead of time
            _prefetch_links(g, np.int64(C[0] & _LOW), level)
        hops += 1
        nf = 0
        for e in _links(g, c, level):              # for each e in neighbourhood(c) at layer lc
            if visited[e] != tag:
                visited[e] = tag                   # v <- v + e
                fresh[nf] = e
                nf += 1
                for r in range(_LINES):            # its vector's first cache lines
                    prefetch_at(x, e, r * 16)
        for t in range(nf):                        # the distances, in one tight loop
            fresh_d[t] = _dist(x, fresh[t], q, l2)
        ndis += nf
        for t in range(nf):
            key = _entry(bits[t], fresh[t])
            if nw < ef or key < ~W[0]:             # if dist(e, q) < dist(f, q) or |W| < ef
                nc = _push(C, nc, key)             # C <- C + e
                nw = _push(W, nw, ~key)            # W <- W + e
                if nw > ef:                        # if |W| > ef: remove furthest of W
                    nw = _pop(W, nw)
    stats[0] += hops
    stats[1] += ndis
    return nw


@njit(cache=True, nogil=True, inline="always")
def _prefetch_links(g, node, level):
    """Ask for a link row (count and links) ahead of its use: every cache line it spans."""
    rows, row = (g[0], node) if level == 0 else (g[1], g[2][node] + level - 1)
    for t in range(0, rows.shape[1], 16):
        prefetch_at(rows, row, t)


@njit(cache=True, nogil=True, inline="always")
def _sorted_beam(W, nw, out_d, out_i):
    """Empty the beam W into ``out_d``/``out_i``, nearest first (the distances as float32)."""
    bits = out_d.view(np.uint32)
    for t in range(nw - 1, -1, -1):                # the root is the furthest: fill from the back
        e = ~W[0]
        bits[t] = _entry_bits(e)
        out_i[t] = np.int64(e & _LOW)
        nw = _pop(W, nw)


@njit(cache=True, nogil=True, fastmath=FM)
def _select(x, cand, cand_d, n, m, heuristic, l2, out):
    """Choose at most ``m`` of the ``n`` candidates (sorted nearest first) as neighbours.

    ``heuristic=False``: SELECT-NEIGHBORS-SIMPLE (Algorithm 3), the ``m`` nearest.
    ``heuristic=True``: SELECT-NEIGHBORS-HEURISTIC (Algorithm 4, without the optional candidate
    extension and pruned-connection filling, as hnswlib and faiss use it): walk the candidates
    nearest first and keep ``e`` only if it is closer to the base point than to every neighbour
    kept so far. A candidate that is nearer to a kept neighbour is reachable through it, so the
    links spread out in different directions instead of piling into one cluster. When there are
    fewer than ``m`` candidates all are kept (hnswlib does the same).
    """
    if not heuristic or n < m:
        cnt = min(n, m)
        for t in range(cnt):
            out[t] = cand[t]
        return cnt
    cnt = 0
    for t in range(n):                             # while |W| > 0 and |R| < M
        e = cand[t]                                # e <- nearest element of W
        good = True
        for r in range(cnt):                       # if e is closer to q than to any of R
            if _dist(x, out[r], x[e], l2) < cand_d[t]:
                good = False
                break
        if good:
            out[cnt] = e                           # R <- R + e
            cnt += 1
            if cnt == m:
                break
    return cnt


@njit(cache=True, nogil=True, fastmath=FM)
def _connect(x, e, q, level, g, mmax, heuristic, l2, buf_i, buf_d, sel):
    """Add the link e -> q; when e then has more than ``mmax`` links, shrink them with
    ``_select`` from e's point of view (Algorithm 1, lines 11-16)."""
    if level == 0:
        rows, row = g[0], e
    else:
        rows, row = g[1], g[2][e] + level - 1
    c = rows[row, 0]
    if c < mmax:
        rows[row, 1 + c] = q
        rows[row, 0] = c + 1
        return
    for t in range(c):
        buf_i[t] = rows[row, 1 + t]
        buf_d[t] = _dist(x, rows[row, 1 + t], x[e], l2)
    buf_i[c] = q
    buf_d[c] = _dist(x, q, x[e], l2)
    order = np.argsort(buf_d[:c + 1], kind="mergesort")
    ids = buf_i[:c + 1][order]
    ds = buf_d[:c + 1][order]
    cnt = _select(x, ids, ds, c + 1, mmax, heuristic, l2, sel)
    for t in range(cnt):
        rows[row, 1 + t] = sel[t]
    rows[row, 0] = cnt


@njit(cache=True, nogil=True, fastmath=FM)
def _insert(x, q, levels, g, state, M, efc, heuristic, l2, visited, tag, C, W, wd_sorted,
            wi_sorted, sel, buf_i, buf_d, fresh, fresh_d, stats):
    """INSERT (Algorithm 1) of stored row ``q`` whose level ``levels[q]`` is already drawn."""
    lq = levels[q]                                  # l <- floor(-ln(unif(0..1)) * mL)
    ep, top = state[0], state[1]                    # ep <- entry point, L <- its level
    if ep < 0:                                      # the first point is the entry point
        state[0], state[1] = q, lq
        return tag
    xq = x[q]
    ep_d = _dist(x, ep, xq, l2)
    for lc in range(top, lq, -1):                   # for lc <- L .. l + 1
        ep, ep_d = _greedy(x, xq, ep, ep_d, lc, g, l2, stats)   # W <- SEARCH-LAYER(q, ep, 1)
    for lc in range(min(top, lq), -1, -1):          # for lc <- min(L, l) .. 0
        tag = _next_tag(visited, tag)
        nw = _search_layer(x, xq, ep, ep_d, efc, lc, g, l2, visited, tag, C, W, fresh,
                           fresh_d, stats)          # W <- SEARCH-LAYER(q, ep, efConstruction)
        _sorted_beam(W, nw, wd_sorted, wi_sorted)   # W, nearest first
        cnt = _select(x, wi_sorted, wd_sorted, nw, M, heuristic, l2, sel)  # neighbours <- SELECT
        rows, row = (g[0], q) if lc == 0 else (g[1], g[2][q] + lc - 1)
        for t in range(cnt):                        # add links q -> neighbours
            rows[row, 1 + t] = sel[t]
        rows[row, 0] = cnt
        mmax = 2 * M if lc == 0 else M              # Mmax0 = 2 M on layer 0
        mine = sel[:cnt].copy()
        for t in range(cnt):                        # add links neighbours -> q, shrink if needed
            _connect(x, mine[t], q, lc, g, mmax, heuristic, l2, buf_i, buf_d, sel)
        ep, ep_d = wi_sorted[0], wd_sorted[0]       # ep <- W (its nearest element, as hnswlib)
    if lq > top:                                    # if l > L: set entry point to q
        state[0], state[1] = q, lq
    return tag


@njit(cache=True, nogil=True, fastmath=FM)
def _insert_range(x, start, stop, levels, g, state, M, efc, heuristic, l2, visited, tag,
                  stats):
    """Insert rows ``start .. stop - 1`` one after another; returns the visited-tag counter."""
    C = np.empty(x.shape[0] + 1, np.uint64)
    W = np.empty(efc + 2, np.uint64)
    wd_sorted = np.empty(efc + 2, np.float32)
    wi_sorted = np.empty(efc + 2, np.int32)
    sel = np.empty(2 * M + 2, np.int32)
    buf_i = np.empty(2 * M + 2, np.int32)
    buf_d = np.empty(2 * M + 2, np.float32)
    fresh = np.empty(2 * M + 2, np.int32)
    fresh_d = np.empty(2 * M + 2, np.float32)
    for q in range(start, stop):
        tag = _insert(x, q, levels, g, state, M, efc, heuristic, l2, visited, tag, C, W,
                      wd_sorted, wi_sorted, sel, buf_i, buf_d, fresh, fresh_d, stats)
    return tag


@njit(cache=True, nogil=True, fastmath=FM)
def _knn_search(x, q, k, ef, g, state, l2, visited, tag, C, W, fresh, fresh_d, out_d, out_i,
                stats):
    """K-NN-SEARCH (Algorithm 5) for one query: greedy descent to layer 1, then a beam of width
    ``ef`` on layer 0; the ``k`` nearest of W into ``out_d``/``out_i``, nearest first (distances:
    squared L2, or minus the inner product). Returns the visited tag it used."""
    ep = state[0]
    ep_d = _dist(x, ep, q, l2)
    stats[1] += 1
    for lc in range(state[1], 0, -1):               # for lc <- L .. 1: greedy, ef = 1
        ep, ep_d = _greedy(x, q, ep, ep_d, lc, g, l2, stats)
    tag = _next_tag(visited, tag)
    nw = _search_layer(x, q, ep, ep_d, ef, 0, g, l2, visited, tag, C, W, fresh, fresh_d, stats)
    while nw > k:                                   # drop the furthest of W down to k
        nw = _pop(W, nw)
    _sorted_beam(W, nw, out_d, out_i)
    return tag


@njit(cache=True, nogil=True)
def _search_rows(x, Q, k, ef, g0, gu, up_off, state, mode, visited, tag, heap, work, out_d,
                 out_i, stats):
    """Every row of ``Q`` (raw queries: checked, and normalised for cosine, here), results as
    the index returns them: squared distances for l2, inner products otherwise, id -1 and
    +inf / -inf where fewer than k points exist. ``heap`` holds the candidate heap (the first
    ``n + 1`` entries) and the beam W (the rest); ``work`` (float32) the query and the fresh
    neighbours' ids and distances; ``stats[0, r]``, ``stats[1, r]`` get query r's hops and
    distance count. Returns the last visited tag used, or -1 when a query holds NaN or inf.

    Nothing is allocated here, and the arguments are plain arrays and integers: for one query,
    what a call costs in Python (about 40 ns per array argument) is part of the latency."""
    g = (g0, gu, up_off)
    n1 = x.shape[0] + 1
    C, W = heap[:n1], heap[n1:]
    l2 = mode == 1
    d = x.shape[1]
    width = g0.shape[1] + 1
    qbuf = work[:d]
    fresh = work[d:d + width].view(np.int32)
    fresh_d = work[d + width:d + 2 * width]
    for r in range(Q.shape[0]):
        if prepare_query(Q[r], mode, qbuf) != OK:
            return -1
        row_d, row_i = out_d[r], out_i[r]
        for t in range(k):
            row_d[t] = np.inf
            row_i[t] = -1
        stats[0, r] = 0
        stats[1, r] = 0
        tag = _knn_search(x, qbuf, k, ef, g, state, l2, visited, tag, C, W, fresh, fresh_d,
                          row_d, row_i, stats[:, r])
        if not l2:
            for t in range(k):
                row_d[t] = -row_d[t] if row_i[t] >= 0 else -np.inf
    return tag


def _empty_rows(n: int, width: int) -> np.ndarray:
    """``n`` link rows of ``width`` links: count 0 in column 0, then -1 (no link)."""
    rows = np.full((n, width + 1), -1, np.int32)
    rows[:, 0] = 0
    return rows


_I64 = np.dtype(np.int64)
_get_ident = threading.get_ident


def _forget_marks(buf: list) -> None:
    """After a query with NaN or inf stopped the kernel, the marks of the queries before it carry
    tags the next searches would take for their own: clear them and start the tags again."""
    buf[0][:] = 0
    buf[1] = 0


# =========================================================================== the index
class HNSWIndex(Index):
    """Hierarchical navigable small-world graph index (faiss ``IndexHNSWFlat``, hnswlib).

    ``HNSWIndex(dim, metric="ip", M=16, ef_construction=200, seed=0)``; no training.
    ``add(x)`` inserts rows one by one (Algorithm 1); ``search(q, k, ef=64)`` runs Algorithm 5
    with a beam of ``ef >= k``. ``heuristic=False`` links each point to its ``M`` nearest found
    (Algorithm 3) instead of the diversity heuristic (Algorithm 4), for comparison.

    After a search, ``last_search_stats`` holds per-query ``hops`` (points expanded) and
    ``ndis`` (distances computed). ``levels``, ``neighbors(i, level)``, ``degrees(level)``,
    ``entry_point`` and ``max_level`` expose the graph.
    """

    def __init__(self, dim: int, metric: str = "ip", M: int = 16, ef_construction: int = 200,
                 seed: int = 0, heuristic: bool = True) -> None:
        super().__init__(dim, metric)
        self.M = check_int(M, "M", low=2)
        self.ef_construction = check_int(ef_construction, "ef_construction")
        if self.ef_construction < self.M:
            raise ValueError(f"ef_construction must be >= M ({self.M}) so that M neighbours can "
                             f"be found, got {self.ef_construction}")
        if not isinstance(heuristic, (bool, np.bool_)):
            raise TypeError(f"heuristic must be True or False, got {type(heuristic).__name__}")
        self.seed = check_int(seed, "seed", low=0)
        self.heuristic = bool(heuristic)
        self._rng = np.random.default_rng(self.seed)
        self._reset()

    # -- graph accessors ---------------------------------------------------------------------
    @property
    def mL(self) -> float:
        """The level normalisation ``1 / ln M`` (paper, section 4.1)."""
        return 1.0 / math.log(self.M)

    @property
    def entry_point(self) -> int:
        return int(self._state_arr[0])

    @property
    def max_level(self) -> int:
        return int(self._state_arr[1])

    @property
    def levels(self) -> np.ndarray:
        """Top layer of every point, (ntotal,) int32."""
        return self._levels.copy()

    def neighbors(self, i: int, level: int = 0) -> np.ndarray:
        """The ids linked from point ``i`` on ``level`` (empty above the point's own level)."""
        i = check_int(i, "i", low=0, high=max(self.ntotal - 1, 0))
        level = check_int(level, "level", low=0)
        if i >= self.ntotal or level > self._levels[i]:
            return np.zeros(0, dtype=np.int32)
        if level == 0:
            return self._g0[i, 1:1 + self._g0[i, 0]].copy()
        row = self._up_off[i] + level - 1
        return self._gu[row, 1:1 + self._gu[row, 0]].copy()

    def degrees(self, level: int = 0) -> np.ndarray:
        """Out-degree of every point present on ``level``."""
        level = check_int(level, "level", low=0)
        if level == 0:
            return self._g0[:, 0].copy()
        on = np.flatnonzero(self._levels >= level)
        return self._gu[self._up_off[on] + level - 1, 0].copy()

    @property
    def _graph(self) -> tuple:
        """``(g0, gu, up_off)``: layer 0, one row per point, and the upper layers, one row per
        (point, layer); column 0 of a row is its link count and the links follow, so that a
        walk finds both in the same cache line."""
        return (self._g0, self._gu, self._up_off)

    @property
    def _links0(self) -> np.ndarray:
        """Layer 0's links, ``(n, 2M)``, -1 past a point's count (a view)."""
        return self._g0[:, 1:]

    @property
    def _count0(self) -> np.ndarray:
        """Layer 0's link counts, ``(n,)`` (a view)."""
        return self._g0[:, 0]

    # -- Index hooks ---------------------------------------------------------------------------
    def draw_levels(self, n: int) -> np.ndarray:
        """Draw ``n`` levels ``floor(-ln(U) mL)`` with the index's own generator."""
        u = 1.0 - self._rng.random(n)  # Uniform(0, 1]
        return np.floor(-np.log(u) * self.mL).astype(np.int32)

    def _add(self, x: np.ndarray) -> None:
        n0, n = self.ntotal, self.ntotal + x.shape[0]
        new_levels = self.draw_levels(x.shape[0])
        m2 = 2 * self.M
        off = np.full(x.shape[0], -1, dtype=np.int64)
        has_up = new_levels > 0
        starts = np.cumsum(new_levels) - new_levels + self._gu.shape[0]
        off[has_up] = starts[has_up]
        self._x = np.ascontiguousarray(np.concatenate([self._x, x]))
        self._levels = np.concatenate([self._levels, new_levels])
        self._g0 = np.concatenate([self._g0, _empty_rows(x.shape[0], m2)])
        self._gu = np.concatenate([self._gu, _empty_rows(int(new_levels.sum()), self.M)])
        self._up_off = np.concatenate([self._up_off, off])
        self._pool = {}  # the search buffers are sized for the old n
        visited = np.zeros(n, dtype=np.uint16)
        stats = np.zeros(2, dtype=np.int64)
        _insert_range(self._x, n0, n, self._levels, self._graph, self._state_arr, self.M,
                      self.ef_construction, self.heuristic, self._l2, visited, 0, stats)

    def _buffers(self, ef: int) -> list:
        """The search's working memory, allocated once per index and thread and reused by every
        search (hnswlib's ``VisitedListPool`` does the same for its marks):

        * the visited marks, uint16: a point counts as visited when its mark equals the current
          search's tag, and each search takes a fresh tag, so a search costs what it visits, not
          an O(n) clearing (``_next_tag`` clears the array once every 65,535 searches);
        * the candidate heap (room for every point) followed by the beam W (``ef`` + 2), as
          uint64 entries (distance and id in one number, see ``_entry``);
        * float32 room for the query and the fresh neighbours' ids and distances;
        * the stats of a single-query search, ``(2, 1)``;
        * the widest beam the heap has room for.

        They are made again only when the index has grown or a wider beam is asked for.
        """
        key = _get_ident()
        buf = self._pool.get(key)
        n = self.ntotal
        if buf is None or buf[0].shape[0] != n or buf[5] < ef:
            wide = max(ef, 64)
            same = buf is not None and buf[0].shape[0] == n
            buf = [buf[0] if same else np.zeros(n, np.uint16), buf[1] if same else 0,
                   np.empty(n + 1 + wide + 2, np.uint64),
                   np.empty(self.dim + 2 * (self._g0.shape[1] + 1), np.float32),
                   np.zeros((2, 1), np.int64), wide]
            self._pool[key] = buf
        return buf

    @property
    def _visited(self) -> np.ndarray | None:
        buf = self._pool.get(threading.get_ident())
        return None if buf is None else buf[0]

    @property
    def _tag(self) -> int:
        buf = self._pool.get(threading.get_ident())
        return 0 if buf is None else int(buf[1])

    def _reset(self) -> None:
        self._one_shape = (1, self.dim)  # one query, as the fast path of search takes it
        self._mode1 = MODE_CODES[self.metric]
        self._pool: dict[int, list] = {}
        self._stats = np.zeros((2, 0), np.int64)
        self._x = np.zeros((0, self.dim), dtype=np.float32)
        self._levels = np.zeros(0, dtype=np.int32)
        self._g0 = _empty_rows(0, 2 * self.M)
        self._gu = _empty_rows(0, self.M)
        self._up_off = np.zeros(0, dtype=np.int64)
        self._state_arr = np.array([-1, -1], dtype=np.int64)  # entry point, its level

    @property
    def last_search_stats(self) -> dict[str, np.ndarray]:
        """Per query of the last search: ``hops`` (points expanded) and ``ndis`` (distances
        computed)."""
        return {"hops": self._stats[0].copy(), "ndis": self._stats[1].copy()}

    def _run(self, q: np.ndarray, k: int, ef: int, mode: int) -> tuple[np.ndarray, np.ndarray]:
        if ef < k:
            raise ValueError(f"ef must be >= k (the beam must hold k results), got ef={ef}, "
                             f"k={k}")
        if self.ntotal == 0:
            raise ValueError("HNSWIndex: the index is empty; add(x) before search()")
        nq = q.shape[0]
        D = np.empty((nq, k), np.float32)
        I = np.empty((nq, k), np.int64)  # noqa: E741
        buf = self._buffers(ef)
        stats = buf[4] if nq == 1 else np.empty((2, nq), np.int64)
        tag = _search_rows(self._x, q, k, ef, self._g0, self._gu, self._up_off, self._state_arr,
                           mode, buf[0], buf[1], buf[2], buf[3], D, I, stats)
        if tag < 0:
            _forget_marks(buf)
            raise_status(NOT_FINITE, "q")
        buf[1] = tag
        self._stats = stats
        return D, I

    _has_one = True

    def search(self, q: object, k: int, ef: int = 64,
               **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        """The k best vectors for each query row: ``(D, I)``, both ``(nq, k)``, best first;
        ``ef >= k`` is the width of the beam on layer 0."""
        # One query in the index's own layout, plain ints: straight to the kernel (a search takes
        # tens of microseconds, and each layer of Python around it costs a few tenths of one).
        # Everything else takes the checked path, with the same errors.
        if (not kwargs and type(k) is int and type(ef) is int and 0 < k <= ef
                and type(q) is np.ndarray and q.dtype is _F32 and q.shape == self._one_shape):
            buf = self._pool.get(_get_ident())
            if buf is not None and ef <= buf[5]:  # buffers for this index's size and this ef
                D = np.empty((1, k), _F32)
                I = np.empty((1, k), _I64)  # noqa: E741
                tag = _search_rows(self._x, q, k, ef, self._g0, self._gu, self._up_off,
                                   self._state_arr, self._mode1, buf[0], buf[1], buf[2], buf[3],
                                   D, I, buf[4])
                if tag >= 0:
                    buf[1] = tag
                    self._stats = buf[4]
                    return D, I
                _forget_marks(buf)  # NaN or inf: the checked path below raises
        return super().search(q, k, ef=ef, **kwargs)

    def _search_one(self, q: np.ndarray, k: int, ef: int = 64,
                    **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if kwargs:
            raise TypeError(f"HNSWIndex.search got unexpected arguments {sorted(kwargs)}")
        if type(ef) is not int:
            ef = check_int(ef, "ef")
        return self._run(q.reshape(1, -1), k, ef, self._mode1)

    def _search(self, q: np.ndarray, k: int, ef: int = 64,
                **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if kwargs:
            raise TypeError(f"HNSWIndex.search got unexpected arguments {sorted(kwargs)}")
        ef = check_int(ef, "ef")
        # q is already prepared (unit rows for cosine): the kernel scores it as ip
        return self._run(q, k, ef, 0 if self.metric == "cosine" else self._mode)

    def _state(self) -> dict[str, Any]:
        return {"x": self._x, "levels": self._levels, "links0": self._links0,
                "count0": self._count0, "up_links": self._gu[:, 1:], "up_count": self._gu[:, 0],
                "up_off": self._up_off, "entry": self._state_arr, "M": self.M,
                "ef_construction": self.ef_construction, "seed": self.seed,
                "heuristic": self.heuristic, "rng": self._rng.bit_generator.state}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.M, self.ef_construction = int(state["M"]), int(state["ef_construction"])
        self.seed, self.heuristic = int(state["seed"]), bool(state["heuristic"])
        self._rng = np.random.default_rng(self.seed)
        self._rng.bit_generator.state = state["rng"]
        self._one_shape = (1, self.dim)
        self._mode1 = MODE_CODES[self.metric]
        self._pool = {}
        self._stats = np.zeros((2, 0), np.int64)
        self._x = np.ascontiguousarray(state["x"], dtype=np.float32)
        self._levels = np.ascontiguousarray(state["levels"], dtype=np.int32)
        self._g0 = np.column_stack([state["count0"], state["links0"]]).astype(np.int32)
        self._gu = np.column_stack([state["up_count"],
                                    np.reshape(state["up_links"], (-1, self.M))]).astype(np.int32)
        self._up_off = np.ascontiguousarray(state["up_off"], dtype=np.int64)
        self._state_arr = np.ascontiguousarray(state["entry"], dtype=np.int64)

    def __repr__(self) -> str:
        return (f"HNSWIndex(dim={self.dim}, metric={self.metric!r}, M={self.M}, "
                f"ef_construction={self.ef_construction}, ntotal={self.ntotal})")


# =========================================================================== plain-Python steps
def random_level(u: float, mL: float) -> int:
    """The level of a new point from a uniform draw ``u`` in (0, 1]: ``floor(-ln(u) * mL)``."""
    if not 0.0 < u <= 1.0:
        raise ValueError(f"u must be in (0, 1], got {u}")
    if not mL > 0:
        raise ValueError(f"mL must be > 0, got {mL}")
    return int(math.floor(-math.log(u) * mL))


def _pydist(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    if metric == "l2":
        diff = a.astype(np.float64) - b
        return float(diff @ diff)
    return -float(a.astype(np.float64) @ b)


def search_layer(x: np.ndarray, graph: list[list[int]] | dict, q: np.ndarray, entry: int,
                 ef: int, metric: str = "l2") -> list[tuple[float, int]]:
    """SEARCH-LAYER (Algorithm 2) on one graph, in plain Python with ``heapq``.

    ``graph[i]`` lists the neighbours of point ``i``; returns the ``ef`` nearest points found as
    ``(distance, id)`` pairs, nearest first (distance as in the module docstring).
    """
    ef = check_int(ef, "ef")
    x = as_matrix(x, None, "x")
    d0 = _pydist(x[entry], q, metric)
    visited = {entry}
    candidates = [(d0, entry)]          # min-heap: nearest candidate first
    found = [(-d0, entry)]              # max-heap of the ef best (negated distances)
    while candidates:
        d, c = heapq.heappop(candidates)
        if d > -found[0][0]:
            break
        for e in graph[c]:
            e = int(e)
            if e in visited:
                continue
            visited.add(e)
            de = _pydist(x[e], q, metric)
            if len(found) < ef or de < -found[0][0]:
                heapq.heappush(candidates, (de, e))
                heapq.heappush(found, (-de, e))
                if len(found) > ef:
                    heapq.heappop(found)
    return sorted((-nd, i) for nd, i in found)


def knn_search(index: HNSWIndex, q: np.ndarray, k: int, ef: int = 64) -> np.ndarray:
    """K-NN-SEARCH (Algorithm 5) in plain Python on a built ``HNSWIndex``'s own graph: greedy
    descent through the upper layers, then ``search_layer`` on layer 0; the ids of the ``k``
    nearest, nearest first, one row per query. The readable version of ``HNSWIndex.search``
    (same ids; distances in float64 here, float32 in the kernel)."""
    qs = index._prepare(q, "q")
    k, ef = check_int(k, "k"), check_int(ef, "ef", low=k)
    metric = "l2" if index.metric == "l2" else "ip"
    x = index._x
    layer0 = {i: index.neighbors(i, 0).tolist() for i in range(index.ntotal)}
    out = np.full((qs.shape[0], k), -1, dtype=np.int64)
    for r, qv in enumerate(qs):
        ep = index.entry_point
        d_ep = _pydist(x[ep], qv, metric)
        for level in range(index.max_level, 0, -1):  # greedy: move while a neighbour is closer
            moved = True
            while moved:
                moved = False
                for e in index.neighbors(ep, level):
                    de = _pydist(x[e], qv, metric)
                    if de < d_ep:
                        ep, d_ep, moved = int(e), de, True
        found = search_layer(x, layer0, qv, ep, ef, metric)
        ids = [i for _, i in found[:k]]
        out[r, :len(ids)] = ids
    return out


def select_neighbors(x: np.ndarray, base: np.ndarray, candidates: list[int], m: int,
                     heuristic: bool = True, metric: str = "l2") -> list[int]:
    """SELECT-NEIGHBORS: the ``m`` nearest candidates (Algorithm 3), or the heuristic's choice
    (Algorithm 4): nearest first, keep ``e`` only if it is closer to ``base`` than to every
    candidate already kept. Ties in distance keep the candidates' order."""
    m = check_int(m, "m")
    dists = [_pydist(x[c], base, metric) for c in candidates]
    order = sorted(range(len(candidates)), key=lambda t: dists[t])
    ranked = [(dists[t], int(candidates[t])) for t in order]
    if not heuristic:
        return [c for _, c in ranked[:m]]
    kept: list[int] = []
    for d, e in ranked:
        if all(_pydist(x[r], x[e], metric) >= d for r in kept):
            kept.append(e)
            if len(kept) == m:
                break
    return kept


def hnsw_nbytes(n: int, dim: int, M: int = 16, bytes_per_float: int = 4) -> int:
    """Expected memory of an HNSW index: vectors, ``2M`` int32 links on layer 0 for every point,
    and ``M`` int32 links per upper layer a point reaches (on average ``1 / (M - 1)`` layers,
    since ``P(level >= l) = M^-l``), plus one int32 count per list."""
    n, dim, M = check_int(n, "n"), check_int(dim, "dim"), check_int(M, "M", low=2)
    vectors = n * dim * bytes_per_float
    layer0 = n * (2 * M + 1) * 4
    upper = n / (M - 1) * (M + 1) * 4
    return int(round(vectors + layer0 + upper))
