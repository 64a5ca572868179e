"""Every index of chapters 08-11 on the same data, next to faiss, hnswlib and ScaNN.

Chapter 11 puts all the indexes side by side: ours (flat, IVF, PQ, anisotropic PQ, IVF-PQ,
HNSW), faiss's equivalents, hnswlib, and Google's ScaNN (asymmetric hashing alone, and with its
k-means tree and exact re-ordering). ``every_index`` returns one ``Plan`` per index: how to build
it on a dataset, and which search settings to sweep. ``run`` builds and measures them by the
protocol of ``embedlab.bench`` (recall@k, bytes per vector, speed in process CPU time).

Then three readings of the rows, each the fastest setting that reaches a recall level:

* ``best_at``: the fastest row reaching a recall;
* ``ivf_vs_hnsw``: IVF against HNSW on one dataset: memory, best recall, speed at a level;
* ``scann_best``: ScaNN's fastest against everyone else's at a level (is ScaNN "the best"?).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from embedlab import bench


@dataclass
class Plan:
    """One index to build and the settings of its search knob to sweep."""

    library: str
    index: str
    build: Callable[[], Any]
    params: list[dict[str, Any]] = field(default_factory=lambda: [{}])


class Builds:
    """Indexes of every library built on the same base ``xb``: ``fill`` trains (unless told not
    to) and adds ``xb``; ``quantiser`` gives faiss's IVF indexes an inner-product coarse quantiser
    and keeps it alive (faiss's index points at it without owning it) as long as this object."""

    def __init__(self, xb: Any) -> None:
        self.xb, self.keep = xb, []

    def fill(self, idx: Any, train: bool = True) -> Any:
        if train:
            idx.train(self.xb)
        idx.add(self.xb)
        return idx

    def quantiser(self) -> Any:
        import faiss

        self.keep.append(faiss.IndexFlatIP(self.xb.shape[1]))
        return self.keep[-1]


def every_index(ds: bench.ANNDataset, *, m: int, nbits: int, nlist: int, M: int,
                ef_construction: int, nprobes: Sequence[int], efs: Sequence[int],
                aniso: Any = None, T: float = 0.2, aniso_iter: int = 5,
                reorder: int = 100) -> list[Plan]:
    """The plans of the comparison on ``ds`` (inner product on unit rows).

    PQ codes have ``m`` sub-quantisers of ``nbits``; ScaNN's asymmetric hashing gets the same
    bytes (one 16-centre code per block of ``dim / m`` coordinates, when ``nbits = 4``).
    ``aniso``: an already trained anisotropic index to reuse instead of training another.
    """
    import faiss

    from embedlab.index import (
        AnisotropicPQIndex,
        FlatIndex,
        HNSWIndex,
        IVFIndex,
        IVFPQIndex,
        PQIndex,
    )

    d = ds.dim
    ip = faiss.METRIC_INNER_PRODUCT
    builds = Builds(ds.xb)
    fill, quantiser = builds.fill, builds.quantiser

    def faiss_hnsw() -> Any:
        idx = faiss.IndexHNSWFlat(d, M, ip)
        idx.hnsw.efConstruction = ef_construction
        return fill(idx, False)

    probes = [{"nprobe": p} for p in nprobes if p <= nlist]
    beams = [{"ef": e} for e in efs]
    return [
        Plan("embedlab", "Flat", lambda: fill(FlatIndex(d, metric="ip"), False)),
        Plan("embedlab", "IVF", lambda: fill(IVFIndex(d, nlist=nlist, metric="ip")), probes),
        Plan("embedlab", "PQ", lambda: fill(PQIndex(d, m=m, nbits=nbits, metric="ip"))),
        Plan("embedlab", "AnisotropicPQ", lambda: aniso if aniso is not None else fill(
            AnisotropicPQIndex(d, m=m, nbits=nbits, T=T, aniso_iter=aniso_iter))),
        Plan("embedlab", "IVFPQ", lambda: fill(IVFPQIndex(d, nlist=nlist, m=m, nbits=nbits,
                                                          metric="ip")), probes),
        Plan("embedlab", "HNSW", lambda: fill(HNSWIndex(d, metric="ip", M=M,
                                                        ef_construction=ef_construction),
                                              False), beams),
        Plan("faiss", "Flat", lambda: fill(faiss.IndexFlatIP(d), False)),
        Plan("faiss", "IVF", lambda: fill(faiss.IndexIVFFlat(quantiser(), d, nlist, ip)),
             probes),
        Plan("faiss", "PQ", lambda: fill(faiss.IndexPQ(d, m, nbits, ip))),
        Plan("faiss", "IVFPQ", lambda: fill(faiss.IndexIVFPQ(quantiser(), d, nlist, m, nbits,
                                                             ip)), probes),
        Plan("faiss", "HNSW", faiss_hnsw, beams),
        Plan("hnswlib", "HNSW", lambda: fill(bench.HnswlibIndex(
            d, "ip", M=M, ef_construction=ef_construction), False), beams),
        Plan("ScaNN", "AH", lambda: fill(bench.ScannIndex(d, dims_per_block=d // m,
                                                          threshold=T), False)),
        Plan("ScaNN", "tree+AH+reorder", lambda: fill(bench.ScannIndex(
            d, dims_per_block=d // m, threshold=T, num_leaves=nlist, reorder=reorder), False),
             [{"leaves": p["nprobe"]} for p in probes]),
    ]


def run(plans: Sequence[Plan], ds: bench.ANNDataset, k: int = 10, rounds: int = 3,
        mode: str = "batch", n_timing: int | None = None,
        progress: bool = True) -> list[dict[str, Any]]:
    """Build and measure every plan (``bench.sweep``; recall on every query, speed on the first
    ``n_timing``); speed in process CPU time: each row's ``qps`` is queries per CPU second (every
    thread of the process counted), ``wall_qps`` the wall-clock figure."""
    from tqdm.auto import tqdm

    rows: list[dict[str, Any]] = []
    for plan in tqdm(plans, desc="indexes", disable=not progress or None):
        for r in bench.sweep(plan.build, ds, plan.params, k=k, library=plan.library,
                             label=plan.index, repeats=rounds, mode=mode, n_timing=n_timing):
            r["wall_qps"], r["qps"] = r["qps"], r["cpu_qps"]
            rows.append(r)
    return rows


def pareto(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows no other row beats on both recall and speed."""
    return [r for r in rows if not any(
        (o["recall"] >= r["recall"] and o["qps"] > r["qps"])
        or (o["recall"] > r["recall"] and o["qps"] >= r["qps"]) for o in rows)]


def best_at(rows: Sequence[dict[str, Any]], level: float) -> dict[str, Any] | None:
    """The fastest row whose recall reaches ``level``, or None."""
    ok = [r for r in rows if r["recall"] >= level]
    return max(ok, key=lambda r: r["qps"]) if ok else None


def _brief(r: dict[str, Any] | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"library": r["library"], "index": r["index"], "params": dict(r["params"]),
            "recall": round(float(r["recall"]), 4), "qps": round(float(r["qps"]), 1)}


def _side(rows: Sequence[dict[str, Any]], level: float) -> dict[str, Any]:
    at = best_at(rows, level)
    spread = None
    if at is not None and "qps_spread" in at:
        spread = [round(float(v), 1) for v in at["qps_spread"]]
    return {"bytes_per_vector": round(float(rows[0]["bytes_per_vector"]), 2),
            "best_recall": round(max(float(r["recall"]) for r in rows), 4),
            "qps_at_level": None if at is None else round(float(at["qps"]), 1),
            "params_at_level": None if at is None else dict(at["params"]),
            "qps_spread": spread}


def ivf_vs_hnsw(rows: Sequence[dict[str, Any]], ds: bench.ANNDataset, level: float,
                k: int = 10) -> dict[str, Any]:
    """Our IVF and our HNSW on one dataset: bytes per vector, best recall, and the speed of the
    fastest setting reaching ``level`` (None when none does)."""
    ours = [r for r in rows if r["library"] == "embedlab"]
    ivf = [r for r in ours if r["index"] == "IVF"]
    hnsw = [r for r in ours if r["index"] == "HNSW"]
    if not ivf or not hnsw:
        raise ValueError("rows must hold our IVF and HNSW")
    return {"dataset": ds.name, "n": int(ds.xb.shape[0]), "dim": ds.dim, "k": k,
            "mode": ivf[0].get("mode", "batch"), "threads": 1, "blas": bench.blas_setting(),
            "recall_level": level, "raw_bytes_per_vector": float(4 * ds.dim),
            "ivf": _side(ivf, level), "hnsw": _side(hnsw, level)}


def scann_best(rows: Sequence[dict[str, Any]], ds: bench.ANNDataset,
               level: float) -> dict[str, Any]:
    """At recall >= ``level``: the fastest row of all, ScaNN's fastest, and the fastest of every
    other library."""
    scann = [r for r in rows if r["library"] == "ScaNN"]
    other = [r for r in rows if r["library"] != "ScaNN"]
    return {"dataset": ds.name, "n": int(ds.xb.shape[0]), "mode": rows[0].get("mode", "batch"),
            "threads": 1, "level": level, "best": _brief(best_at(rows, level)),
            "scann": _brief(best_at(scann, level)), "best_other": _brief(best_at(other, level))}
