"""Chapter 12's workload and what the chapter measures on it.

``news_workload`` gives MiniLM news sentences with a payload (``source``, ``date``, ``article``)
and held-out queries with their exact top k; ``measure`` loads a store and reads its recall,
latency, size and filtered recall; the helpers below measure one filter (``filtered_run``),
post-filter an ANN top list (``post_filter``), run the headline -> article task through an
engine's ``hybrid_search`` (``HybridTask``), and state the latency model of a pgvector HNSW
index that outgrows memory (``pg_latency_model``).

Recall here is ``|found & true| / |true|`` averaged over queries (Manning, Raghavan and
Schuetze 2008, ch. 8); an id of ``-1`` (no result) never counts, so a short answer loses recall.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedlab.vectordb.base import VectorStore, reciprocal_rank_fusion


class Workload:
    """MiniLM news sentences as base rows (with their article's ``source``, ``date`` and
    ``article`` id) and held-out sentences as queries; ``gt`` the exact top-``k`` (float64
    brute force)."""

    fields: dict[str, type] = {"source": str, "date": int, "article": int}

    def __init__(self, xb: np.ndarray, xq: np.ndarray, gt: np.ndarray,
                 payload: dict[str, list], texts: list[str]) -> None:
        self.xb, self.xq, self.gt, self.payload, self.texts = xb, xq, gt, payload, texts

    @property
    def n(self) -> int:
        return int(self.xb.shape[0])

    def selective_filter(self, selectivity: float, field: str = "article"
                         ) -> tuple[dict, float]:
        """``({field: ("<=", t)}, share)``: the integer threshold whose filter keeps the share
        of rows nearest to ``selectivity``, and that share."""
        values = np.asarray(self.payload[field])
        cands = np.unique(values)
        shares = np.searchsorted(np.sort(values), cands, side="right") / values.size
        j = int(np.argmin(np.abs(shares - selectivity)))
        return {field: ("<=", int(cands[j]))}, float(shares[j])

    def mask(self, where: dict) -> np.ndarray:
        """Which base rows pass ``where`` (integer fields, the operators of ``search``)."""
        import operator

        fns = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
               ">": operator.gt, ">=": operator.ge}
        keep = np.ones(self.n, dtype=bool)
        for name, cond in where.items():
            op, value = cond if isinstance(cond, tuple) else ("=", cond)
            keep &= fns[op](np.asarray(self.payload[name]), value)
        return keep

    def filtered_gt(self, where: dict, k: int = 10) -> list[np.ndarray]:
        """Exact top ``k`` among the rows that pass ``where``, for each query."""
        keep = np.flatnonzero(self.mask(where))
        s = self.xq.astype(np.float64) @ self.xb[keep].astype(np.float64).T
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return [keep[t] for t in top]


def news_workload(n_base: int, n_query: int, k: int = 10, seed: int = 0) -> Workload:
    """``n_base`` MiniLM news sentences with payload and ``n_query`` held-out queries.

    The same seeded split as ``bench.load_dataset("minilm-news", ...)`` (so its cached
    embeddings and ground truth are reused); ``source`` is the outlet, ``date`` the article's
    publication date as an integer ``yyyymmdd``, ``article`` its id (fine-grained enough for
    filters of any selectivity: the corpus's first articles share a handful of dates).
    """
    from embedlab import bench, data
    from embedlab.text import split_sentences

    ds = bench.load_dataset("minilm-news", n_base, n_query=n_query, gt_k=k, seed=seed)
    news = data.load("news")
    seen: set[str] = set()
    sentences, sources, dates, articles = [], [], [], []
    for text, src, date, art in zip(news["text"], news["source"], news["publish_date"],
                                    news["article_id"], strict=True):
        y, m, d = (int(p) for p in str(date).split("/"))
        for s in split_sentences(text, min_chars=20):      # bench.news_sentences' order
            if s not in seen:
                seen.add(s)
                sentences.append(s)
                sources.append(str(src))
                dates.append(10_000 * y + 100 * m + d)
                articles.append(int(art))
        if len(sentences) >= n_base + n_query:
            break
    pool = n_base + n_query
    perm = np.random.default_rng(seed).permutation(pool)
    b_ids = np.sort(perm[n_query:n_query + n_base])
    payload = {"source": [sources[i] for i in b_ids], "date": [dates[i] for i in b_ids],
               "article": [articles[i] for i in b_ids]}
    return Workload(ds.xb, ds.xq, ds.gt, payload, [sentences[i] for i in b_ids])


def per_query_recall(got: np.ndarray, want: Sequence[np.ndarray]) -> np.ndarray:
    """``|got_i & want_i| / |want_i|`` for each query (ids ``-1`` never match)."""
    return np.array([len(set(np.asarray(g).tolist()) & set(np.asarray(w).tolist())) / len(w)
                     for g, w in zip(got, want, strict=True)], dtype=np.float64)


def single_query_ms(store: VectorStore, xq: np.ndarray, k: int = 10,
                    where: dict | None = None) -> np.ndarray:
    """Milliseconds of each single-query ``search`` over the rows of ``xq`` (one warm-up
    first)."""
    store.search(xq[0], k, where=where)
    out = []
    for row in xq:
        t0 = time.perf_counter()
        store.search(row, k, where=where)
        out.append(1e3 * (time.perf_counter() - t0))
    return np.array(out)


def measure(store: VectorStore, wl: Workload, k: int = 10, n_latency: int = 100,
            selectivities: Sequence[float] = (0.01, 0.1), batch: int = 2_000,
            n_filter_queries: int | None = None) -> dict[str, Any]:
    """Load ``wl`` into a freshly created ``store`` and measure it.

    Returns insert throughput (rows/s over the upserts), the index build time, recall@k of the
    engine's search (its ANN index where it has one) against exact search, p50 and p99
    single-query latency over the first ``n_latency`` queries (after one warm-up query), size on
    disk, and recall@k under ``article <= t`` filters keeping each share in ``selectivities``
    (over the first ``n_filter_queries`` queries, all by default), with their mean latency.
    """
    from embedlab.bench import recall_at_k

    t0 = time.perf_counter()
    for a in range(0, wl.n, batch):
        b = min(a + batch, wl.n)
        store.upsert(range(a, b), wl.xb[a:b], {f: v[a:b] for f, v in wl.payload.items()})
    insert_s = time.perf_counter() - t0
    build_s = store.build_index()
    _, ids = store.search(wl.xq, k)
    out: dict[str, Any] = {"engine": store.engine, "index": "exact" if store.exact else "ANN",
                           "recall@10": recall_at_k(ids, wl.gt, k),
                           "insert_per_s": wl.n / insert_s, "build_s": build_s}
    lat = single_query_ms(store, wl.xq[:n_latency], k)
    out["p50_ms"], out["p99_ms"] = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
    out["disk_mb"] = float(store.disk_bytes()) / 1e6
    for sel in selectivities:
        where, share = wl.selective_filter(sel)
        xq = wl.xq[:n_filter_queries]
        want = wl.filtered_gt(where, k)[:xq.shape[0]]
        t0 = time.perf_counter()
        _, got = store.search(xq, k, where=where)
        out[f"filtered_ms@{sel:g}"] = 1e3 * (time.perf_counter() - t0) / xq.shape[0]
        out[f"filtered_recall@{sel:g}"] = float(per_query_recall(got, want).mean())
        out[f"share@{sel:g}"] = share
    return out


# --------------------------------------------------------------------------- filtered search
def post_filter(deep: np.ndarray, keep: np.ndarray, k: int = 10) -> list[np.ndarray]:
    """A post-filter: from each row of ``deep`` (an unfiltered top list, best first) the first
    ``k`` ids that ``keep`` (a boolean mask over the base rows) lets through."""
    return [np.array([i for i in row if i >= 0 and keep[i]][:k], dtype=np.int64)
            for row in np.asarray(deep)]


def plan_summary(plans: Sequence[str]) -> str:
    """``"Index Scan (items_hnsw) x48; Seq Scan + Sort x2"``: each plan and how many queries
    ran it, the commonest first."""
    return "; ".join(f"{p} x{n}" for p, n in Counter(plans).most_common())


def filtered_run(store: VectorStore, xq: np.ndarray, where: dict,
                 want: Sequence[np.ndarray], k: int = 10) -> dict[str, Any]:
    """One filter on one store, query by query: recall@k against the exact filtered top k, the
    ids returned (mean), the rows the adapter had to complete, ms per query, and the plan that
    ran (pgvector: each query's ``EXPLAIN``; LanceDB: its ``explain_plan``; the others: what
    their engine does, ``filter_plan``)."""
    t0 = time.perf_counter()
    _, got = store.search(xq, k, where=where)
    ms = 1e3 * (time.perf_counter() - t0) / xq.shape[0]
    if getattr(store, "record_plans", False):
        plan = plan_summary(store.plans)
        ms = float(np.mean(store.query_ms))        # the queries alone, not their EXPLAIN
    elif hasattr(store, "plan"):
        plan = store.plan(xq[0], k, where)
    else:
        plan = store.filter_plan
    return {"recall@10": float(per_query_recall(got, want).mean()),
            "ids returned": float((got >= 0).sum(axis=1).mean()),
            "rows completed": store.fallbacks, "ms/query": ms, "plan": plan}


# --------------------------------------------------------------------------- snapshots
def snapshot_reads(dsn: str, dim: int, n_batches: int = 8, batch: int = 500, readers: int = 2,
                   table: str = "live", seed: int = 1) -> list[dict[str, Any]]:
    """Readers search while a writer inserts, on PostgreSQL: what each read saw.

    A writer thread inserts ``n_batches`` batches of random rows (one transaction each) into a
    fresh ``table``; each of ``readers`` threads repeatedly opens a ``REPEATABLE READ``
    transaction, counts the rows, runs a k-NN query and counts again, until the writer is done
    (and at least three times). Returns one row per read: reader, count before, count after.
    Under snapshot isolation both counts are equal and a whole number of batches.
    """
    import threading

    import psycopg

    from embedlab.vectordb.pgvector import PgVectorStore, pg_vector_literal

    fields = {"source": str, "date": int}
    PgVectorStore(dsn=dsn, table=table, fields=fields).create(dim).close()
    q = pg_vector_literal(np.random.default_rng(seed + 1).standard_normal(dim))
    done, reads = threading.Event(), []

    def write() -> None:
        w = PgVectorStore(dsn=dsn, table=table, fields=fields).attach(dim)
        rng = np.random.default_rng(seed)
        for b in range(n_batches):
            x = rng.standard_normal((batch, dim)).astype(np.float32)
            w.upsert(range(b * batch, (b + 1) * batch), x,
                     {"source": ["w"] * batch, "date": [b] * batch})
        w.close()
        done.set()

    def read(name: str) -> None:
        with psycopg.connect(dsn, prepare_threshold=None) as c:
            while not done.is_set() or sum(r["reader"] == name for r in reads) < 3:
                with c.transaction():
                    c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    n1 = c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                    c.execute(f"SELECT id FROM {table} ORDER BY embedding <=> %s::vector "
                              f"LIMIT 10", (q,)).fetchall()
                    n2 = c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                reads.append({"reader": name, "count before": n1, "count after": n2})

    threads = [threading.Thread(target=write)] + [
        threading.Thread(target=read, args=(f"r{i}",)) for i in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return reads


# --------------------------------------------------------------------------- hybrid search
@dataclass
class HybridTask:
    """The headline -> article task: held-out articles (``docs``, cut to ``max_chars``) and
    their headlines as queries (``headlines[i]``'s article is ``docs[i]``), with MiniLM
    vectors of both."""

    docs: list[str]
    headlines: list[str]
    doc_vecs: np.ndarray
    query_vecs: np.ndarray

    fields = {"text": str}

    @classmethod
    def load(cls, n_eval: int, max_chars: int | None) -> HybridTask:
        from embedlab import tasks
        from embedlab.encoders import embed_cached

        _, test = tasks.news_split()
        test = test.iloc[:n_eval]
        docs = [tasks.truncate_text(t, max_chars) for t in test.text]
        heads = test.title.tolist()
        return cls(docs, heads, embed_cached(docs, show_progress_bar=False),
                   embed_cached(heads, show_progress_bar=False))

    def fill(self, store: VectorStore) -> VectorStore:
        """Create the collection in ``store`` (opened with ``fields=HybridTask.fields`` and
        ``text_field="text"``) and load every article, id = its position."""
        store.create(self.doc_vecs.shape[1], "cosine")
        store.upsert(range(len(self.docs)), self.doc_vecs, {"text": self.docs})
        store.build_index()
        return store

    def engine_rankings(self, store: VectorStore, k: int = 10, rrf_k: float = 60.0,
                        depth: int = 100) -> np.ndarray:
        """Each headline's top ``k`` article ids from the engine's ``hybrid_search``."""
        return np.stack([store.hybrid_search(h, v, k, rrf_k=rrf_k, depth=depth)[1]
                         for h, v in zip(self.headlines, self.query_vecs, strict=True)])

    def python_rankings(self, k: int = 10, rrf_k: float = 60.0, depth: int = 100
                        ) -> dict[str, np.ndarray]:
        """BM25 alone, MiniLM alone and their reciprocal rank fusion in Python (each list cut
        at ``depth`` before fusing), each headline's top ``k``; where each headline's own article
        ranks in the full BM25 and MiniLM rankings; and the two lists cut at ``depth``."""
        from embedlab.contrastive import bm25_scores

        bm25 = np.argsort(-bm25_scores(self.headlines, self.docs), axis=1, kind="stable")
        dense = np.argsort(-(self.query_vecs @ self.doc_vecs.T), axis=1, kind="stable")
        fused = [[i for i, _ in reciprocal_rank_fusion([b[:depth], v[:depth]], k=rrf_k,
                                                       top=k)]
                 for b, v in zip(bm25, dense, strict=True)]
        pad = np.full((len(fused), k), -1, dtype=np.int64)
        for r, row in enumerate(fused):
            pad[r, :len(row)] = row
        return {"BM25": bm25[:, :k], "MiniLM": dense[:, :k], "RRF in Python": pad,
                "BM25 rank": _rank_of_self(bm25), "MiniLM rank": _rank_of_self(dense),
                "BM25 lists": bm25[:, :depth], "MiniLM lists": dense[:, :depth]}


def _rank_of_self(ranked: np.ndarray) -> np.ndarray:
    """Where row i's own document (id i) sits in ranking row i, from 1."""
    return np.array([int(np.flatnonzero(r == i)[0]) + 1 for i, r in enumerate(ranked)])


# --------------------------------------------------------------------------- a stated model
def pg_latency_model(n: np.ndarray | float, *, pages_c: float, pages_d: float,
                     bytes_per_vector: float, ms_per_page: float, cache_bytes: float,
                     miss_ms: float) -> np.ndarray:
    """Modelled milliseconds of one pgvector HNSW query over ``n`` vectors (a model, not a
    measurement).

    * pages touched per query: ``pages_c + pages_d * log2 n`` (an HNSW search visits a number
      of nodes that grows like log n, Malkov and Yashunin 2018; fitted to ``EXPLAIN (ANALYZE,
      BUFFERS)`` counts);
    * the index takes ``bytes_per_vector * n`` bytes (measured per vector), of which a page
      cache of ``cache_bytes`` holds a share ``h = min(1, cache / index)``, every page equally
      likely to be touched (pessimistic: the upper layers stay hot);
    * a page in memory costs ``ms_per_page`` (measured: a whole query's time over its pages, SQL
      overhead included), a page read from storage ``miss_ms`` (an assumption you set).

    ``latency(n) = pages(n) * (h * ms_per_page + (1 - h) * miss_ms)``.
    """
    n = np.asarray(n, dtype=np.float64)
    pages = pages_c + pages_d * np.log2(n)
    hit = np.minimum(1.0, cache_bytes / (bytes_per_vector * n))
    return pages * (hit * ms_per_page + (1.0 - hit) * miss_ms)
