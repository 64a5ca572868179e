"""HNSW from scratch next to hnswlib and faiss ``IndexHNSWFlat``, one thread each, same data and
parameters; then anisotropic (score-aware) PQ against plain PQ at equal code size.

Prints the issue's bars:

* recall@10 of our HNSW within 0.02 of hnswlib's and of faiss's at the same M, ef_construction
  and ef, on both datasets;
* search speed >= 1.0x raw hnswlib's at every ef (median CPU-time ratio over 15 interleaved
  rounds of 1,000 queries, batch mode; hnswlib called as its users call it, ``ef`` set once),
  printed with its spread;
* build time <= 10x faiss's;
* anisotropic PQ beats plain PQ on inner-product recall@10 at the same code size.

Usage: ``python benchmarks/ann_hnsw.py [--n-glove 30000] [--n-news 15000] [--part all]``.
The default run takes a few minutes on one core (numba compiles on the first run).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from embedlab import bench  # noqa: E402
from embedlab.bench import load_dataset, one_thread, recall_at_k  # noqa: E402
from embedlab.index import HNSWIndex  # noqa: E402

K = 10
EFS = (10, 16, 32, 64, 128, 256)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _qps_at(recall: float, curve: list[tuple[float, float]]) -> float:
    """QPS of a (recall, qps) curve at ``recall``, interpolated in log QPS; nan outside it."""
    curve = sorted(curve)
    rs = np.array([r for r, _ in curve])
    qs = np.log([q for _, q in curve])
    if recall < rs[0] - 1e-9 or recall > rs[-1] + 1e-9:
        return float("nan")
    return float(np.exp(np.interp(recall, rs, qs)))


def hnsw_part(name: str, n_base: int, M: int, efc: int) -> list[bool]:
    import faiss
    import hnswlib

    ds = load_dataset(name, n_base, n_query=1_000, gt_k=K)
    xb, xq, d = ds.xb, ds.xq, ds.dim
    print(f"\n== {name}: {xb.shape[0]:,} x {d} base, {xq.shape[0]:,} held-out queries; "
          f"M={M}, ef_construction={efc}, inner product on unit rows")

    HNSWIndex(d, M=M, ef_construction=efc).add(xb[:200])  # compile before timing
    ours = HNSWIndex(d, metric="ip", M=M, ef_construction=efc, seed=0)
    _, t_ours = _timed(lambda: ours.add(xb))

    peer = hnswlib.Index(space="ip", dim=d)
    peer.init_index(max_elements=len(xb), ef_construction=efc, M=M, random_seed=0)
    peer.set_num_threads(1)
    _, t_hnswlib = _timed(lambda: peer.add_items(xb))

    fx = faiss.IndexHNSWFlat(d, M, faiss.METRIC_INNER_PRODUCT)
    fx.hnsw.efConstruction = efc
    _, t_faiss = _timed(lambda: fx.add(xb))

    rows, spreads = [], {}
    for ef in EFS:
        I_o = ours.search(xq, K, ef=ef)[1]
        peer.set_ef(ef)
        I_h = peer.knn_query(xq, k=K)[0]
        fx.hnsw.efSearch = ef
        I_f = fx.search(xq, K)[1]
        t = bench.measure({"ours": lambda q, ef=ef: ours.search(q, K, ef=ef),
                           "hnswlib": lambda q: peer.knn_query(q, k=K),
                           "faiss": lambda q: fx.search(q, K)}, xq, mode="batch", rounds=15)
        spreads[ef] = bench.speed_ratio(t["ours"], t["hnswlib"])
        rows.append((ef, recall_at_k(I_o, ds.gt, K), recall_at_k(I_h.astype(np.int64), ds.gt, K),
                     recall_at_k(I_f, ds.gt, K), t["ours"]["cpu_qps"], t["hnswlib"]["cpu_qps"],
                     t["faiss"]["cpu_qps"]))

    print(f"{'ef':>5} {'recall ours':>12} {'hnswlib':>8} {'faiss':>7} {'d(hnswlib)':>11} "
          f"{'d(faiss)':>9} {'QPS ours':>9} {'hnswlib':>9} {'faiss':>9}")
    for ef, ro, rh, rf, qo, qh, qf in rows:
        print(f"{ef:>5} {ro:>12.3f} {rh:>8.3f} {rf:>7.3f} {ro - rh:>+11.3f} {ro - rf:>+9.3f} "
              f"{qo:>9.0f} {qh:>9.0f} {qf:>9.0f}")
    worst_h = max(abs(r[1] - r[2]) for r in rows)
    worst_f = max(abs(r[1] - r[3]) for r in rows)
    faiss_curve = [(r[3], r[6]) for r in rows]
    ratios = [(r[1], r[4] / _qps_at(r[1], faiss_curve)) for r in rows]
    ratios = [(rec, q) for rec, q in ratios if np.isfinite(q) and rec >= 0.8]
    worst = min(r["median"] for r in spreads.values())
    for ef, r in spreads.items():
        print(f"  ef={ef}: ours against raw hnswlib, batch, CPU time: {bench.format_ratio(r)}")
    build_ratio = t_ours / t_faiss
    print(f"build: ours {t_ours:.1f} s, hnswlib {t_hnswlib:.1f} s, faiss {t_faiss:.1f} s "
          f"(ours / faiss = {build_ratio:.2f}x); memory ours {ours.nbytes / len(xb):.0f} B/vector")
    print(f"QPS ours / faiss at equal recall (batch mode, BLAS {bench.blas_setting()}): "
          + ", ".join(f"{q:.2f}x @ {rec:.3f}" for rec, q in ratios))
    bars = [
        (f"recall@10 within 0.02 of hnswlib at every ef (worst {worst_h:.3f})", worst_h <= 0.02),
        (f"recall@10 within 0.02 of faiss at every ef (worst {worst_f:.3f})", worst_f <= 0.02),
        (f"speed >= 1.0x raw hnswlib at every ef (worst median {worst:.2f}x)", worst >= 1.0),
        (f"build time <= 10x faiss ({build_ratio:.2f}x)", build_ratio <= 10),
    ]
    for text, ok in bars:
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {text}")
    return [ok for _, ok in bars]


def anisotropic_part(n_base: int, m: int, nbits: int) -> list[bool]:
    from embedlab.index import PQIndex
    from embedlab.index.anisotropic import AnisotropicPQIndex

    oks = []
    for name, n, mm in (("glove", n_base, m), ("minilm-news", min(n_base, 15_000), 48)):
        ds = load_dataset(name, n, n_query=1_000, gt_k=K)
        d = ds.dim
        plain = PQIndex(d, m=mm, nbits=nbits, metric="ip", seed=0)
        plain.train(ds.xb)
        plain.add(ds.xb)
        aniso = AnisotropicPQIndex(d, m=mm, nbits=nbits, T=0.2, metric="ip", seed=0)
        aniso.train(ds.xb)
        aniso.add(ds.xb)
        r_p = recall_at_k(plain.search(ds.xq, K)[1], ds.gt, K)
        r_a = recall_at_k(aniso.search(ds.xq, K)[1], ds.gt, K)
        same = plain.nbytes == aniso.nbytes and aniso.code_size == plain.code_size
        print(f"\n== {name}: PQ m={mm}, nbits={nbits} ({plain.code_size} B/vector) on "
              f"{len(ds.xb):,} x {d}: recall@10 plain {r_p:.3f}, anisotropic (T=0.2) {r_a:.3f}"
              f" ({r_a - r_p:+.3f})")
        ok = r_a > r_p and bool(same)
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}: anisotropic beats plain PQ at equal code "
              f"size")
        oks.append(ok)
    return oks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-glove", type=int, default=30_000)
    ap.add_argument("--n-news", type=int, default=15_000)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--n-pq", type=int, default=30_000)
    ap.add_argument("--part", choices=("all", "hnsw", "anisotropic"), default="all")
    args = ap.parse_args(argv)
    one_thread()
    print(bench.protocol_line("batch", 15, 1_000))
    print("(benchmarks/ann_curves.py adds single-query mode and the matched BLAS setting)")
    oks: list[bool] = []
    if args.part in ("all", "hnsw"):
        oks += hnsw_part("glove", args.n_glove, args.M, args.ef_construction)
        oks += hnsw_part("minilm-news", args.n_news, args.M, args.ef_construction)
    if args.part in ("all", "anisotropic"):
        oks += anisotropic_part(args.n_pq, m=25, nbits=4)
    print(f"\n{sum(oks)} of {len(oks)} bars met")
    return 0 if all(oks) else 1


if __name__ == "__main__":
    sys.exit(main())
