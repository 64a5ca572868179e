"""Chapter 12's workload on the six engines: MiniLM news sentences with source, date and article id
as payload, held-out sentences as queries, one adapter each (``embedlab.vectordb``).

Prints one line per engine::

    <engine> recall@10=<x> p50_ms=<y> p99_ms=<z> insert_per_s=<w> disk_mb=<v>
    <engine> k=100: fewest real ids=<n> recall@100=<r>

recall@10 is against exact float64 search, with the engine's ANN index where it has one
(pgvector HNSW, Milvus Lite AUTOINDEX = faiss HNSW, waited for until every segment's graph is
built, LanceDB IVF-PQ) and exact search where it has none (Qdrant local mode, sqlite-vec, faiss
IndexFlat); p50/p99 over single-query calls, one thread. The second line asks for k = 100 and
counts the real ids (every adapter must return 100) and recall@100.
Qdrant's local mode runs in memory (``disk_mb=nan``): on disk it writes one SQLite row per
point as it goes, which is too slow to load here, and its filtered recall uses 10 queries (it
evaluates filters in Python, point by point). The last lines check the bars: recall@10 of 0.9
or more for the ANN engines and 0.999 or more for the exact ones. Every data folder lives under a
temporary folder, removed at the end (pgserver's too).

    python benchmarks/vectordb.py                # 10k base rows, 200 queries
    python benchmarks/vectordb.py --n 80000      # larger (embeds more sentences once)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from embedlab import bench, vectordb  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--latency-queries", type=int, default=100)
    ap.add_argument("--engines", nargs="+", default=list(vectordb.ENGINES),
                    choices=vectordb.ENGINES)
    args = ap.parse_args()
    bench.one_thread()
    wl = vectordb.news_workload(args.n, args.queries)
    gt100 = bench.exact_neighbours(wl.xb, wl.xq, 100)
    print(f"MiniLM news: {wl.n} base sentences (384-d) with source/date, {wl.xq.shape[0]} "
          f"held-out queries; single-query latency over {args.latency_queries}\n", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="embedlab-bench-vdb-") as tmp:
        srv, folder = vectordb.start_pgserver(tmp) if "pgvector" in args.engines else (None, None)
        try:
            for engine in args.engines:
                t0 = time.perf_counter()
                if engine == "pgvector":
                    store = vectordb.PgVectorStore(dsn=srv.get_uri(), fields=wl.fields)
                elif engine == "sqlite-vec":
                    store = vectordb.SqliteVecAdapter(os.path.join(tmp, "items.db"),
                                                      fields=wl.fields)
                elif engine == "qdrant":         # in memory: local mode writes point by point
                    store = vectordb.QdrantStore(None, fields=wl.fields)
                else:
                    store = vectordb.open_store(engine, os.path.join(tmp, engine),
                                                fields=wl.fields)
                store.create(wl.xb.shape[1], "cosine")
                r = vectordb.measure(store, wl, n_latency=args.latency_queries,
                                     n_filter_queries=10 if engine == "qdrant" else None)
                _, ids = store.search(wl.xq, 100)
                r["fewest_real_ids@100"] = int((ids >= 0).sum(axis=1).min())
                r["recall@100"] = bench.recall_at_k(ids, gt100, 100)
                store.close()
                rows.append(r)
                print(f"{engine} recall@10={r['recall@10']:.4f} p50_ms={r['p50_ms']:.2f} "
                      f"p99_ms={r['p99_ms']:.2f} insert_per_s={r['insert_per_s']:.0f} "
                      f"disk_mb={r['disk_mb']:.1f}", flush=True)
                print(f"    index={r['index']} build_s={r['build_s']:.1f} "
                      f"filtered_recall@1%={r['filtered_recall@0.01']:.3f} "
                      f"(share {r['share@0.01']:.3f}) "
                      f"filtered_recall@10%={r['filtered_recall@0.1']:.3f} "
                      f"(share {r['share@0.1']:.3f}) wall_s={time.perf_counter() - t0:.0f}",
                      flush=True)
                print(f"{engine} k=100: fewest real ids={r['fewest_real_ids@100']} "
                      f"recall@100={r['recall@100']:.4f}", flush=True)
        finally:
            if srv is not None:
                vectordb.stop_pgserver(srv, folder)
    print()
    for r in rows:
        bar = 0.9 if r["index"] == "ANN" else 0.999
        print(f"bar: {r['engine']} ({r['index']}) recall@10 >= {bar} -> {r['recall@10']:.4f} "
              f"({'met' if r['recall@10'] >= bar else 'NOT met'})")


if __name__ == "__main__":
    main()
