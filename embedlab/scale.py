"""Beyond one machine: partitioned embedding and sharded search on a Dask cluster.

Dask's distributed scheduler (``dask.distributed``) runs Python functions as *tasks* on *worker*
processes, on one machine (``LocalCluster``) or many (``dask scheduler`` on one host,
``dask worker tcp://HOST:8786`` on each of the others). The client code is the same in both
cases; only the address changes. This module keeps to three patterns that carry over to any
cluster engine:

1. **Embarrassingly parallel batch work over partitions.** The corpus is split into Parquet
   partitions ``part-00000.parquet, ...``; one task embeds one partition and writes
   ``part-00000.parquet`` under the output folder. Tasks receive *paths*, not arrays: a path is
   a few bytes, an array is pickled, shipped through the network and unpickled on the way in.
   Each part is written atomically (a temporary name, then ``os.replace``), so a reader never
   sees half a file, a worker killed mid-write leaves only a temporary file behind, and a re-run
   skips every part already written (the job is resumable). Dask re-runs the tasks of a worker
   that dies; a task that raises is retried, and one that keeps failing is reported by its
   partition id while the others finish.
2. **Per-worker state loaded once.** The encoder is loaded once per worker process (a worker
   plugin warms a module-level cache), not once per task.
3. **Scatter-gather search over shards.** Each worker holds one IVF-PQ shard in memory (a Dask
   future pinned to that worker). A query goes to every shard, each returns its own top k with
   global ids, and the client merges the sorted lists with chapter 17's k-way heap merge
   (``embedlab.heap.merge_k_best``). The coarse quantiser and the PQ codebooks are trained once
   and shared by every shard, so a vector gets the same list and the same code wherever it is
   stored, and the sharded result equals the single index's result at the same ``nprobe``.

Ray Data (``ray.data.read_parquet(...).map_batches(Embedder, concurrency=n)``) expresses the
same batch job with actor pools and streaming between stages (GPU and CPU stages side by side);
Spark (``mapInPandas`` / ``pandas_udf``) fits when the corpus already lives in a Spark data lake.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SCHEDULER_ENV = "EMBEDLAB_DASK_SCHEDULER"
#: Every worker runs one thread of torch, BLAS and numba: one worker per core is the unit.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
PART_RE = re.compile(r"part-(\d{5})\.parquet")


# =========================================================================== the cluster
def start_client(n_workers: int = 2, address: str | None = None, timeout: float = 8.0,
                 **cluster_kwargs: Any):
    """A ``dask.distributed.Client``: to ``address`` (or ``$EMBEDLAB_DASK_SCHEDULER``) if given,
    else to a fresh ``LocalCluster`` of ``n_workers`` processes, one thread each.

    Connecting to an unreachable scheduler fails after ``timeout`` seconds with a
    ``ConnectionError`` naming the address. ``close_client(client)`` shuts a local cluster down.
    """
    from distributed import Client, LocalCluster

    address = address or os.environ.get(SCHEDULER_ENV) or None
    if address is not None:
        if not isinstance(address, str) or "://" not in address:
            raise ValueError(f"address must look like 'tcp://host:port', got {address!r}")
        try:
            return Client(address, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"no Dask scheduler answered at {address} within "
                                  f"{timeout:g} s ({type(exc).__name__})") from exc
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be an int >= 1, got {n_workers!r}")
    for key, value in THREAD_ENV.items():  # inherited by the spawned workers
        os.environ.setdefault(key, value)
    kwargs = {"threads_per_worker": 1, "processes": True, "dashboard_address": None,
              "env": dict(THREAD_ENV), **cluster_kwargs}
    cluster = LocalCluster(n_workers=n_workers, **kwargs)
    return Client(cluster)


def close_client(client) -> None:
    """Close the client, and its local cluster when it started one."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def workers(client) -> list[str]:
    """The workers' addresses, sorted (a stable order for assigning shards)."""
    return sorted(client.scheduler_info(n_workers=-1)["workers"])


# =========================================================================== per-worker model
_MODELS: dict[str, Any] = {}
_LOADS = 0


def pin_threads() -> None:
    """One thread for torch in this process (the environment already pins BLAS)."""
    import torch

    torch.set_num_threads(1)


def worker_model(device: str | None = None):
    """MiniLM for this process, loaded on first use and cached (one load per worker)."""
    global _LOADS
    from embedlab.encoders import default_device

    key = device or default_device()
    if key not in _MODELS:
        from embedlab.encoders import load_minilm

        pin_threads()
        _MODELS[key] = load_minilm(key)
        _LOADS += 1
    return _MODELS[key]


def model_loads() -> int:
    """How many times this process has loaded MiniLM (run on workers with ``client.run``)."""
    return _LOADS


def _plugin_class():
    from distributed.diagnostics.plugin import WorkerPlugin

    class MiniLMPlugin(WorkerPlugin):
        """Loads MiniLM when a worker joins (including one restarted after a crash)."""

        name = "embedlab-minilm"

        def __init__(self, device: str | None = None) -> None:
            self.device = device

        def setup(self, worker) -> None:
            worker_model(self.device)

    return MiniLMPlugin


def load_model_on_workers(client, device: str | None = None) -> dict[str, int]:
    """Register the MiniLM worker plugin (waits until every worker has loaded it); returns each
    worker's load count, which stays 1 however many tasks run."""
    client.register_plugin(_plugin_class()(device), name="embedlab-minilm")
    return client.run(model_loads)


# =========================================================================== partitions
def news_sentence_texts(n: int | None = None, min_chars: int = 20) -> list[str]:
    """The news articles' sentences as raw text (MiniLM reads raw text), in corpus order.

    Headlines come first in each article; sentences shorter than ``min_chars`` are dropped.
    ``n`` keeps the first ``n`` sentences.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be None or an int >= 1, got {n!r}")
    from embedlab import data
    from embedlab.text import split_sentences

    df = data.load("news")
    out: list[str] = []
    for title, body in zip(df["title"], df["text"], strict=True):
        for s in [title.strip(), *split_sentences(body)]:
            if len(s) >= min_chars:
                out.append(s)
                if n is not None and len(out) == n:
                    return out
    return out


def part_path(folder: str | Path, part: int) -> Path:
    return Path(folder) / f"part-{part:05d}.parquet"


def part_id(path: str | Path) -> int:
    m = PART_RE.fullmatch(Path(path).name)
    if not m:
        raise ValueError(f"{path}: expected a file named part-NNNNN.parquet")
    return int(m.group(1))


def list_parts(folder: str | Path) -> dict[int, Path]:
    """``{part id: path}`` of the finished parts in ``folder`` (temporary files are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {part_id(p): p for p in sorted(folder.iterdir()) if PART_RE.fullmatch(p.name)}


def write_atomic(table, path: str | Path) -> Path:
    """Write a pyarrow ``table`` to ``path`` via a temporary name in the same folder, then
    ``os.replace`` (atomic on POSIX): readers see the whole part or none of it."""
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text_partitions(texts: Sequence[str], folder: str | Path,
                          partition_size: int) -> list[Path]:
    """Split ``texts`` into consecutive partitions of ``partition_size`` rows, written as
    ``part-NNNNN.parquet`` with columns ``id`` (global row number) and ``text``."""
    import pyarrow as pa

    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a sequence of str")
    if len(texts) == 0:
        raise ValueError("texts is empty")
    if isinstance(partition_size, bool) or not isinstance(partition_size, int) \
            or partition_size < 1:
        raise ValueError(f"partition_size must be an int >= 1, got {partition_size!r}")
    paths = []
    for p, start in enumerate(range(0, len(texts), partition_size)):
        chunk = list(texts[start:start + partition_size])
        ids = np.arange(start, start + len(chunk), dtype=np.int64)
        paths.append(write_atomic(pa.table({"id": ids, "text": chunk}), part_path(folder, p)))
    return paths


def hashing_encoder(texts: Sequence[str], dim: int = 64, seconds: float = 0.0) -> np.ndarray:
    """A stand-in encoder with no model: each word hashed (sha1) to one of ``dim`` signed
    buckets, rows normalised. Deterministic across processes; ``seconds`` sleeps per call, to
    mimic a slow model in tests of the scheduling machinery."""
    import hashlib

    out = np.zeros((len(texts), dim), np.float32)
    for r, text in enumerate(texts):
        for word in text.lower().split():
            h = int.from_bytes(hashlib.sha1(word.encode()).digest()[:8], "little")
            out[r, h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    if seconds:
        time.sleep(seconds)
    return out / np.where(norms > 0, norms, 1.0)


def embed_partition(in_path: str, out_dir: str, batch_size: int = 64,
                    device: str | None = None,
                    encode: Callable[[list[str]], np.ndarray] | None = None) -> dict[str, Any]:
    """The task: embed one text partition with this worker's MiniLM (or ``encode``, any
    picklable function from texts to an (n, d) array) and write its part.

    Skips the work when the output part exists (resumable). Returns a small summary
    (partition id, rows, seconds, worker), never the vectors: they stay on disk.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    part = part_id(in_path)
    out = part_path(out_dir, part)
    if out.exists():
        return {"part": part, "n": 0, "seconds": 0.0, "cpu_seconds": 0.0, "skipped": True,
                "worker": _worker_name()}
    t0, c0 = time.perf_counter(), time.process_time()
    table = pq.read_table(in_path, columns=["id", "text"])
    texts = table.column("text").to_pylist()
    if encode is None:
        vecs = worker_model(device).encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                           normalize_embeddings=True, show_progress_bar=False)
    else:
        vecs = encode(texts)
    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    emb = pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), vecs.shape[1])
    write_atomic(pa.table({"id": table.column("id"), "embedding": emb}), out)
    return {"part": part, "n": len(texts), "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0, "skipped": False,
            "worker": _worker_name()}


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:
        return "local"


def read_part(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, vectors)`` of one embedded part."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    col = table.column("embedding").combine_chunks()
    dim = col.type.list_size
    vecs = col.values.to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32)
    return table.column("id").to_numpy().astype(np.int64), vecs


def read_embeddings(folder: str | Path,
                    parts: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All (or the listed) embedded parts of ``folder``, concatenated in id order."""
    found = list_parts(folder)
    if not found:
        raise ValueError(f"{folder}: no part-NNNNN.parquet files")
    chosen = sorted(found) if parts is None else list(parts)
    pieces = [read_part(found[p]) for p in chosen]
    ids = np.concatenate([p[0] for p in pieces])
    vecs = np.concatenate([p[1] for p in pieces])
    order = np.argsort(ids, kind="stable")
    return ids[order], vecs[order]


@dataclass
class EmbedRun:
    """What one run of the embedding job did."""

    done: list[int] = field(default_factory=list)      # parts embedded by this run
    skipped: list[int] = field(default_factory=list)   # parts already written, not resubmitted
    failed: dict[int, str] = field(default_factory=dict)  # part id -> last error
    n_docs: int = 0
    seconds: float = 0.0
    tasks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def docs_per_s(self) -> float:
        """Throughput of the whole job: documents per second of wall time."""
        return self.n_docs / self.seconds if self.seconds > 0 else float("nan")

    @property
    def docs_per_cpu_s(self) -> float:
        """Documents per CPU-second the workers' tasks used: the per-core rate, which does not
        depend on how many cores the machine had free."""
        cpu = sum(t["cpu_seconds"] for t in self.tasks)
        return self.n_docs / cpu if cpu > 0 else float("nan")

    @property
    def cores_used(self) -> float:
        """CPU-seconds of the tasks per second of wall time: the cores the job really got."""
        cpu = sum(t["cpu_seconds"] for t in self.tasks)
        return cpu / self.seconds if self.seconds > 0 else float("nan")


def embed_corpus(client, in_dir: str | Path, out_dir: str | Path, *, batch_size: int = 64,
                 device: str | None = None, retries: int = 2,
                 encode: Callable[[list[str]], np.ndarray] | None = None,
                 on_result: Callable[[int, int], None] | None = None,
                 restrict: Sequence[str] | None = None) -> EmbedRun:
    """Embed every text part of ``in_dir`` that ``out_dir`` lacks, one task per part.

    ``retries``: how often a failing task is re-run before its part is reported in
    ``failed``. ``encode``: see ``embed_partition`` (None: MiniLM). ``on_result(done, total)``
    is called after each finished task (the fault demo kills a worker from it). ``restrict``:
    worker addresses allowed to run the tasks.
    """
    from distributed import as_completed

    inputs = list_parts(in_dir)
    if not inputs:
        raise ValueError(f"in_dir {in_dir}: no part-NNNNN.parquet files")
    written = list_parts(out_dir)
    run = EmbedRun(skipped=sorted(p for p in inputs if p in written))
    todo = [p for p in sorted(inputs) if p not in written]
    t0 = time.perf_counter()
    futures = {
        client.submit(embed_partition, str(inputs[p]), str(out_dir), batch_size, device, encode,
                      key=f"embed-part-{p:05d}-{uuid.uuid4().hex[:8]}", retries=retries,
                      workers=list(restrict) if restrict else None,
                      allow_other_workers=False): p
        for p in todo}
    for n, fut in enumerate(as_completed(futures, raise_errors=False), start=1):
        p = futures[fut]
        if fut.status == "error":
            exc = fut.exception()
            run.failed[p] = f"{type(exc).__name__}: {exc}"
        else:
            info = fut.result()
            if info["skipped"]:  # re-run after its worker died, the part already on disk
                import pyarrow.parquet as pq

                info["n"] = pq.ParquetFile(part_path(out_dir, p)).metadata.num_rows
            run.tasks.append(info)
            run.done.append(p)
            run.n_docs += info["n"]
        if on_result is not None:
            on_result(n, len(futures))
    run.seconds = time.perf_counter() - t0
    run.done.sort()
    return run


def kill_a_busy_worker(client) -> str | None:
    """Hard-kill (``os._exit``) one worker that is running a task right now; its nanny starts a
    fresh process and the scheduler re-runs the lost tasks elsewhere. Returns its address."""
    busy = [w for w, keys in client.processing().items() if keys]
    if not busy:
        return None
    victim = sorted(busy)[0]
    client.run(_exit_soon, workers=[victim])
    return victim


def _exit_soon(delay: float = 0.05) -> None:
    """Runs on a worker: end the process abruptly a moment after replying (no clean-up)."""
    import threading

    threading.Timer(delay, os._exit, args=(1,)).start()


# =========================================================================== sharded search
def train_template(sample: np.ndarray, kind: str = "ours", nlist: int = 64, m: int = 16,
                   nbits: int = 8, seed: int = 0, metric: str = "ip"):
    """An IVF-PQ index trained on ``sample`` and still empty: the coarse quantiser and PQ
    codebooks every shard shares. ``kind="ours"`` gives an ``IVFPQIndex``; ``"faiss"`` gives a
    serialised ``faiss.IndexIVFPQ`` (a uint8 array, as faiss objects do not pickle)."""
    from embedlab.index.base import as_matrix

    if kind not in ("ours", "faiss"):
        raise ValueError(f"kind must be 'ours' or 'faiss', got {kind!r}")
    x = as_matrix(sample, None, "sample")
    if kind == "ours":
        from embedlab.index import IVFPQIndex

        idx = IVFPQIndex(x.shape[1], nlist=nlist, m=m, nbits=nbits, metric=metric, seed=seed)
        idx.train(x)
        return idx
    import faiss

    fmetric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    quant = faiss.IndexFlatIP(x.shape[1]) if metric == "ip" else faiss.IndexFlatL2(x.shape[1])
    idx = faiss.IndexIVFPQ(quant, x.shape[1], nlist, m, nbits, fmetric)
    idx.cp.seed = seed
    idx.pq.cp.seed = seed + 1
    idx.train(x)
    return faiss.serialize_index(idx)


class Shard:
    """One worker's IVF-PQ shard: the shared template plus that worker's parts, global ids."""

    def __init__(self, template: Any, paths: Sequence[str]) -> None:
        import copy

        ids, vecs = (read_embeddings_paths(paths) if paths
                     else (np.zeros(0, np.int64), None))
        self.kind = "faiss" if isinstance(template, np.ndarray) else "ours"
        t0 = time.perf_counter()
        if self.kind == "ours":
            self.index = copy.deepcopy(template)
            if vecs is not None:
                self.index.add(vecs)
        else:
            import faiss

            self.index = faiss.deserialize_index(template)
            if vecs is not None:
                self.index.add_with_ids(vecs, ids)
        self.build_seconds = time.perf_counter() - t0
        # what each further vector costs: its PQ code plus an 8-byte id (as faiss stores them)
        self.bytes_per_vector = int(self.index.code_size) + 8
        self.ids = ids
        self.ntotal = len(ids)
        self.nbytes = _index_bytes(self)

    def search(self, q: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray, float]:
        """This shard's top k for every query, global ids, -1 padding; and the seconds taken."""
        t0 = time.perf_counter()
        nq = q.shape[0]
        if self.ntotal == 0:
            D = np.full((nq, k), -np.inf, np.float32)
            return D, np.full((nq, k), -1, np.int64), time.perf_counter() - t0
        if self.kind == "ours":
            D, local = self.index.search(q, k, nprobe=nprobe)
            I = np.where(local >= 0, self.ids[np.maximum(local, 0)], -1)  # noqa: E741
        else:
            self.index.nprobe = nprobe
            D, I = self.index.search(q, k)  # noqa: E741  (faiss pads with -1 itself)
        return D, I, time.perf_counter() - t0


def read_embeddings_paths(paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    pieces = [read_part(p) for p in paths]
    return (np.concatenate([p[0] for p in pieces]),
            np.ascontiguousarray(np.concatenate([p[1] for p in pieces])))


def _index_bytes(shard: Shard) -> int:
    if shard.kind == "ours":
        return int(shard.index.nbytes)
    import faiss

    return int(faiss.serialize_index(shard.index).nbytes)


def _shard_info(shard: Shard) -> dict[str, Any]:
    return {"ntotal": shard.ntotal, "nbytes": shard.nbytes, "build_seconds": shard.build_seconds,
            "bytes_per_vector": shard.bytes_per_vector, "worker": _worker_name()}


def _search_shard(shard: Shard, q: np.ndarray, k: int, nprobe: int):
    return shard.search(q, k, nprobe)


def assign_parts(parts: Sequence[int], n_shards: int) -> list[list[int]]:
    """Contiguous, nearly equal blocks of part ids, one block per shard."""
    parts = sorted(parts)
    bounds = np.linspace(0, len(parts), n_shards + 1).round().astype(int)
    return [parts[bounds[s]:bounds[s + 1]] for s in range(n_shards)]


@dataclass
class ShardSet:
    """The shards of one index: Dask futures, each held in the memory of ``workers[s]``."""

    futures: list
    workers: list[str]


def build_shards(client, emb_dir: str | Path, template: Any) -> ShardSet:
    """One shard per worker, built on that worker from its block of parts (paths only travel).
    Returns the shards as Dask futures pinned to their workers."""
    found = list_parts(emb_dir)
    if not found:
        raise ValueError(f"{emb_dir}: no embedded parts")
    addrs = workers(client)
    [tmpl] = client.scatter([template], broadcast=True)
    shards = []
    for addr, block in zip(addrs, assign_parts(list(found), len(addrs)), strict=True):
        paths = [str(found[p]) for p in block]
        shards.append(client.submit(Shard, tmpl, paths, workers=[addr], pure=False,
                                    allow_other_workers=False))
    client.gather(shards)  # wait until every shard is built (raises if one failed)
    return ShardSet(shards, list(addrs))


def shard_infos(client, shards: ShardSet) -> list[dict[str, Any]]:
    """Each shard's size, bytes, build time and worker."""
    return client.gather([client.submit(_shard_info, f, workers=[w], pure=False)
                          for f, w in zip(shards.futures, shards.workers, strict=True)])


def merge_shard_results(results: Sequence[tuple[np.ndarray, np.ndarray]], k: int,
                        largest: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Merge every shard's ``(D, I)`` (nq, k_s) into the global top k per query with
    ``embedlab.heap.merge_k_best``; missing results are padded with id -1, as faiss does."""
    from embedlab.heap import merge_k_best

    if not results:
        raise ValueError("results is empty: no shard answered")
    nq = results[0][0].shape[0]
    out_d = np.empty((nq, k), np.float32)
    out_i = np.empty((nq, k), np.int64)
    for r in range(nq):
        out_d[r], out_i[r] = merge_k_best([(d[r], i[r]) for d, i in results], k,
                                          largest=largest)
    return out_d, out_i


def sharded_search(client, shards: ShardSet, q: np.ndarray, k: int, nprobe: int = 8,
                   largest: bool = True) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Scatter ``q`` to every shard, gather each shard's top k, heap-merge on the client.

    Returns ``(D, I, timings)`` with the wall time, the slowest shard's search time and the
    merge time, in seconds.
    """
    from embedlab.index.base import check_int

    k = check_int(k, "k")
    q = np.ascontiguousarray(q, dtype=np.float32)
    if q.ndim != 2:
        raise ValueError(f"q must be 2-D (nq, dim), got shape {q.shape}")
    t0 = time.perf_counter()
    futs = [client.submit(_search_shard, f, q, k, nprobe, workers=[w], pure=False)
            for f, w in zip(shards.futures, shards.workers, strict=True)]
    got = client.gather(futs)
    t1 = time.perf_counter()
    D, I = merge_shard_results([(d, i) for d, i, _ in got], k, largest=largest)  # noqa: E741
    t2 = time.perf_counter()
    return D, I, {"wall": t2 - t0, "slowest_shard": max(s for _, _, s in got),
                  "merge": t2 - t1}


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each query's true k nearest ids found in its first k results."""
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth,
                                                                            strict=True)]
    return float(np.mean(hits) / k)


# =========================================================================== on paper
def machines_needed(n_vectors: float, *, docs_per_s_per_worker: float,
                    add_per_s_per_worker: float, bytes_per_vector: float,
                    query_s_per_million: float, latency_budget_s: float,
                    embed_hours: float = 24.0, workers_per_machine: int = 16,
                    ram_per_machine: float = 256e9, ram_fill: float = 0.5,
                    fixed_latency_s: float = 0.005) -> dict[str, float]:
    """How many machines a corpus of ``n_vectors`` needs, from measured per-worker rates.

    The model (stated so it can be argued with):

    * embedding: ``n / (docs_per_s_per_worker * 3600 * embed_hours)`` workers, packed
      ``workers_per_machine`` to a machine; index build the same with ``add_per_s_per_worker``;
    * memory: a shard keeps ``bytes_per_vector`` per vector and may fill ``ram_fill`` of a
      machine's ``ram_per_machine``;
    * latency: one query on one core costs ``query_s_per_million`` per million vectors of its
      shard (IVF-PQ at a fixed ``nprobe / nlist`` scans a fixed fraction, so cost grows
      linearly with the shard), plus ``fixed_latency_s`` of network and merge; the slowest
      shard sets the latency, so shards must be small enough that
      ``shard_millions * query_s_per_million + fixed_latency_s <= latency_budget_s``.

    Returns the machine counts for embedding, build, memory and latency, and ``serve``, the
    larger of the last two (what must stay up to answer queries).
    """
    import math

    if latency_budget_s <= fixed_latency_s:
        raise ValueError("latency_budget_s must exceed fixed_latency_s")
    per_core_shard = (latency_budget_s - fixed_latency_s) / query_s_per_million * 1e6
    latency_shards = math.ceil(n_vectors / per_core_shard)
    embed_workers = math.ceil(n_vectors / (docs_per_s_per_worker * 3600 * embed_hours))
    build_workers = math.ceil(n_vectors / (add_per_s_per_worker * 3600 * embed_hours))
    memory = math.ceil(n_vectors * bytes_per_vector / (ram_per_machine * ram_fill))
    latency = math.ceil(latency_shards / workers_per_machine)
    return {"embed": math.ceil(embed_workers / workers_per_machine),
            "build": math.ceil(build_workers / workers_per_machine),
            "memory": memory, "latency": latency, "serve": max(memory, latency),
            "shards": max(latency_shards, memory), "vectors_per_shard_max": per_core_shard}
