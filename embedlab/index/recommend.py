"""Choosing an index: a memory calculator and a rule that picks an index for a given scale.

Memory is arithmetic (4 bytes per float32 coordinate, 1 byte per 8-bit PQ sub-code, 4 bytes per
graph link, 8 bytes per stored id); latency is an estimate from a throughput model: how many
vector coordinates a query touches, divided by how many coordinates per second one core
processes (measured in chapter 08 and in this chapter's notebook; ``Throughput`` holds the
defaults measured on the course's 2-core reference machine, and you can pass your own).

The rule reproduces the course's table:

=============  ==========================================================================
scale          index
=============  ==========================================================================
< 1M           exact (flat) search if it meets the latency target, else HNSW
1M - 100M      HNSW while the vectors and links fit in memory (IVF-Flat is the lean option)
100M - 1B      IVF-PQ: compressed codes in RAM (tens of bytes per vector), re-rank if needed
> 1B           IVF-PQ sharded across machines (or a disk-resident graph, DiskANN-style)
=============  ==========================================================================

``recommend`` walks the candidates from the most accurate to the most compact and returns the
first that meets the recall target, the latency target and the memory budget; when none fits
one machine it shards the most compact one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from embedlab.index.base import check_int
from embedlab.index.hnsw import hnsw_nbytes

KINDS = ("flat", "ivf", "pq", "ivfpq", "hnsw")


def memory_bytes(kind: str, n: int, dim: int, *, M: int = 32, m: int | None = None,
                 nbits: int = 8, nlist: int | None = None, bytes_per_float: int = 4) -> int:
    """Bytes an index of ``kind`` holds for ``n`` vectors of ``dim`` dimensions.

    * ``flat``: the vectors, ``n * dim * 4``;
    * ``ivf``: the vectors, an 8-byte id each, and ``nlist`` centroids;
    * ``pq``: ``ceil(m * nbits / 8)`` bytes per vector plus the codebooks
      (``m * 2^nbits * dim / m`` floats);
    * ``ivfpq``: PQ codes, an 8-byte id each, centroids and codebooks;
    * ``hnsw``: the vectors plus links (``embedlab.index.hnsw.hnsw_nbytes``).

    ``m`` defaults to ``dim / 16`` sub-quantisers (16-dimensional sub-vectors, 1 byte each at
    8 bits: a 64x compression of float32), ``nlist`` to ``4 sqrt(n)``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    n, dim = check_int(n, "n"), check_int(dim, "dim")
    m = max(1, dim // 16) if m is None else check_int(m, "m")
    nlist = default_nlist(n) if nlist is None else check_int(nlist, "nlist")
    vectors = n * dim * bytes_per_float
    code = (m * nbits + 7) // 8
    books = (1 << nbits) * dim * bytes_per_float
    centroids = nlist * dim * bytes_per_float
    if kind == "flat":
        return vectors
    if kind == "ivf":
        return vectors + 8 * n + centroids
    if kind == "pq":
        return n * code + books
    if kind == "ivfpq":
        return n * (code + 8) + centroids + books
    return hnsw_nbytes(n, dim, M, bytes_per_float)


def default_nlist(n: int) -> int:
    """The usual rule of thumb: about ``4 sqrt(n)`` lists (at least 1)."""
    return max(1, int(4 * math.sqrt(n)))


@dataclass
class Throughput:
    """Per-core processing rates (coordinates or code look-ups per second) and recall model.

    ``flat``: coordinates per second of a flat scan (memory-bound); ``graph``: coordinates per
    second of HNSW's scattered distance computations; ``pq``: PQ table look-ups per second;
    ``hnsw_distances``: distances per query at recall 0.9 for 1M points, growing by
    ``hnsw_per_decade`` per tenfold ``n`` (chapter 10 measured both); ``nprobe``: lists an IVF query
    scans at recall 0.9; ``pq_recall``: the recall@10 IVF-PQ reaches when a
    short list of candidates is re-ranked with full vectors kept on SSD (codes alone cap it
    lower, chapter 09); ``recalls``: the best recall@10 each kind reached on the course's own
    recall curves (``recalls_from_curves``), which replaces the built-in caps; ``extra``: room
    for your own measurements.
    """

    flat: float = 2.0e9
    graph: float = 3.0e8
    pq: float = 4.0e8
    hnsw_distances: float = 1500.0
    hnsw_per_decade: float = 300.0
    nprobe: float = 32.0
    pq_recall: float = 0.9
    recalls: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


_LABELS = {"flat": "flat", "ivf": "ivf", "pq": "pq", "ivfpq": "ivfpq", "ivf-pq": "ivfpq",
           "hnsw": "hnsw"}


def recalls_from_curves(rows: Any) -> dict[str, float]:
    """The best recall each index kind reaches on measured recall curves.

    ``rows``: the rows of ``embedlab.bench.sweep`` (dicts with ``index`` and ``recall``; rows of
    another ``library`` than ``"embedlab"`` are ignored). Index labels such as ``"IVFPQ"`` or
    ``"IVF-PQ"`` map to the kinds of ``KINDS``; other labels are skipped.
    """
    out: dict[str, float] = {}
    for r in rows:
        if r.get("library", "embedlab") != "embedlab":
            continue
        kind = _LABELS.get(str(r["index"]).lower())
        if kind is None:
            continue
        rec = float(r["recall"])
        if not 0 <= rec <= 1:
            raise ValueError(f"rows: recall must be in [0, 1], got {rec!r}")
        out[kind] = max(out.get(kind, 0.0), rec)
    if not out:
        raise ValueError("rows: no embedlab row of a known index kind "
                         f"({', '.join(sorted(set(_LABELS)))})")
    return out


def _check_recall(target: float) -> float:
    if not isinstance(target, (int, float)) or not 0 < target <= 1:
        raise ValueError(f"target_recall must be in (0, 1], got {target!r}")
    return float(target)


def estimate_latency_ms(kind: str, n: int, dim: int, target_recall: float = 0.9,
                        tp: Throughput | None = None, m: int | None = None) -> float:
    """Single-query latency on one core, from the throughput model (milliseconds)."""
    tp = tp or Throughput()
    target = _check_recall(target_recall)
    n, dim = check_int(n, "n"), check_int(dim, "dim")
    m = max(1, dim // 16) if m is None else m
    # higher recall costs more work: double it for every halving of the miss rate below 0.1
    effort = max(1.0, 0.1 / max(1.0 - target, 1e-4))
    if kind == "flat":
        return n * dim / tp.flat * 1e3
    if kind == "hnsw":
        dists = (tp.hnsw_distances + tp.hnsw_per_decade * (math.log10(n) - 6)) * effort
        return min(max(dists, 1.0), n) * dim / tp.graph * 1e3
    nlist = default_nlist(n)
    # nprobe lists of about n / nlist vectors each; the centroids are themselves searched with a
    # small HNSW graph once there are many of them (as billion-scale IVF systems do)
    scanned = min(n, tp.nprobe * effort * n / nlist)
    coarse = min(nlist * dim / tp.flat, estimate_latency_ms("hnsw", nlist, dim, target, tp) / 1e3)
    if kind == "ivf":
        return (coarse + scanned * dim / tp.flat) * 1e3
    if kind in ("ivfpq", "pq"):
        if kind == "pq":
            return n * m / tp.pq * 1e3
        return (coarse + scanned * m / tp.pq) * 1e3
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def max_recall(kind: str, tp: Throughput | None = None) -> float:
    """The recall@10 an index of this kind can reach (PQ codes alone cap it)."""
    tp = tp or Throughput()
    if kind in tp.recalls:  # measured on the course's recall curves
        return float(tp.recalls[kind])
    return {"flat": 1.0, "hnsw": 0.995, "ivf": 0.995, "ivfpq": tp.pq_recall,
            "pq": tp.pq_recall}[kind]


@dataclass
class Recommendation:
    index: str
    params: dict[str, Any]
    memory_bytes: int
    latency_ms: float
    shards: int
    reason: str
    candidates: list[dict[str, Any]]

    def __str__(self) -> str:
        where = "one machine" if self.shards == 1 else f"{self.shards} shards"
        return (f"{self.index} {self.params} on {where}: {self.memory_bytes / 1e9:.1f} GB, "
                f"~{self.latency_ms:.2f} ms per query. {self.reason}")


def recommend(n: int, dim: int, target_recall: float = 0.9, latency_ms: float = 50.0,
              memory_budget_bytes: int = 64 * 10**9,
              throughput: Throughput | None = None) -> Recommendation:
    """Pick an index for ``n`` vectors of ``dim`` dimensions.

    Candidates, most accurate first: flat, HNSW (M=32), IVF-Flat, IVF-PQ (``dim/16`` bytes per
    vector). The first whose reachable recall meets ``target_recall``, whose estimated latency
    meets ``latency_ms`` and whose memory fits ``memory_budget_bytes`` wins. If none fits one
    machine, IVF-PQ (or HNSW when the recall target is above what PQ codes reach) is split
    into ``ceil(memory / budget)`` shards, each searched in parallel and merged.
    """
    n, dim = check_int(n, "n"), check_int(dim, "dim")
    target = _check_recall(target_recall)
    if not isinstance(latency_ms, (int, float)) or latency_ms <= 0:
        raise ValueError(f"latency_ms must be a positive number, got {latency_ms!r}")
    budget = check_int(int(memory_budget_bytes) if isinstance(memory_budget_bytes, float)
                       else memory_budget_bytes, "memory_budget_bytes")
    tp = throughput or Throughput()
    m = max(1, dim // 16)
    params = {"flat": {}, "hnsw": {"M": 32, "ef_construction": 200},
              "ivf": {"nlist": default_nlist(n)},
              "ivfpq": {"nlist": default_nlist(n), "m": m, "nbits": 8}}
    rows = []
    for kind in ("flat", "hnsw", "ivf", "ivfpq"):
        mem = memory_bytes(kind, n, dim, M=32, m=m)
        lat = estimate_latency_ms(kind, n, dim, target, tp, m=m)
        rows.append({"index": kind, "memory_GB": mem / 1e9, "latency_ms": lat,
                     "max_recall": max_recall(kind, tp),
                     "fits_memory": mem <= budget, "meets_latency": lat <= latency_ms,
                     "meets_recall": max_recall(kind, tp) >= target})
    for r in rows:
        if r["fits_memory"] and r["meets_latency"] and r["meets_recall"]:
            kind = r["index"]
            why = {"flat": "exact search is fast enough at this size: no approximation needed",
                   "hnsw": "vectors and links fit in RAM; a graph walk meets the latency target",
                   "ivf": "full vectors fit, and scanning a few lists meets the latency target",
                   "ivfpq": "only compressed codes fit in memory; PQ keeps the scan fast"}[kind]
            return Recommendation(kind, params[kind], int(r["memory_GB"] * 1e9), r["latency_ms"],
                                  1, why, rows)
    # nothing fits one machine: shard the most compact index that can reach the target, with
    # enough shards that each fits the budget and meets the latency target
    kind = "ivfpq" if max_recall("ivfpq", tp) >= target else "hnsw"
    mem = memory_bytes(kind, n, dim, M=32, m=m)
    shards = max(2, math.ceil(mem / budget))
    while (estimate_latency_ms(kind, max(1, n // shards), dim, target, tp, m=m) > latency_ms
           and shards < 1_000_000):
        shards *= 2
    per_shard = max(1, n // shards)
    lat = estimate_latency_ms(kind, per_shard, dim, target, tp, m=m)
    limit = ("memory" if mem > budget else "latency")
    why = (f"no single-machine index meets the targets ({limit} is the binding limit: "
           f"{mem / 1e9:.0f} GB in all, {budget / 1e9:.0f} GB per machine): split into {shards} "
           f"shards searched in parallel, top-k merged")
    return Recommendation(kind, dict(params[kind], nlist=default_nlist(per_shard))
                          if kind == "ivfpq" else params[kind], mem, lat, shards, why, rows)
