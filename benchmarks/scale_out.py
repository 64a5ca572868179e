"""Chapter 19's scale-out job on a Dask cluster: MiniLM embedding of the news sentences with one
worker and with two, sharded IVF-PQ recall against the single index, a worker killed in the
middle of the embedding job, and a shard whose worker is killed between two queries.

Prints::

    storage <url>: read by every worker (<n> workers)
    workers=1 docs/s=<x> cores_used=<c> docs/cpu-s=<r> ran_on=<1>
    workers=2 docs/s=<y> cores_used=<c> docs/cpu-s=<r> ran_on=<2>
    speedup 2 vs 1 workers=<y/x> (goal 1.3)
    recall@10 sharded=<a> single=<b>            (ours; a faiss line follows)
    worker killed: identical=<True|False>
    shard worker killed: identical=<True|False>

Without ``EMBEDLAB_DASK_SCHEDULER`` the cluster is a ``LocalCluster`` of two single-threaded
workers; with it, the script connects there (see README, "On several machines"). Every task
reads and writes the storage by URL (``EMBEDLAB_STORAGE``, a new local folder by default), and a
probe checks first that every worker reaches it. The "n workers" rows restrict the tasks to
exactly n workers (``ran_on`` counts the workers that ran them). Runs alternate (1, 2, 1, 2,
...) and each rate is the median of ``--repeats`` runs, so a burst of load elsewhere on the
machine hits both. docs/s is wall-clock throughput; cores_used is the tasks' CPU time over the
wall time, which shows how many cores the job really got on a shared machine; docs/cpu-s is the
per-core rate. The last line kills the worker holding the first shard: Dask rebuilds that shard
from storage on another worker and the same queries must return the same ids and scores.

    python benchmarks/scale_out.py                      # 240 sentences, 3 repeats
    python benchmarks/scale_out.py --sentences 4000 --partition-size 200
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from embedlab import scale  # noqa: E402
from embedlab.encoders import default_device  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=240)
    ap.add_argument("--partition-size", type=int, default=20)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nlist", type=int, default=16)
    ap.add_argument("--nprobe", type=int, default=4)
    args = ap.parse_args()
    device = default_device()
    work = scale.join(scale.default_storage(), "scale-out")
    client = scale.start_client(2)
    try:
        names = scale.check_storage(client, work)
        print(f"storage {work}: read by every worker ({len(names)} workers)")
        addrs = scale.workers(client)
        if len(addrs) < 2:
            raise SystemExit(f"need 2 workers, the cluster has {len(addrs)}")
        scale.load_model_on_workers(client, device)
        texts = scale.news_sentence_texts(args.sentences + args.queries)
        in_dir, q_dir = scale.join(work, "in"), scale.join(work, "q")
        scale.write_text_partitions(texts[:args.sentences], in_dir, args.partition_size)
        scale.write_text_partitions(texts[args.sentences:], q_dir, args.queries)
        # warm-up: every worker embeds once before anything is timed
        scale.embed_corpus(client, q_dir, scale.join(work, "warm"), device=device)

        rates: dict[int, list] = {1: [], 2: []}
        for rep in range(args.repeats):
            for n_w in (1, 2):
                r = scale.embed_corpus(client, in_dir, scale.join(work, f"out-{n_w}-{rep}"),
                                       device=device, restrict=addrs[:n_w])
                rates[n_w].append((r.docs_per_s, r.cores_used, r.docs_per_cpu_s,
                                   len(r.workers_used)))
        med = {n: np.median(np.array(v), axis=0) for n, v in rates.items()}
        for n_w in (1, 2):
            print(f"workers={n_w} docs/s={med[n_w][0]:.1f} cores_used={med[n_w][1]:.2f} "
                  f"docs/cpu-s={med[n_w][2]:.1f} ran_on={med[n_w][3]:.0f}")
        print(f"speedup 2 vs 1 workers={med[2][0] / med[1][0]:.2f} (goal 1.3; "
              f"{os.cpu_count()} cores on this machine, shared)")

        ref = scale.join(work, f"out-2-{args.repeats - 1}")
        ids, X = scale.read_embeddings(ref)
        scale.embed_corpus(client, q_dir, scale.join(work, "qe"), device=device)
        _, Q = scale.read_embeddings(scale.join(work, "qe"))
        truth = np.argsort(-(Q @ X.T), axis=1, kind="stable")[:, :10]
        shard_sets = {}
        for kind in ("ours", "faiss"):
            tmpl = scale.train_template(X, kind, nlist=args.nlist, m=16,
                                        nbits=8 if len(X) >= 1024 else 6)
            shards = scale.build_shards(client, ref, tmpl)
            _, I, _ = scale.sharded_search(client, shards, Q, 10, nprobe=args.nprobe)  # noqa: E741
            single = scale.Shard(tmpl, list(scale.list_parts(ref).values()))
            _, Is, _ = single.search(Q, 10, args.nprobe)
            print(f"recall@10 sharded={scale.recall_at_k(I, truth):.4f} "
                  f"single={scale.recall_at_k(Is, truth):.4f} ({kind}, nlist={args.nlist}, "
                  f"nprobe={args.nprobe}, {len(shards.futures)} shards)")
            shard_sets[kind] = shards

        killed: list = []

        def kill_after_first(done: int, total: int) -> None:
            if not killed and 1 <= done < total:
                killed.append(scale.kill_a_busy_worker(client))

        hit = scale.embed_corpus(client, in_dir, scale.join(work, "killed"), device=device,
                                 on_result=kill_after_first)
        ids_k, x_k = scale.read_embeddings(scale.join(work, "killed"))
        same = bool(killed and killed[0] and not hit.failed and np.array_equal(ids_k, ids)
                    and np.array_equal(x_k, X))
        print(f"worker killed: identical={same} (killed {killed[0] if killed else None}, "
              f"{len(hit.done)} partitions done, failed {hit.failed or 'none'})")

        shards = shard_sets["ours"]
        before = scale.sharded_search(client, shards, Q, 10, nprobe=args.nprobe)
        victim = shards.holders(client)[0]
        scale.kill_worker(client, victim)
        after = scale.sharded_search(client, shards, Q, 10, nprobe=args.nprobe)
        rebuilt_on = scale.shard_infos(client, shards)[0]["built_by"]
        same = bool(np.array_equal(before[1], after[1]) and np.array_equal(before[0], after[0]))
        print(f"shard worker killed: identical={same} (killed {victim}, shard rebuilt from "
              f"storage on {rebuilt_on})")
    finally:
        scale.close_client(client)
        fs, path = scale._fs(work)
        fs.rm(path, recursive=True)


if __name__ == "__main__":
    main()
