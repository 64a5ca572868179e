"""Benchmarks for nearest-neighbour indexes: datasets with exact ground truth, recall, sweeps.

Two real datasets, both compared by cosine similarity (rows are unit length, so inner product,
cosine and L2 rank alike):

* ``"glove"``: GloVe 6B 50d word vectors (400k x 50). Queries are held out: a seeded permutation
  puts ``n_query`` words aside, and the base is drawn from the other words.
* ``"minilm-news"``: all-MiniLM-L6-v2 embeddings (384-d) of the news corpus's sentences (about
  86k distinct sentences of 20 characters or more, in article order). Sentences are embedded in
  chunks of ``CHUNK`` and cached, so a small profile embeds only the first chunk and a large one
  reuses it. Queries are held out the same way.

The ground truth (ids of the exact ``gt_k`` nearest base vectors of each query) is computed
once in float64 numpy, independently of the indexes under test, and cached under
``embedlab.data.cache_dir() / "ann"`` keyed by the data.

The protocol (the same for ``benchmarks/``, ``make bench`` and the notebooks):

* one thread on every side: ``threadpoolctl.threadpool_limits(1)`` for numpy's and faiss's BLAS
  and OpenMP, plus ``faiss.omp_set_num_threads(1)`` (``one_thread()``);
* a warm-up of ``WARMUP`` queries (above faiss's 20-query threshold for switching to BLAS);
* at least ``ROUNDS`` (15) interleaved rounds over at least ``MIN_QUERIES`` (1,000) queries, every
  contender once per round in a rotating order, each round timed in process CPU time (every
  thread of the process, so a peer's hidden thread pool counts) next to wall time (``measure``);
* every ratio with its spread over rounds, min, median and p90 (``speed_ratio``,
  ``format_ratio``); a spread that contains 1.0 reads "no measurable difference";
* peers called the way their users call them: raw ``knn_query`` with ``ef`` set once for
  hnswlib, ``nprobe``/``efSearch`` set once for faiss, ScaNN's own searcher (``searcher``);
* two modes: ``"single"`` (a loop of one-query searches: median and p99 latency, and QPS) and
  ``"batch"`` (all queries in one call: throughput);
* two BLAS settings: ``"installed"`` (what a user gets) and ``"matched"``
  (``OPENBLAS_CORETYPE=Haswell`` set before numpy and faiss load, so both OpenBLAS builds run the
  same AVX2 kernels); ``require_blas("matched")`` verifies it through threadpoolctl and stops
  with a message naming both kernels otherwise;
* every table prints ``protocol_line(mode)``: the mode, the setting, and the BLAS builds and
  kernels of both sides.

``sweep`` builds one index and measures it over a list of search parameters (build time, memory,
recall@k and speed in one mode); it works with any object that has ``search(q, k)``: ours,
faiss's, and the ``HnswlibIndex`` and ``ScannIndex`` adapters below.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.index.base import check_int, normalize_rows

DATASETS = ("glove", "minilm-news")
CHUNK = 4_000  # sentences per cached embedding chunk
MODES = ("single", "batch")
BLAS_SETTINGS = ("installed", "matched")
MATCHED_CORETYPE = "Haswell"  # AVX2 kernels that both OpenBLAS builds (0.3.15, 0.3.31) know
WARMUP = 20  # queries; faiss switches from its own loops to BLAS above 20 queries


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
    """MiniLM embeddings of the first ``n`` news sentences (cached chunk by chunk; ``embedlab data
    prepare`` fills the cache for a profile's chapters before the course starts)."""
    from embedlab.encoders import embed_cached

    sentences = news_sentences()
    n = check_int(n, "n", high=len(sentences))
    chunks = [sentences[a:a + CHUNK] for a in range(0, n, CHUNK)]
    model = None
    if not all(embedding_cached(c) for c in chunks):  # load the model once, not per chunk
        from embedlab.encoders import load_minilm

        model = load_minilm()
    parts = [embed_cached(c, model=model, show_progress_bar=show_progress_bar) for c in chunks]
    return np.concatenate(parts)[:n]


def embedding_cached(texts: list[str]) -> bool:
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


def exact_neighbours(xb: np.ndarray, xq: np.ndarray, k: int, metric: str = "cosine",
                     block: int = 256) -> np.ndarray:
    """Ids of the exact ``k`` best base rows for each query, computed in float64 numpy.

    Independent of the indexes under test: scores ``q . x`` (ip; cosine on unit rows) or
    ``-||q - x||^2`` (l2) in double precision, ``block`` queries at a time, ties broken by the
    lower id.
    """
    if metric not in ("ip", "cosine", "l2"):
        raise ValueError(f"metric must be 'ip', 'cosine' or 'l2', got {metric!r}")
    k = check_int(k, "k", high=xb.shape[0])
    xb64 = np.asarray(xb, dtype=np.float64)
    sq = (xb64 ** 2).sum(1)
    out = np.empty((xq.shape[0], k), dtype=np.int64)
    block = max(1, min(block, 8_000_000 // max(1, xb.shape[0])))  # a block's scores <= 64 MB
    for a in range(0, xq.shape[0], block):
        s = np.asarray(xq[a:a + block], dtype=np.float64) @ xb64.T
        if metric == "l2":
            s = 2 * s - sq[None, :]
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        top.sort(axis=1)  # lower id first, so the stable sort below breaks ties by id
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
        out[a:a + block] = np.take_along_axis(top, order, axis=1)
    return out


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
    key = f"{name}-{n_base}-{n_query}-{gt_k}-{seed}-{digest[:12]}-f64"
    path = cache_dir() / "ann" / f"{key}.npy"
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


_LIMITER: Any = None


def one_thread() -> None:
    """Pin every side to one thread: numpy's and faiss's BLAS and OpenMP (threadpoolctl), and
    faiss's own OpenMP loops. The limit stays until the process ends."""
    global _LIMITER
    import threadpoolctl

    try:
        import faiss  # load faiss's BLAS first, so that threadpoolctl sees it too

        faiss.omp_set_num_threads(1)
    except ImportError:  # pragma: no cover - faiss is a dependency
        pass
    _LIMITER = threadpoolctl.threadpool_limits(limits=1)


def blas_info() -> list[dict[str, str]]:
    """The BLAS libraries loaded in this process: ``{"side", "version", "kernel", "threads"}``.

    ``side`` is ``"numpy"`` or ``"faiss"`` (from the library's path); ``kernel`` is the CPU core
    type OpenBLAS chose (threadpoolctl's ``architecture``).
    """
    import threadpoolctl

    try:
        import faiss  # noqa: F401  (loads faiss's own OpenBLAS)
    except ImportError:  # pragma: no cover
        pass
    out = []
    for lib in threadpoolctl.threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        path = str(lib.get("filepath", ""))
        side = "faiss" if "faiss" in path else "numpy" if "numpy" in path else Path(path).name
        out.append({"side": side, "version": f"{lib.get('internal_api')} {lib.get('version')}",
                    "kernel": str(lib.get("architecture")), "threads": str(lib.get("num_threads"))})
    return sorted(out, key=lambda r: r["side"], reverse=True)


def kernels_match(info: list[dict[str, str]] | None = None) -> bool:
    """Whether every loaded BLAS runs the same kernel (core type)."""
    info = blas_info() if info is None else info
    return len({r["kernel"] for r in info}) == 1


def blas_setting() -> str:
    """``"matched"`` when ``OPENBLAS_CORETYPE`` is the matched core and every BLAS runs it, else
    ``"installed"``."""
    if os.environ.get("OPENBLAS_CORETYPE") == MATCHED_CORETYPE and kernels_match():
        info = blas_info()
        if info and info[0]["kernel"] == MATCHED_CORETYPE:
            return "matched"
    return "installed"


def require_blas(setting: str) -> list[dict[str, str]]:
    """Check that this process runs BLAS setting ``setting``; returns ``blas_info()``.

    ``"matched"`` needs ``OPENBLAS_CORETYPE=Haswell`` set before numpy and faiss were imported,
    and every BLAS on the same kernel; otherwise a ``RuntimeError`` names both kernels and the
    variable to set. ``"installed"`` accepts any kernels.
    """
    if setting not in BLAS_SETTINGS:
        raise ValueError(f"setting must be one of {BLAS_SETTINGS}, got {setting!r}")
    info = blas_info()
    if setting == "matched" and blas_setting() != "matched":
        kernels = ", ".join(f"{r['side']} ({r['version']}): {r['kernel']}" for r in info)
        raise RuntimeError(
            f"BLAS kernels are not matched: {kernels}. Set OPENBLAS_CORETYPE={MATCHED_CORETYPE} "
            f"in the environment before Python starts (now "
            f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')!r}), e.g. "
            f"OPENBLAS_CORETYPE={MATCHED_CORETYPE} python benchmarks/...")
    return info


def blas_env(setting: str) -> dict[str, str]:
    """The environment for a child process that runs BLAS setting ``setting`` on one thread."""
    if setting not in BLAS_SETTINGS:
        raise ValueError(f"setting must be one of {BLAS_SETTINGS}, got {setting!r}")
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        env[var] = "1"
    env.pop("OPENBLAS_CORETYPE", None)
    if setting == "matched":
        env["OPENBLAS_CORETYPE"] = MATCHED_CORETYPE
    return env


def run_in_settings(script: str, args: Sequence[str], settings: Sequence[str]) -> int:
    """Run ``python script args --blas S`` once per BLAS setting (each in a fresh process, since
    the kernel is chosen when the library loads); returns the worst exit status."""
    rc = 0
    for setting in settings:
        print(f"\n######## BLAS setting: {describe_setting(setting)}", flush=True)
        rc = max(rc, subprocess.call([sys.executable, script, *args, "--blas", setting],
                                     env=blas_env(setting)))
    return rc


def describe_setting(setting: str) -> str:
    if setting not in BLAS_SETTINGS:
        raise ValueError(f"setting must be one of {BLAS_SETTINGS}, got {setting!r}")
    return ("matched (OPENBLAS_CORETYPE=Haswell: the same AVX2 kernels on both sides)"
            if setting == "matched" else "as installed (each library's own kernel choice)")


ROUNDS = 15  # interleaved rounds of a benchmark (the protocol's minimum)
MIN_QUERIES = 1_000  # queries per round in benchmarks/


def protocol_line(mode: str, rounds: int = ROUNDS, n_queries: int | None = None) -> str:
    """One line naming the mode, the BLAS setting, both sides' BLAS builds and kernels, and how
    the times were taken."""
    check_mode(mode)
    info = blas_info()
    blas = "; ".join(f"{r['side']} {r['version']} {r['kernel']}" for r in info)
    what = ("single query (a loop of one-query calls)" if mode == "single"
            else "batch (all queries in one call; throughput)")
    nq = "" if n_queries is None else f" x {n_queries:,} queries"
    return (f"mode: {what} | BLAS {blas_setting()}: {blas} | one thread, warm-up {WARMUP} "
            f"queries, {rounds} interleaved rounds{nq}, process CPU time and wall time")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def _spread(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"min": float(v.min()), "median": float(np.median(v)),
            "p90": float(np.percentile(v, 90))}


def measure(contenders: dict[str, Callable[[np.ndarray], Any]], xq: np.ndarray,
            mode: str = "batch", rounds: int = ROUNDS, warmup: int = WARMUP,
            repeats: int | None = None) -> dict[str, dict]:
    """Time several search functions ``fn(q)`` on the same queries, by the protocol.

    Each contender is warmed up on ``warmup`` queries; then ``rounds`` rounds run every contender
    once over all of ``xq``, the order rotating from round to round, so that a slow spell of a
    shared machine hits all of them alike. A round is timed twice: wall time
    (``time.perf_counter``) and the CPU time of the whole process (``time.process_time``: the
    time every thread spent, so a library's hidden worker threads are counted, and time the
    machine gave to other programs is not). ``"single"`` mode calls ``fn`` with one query at a
    time (latency), ``"batch"`` with all of them in one call (throughput).

    Returns per contender: ``wall_us`` and ``cpu_us`` (per-query microseconds, one entry per
    round), ``qps`` and ``cpu_qps`` (medians over rounds), ``qps_spread`` (min, max of the
    rounds' wall QPS), and ``median_ms`` / ``p99_ms``: single mode, the median over rounds of
    each round's median and 99th-percentile latency; batch mode, the mean per-query time.
    ``repeats`` is an older name for ``rounds``.
    """
    check_mode(mode)
    rounds = check_int(rounds if repeats is None else repeats, "rounds")
    if not contenders:
        raise ValueError("contenders must name at least one search function")
    xq = np.ascontiguousarray(xq)
    names = list(contenders)
    w = xq[:max(1, min(warmup, xq.shape[0]))]
    for name in names:
        if mode == "batch":
            contenders[name](w)
        else:
            for i in range(w.shape[0]):
                contenders[name](w[i:i + 1])
    rows = [xq[i:i + 1] for i in range(xq.shape[0])]
    nq = xq.shape[0]
    raw: dict[str, dict[str, list[float]]] = {
        n: {"wall_us": [], "cpu_us": [], "med": [], "p99": []} for n in names}
    perf, cpu = time.perf_counter, time.process_time
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = contenders[name]
            if mode == "batch":
                c0, t0 = cpu(), perf()
                fn(xq)
                t1, c1 = perf(), cpu()
                lat = None
            else:
                lat = np.empty(nq)
                c0, t0 = cpu(), perf()
                for i, q in enumerate(rows):
                    a = perf()
                    fn(q)
                    lat[i] = perf() - a
                t1, c1 = perf(), cpu()
            out = raw[name]
            out["wall_us"].append((t1 - t0) / nq * 1e6)
            out["cpu_us"].append((c1 - c0) / nq * 1e6)
            if lat is not None:
                out["med"].append(float(np.median(lat)))
                out["p99"].append(float(np.percentile(lat, 99)))
    result = {}
    for name, out in raw.items():
        qps = [1e6 / t for t in out["wall_us"]]
        wall_med = statistics.median(out["wall_us"])
        result[name] = {
            "wall_us": out["wall_us"], "cpu_us": out["cpu_us"], "rounds": rounds,
            "n_queries": nq, "mode": mode,
            "qps": 1e6 / wall_med, "cpu_qps": 1e6 / max(statistics.median(out["cpu_us"]), 1e-9),
            "qps_spread": (min(qps), max(qps)),
            "median_ms": (1e3 * statistics.median(out["med"]) if out["med"]
                          else wall_med / 1e3),
            "p99_ms": 1e3 * statistics.median(out["p99"]) if out["p99"] else wall_med / 1e3}
    return result


def speed_ratio(ours: dict, peer: dict, clock: str = "cpu") -> dict[str, Any]:
    """How many times faster ``ours`` is than ``peer`` (two entries of one ``measure`` call).

    The ratio is taken round by round, ``peer time / our time`` (rounds are interleaved, so both
    times of a round saw the same machine), and summarised by its spread: ``min``, ``median``
    and ``p90`` over rounds. ``clock`` is ``"cpu"`` (process CPU time) or ``"wall"``. When the
    spread, from min to p90, contains 1.0, the verdict is "no measurable difference".
    """
    if clock not in ("cpu", "wall"):
        raise ValueError(f"clock must be 'cpu' or 'wall', got {clock!r}")
    a = np.asarray(ours[f"{clock}_us"], dtype=np.float64)
    b = np.asarray(peer[f"{clock}_us"], dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("ours and peer must come from the same measure() call")
    sp = _spread(b / np.maximum(a, 1e-12))
    if sp["min"] <= 1.0 <= sp["p90"]:
        verdict = "no measurable difference"
    else:
        verdict = "faster" if sp["median"] > 1 else "slower"
    return {**sp, "clock": clock, "rounds": int(a.size), "verdict": verdict}


def format_ratio(r: dict[str, Any]) -> str:
    """``1.23x (min 1.10, p90 1.31 over 15 rounds, CPU time)``, or the same prefixed with
    "no measurable difference:" when the spread contains 1.0."""
    txt = (f"{r['median']:.2f}x (min {r['min']:.2f}, p90 {r['p90']:.2f} over {r['rounds']} "
           f"rounds, {'CPU' if r['clock'] == 'cpu' else 'wall'} time)")
    return f"no measurable difference: {txt}" if r["verdict"] == "no measurable difference" else txt


def l3_cache_bytes(default: int = 32 << 20) -> int:
    """The size of the last-level (L3) cache from Linux's sysfs, or ``default`` where it cannot
    be read."""
    for index in range(5):
        base = Path(f"/sys/devices/system/cpu/cpu0/cache/index{index}")
        try:
            if (base / "level").read_text().strip() == "3":
                text = (base / "size").read_text().strip().upper()
                scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
                return int(text.rstrip("KMG")) * scale
        except (OSError, ValueError):
            continue
    return default


def cache_bandwidth(nbytes: int, repeats: int = 200) -> float:
    """Read bandwidth (GB/s) of one core over a buffer of ``nbytes``, streamed again and again.

    A BLAS dot product of the buffer with itself reads every byte once and does too little
    arithmetic to be limited by anything else. A buffer larger than the per-core L2 cache but
    smaller than the L3 measures the L3: what a single flat query over a few MB of vectors can
    at best read at (the best of ``repeats`` passes).
    """
    nbytes = check_int(int(nbytes), "nbytes", low=4096)
    a = np.ones(nbytes // 4, dtype=np.float32)
    np.dot(a, a)
    best = np.inf
    for _ in range(check_int(repeats, "repeats")):
        t0 = time.perf_counter()
        np.dot(a, a)
        best = min(best, time.perf_counter() - t0)
    return a.nbytes / best / 1e9


def index_bytes(index: Any) -> int:
    """Memory an index holds: ``nbytes`` for ours, the serialised size for faiss's."""
    if hasattr(index, "nbytes"):
        return int(index.nbytes)
    import faiss

    return int(faiss.serialize_index(index).nbytes)


def default_search(index: Any, q: np.ndarray, k: int, params: dict[str, Any]):
    """Search ours (and the peer adapters below) with keyword arguments, faiss's by setting
    attributes (``nprobe``; ``efSearch`` of an HNSW index given as ``ef``)."""
    if type(index).__module__.startswith("embedlab"):
        return index.search(q, k, **params)
    _set_faiss_params(index, params)
    return index.search(q, k)


def _set_faiss_params(index: Any, params: dict[str, Any]) -> None:
    for key, value in params.items():
        if key == "ef" and hasattr(index, "hnsw"):
            index.hnsw.efSearch = value
        else:
            setattr(index, key, value)


def searcher(index: Any, k: int, params: dict[str, Any] | None = None
             ) -> Callable[[np.ndarray], Any]:
    """The call a library's own users make, with the search parameters set once, as a function
    of the queries: what ``measure`` times.

    * ours: ``index.search(q, k, **params)`` (parameters are arguments of our API);
    * faiss: ``nprobe`` / ``hnsw.efSearch`` set on the index now, then ``index.search(q, k)``;
    * hnswlib (``HnswlibIndex``): ``set_ef`` once, then the raw ``knn_query(q, k=k)``, with no
      conversion of its results;
    * ScaNN (``ScannIndex``): the raw searcher, ``search`` for one query and ``search_batched``
      for several.
    """
    params = dict(params or {})
    if isinstance(index, HnswlibIndex):
        return index.raw_search(k, **params)
    if isinstance(index, ScannIndex):
        return index.raw_search(k, **params)
    if type(index).__module__.startswith("embedlab"):
        return lambda q: index.search(q, k, **params)
    _set_faiss_params(index, params)
    return lambda q: index.search(q, k)


def sweep(build: Callable[[], Any], ds: ANNDataset, params: Sequence[dict[str, Any]] = ({},),
          k: int = 10, library: str = "embedlab", label: str = "", repeats: int = ROUNDS,
          search: Callable[..., Any] | None = None, mode: str = "batch",
          n_single: int = MIN_QUERIES, n_timing: int | None = None) -> list[dict[str, Any]]:
    """Build one index, then measure recall@k and speed for each search setting in ``params``.

    ``build()`` returns a trained, filled index; its wall time is the build time. Recall comes
    from ``search(index, queries, k, params)`` (default ``default_search``); speed follows the
    protocol (``measure``, ``repeats`` rounds) on the call users make (``searcher``), or on
    ``search`` when one is given. ``"batch"`` times all queries in one call, ``"single"`` a loop
    over the first ``n_single`` queries one at a time (``n_timing``, when given, times the first
    ``n_timing`` queries in either mode; recall always uses them all). Returns one row per setting:
    ``library, index, params, mode, build_s, bytes_per_vector, recall, qps, cpu_qps, qps_spread
    (min, median, p90 over rounds of the CPU-time QPS), median_ms, p99_ms``.
    """
    k = check_int(k, "k", high=ds.gt.shape[1])
    repeats = check_int(repeats, "repeats")
    check_mode(mode)
    t0 = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - t0
    n = ds.xb.shape[0]
    xq = ds.xq if mode == "batch" else ds.xq[:check_int(n_single, "n_single")]
    if n_timing is not None:
        xq = ds.xq[:check_int(n_timing, "n_timing")]
    rows = []
    for p in params:
        _, ids = (search or default_search)(index, ds.xq, k, dict(p))
        fn = (searcher(index, k, p) if search is None
              else (lambda q, p=p: search(index, q, k, dict(p))))
        t = measure({"x": fn}, xq, mode=mode, rounds=repeats)["x"]
        rows.append({"library": library, "index": label or type(index).__name__,
                     "params": dict(p), "mode": mode, "build_s": build_s,
                     "bytes_per_vector": index_bytes(index) / n,
                     "recall": recall_at_k(np.asarray(ids), ds.gt, k), "qps": t["qps"],
                     "cpu_qps": t["cpu_qps"],
                     "qps_spread": list(_spread([1e6 / u for u in t["cpu_us"]]).values()),
                     "median_ms": t["median_ms"], "p99_ms": t["p99_ms"]})
    return rows


# --------------------------------------------------------------------------- peers
class HnswlibIndex:
    """hnswlib behind the interface of ours: ``search(q, k, ef=...)``, ``nbytes``."""

    def __init__(self, dim: int, metric: str = "ip", M: int = 16, ef_construction: int = 200,
                 seed: int = 0) -> None:
        import hnswlib

        space = {"ip": "ip", "cosine": "cosine", "l2": "l2"}.get(metric)
        if space is None:
            raise ValueError(f"metric must be 'ip', 'cosine' or 'l2', got {metric!r}")
        self.dim, self.metric, self.M, self.efc, self.seed = dim, metric, M, ef_construction, seed
        self._index = hnswlib.Index(space=space, dim=dim)
        self._ready = False
        self._ef: int | None = None

    @property
    def raw(self) -> Any:
        """The ``hnswlib.Index`` itself."""
        return self._index

    def set_ef(self, ef: int) -> None:
        """Set ``ef`` on the raw index (only when it changes, as a user sets it once)."""
        if ef != self._ef:
            self._index.set_ef(int(ef))
            self._ef = int(ef)

    def raw_search(self, k: int, ef: int = 64) -> Callable[[np.ndarray], Any]:
        """``knn_query(q, k=k)`` on the raw index, ``ef`` set once: how hnswlib users search."""
        self.set_ef(ef)
        raw = self._index
        return lambda q: raw.knn_query(q, k=k)

    def add(self, x: np.ndarray) -> None:
        if not self._ready:
            self._index.init_index(max_elements=len(x), ef_construction=self.efc, M=self.M,
                                   random_seed=self.seed)
            self._index.set_num_threads(1)
            self._ready = True
        else:
            self._index.resize_index(self._index.get_current_count() + len(x))
        self._index.add_items(x, num_threads=1)

    def search(self, q: np.ndarray, k: int, ef: int = 64):
        """Scores (or l2 distances) and int64 ids, best first, like ours (for recall)."""
        self.set_ef(ef)
        ids, dist = self._index.knn_query(q, k=k, num_threads=1)
        scores = dist if self.metric == "l2" else 1.0 - dist
        return scores.astype(np.float32), ids.astype(np.int64)

    @property
    def nbytes(self) -> int:
        """Vectors plus links: hnswlib's layer-0 block (``size_data_per_element``) per point
        plus the upper layers (about ``n / M`` points with ``M`` links each)."""
        n = self._index.get_current_count()
        per0 = self.dim * 4 + 4 + 2 * self.M * 4 + 8
        return int(n * per0 + n / self.M * (self.M * 4 + 4))


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (C++ libraries' logging) for the duration of the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class ScannIndex:
    """Google's ScaNN (``scann`` package) behind the interface of ours.

    ``ScannIndex(dim, dims_per_block=2, threshold=0.2, num_leaves=None, reorder=0)``: asymmetric
    hashing with 16 centres per block of ``dims_per_block`` coordinates (4 bits), trained with
    the anisotropic loss at ``threshold`` (the paper's T); with ``num_leaves`` a k-means tree
    first (searched with ``search(q, k, leaves=...)``); with ``reorder > 0`` the best
    ``reorder`` candidates are re-scored exactly. Inner-product metric only (unit vectors).
    """

    def __init__(self, dim: int, dims_per_block: int = 2, threshold: float = 0.2,
                 num_leaves: int | None = None, reorder: int = 0, seed: int = 0) -> None:
        if dim % dims_per_block:
            raise ValueError(f"dims_per_block must divide dim={dim}, got {dims_per_block}")
        self.dim, self.dims_per_block, self.threshold = dim, dims_per_block, threshold
        self.num_leaves, self.reorder, self.seed = num_leaves, reorder, seed
        self._searcher: Any = None
        self.ntotal = 0

    def add(self, x: np.ndarray) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")  # quiet ScaNN's C++ logging
        import scann

        if self._searcher is not None:
            raise ValueError("ScannIndex: add(x) once (ScaNN builds from the whole base)")
        x = np.ascontiguousarray(x, dtype=np.float32)
        with _quiet_stderr():  # ScaNN's C++ logging writes its training steps to stderr
            self._build(scann, x)
        self.ntotal = len(x)

    def _build(self, scann: Any, x: np.ndarray) -> None:
        b = scann.scann_ops_pybind.builder(x, 10, "dot_product")
        if self.num_leaves:
            b = b.tree(num_leaves=self.num_leaves, num_leaves_to_search=1,
                       training_sample_size=len(x))
        b = b.score_ah(self.dims_per_block, anisotropic_quantization_threshold=self.threshold)
        if self.reorder:
            b = b.reorder(self.reorder)
        self._searcher = b.build()

    @property
    def code_size(self) -> int:
        """Bytes of code per vector: 4 bits per block of ``dims_per_block`` coordinates."""
        return -(-(self.dim // self.dims_per_block) // 2)

    @property
    def nbytes(self) -> int:
        """Codes, plus the float32 vectors when it re-orders (the tree's ids not counted)."""
        return self.ntotal * (self.code_size + (4 * self.dim if self.reorder else 0))

    def _kwargs(self, k: int, leaves: int | None, pre_reorder: int) -> dict[str, Any]:
        if self._searcher is None:
            raise ValueError("ScannIndex: the index is empty; add(x) before search()")
        kw: dict[str, Any] = {"final_num_neighbors": k}
        if leaves is not None:
            kw["leaves_to_search"] = int(leaves)
        if self.reorder:
            kw["pre_reorder_num_neighbors"] = int(pre_reorder or self.reorder)
        return kw

    def raw_search(self, k: int, leaves: int | None = None,
                   pre_reorder: int = 0) -> Callable[[np.ndarray], Any]:
        """The raw searcher as ScaNN users call it: ``search`` for one query, ``search_batched``
        for several (no conversion of its results)."""
        kw = self._kwargs(k, leaves, pre_reorder)
        one, many = self._searcher.search, self._searcher.search_batched
        return lambda q: one(q[0], **kw) if q.shape[0] == 1 else many(q, **kw)

    def search(self, q: np.ndarray, k: int, leaves: int | None = None, pre_reorder: int = 0):
        kw = self._kwargs(k, leaves, pre_reorder)
        if q.shape[0] == 1:
            ids, scores = self._searcher.search(q[0], **kw)
            ids, scores = ids[None], scores[None]
        else:
            ids, scores = self._searcher.search_batched(q, **kw)
        return np.asarray(scores, np.float32), np.asarray(ids, np.int64)


def table(rows: Sequence[dict[str, Any]]):
    """The rows of one or more sweeps as a pandas DataFrame (params spelled out)."""
    import pandas as pd

    df = pd.DataFrame(list(rows))
    if not df.empty:
        df["params"] = [", ".join(f"{k}={v}" for k, v in p.items()) for p in df["params"]]
    return df


def plot_recall_qps(rows: Sequence[dict[str, Any]], k: int = 10, ax=None, title: str = ""):
    """Recall@k against queries per second (log scale), one line per (library, index); the
    axis label names the mode and BLAS setting."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 4.2))[1]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["library"], r["index"]), []).append(r)
    for (lib, name), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["recall"])
        style = "-o" if lib == "embedlab" else "--s" if lib == "faiss" else ":^"
        ax.plot([r["recall"] for r in rs], [r["qps"] for r in rs], style, label=f"{name} ({lib})",
                markersize=4)
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{k}")
    modes = sorted({r.get("mode", "batch") for r in rows})
    ax.set_ylabel(f"queries per second ({'/'.join(modes)}, 1 thread, BLAS {blas_setting()}; "
                  "log)", fontsize=8)
    ax.set_title(title or f"recall@{k} vs speed")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


# --------------------------------------------------------------------------- the machine
def machine_limits(mb: int = 256, n: int = 1024, repeats: int = 5) -> dict[str, float]:
    """Memory read bandwidth (GB/s) and sgemm throughput (GFLOP/s) of one core on this machine.

    Bandwidth: a BLAS dot product of a large array with itself streams every byte once and does
    too little arithmetic to be limited by anything but memory. Both are the best of ``repeats``
    runs in process CPU time (the time this process ran, whatever else shares the machine).
    """
    a = np.ones(mb * (1 << 20) // 4, dtype=np.float32)
    best = np.inf
    for _ in range(repeats):
        t0 = time.process_time()
        np.dot(a, a)
        best = min(best, time.process_time() - t0)
    bandwidth = a.nbytes / best / 1e9
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n), dtype=np.float32)
    y = rng.standard_normal((n, n), dtype=np.float32)
    best = np.inf
    for _ in range(repeats):
        t0 = time.process_time()
        x @ y
        best = min(best, time.process_time() - t0)
    return {"bandwidth_gb_s": bandwidth, "sgemm_gflop_s": 2 * n ** 3 / best / 1e9}
