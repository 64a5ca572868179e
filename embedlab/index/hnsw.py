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

Storage (int32 links, as faiss and hnswlib): layer 0 is an ``(n, 2M)`` array plus a count per
node; the upper layers of node ``i`` are rows ``up_off[i] .. up_off[i] + level[i] - 1`` of an
``(S, M)`` array, ``S = sum(level)``, plus their counts.
"""

from __future__ import annotations

import heapq
import math
import threading
from typing import Any

import numpy as np
from numba import njit

from embedlab.index.base import MODE_CODES, Index, as_matrix, check_int, raise_status
from embedlab.index.kernels import NOT_FINITE, OK, prefetch, prepare_query

# =========================================================================== compiled kernels
# Floating-point reassociation lets LLVM vectorise the distance loops (SIMD partial sums); the
# flag must be on every kernel, since _dist is inlined into its callers and compiled with theirs.
FM = {"reassoc", "contract"}


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


@njit(cache=True, nogil=True, inline="always")
def _push(keys, ids, size, key, idx):
    """Binary min-heap push on ``keys[:size]`` (with ``ids`` alongside); returns the new size."""
    pos = size
    while pos > 0:
        parent = (pos - 1) >> 1
        if keys[parent] <= key:
            break
        keys[pos] = keys[parent]
        ids[pos] = ids[parent]
        pos = parent
    keys[pos] = key
    ids[pos] = idx
    return size + 1


@njit(cache=True, nogil=True, inline="always")
def _pop(keys, ids, size):
    """Remove the root of the min-heap ``keys[:size]`` (read it first); returns the new size."""
    size -= 1
    key = keys[size]
    idx = ids[size]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] < keys[child]:
            child += 1
        if keys[child] >= key:
            break
        keys[pos] = keys[child]
        ids[pos] = ids[child]
        pos = child
    if size > 0:
        keys[pos] = key
        ids[pos] = idx
    return size


@njit(cache=True, nogil=True, inline="always")
def _links(g, node, level):
    """The neighbour list of ``node`` on ``level`` (a view into the graph arrays)."""
    if level == 0:
        return g[0][node, :g[1][node]]
    row = g[4][node] + level - 1
    return g[2][row, :g[3][row]]


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
def _search_layer(x, q, ep, ep_d, ef, level, g, l2, visited, tag, ck, ci, wk, wi, fresh,
                  fresh_d, stats):
    """SEARCH-LAYER (Algorithm 2): best-first beam search from ``ep`` on one layer.

    C, the candidates, is a min-heap of distances in ``ck``/``ci``; W, the ``ef`` best points
    found, is a max-heap kept as a min-heap of negated distances in ``wk``/``wi``. Returns |W|.

    Memory, not arithmetic, is what a graph walk waits for: every neighbour is a jump to an
    address the CPU cannot predict. So the unvisited neighbours of ``c`` are collected first and
    their vectors prefetched, then their distances computed in one tight loop (the reads overlap
    instead of waiting one after another), and the links of the next candidate to expand are
    prefetched while this one is processed (hnswlib does the same).
    """
    visited[ep] = tag                              # v <- ep
    nc = _push(ck, ci, 0, ep_d, ep)                # C <- ep
    nw = _push(wk, wi, 0, -ep_d, ep)               # W <- ep
    rows = x.shape[1] * 4 // 64 + 1                # cache lines per vector
    while nc > 0:                                  # while |C| > 0
        c_d = ck[0]                                # c <- nearest element of C
        c = ci[0]
        if c_d > -wk[0]:                           # if dist(c, q) > dist(furthest of W, q)
            break                                  #     all of W is evaluated
        nc = _pop(ck, ci, nc)                      # C <- C \ c
        if nc > 0:                                 # the next candidate's links, ahead of time
            _prefetch_links(g, ci[0], level)
        stats[0] += 1
        nf = 0
        for e in _links(g, c, level):              # for each e in neighbourhood(c) at layer lc
            if visited[e] != tag:
                visited[e] = tag                   # v <- v + e
                fresh[nf] = e
                nf += 1
                for r in range(rows):              # its vector, every cache line
                    prefetch(x[e], r * 16)
        for t in range(nf):                        # the distances, in one tight loop
            fresh_d[t] = _dist(x, fresh[t], q, l2)
        stats[1] += nf
        for t in range(nf):
            e = fresh[t]
            d = fresh_d[t]
            if nw < ef or d < -wk[0]:              # if dist(e, q) < dist(f, q) or |W| < ef
                nc = _push(ck, ci, nc, d, e)       # C <- C + e
                nw = _push(wk, wi, nw, -d, e)      # W <- W + e
                if nw > ef:                        # if |W| > ef: remove furthest of W
                    nw = _pop(wk, wi, nw)
    return nw


@njit(cache=True, nogil=True, inline="always")
def _prefetch_links(g, node, level):
    if level == 0:
        prefetch(g[0], node)
        prefetch(g[1], node)
    else:
        prefetch(g[2], g[4][node] + level - 1)


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
        links, counts, row = g[0], g[1], e
    else:
        links, counts, row = g[2], g[3], g[4][e] + level - 1
    c = counts[row]
    if c < mmax:
        links[row, c] = q
        counts[row] = c + 1
        return
    for t in range(c):
        buf_i[t] = links[row, t]
        buf_d[t] = _dist(x, links[row, t], x[e], l2)
    buf_i[c] = q
    buf_d[c] = _dist(x, q, x[e], l2)
    order = np.argsort(buf_d[:c + 1], kind="mergesort")
    ids = buf_i[:c + 1][order]
    ds = buf_d[:c + 1][order]
    cnt = _select(x, ids, ds, c + 1, mmax, heuristic, l2, sel)
    for t in range(cnt):
        links[row, t] = sel[t]
    counts[row] = cnt


@njit(cache=True, nogil=True, fastmath=FM)
def _insert(x, q, levels, g, state, M, efc, heuristic, l2, visited, tag, ck, ci, wk, wi,
            wd_sorted, wi_sorted, sel, buf_i, buf_d, fresh, fresh_d, stats):
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
        nw = _search_layer(x, xq, ep, ep_d, efc, lc, g, l2, visited, tag, ck, ci, wk, wi,
                           fresh, fresh_d, stats)   # W <- SEARCH-LAYER(q, ep, efConstruction)
        for t in range(nw - 1, -1, -1):             # W, nearest first
            wd_sorted[t] = -wk[0]
            wi_sorted[t] = wi[0]
            _pop(wk, wi, t + 1)
        cnt = _select(x, wi_sorted, wd_sorted, nw, M, heuristic, l2, sel)  # neighbours <- SELECT
        if lc == 0:                                 # add links q -> neighbours
            for t in range(cnt):
                g[0][q, t] = sel[t]
            g[1][q] = cnt
        else:
            row = g[4][q] + lc - 1
            for t in range(cnt):
                g[2][row, t] = sel[t]
            g[3][row] = cnt
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
    n = x.shape[0]
    cap = n + 1
    ck = np.empty(cap, np.float32)
    ci = np.empty(cap, np.int32)
    wk = np.empty(efc + 2, np.float32)
    wi = np.empty(efc + 2, np.int32)
    wd_sorted = np.empty(efc + 2, np.float32)
    wi_sorted = np.empty(efc + 2, np.int32)
    sel = np.empty(2 * M + 2, np.int32)
    buf_i = np.empty(2 * M + 2, np.int32)
    buf_d = np.empty(2 * M + 2, np.float32)
    fresh = np.empty(2 * M + 2, np.int32)
    fresh_d = np.empty(2 * M + 2, np.float32)
    for q in range(start, stop):
        tag = _insert(x, q, levels, g, state, M, efc, heuristic, l2, visited, tag, ck, ci, wk,
                      wi, wd_sorted, wi_sorted, sel, buf_i, buf_d, fresh, fresh_d, stats)
    return tag


@njit(cache=True, nogil=True, fastmath=FM)
def _knn_search(x, q, k, ef, g, state, l2, visited, tag, ck, ci, wk, wi, fresh, fresh_d,
                out_d, out_i, stats):
    """K-NN-SEARCH (Algorithm 5) for one query: greedy descent to layer 1, then a beam of width
    ``ef`` on layer 0; the ``k`` nearest of W into ``out_d``/``out_i``, nearest first (distances:
    squared L2, or minus the inner product). Returns the visited tag it used."""
    stats[0] = 0
    stats[1] = 0
    ep = state[0]
    ep_d = _dist(x, ep, q, l2)
    stats[1] += 1
    for lc in range(state[1], 0, -1):               # for lc <- L .. 1: greedy, ef = 1
        ep, ep_d = _greedy(x, q, ep, ep_d, lc, g, l2, stats)
    tag = _next_tag(visited, tag)
    nw = _search_layer(x, q, ep, ep_d, ef, 0, g, l2, visited, tag, ck, ci, wk, wi, fresh,
                       fresh_d, stats)
    while nw > k:                                   # drop the furthest of W down to k
        nw = _pop(wk, wi, nw)
    for t in range(nw - 1, -1, -1):                 # the rest, furthest first
        out_d[t] = -wk[0]
        out_i[t] = wi[0]
        nw = _pop(wk, wi, nw)
    return tag


@njit(cache=True, nogil=True)
def _search_rows(x, Q, k, ef, links0, count0, up_links, up_count, up_off, state, mode, visited,
                 tag, keys, vals, out_d, out_i, stats):
    """Every row of ``Q`` (raw queries: checked, and normalised for cosine, here), results as
    the index returns them: squared distances for l2, inner products otherwise, id -1 and
    +inf / -inf where fewer than k points exist. ``keys``/``vals`` hold the candidate heap
    (the first ``n + 1`` entries) and the beam W (the rest); ``stats[0, r]``, ``stats[1, r]``
    get query r's hops and distance count. Returns ``(status, tag)``.

    The arguments are plain arrays (no tuples): a call's cost in Python grows with the number and
    kind of its arguments, and for one query that cost is part of the latency."""
    g = (links0, count0, up_links, up_count, up_off)
    n1 = x.shape[0] + 1
    ck, ci, wk, wi = keys[:n1], vals[:n1], keys[n1:], vals[n1:]
    l2 = mode == 1
    qbuf = np.empty(x.shape[1], np.float32)
    fresh = np.empty(links0.shape[1] + 2, np.int32)
    fresh_d = np.empty(links0.shape[1] + 2, np.float32)
    dist = np.empty(k, np.float32)
    counts = np.zeros(2, np.int64)
    for r in range(Q.shape[0]):
        if prepare_query(Q[r], mode, qbuf) != OK:
            return NOT_FINITE, tag
        for t in range(k):
            dist[t] = np.inf
            out_i[r, t] = -1
        tag = _knn_search(x, qbuf, k, ef, g, state, l2, visited, tag, ck, ci, wk, wi, fresh,
                          fresh_d, dist, out_i[r], counts)
        for t in range(k):
            if l2:
                out_d[r, t] = dist[t]
            else:
                out_d[r, t] = -dist[t] if out_i[r, t] >= 0 else -np.inf
        stats[0, r] = counts[0]
        stats[1, r] = counts[1]
    return OK, tag


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
            return self._links0[i, :self._count0[i]].copy()
        row = self._up_off[i] + level - 1
        return self._up_links[row, :self._up_count[row]].copy()

    def degrees(self, level: int = 0) -> np.ndarray:
        """Out-degree of every point present on ``level``."""
        level = check_int(level, "level", low=0)
        if level == 0:
            return self._count0.copy()
        on = np.flatnonzero(self._levels >= level)
        return self._up_count[self._up_off[on] + level - 1].copy()

    @property
    def _graph(self) -> tuple:
        return (self._links0, self._count0, self._up_links, self._up_count, self._up_off)

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
        starts = np.cumsum(new_levels) - new_levels + self._up_links.shape[0]
        off[has_up] = starts[has_up]
        self._x = np.ascontiguousarray(np.concatenate([self._x, x]))
        self._levels = np.concatenate([self._levels, new_levels])
        self._links0 = np.concatenate([self._links0, np.full((x.shape[0], m2), -1, np.int32)])
        self._count0 = np.concatenate([self._count0, np.zeros(x.shape[0], np.int32)])
        extra = int(new_levels.sum())
        self._up_links = np.concatenate([self._up_links,
                                         np.full((extra, self.M), -1, np.int32)])
        self._up_count = np.concatenate([self._up_count, np.zeros(extra, np.int32)])
        self._up_off = np.concatenate([self._up_off, off])
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
        * the candidate heap (room for every point) followed by the beam W (``ef`` + 2), keys
          and ids.

        They are made again only when the index has grown or a wider beam is asked for.
        """
        key = threading.get_ident()
        buf = self._pool.get(key)
        n = self.ntotal
        if buf is None or buf[0].shape[0] != n or buf[2].shape[0] < n + ef + 3:
            size = n + 1 + max(ef, 64) + 2
            buf = [np.zeros(n, np.uint16) if buf is None or buf[0].shape[0] != n else buf[0],
                   0 if buf is None or buf[0].shape[0] != n else buf[1],
                   np.empty(size, np.float32), np.empty(size, np.int32)]
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
        self._pool: dict[int, list] = {}
        self._stats = np.zeros((2, 0), np.int64)
        self._x = np.zeros((0, self.dim), dtype=np.float32)
        self._levels = np.zeros(0, dtype=np.int32)
        self._links0 = np.zeros((0, 2 * self.M), dtype=np.int32)
        self._count0 = np.zeros(0, dtype=np.int32)
        self._up_links = np.zeros((0, self.M), dtype=np.int32)
        self._up_count = np.zeros(0, dtype=np.int32)
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
        stats = np.empty((2, nq), np.int64)
        buf = self._buffers(ef)
        status, buf[1] = _search_rows(self._x, q, k, ef, self._links0, self._count0,
                                      self._up_links, self._up_count, self._up_off,
                                      self._state_arr, mode, buf[0], buf[1], buf[2], buf[3], D,
                                      I, stats)
        raise_status(status, "q")
        self._stats = stats
        return D, I

    _has_one = True

    def _search_one(self, q: np.ndarray, k: int, ef: int = 64,
                    **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if kwargs:
            raise TypeError(f"HNSWIndex.search got unexpected arguments {sorted(kwargs)}")
        if type(ef) is not int:
            ef = check_int(ef, "ef")
        return self._run(q.reshape(1, -1), k, ef, MODE_CODES[self.metric])

    def _search(self, q: np.ndarray, k: int, ef: int = 64,
                **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if kwargs:
            raise TypeError(f"HNSWIndex.search got unexpected arguments {sorted(kwargs)}")
        ef = check_int(ef, "ef")
        # q is already prepared (unit rows for cosine): the kernel scores it as ip
        return self._run(q, k, ef, 0 if self.metric == "cosine" else self._mode)

    def _state(self) -> dict[str, Any]:
        return {"x": self._x, "levels": self._levels, "links0": self._links0,
                "count0": self._count0, "up_links": self._up_links, "up_count": self._up_count,
                "up_off": self._up_off, "entry": self._state_arr, "M": self.M,
                "ef_construction": self.ef_construction, "seed": self.seed,
                "heuristic": self.heuristic, "rng": self._rng.bit_generator.state}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.M, self.ef_construction = int(state["M"]), int(state["ef_construction"])
        self.seed, self.heuristic = int(state["seed"]), bool(state["heuristic"])
        self._rng = np.random.default_rng(self.seed)
        self._rng.bit_generator.state = state["rng"]
        self._pool = {}
        self._stats = np.zeros((2, 0), np.int64)
        self._x = np.ascontiguousarray(state["x"], dtype=np.float32)
        self._levels = np.ascontiguousarray(state["levels"], dtype=np.int32)
        self._links0 = np.ascontiguousarray(state["links0"], dtype=np.int32)
        self._count0 = np.ascontiguousarray(state["count0"], dtype=np.int32)
        self._up_links = np.ascontiguousarray(state["up_links"], dtype=np.int32)
        self._up_count = np.ascontiguousarray(state["up_count"], dtype=np.int32)
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
