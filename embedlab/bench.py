"""Benchmarks for nearest-neighbour indexes: datasets with exact ground truth, recall, sweeps.

Two real datasets, both compared by cosine similarity (rows are unit length, so inner product,
cosine and L2 rank alike):

* ``"glove"``: GloVe 6B 50d word vectors (400k x 50). Queries are held out: a seeded permutation
  puts ``n_query`` words aside, and the base is drawn from the other words.
* ``"minilm-news"``: all-MiniLM-L6-v2 embeddings (384-d) of the news corpus's sentences (about
  86k distinct sentences of 20 characters or more, in article order). Sentences are embedded in
  chunks of ``CHUNK`` and cached, so a small profile embeds only the first chunk and a large one
  reuses it. Queries are held out the same way.

The ground truth (ids of the exact ``gt_k`` nearest base vectors of each query) is computed once
by flat search and cached under ``embedlab.data.cache_dir() / "ann"``.

``sweep`` measures one index over a list of search parameters: build time, memory, and for
each setting recall@k and queries per second (best of ``repeats`` runs over all queries, one
batch). It works with any object that has ``search(q, k)``: ours and faiss's alike, side by
side on the same data; pin everything to one thread (``one_thread()``) before comparing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedlab.index.base import check_int, normalize_rows

DATASETS = ("glove", "minilm-news")
CHUNK = 4_000  # sentences per cached embedding chunk


@dataclass
class ANNDataset:
    """Base vectors, held-out queries and the exact neighbours of each query."""

    name: str
    xb: np.ndarray  # (n, d) float32, unit rows
    xq: np.ndarray  # (nq, d) float32, unit rows
    gt: np.ndarray  # (nq, gt_k) int64: exact nearest base ids, best first
    metric: str = "cosine"

    @property
    def dim(self) -> int:
        return int(self.xb.shape[1])

    def __repr__(self) -> str:
        return (f"ANNDataset({self.name!r}, base={self.xb.shape}, queries={self.xq.shape}, "
                f"gt_k={self.gt.shape[1]}, metric={self.metric!r})")


# --------------------------------------------------------------------------- data
def news_sentences(min_chars: int = 20) -> list[str]:
    """Distinct sentences of the news corpus's article texts, in article order."""
    from embedlab import data
    from embedlab.text import split_sentences

    seen: set[str] = set()
    out: list[str] = []
    for text in data.load("news")["text"]:
        for s in split_sentences(text, min_chars=min_chars):
            if s not in seen:
                seen.add(s)
                out.append(s)
    return out


def news_embeddings(n: int, show_progress_bar: bool = False) -> np.ndarray:
    """MiniLM embeddings of the first ``n`` news sentences (cached chunk by chunk)."""
    from embedlab.encoders import embed_cached

    sentences = news_sentences()
    n = check_int(n, "n", high=len(sentences))
    chunks = [sentences[a:a + CHUNK] for a in range(0, n, CHUNK)]
    model = None
    if not all(_embedding_cached(c) for c in chunks):  # load the model once, not per chunk
        from embedlab.encoders import load_minilm

        model = load_minilm()
    parts = [embed_cached(c, model=model, show_progress_bar=show_progress_bar) for c in chunks]
    return np.concatenate(parts)[:n]


def _embedding_cached(texts: list[str]) -> bool:
    """Whether ``embed_cached`` already holds these texts (same key as its cache file)."""
    from embedlab.data import cache_dir

    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return (cache_dir() / "derived" / f"minilm-{h.hexdigest()[:16]}-{len(texts)}.npy").exists()


def _raw(name: str, n_total: int) -> np.ndarray:
    if name == "glove":
        from embedlab import data

        vectors, _ = data.load("glove-6b-50d")
        return vectors
    return news_embeddings(n_total)


def exact_neighbours(xb: np.ndarray, xq: np.ndarray, k: int, metric: str = "cosine") -> np.ndarray:
    """Ids of the exact ``k`` best base rows for each query (flat search)."""
    from embedlab.index import FlatIndex

    flat = FlatIndex(xb.shape[1], metric=metric)
    flat.add(xb)
    return flat.search(xq, k)[1]


def load_dataset(name: str, n_base: int, n_query: int = 1_000, gt_k: int = 100,
                 seed: int = 0) -> ANNDataset:
    """``n_base`` base vectors and ``n_query`` held-out queries of dataset ``name``.

    ``name`` is ``"glove"`` or ``"minilm-news"``. The split is a seeded permutation of the first
    ``n_base + n_query`` rows (all 400k words for GloVe); the exact ``gt_k`` neighbours are
    cached on disk.
    """
    from embedlab.data import cache_dir

    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
    n_base, n_query = check_int(n_base, "n_base"), check_int(n_query, "n_query")
    gt_k = check_int(gt_k, "gt_k", high=n_base)
    pool = 400_000 if name == "glove" else n_base + n_query
    if n_base + n_query > pool:
        raise ValueError(f"n_base + n_query must be <= {pool} for {name}")
    raw = _raw(name, pool)
    if n_base + n_query > raw.shape[0]:
        raise ValueError(f"n_base + n_query must be <= {raw.shape[0]} for {name}, "
                         f"got {n_base + n_query}")
    perm = np.random.default_rng(seed).permutation(raw.shape[0])
    q_ids, b_ids = np.sort(perm[:n_query]), np.sort(perm[n_query:n_query + n_base])
    xq = normalize_rows(np.ascontiguousarray(raw[q_ids], dtype=np.float32))
    xb = normalize_rows(np.ascontiguousarray(raw[b_ids], dtype=np.float32))
    digest = hashlib.sha256(xb[:: max(1, n_base // 512)].tobytes() + xq.tobytes()).hexdigest()
    path = cache_dir() / "ann" / f"{name}-{n_base}-{n_query}-{gt_k}-{seed}-{digest[:12]}.npy"
    if path.exists():
        gt = np.load(path)
    else:
        gt = exact_neighbours(xb, xq, gt_k)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, gt)
        tmp.replace(path)
    return ANNDataset(name=name, xb=xb, xq=xq, gt=gt)


# --------------------------------------------------------------------------- measures
def recall_at_k(ids: np.ndarray, gt: np.ndarray, k: int) -> float:
    """Mean over queries of |found top-k  and  true top-k| / k (ids of -1 never count).

    ``ids`` is a search result's id array (nq, >= k); ``gt`` the exact ids (nq, >= k).
    """
    ids, gt = np.asarray(ids), np.asarray(gt)
    k = check_int(k, "k")
    if ids.ndim != 2 or gt.ndim != 2 or ids.shape[0] != gt.shape[0]:
        raise ValueError(f"ids and gt must be 2-D with the same number of rows, "
                         f"got {ids.shape} and {gt.shape}")
    if ids.shape[1] < k or gt.shape[1] < k:
        raise ValueError(f"k={k} needs at least k columns in ids {ids.shape} and gt {gt.shape}")
    found = ids[:, :k]
    hits = [np.intersect1d(f[f >= 0], t).size for f, t in zip(found, gt[:, :k], strict=True)]
    return float(np.mean(hits) / k)


def one_thread() -> None:
    """Pin faiss to one thread (BLAS and numba follow the *_NUM_THREADS variables)."""
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:  # pragma: no cover - faiss is a dependency
        pass


def index_bytes(index: Any) -> int:
    """Memory an index holds: ``nbytes`` for ours, the serialised size for faiss's."""
    if hasattr(index, "nbytes"):
        return int(index.nbytes)
    import faiss

    return int(faiss.serialize_index(index).nbytes)


def default_search(index: Any, q: np.ndarray, k: int, params: dict[str, Any]):
    """Search ours with keyword arguments, faiss's by setting attributes (e.g. ``nprobe``)."""
    if type(index).__module__.startswith("embedlab"):
        return index.search(q, k, **params)
    for key, value in params.items():
        setattr(index, key, value)
    return index.search(q, k)


def sweep(build: Callable[[], Any], ds: ANNDataset, params: Sequence[dict[str, Any]] = ({},),
          k: int = 10, library: str = "embedlab", label: str = "", repeats: int = 2,
          search: Callable[..., Any] = default_search) -> list[dict[str, Any]]:
    """Build one index, then measure recall@k and QPS for each search setting in ``params``.

    ``build()`` returns a trained, filled index; its wall time is the build time. Returns one
    row per setting: ``library, index, params, build_s, bytes_per_vector, recall, qps``.
    """
    k = check_int(k, "k", high=ds.gt.shape[1])
    repeats = check_int(repeats, "repeats")
    t0 = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - t0
    n = ds.xb.shape[0]
    rows = []
    for p in params:
        search(index, ds.xq[:4], k, dict(p))  # warm up (numba compilation, caches)
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            _, ids = search(index, ds.xq, k, dict(p))
            best = min(best, time.perf_counter() - t0)
        rows.append({"library": library, "index": label or type(index).__name__,
                     "params": dict(p), "build_s": build_s,
                     "bytes_per_vector": index_bytes(index) / n,
                     "recall": recall_at_k(ids, ds.gt, k), "qps": ds.xq.shape[0] / best})
    return rows


def table(rows: Sequence[dict[str, Any]]):
    """The rows of one or more sweeps as a pandas DataFrame (params spelled out)."""
    import pandas as pd

    df = pd.DataFrame(list(rows))
    if not df.empty:
        df["params"] = [", ".join(f"{k}={v}" for k, v in p.items()) for p in df["params"]]
    return df


def plot_recall_qps(rows: Sequence[dict[str, Any]], k: int = 10, ax=None, title: str = ""):
    """Recall@k against queries per second (log scale), one line per (library, index)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 4.2))[1]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["library"], r["index"]), []).append(r)
    for (lib, name), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["recall"])
        style = "-o" if lib == "embedlab" else "--s"
        ax.plot([r["recall"] for r in rs], [r["qps"] for r in rs], style, label=f"{name} ({lib})",
                markersize=4)
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{k}")
    ax.set_ylabel("queries per second (log scale, 1 thread)")
    ax.set_title(title or f"recall@{k} vs speed")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


# --------------------------------------------------------------------------- the machine
def machine_limits(mb: int = 256, n: int = 1024, repeats: int = 3) -> dict[str, float]:
    """Memory read bandwidth (GB/s) and sgemm throughput (GFLOP/s) on this machine.

    Bandwidth: a BLAS dot product of a large array with itself streams every byte once and does
    too little arithmetic to be limited by anything but memory.
    """
    a = np.ones(mb * (1 << 20) // 4, dtype=np.float32)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.dot(a, a)
        best = min(best, time.perf_counter() - t0)
    bandwidth = a.nbytes / best / 1e9
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n), dtype=np.float32)
    y = rng.standard_normal((n, n), dtype=np.float32)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        x @ y
        best = min(best, time.perf_counter() - t0)
    return {"bandwidth_gb_s": bandwidth, "sgemm_gflop_s": 2 * n ** 3 / best / 1e9}
