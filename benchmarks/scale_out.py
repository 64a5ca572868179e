"""Chapter 19's scale-out job on a Dask LocalCluster: MiniLM embedding of the news sentences
with one worker and with two, sharded IVF-PQ recall against the single index, and a worker
killed in the middle of the embedding job.

Prints::

    workers=1 docs/s=<x> cores_used=<c> docs/cpu-s=<r>
    workers=2 docs/s=<y> cores_used=<c> docs/cpu-s=<r>
    speedup 2 vs 1 workers=<y/x> (goal 1.3)
    recall@10 sharded=<a> single=<b>            (ours; a faiss line follows)
    worker killed: identical=<True|False>

One cluster of two single-threaded workers serves both rates: the one-worker runs are restricted
to the first worker, the other idles. Runs alternate (1, 2, 1, 2, ...) and each rate is the
median of ``--repeats`` runs, so a burst of load elsewhere on the machine hits both. docs/s is
wall-clock throughput; cores_used is the tasks' CPU time over the wall time, which shows how many
cores the job really got on a shared machine; docs/cpu-s is the per-core rate.

    python benchmarks/scale_out.py                      # 240 sentences, 3 repeats
    python benchmarks/scale_out.py --sentences 4000 --partition-size 200
    EMBEDLAB_DASK_SCHEDULER=tcp://HOST:8786 python benchmarks/scale_out.py   # a real cluster
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

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
    work = Path(tempfile.mkdtemp(prefix="embedlab-scale-"))
    client = scale.start_client(2)
    try:
        addrs = scale.workers(client)
        if len(addrs) < 2:
            raise SystemExit(f"need 2 workers, the cluster has {len(addrs)}")
        scale.load_model_on_workers(client, device)
        texts = scale.news_sentence_texts(args.sentences + args.queries)
        in_dir, q_dir = work / "in", work / "q"
        scale.write_text_partitions(texts[:args.sentences], in_dir, args.partition_size)
        scale.write_text_partitions(texts[args.sentences:], q_dir, args.queries)
        # warm-up: every worker embeds once before anything is timed
        scale.embed_corpus(client, q_dir, work / "warm", device=device)

        rates: dict[int, list] = {1: [], 2: []}
        for rep in range(args.repeats):
            for n_w in (1, 2):
                out = work / f"out-{n_w}-{rep}"
                r = scale.embed_corpus(client, in_dir, out, device=device,
                                       restrict=addrs[:n_w])
                rates[n_w].append((r.docs_per_s, r.cores_used, r.docs_per_cpu_s))
                if rep < args.repeats - 1 or n_w == 1:
                    shutil.rmtree(out)
        med = {n: np.median(np.array(v), axis=0) for n, v in rates.items()}
        for n_w in (1, 2):
            print(f"workers={n_w} docs/s={med[n_w][0]:.1f} cores_used={med[n_w][1]:.2f} "
                  f"docs/cpu-s={med[n_w][2]:.1f}")
        print(f"speedup 2 vs 1 workers={med[2][0] / med[1][0]:.2f} (goal 1.3; "
              f"{os.cpu_count()} cores on this machine, shared)")

        ref = work / f"out-2-{args.repeats - 1}"
        ids, X = scale.read_embeddings(ref)
        scale.embed_corpus(client, q_dir, work / "qe", device=device)
        _, Q = scale.read_embeddings(work / "qe")
        truth = np.argsort(-(Q @ X.T), axis=1, kind="stable")[:, :10]
        for kind in ("ours", "faiss"):
            tmpl = scale.train_template(X, kind, nlist=args.nlist, m=16,
                                        nbits=8 if len(X) >= 1024 else 6)
            shards = scale.build_shards(client, ref, tmpl)
            _, I, _ = scale.sharded_search(client, shards, Q, 10, nprobe=args.nprobe)  # noqa: E741
            single = scale.Shard(tmpl, [str(p) for p in scale.list_parts(ref).values()])
            _, Is, _ = single.search(Q, 10, args.nprobe)
            print(f"recall@10 sharded={scale.recall_at_k(I, truth):.4f} "
                  f"single={scale.recall_at_k(Is, truth):.4f} ({kind}, nlist={args.nlist}, "
                  f"nprobe={args.nprobe}, {len(shards.futures)} shards)")
            del shards

        killed: list = []

        def kill_after_first(done: int, total: int) -> None:
            if not killed and 1 <= done < total:
                killed.append(scale.kill_a_busy_worker(client))

        hit = scale.embed_corpus(client, in_dir, work / "killed", device=device,
                                 on_result=kill_after_first)
        ids_k, x_k = scale.read_embeddings(work / "killed")
        same = bool(killed and killed[0] and not hit.failed and np.array_equal(ids_k, ids)
                    and np.array_equal(x_k, X))
        print(f"worker killed: identical={same} (killed {killed[0] if killed else None}, "
              f"{len(hit.done)} partitions done, failed {hit.failed or 'none'})")
    finally:
        scale.close_client(client)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
