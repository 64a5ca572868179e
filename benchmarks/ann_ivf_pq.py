"""Chapters 08 and 09 against faiss: Flat, IVF, PQ and IVF-PQ on the same data, one thread each.

Prints one row per index and search setting: recall@10 of ours and faiss's (and the difference),
queries per second of both (and the ratio), bytes per vector, build time; then whether each bar
of the chapters' issue is met:

* Flat: recall@10 = 1 and ids identical to faiss's; speed >= 1.0x faiss
* IVF: recall@10 within 0.02 of IndexIVFFlat; speed >= 1.0x
* PQ, IVF-PQ: recall@10 within 0.03 of IndexPQ / IndexIVFPQ; speed >= 1.0x; code bytes equal

Speed is queries per second of process CPU time (median of 15 rounds over the held-out queries,
batch mode), each index swept on its own; ``benchmarks/ann_curves.py`` times ours and faiss in the
same interleaved rounds and prints every ratio with its spread, in both modes.

    python benchmarks/ann_ivf_pq.py            # GloVe 50k, about a minute
    python benchmarks/ann_ivf_pq.py --full     # GloVe 399k and MiniLM news 85k (much longer)
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from embedlab import bench  # noqa: E402
from embedlab.index import FlatIndex, IVFIndex, IVFPQIndex, PQIndex  # noqa: E402

K = 10
BARS = {"Flat": (0.0, 1.0), "IVF": (0.02, 1.0), "PQ": (0.03, 1.0), "IVFPQ": (0.03, 1.0)}


def faiss_metric(metric: str) -> int:
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


def builders(kind: str, d: int, metric: str, xt: np.ndarray, xb: np.ndarray, p: dict):
    """(ours, faiss's) zero-argument builders for one index kind and its parameters."""
    fm = faiss_metric(metric)

    def fill(idx, train=True):
        if train:
            idx.train(xt)
        idx.add(xb)
        return idx

    def quant():
        return faiss.IndexFlatL2(d) if metric == "l2" else faiss.IndexFlatIP(d)

    if kind == "Flat":
        return (lambda: fill(FlatIndex(d, metric=metric), train=False),
                lambda: fill(faiss.IndexFlat(d, fm), train=False))
    if kind == "IVF":
        return (lambda: fill(IVFIndex(d, nlist=p["nlist"], metric=metric)),
                lambda: fill(faiss.IndexIVFFlat(quant(), d, p["nlist"], fm)))
    if kind == "PQ":
        return (lambda: fill(PQIndex(d, m=p["m"], nbits=p["nbits"], metric=metric)),
                lambda: fill(faiss.IndexPQ(d, p["m"], p["nbits"], fm)))
    return (lambda: fill(IVFPQIndex(d, nlist=p["nlist"], m=p["m"], nbits=p["nbits"],
                                    metric=metric)),
            lambda: fill(faiss.IndexIVFPQ(quant(), d, p["nlist"], p["m"], p["nbits"], fm)))


def code_bytes(index) -> float:
    """Bytes of code (or vector) per stored vector, the figure faiss calls code_size."""
    if isinstance(index, (PQIndex, IVFPQIndex)):
        return index.codes.nbytes / index.ntotal
    if isinstance(index, (FlatIndex, IVFIndex)):
        return index.dim * 4
    return float(getattr(index, "code_size", 0))


def run(ds: bench.ANNDataset, cases: list[tuple[str, dict, list[dict]]], n_train: int) -> list:
    metric = "ip"  # the data are unit vectors (cosine): faiss's IP indexes are the peer
    xt = ds.xb[:n_train]
    out = []
    for kind, params, grid in cases:
        ours_b, faiss_b = builders(kind, ds.dim, metric, xt, ds.xb, params)
        keep = {}

        def keep_ours(b=ours_b, keep=keep):
            keep["ours"] = b()
            return keep["ours"]

        def keep_faiss(b=faiss_b, keep=keep):
            keep["faiss"] = b()
            return keep["faiss"]

        ours = bench.sweep(keep_ours, ds, grid, k=K, label=kind)
        theirs = bench.sweep(keep_faiss, ds, grid, k=K, library="faiss", label=kind)
        same_ids = None
        if kind == "Flat":
            same_ids = bool((keep["ours"].search(ds.xq, K)[1]
                             == keep["faiss"].search(ds.xq, K)[1]).all())
        for a, b in zip(ours, theirs, strict=True):
            out.append({"data": ds.name, "kind": kind, "params": {**params, **a["params"]},
                        "ours": a, "faiss": b, "same_ids": same_ids,
                        "bytes": (code_bytes(keep["ours"]), code_bytes(keep["faiss"]))})
    return out


def verdicts(row) -> tuple[bool, bool, bool]:
    tol, qps_bar = BARS[row["kind"]]
    dr = row["ours"]["recall"] - row["faiss"]["recall"]
    recall_ok = abs(dr) <= tol + 1e-12
    if row["kind"] == "Flat":
        recall_ok = row["ours"]["recall"] == 1.0 and bool(row["same_ids"])
    speed_ok = row["ours"]["cpu_qps"] >= qps_bar * row["faiss"]["cpu_qps"]
    bytes_ok = row["bytes"][0] == row["bytes"][1]
    return recall_ok, speed_ok, bytes_ok


def print_table(rows) -> bool:
    head = (f"{'data':<12}{'index':<7}{'params':<36}{'R@10 ours':>10}{'faiss':>7}{'diff':>7}"
            f"{'QPS ours':>10}{'faiss':>9}{'ratio':>7}{'bar':>5}{'B/vec':>7}{'faiss':>6}"
            f"{'build s':>9}{'faiss':>7}  verdict")
    print(f"ratio: our QPS / faiss's (process CPU time), batch mode, BLAS {bench.blas_setting()}")
    print(head)
    print("-" * len(head))
    all_ok = True
    for r in rows:
        o, f = r["ours"], r["faiss"]
        p = ",".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        rec_ok, speed_ok, bytes_ok = verdicts(r)
        ok = rec_ok and speed_ok and bytes_ok
        all_ok &= ok
        bad = [n for n, good in (("recall", rec_ok), ("speed", speed_ok), ("bytes", bytes_ok))
               if not good]
        print(f"{r['data']:<12}{r['kind']:<7}{p:<36}{o['recall']:>10.3f}{f['recall']:>7.3f}"
              f"{o['recall'] - f['recall']:>+7.3f}{o['cpu_qps']:>10.0f}{f['cpu_qps']:>9.0f}"
              f"{o['cpu_qps'] / f['cpu_qps']:>7.2f}{BARS[r['kind']][1]:>5.1f}{r['bytes'][0]:>7.0f}"
              f"{r['bytes'][1]:>6.0f}{o['build_s']:>9.2f}{f['build_s']:>7.2f}  "
              f"{'ok' if ok else 'FAIL: ' + ', '.join(bad)}")
    return all_ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="all of GloVe, plus MiniLM news")
    ap.add_argument("--n-base", type=int, default=50_000, help="GloVe base size (default run)")
    args = ap.parse_args(argv)
    bench.one_thread()
    print(bench.protocol_line("batch"))
    print("(benchmarks/ann_curves.py adds single-query mode and the matched BLAS setting)")
    n_base = 399_000 if args.full else args.n_base
    sets = [bench.load_dataset("glove", n_base=n_base, n_query=1000)]
    if args.full:
        sets.append(bench.load_dataset("minilm-news", n_base=85_000, n_query=1000))
    rows = []
    for ds in sets:
        nlist = 1024 if ds.xb.shape[0] > 200_000 else 256
        m = 10 if ds.dim == 50 else 48
        probes = [{"nprobe": p} for p in (1, 8, 32)]
        cases = [("Flat", {}, [{}]),
                 ("IVF", {"nlist": nlist}, probes),
                 ("PQ", {"m": m, "nbits": 8}, [{}]),
                 ("IVFPQ", {"nlist": nlist, "m": m, "nbits": 8}, probes)]
        print(f"# {ds!r}: one thread each; training on the first {min(50_000, len(ds.xb))} "
              "base vectors", flush=True)
        rows += run(ds, cases, n_train=50_000)
    print()
    ok = print_table(rows)
    print("\nall bars met" if ok else "\nsome bars NOT met (see FAIL rows)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
