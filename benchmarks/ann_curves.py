"""Recall@10 against queries per second, ann-benchmarks style: ours, faiss, hnswlib and ScaNN.

Every index of chapters 08-11 (Flat, IVF, PQ, IVF-PQ, HNSW, anisotropic PQ) next to faiss's
same index types, hnswlib and Google's ScaNN (asymmetric hashing alone, and with its tree plus
re-ordering), on GloVe 50-d and MiniLM news vectors, by the protocol of ``embedlab.bench``: one
thread on every side, a warm-up, the median of 3 interleaved repeats, in both modes (single
query: median and p99 latency; batch: throughput) and both BLAS settings (as installed; matched
with ``OPENBLAS_CORETYPE=Haswell``, verified). Each BLAS setting runs in its own process, since
OpenBLAS picks its kernel when it loads.

Prints, per dataset, setting and mode, the goals table (ratios at the same parameters):

* Flat: identical ids to faiss; speed >= 0.5x faiss
* IVF nprobe=16: recall within 0.02 of faiss; >= 0.3x
* PQ, IVF-PQ: recall within 0.03 of faiss; >= 0.2x
* HNSW: recall within 0.02 of hnswlib at the same M, ef_construction, ef; >= 0.5x hnswlib
* anisotropic PQ: recall >= ScaNN AH's - 0.03 at the same bytes; speed reported

and saves the curves to ``build/bench/ann_curves_<data>_<setting>_<mode>.png``.

    python benchmarks/ann_curves.py                      # both settings, about 4-6 minutes
    python benchmarks/ann_curves.py --blas installed --n-glove 20000
"""

from __future__ import annotations

import argparse
import os
import sys

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("GLOG_minloglevel", "2")

K = 10
GOALS = {  # index: (recall tolerance, speed ratio goal, peer)
    "Flat": (0.0, 0.5, "faiss"), "IVF": (0.02, 0.3, "faiss"), "PQ": (0.03, 0.2, "faiss"),
    "IVFPQ": (0.03, 0.2, "faiss"), "HNSW": (0.02, 0.5, "hnswlib"),
    "AnisoPQ": (0.03, None, "ScaNN"),
}


def contenders(ds, nlist: int, m8: int, dpb: int, M: int, efc: int):
    """(library, index label, build function, search-parameter grid, goal parameters)."""
    import faiss

    from embedlab import bench
    from embedlab.index import FlatIndex, HNSWIndex, IVFIndex, IVFPQIndex, PQIndex
    from embedlab.index.anisotropic import AnisotropicPQIndex

    d, xb = ds.dim, ds.xb
    ip = faiss.METRIC_INNER_PRODUCT
    m4 = d // dpb

    def fill(idx, train=True):
        if train:
            idx.train(xb)
        idx.add(xb)
        return idx

    def faiss_hnsw():
        idx = faiss.IndexHNSWFlat(d, M, ip)
        idx.hnsw.efConstruction = efc
        return fill(idx, train=False)

    probes = [{"nprobe": p} for p in (1, 4, 16, 64)]
    efs = [{"ef": e} for e in (10, 32, 64, 128)]
    leaves = [{"leaves": p} for p in (1, 4, 16, 64)]
    return [
        ("embedlab", "Flat", lambda: fill(FlatIndex(d, metric="ip"), False), [{}], {}),
        ("faiss", "Flat", lambda: fill(faiss.IndexFlatIP(d), False), [{}], {}),
        ("embedlab", "IVF", lambda: fill(IVFIndex(d, nlist=nlist, metric="ip")), probes,
         {"nprobe": 16}),
        ("faiss", "IVF", lambda: fill(faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, ip)),
         probes, {"nprobe": 16}),
        ("embedlab", "PQ", lambda: fill(PQIndex(d, m=m8, nbits=8, metric="ip")), [{}], {}),
        ("faiss", "PQ", lambda: fill(faiss.IndexPQ(d, m8, 8, ip)), [{}], {}),
        ("embedlab", "IVFPQ", lambda: fill(IVFPQIndex(d, nlist=nlist, m=m8, nbits=8,
                                                      metric="ip")), probes, {"nprobe": 16}),
        ("faiss", "IVFPQ", lambda: fill(faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, m8, 8,
                                                         ip)), probes, {"nprobe": 16}),
        ("embedlab", "HNSW", lambda: fill(HNSWIndex(d, metric="ip", M=M, ef_construction=efc),
                                          False), efs, {"ef": 64}),
        ("hnswlib", "HNSW", lambda: fill(bench.HnswlibIndex(d, "ip", M=M, ef_construction=efc),
                                         False), efs, {"ef": 64}),
        ("faiss", "HNSW", faiss_hnsw, efs, {"ef": 64}),
        ("embedlab", "AnisoPQ", lambda: fill(AnisotropicPQIndex(d, m=m4, nbits=4, T=0.2,
                                                                metric="ip")), [{}], {}),
        ("ScaNN", "AnisoPQ", lambda: fill(bench.ScannIndex(d, dims_per_block=dpb), False),
         [{}], {}),
        ("ScaNN", "tree+AH+reorder", lambda: fill(bench.ScannIndex(
            d, dims_per_block=dpb, num_leaves=nlist, reorder=100), False), leaves, {}),
    ]


def run_setting(args) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from embedlab import bench

    bench.one_thread()
    bench.require_blas(args.blas)  # stops here if "matched" is asked for and not in force
    sets = [bench.load_dataset("glove", n_base=args.n_glove, n_query=1000, gt_k=K)]
    if args.n_news:
        sets.append(bench.load_dataset("minilm-news", n_base=args.n_news, n_query=1000,
                                       gt_k=K))
    missed = []
    for ds in sets:
        nlist = max(16, int(4 * np.sqrt(len(ds.xb))) // 16 * 16)
        m8 = 10 if ds.dim == 50 else 48
        dpb = 2 if ds.dim == 50 else 8
        built = []
        for lib, label, build, grid, goal in tqdm(contenders(ds, nlist, m8, dpb, args.M,
                                                             args.efc),
                                                  desc=f"build {ds.name}", file=sys.stdout):
            import time

            t0 = time.perf_counter()
            idx = build()
            built.append((lib, label, idx, grid, goal, time.perf_counter() - t0))
        for mode in args.modes:
            xq = ds.xq if mode == "batch" else ds.xq[:args.n_single]
            rows = []
            for lib, label, idx, grid, goal, build_s in built:
                for p in grid:
                    _, ids = bench.default_search(idx, ds.xq, K, dict(p))
                    rows.append({"library": lib, "index": label, "params": dict(p),
                                 "mode": mode, "recall": bench.recall_at_k(ids, ds.gt, K),
                                 "ids": ids, "idx": idx, "goal": p == goal or not goal,
                                 "build_s": build_s,
                                 "bytes_per_vector": bench.index_bytes(idx) / len(ds.xb)})
            # interleave the contenders that the goals compare, then the rest
            timing = bench.measure(
                {str(i): (lambda q, r=r: bench.default_search(r["idx"], q, K, dict(r["params"])))
                 for i, r in enumerate(rows)}, xq, mode=mode, repeats=args.repeats)
            for i, r in enumerate(rows):
                r.update(timing[str(i)])
            missed += report(ds, mode, rows, args)
    print("\nall goals met" if not missed else "\ngoals missed: " + "; ".join(missed))
    return 0


def report(ds, mode: str, rows: list[dict], args) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from embedlab import bench

    print(f"\n== {ds.name}: {len(ds.xb):,} x {ds.dim} base, {len(ds.xq):,} held-out queries "
          f"(single mode times the first {args.n_single}); recall@{K}")
    print(bench.protocol_line(mode))
    speed = "QPS" if mode == "batch" else "QPS  med ms  p99 ms"
    print(f"{'library':<9}{'index':<17}{'params':<12}{'recall':>7}{speed:>21}{'B/vec':>8}"
          f"{'build s':>8}")
    for r in rows:
        p = ",".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        sp = (f"{r['qps']:>21.0f}" if mode == "batch" else
              f"{r['qps']:>9.0f}{r['median_ms']:>6.3f}{r['p99_ms']:>8.3f}".rjust(21))
        print(f"{r['library']:<9}{r['index']:<17}{p:<12}{r['recall']:>7.3f}{sp}"
              f"{r['bytes_per_vector']:>8.0f}{r['build_s']:>8.1f}")
    setting = bench.blas_setting()
    print(f"\ngoals ({mode} mode, BLAS {setting}; ratios at the same parameters):")
    missed = []
    for label, (tol, goal, peer) in GOALS.items():
        o = next(r for r in rows if r["library"] == "embedlab" and r["index"] == label
                 and r["goal"])
        f = next(r for r in rows if r["library"] == peer and r["index"] == label and r["goal"])
        ratio = o["qps"] / f["qps"]
        if label == "Flat":  # identical but for exact float ties (sums in another order)
            same = float((o["ids"] == f["ids"]).mean())
            rec_ok = same >= 0.999 and o["recall"] == f["recall"] == 1.0
            rec_txt = f"recall 1.000 both, {same:.2%} of ids identical to faiss (rest: ties)"
        elif label == "AnisoPQ":
            rec_ok = o["recall"] >= f["recall"] - tol
            rec_txt = f"recall {o['recall']:.3f} vs ScaNN AH {f['recall']:.3f} (>= -{tol})"
        else:
            rec_ok = abs(o["recall"] - f["recall"]) <= tol + 1e-12
            rec_txt = (f"recall {o['recall']:.3f} vs {peer} {f['recall']:.3f} "
                       f"(gap {o['recall'] - f['recall']:+.3f}, goal within {tol})")
        spd_ok = goal is None or ratio >= goal
        spd_txt = (f"speed {ratio:.2f}x {peer}" + (f" (goal >= {goal}x)" if goal else
                                                   " (reported)"))
        ok = rec_ok and spd_ok
        print(f"  [{'met' if ok else 'MISSED'}] {label:<8} {rec_txt}; {spd_txt}")
        if not ok:
            missed.append(f"{ds.name} {label} {mode} {setting}: "
                          + ("recall" if not rec_ok else f"speed {ratio:.2f}x < {goal}x"))
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    bench.plot_recall_qps([r for r in rows if not (r["index"] == "Flat"
                                                  and r["library"] != "embedlab")], k=K, ax=ax,
                          title=f"{ds.name}: recall@{K} vs speed ({mode} mode, BLAS {setting})")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"ann_curves_{ds.name}_{setting}_{mode}.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"curves saved to {path}")
    return missed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blas", choices=("installed", "matched", "both"), default="both")
    ap.add_argument("--modes", nargs="+", choices=("single", "batch"),
                    default=["single", "batch"])
    ap.add_argument("--n-glove", type=int, default=30_000)
    ap.add_argument("--n-news", type=int, default=8_000, help="0 skips the MiniLM news set")
    ap.add_argument("--n-single", type=int, default=200, help="queries timed one at a time")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--efc", type=int, default=100, help="ef_construction")
    ap.add_argument("--out", default="build/bench")
    args = ap.parse_args(argv)
    if args.repeats < 3:
        ap.error("--repeats must be >= 3 (the protocol's median of interleaved repeats)")
    if args.blas == "both":
        from embedlab.bench import run_in_settings

        rest = [a for a in (argv if argv is not None else sys.argv[1:])]
        return run_in_settings(__file__, rest, ["installed", "matched"])
    return run_setting(args)


if __name__ == "__main__":
    raise SystemExit(main())
