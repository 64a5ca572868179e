"""Beyond one machine: partitioned embedding and sharded search on a Dask cluster.

Dask's distributed scheduler (``dask.distributed``) runs Python functions as *tasks* on *worker*
processes, on one machine (``LocalCluster``) or many (``dask scheduler`` on one host,
``dask worker tcp://HOST:8786`` on each of the others). The client code is the same in both
cases; only the address changes, and with it three things a laptop hides:

* **Storage.** A task runs on another machine, so it can only read what that machine can reach.
  Tasks here either *ship bytes* (an Arrow table or an array travels inside the task and its
  result comes back the same way) or read and write a *storage URL* that every worker reaches:
  any fsspec URL (a folder, the default; a shared mount; ``s3://bucket/prefix`` with ``s3fs``),
  passed as the string itself, never a path resolved on the client. ``check_storage`` proves it
  at start: the client writes a token, every worker reads it, and a worker that cannot fails the
  start within ``timeout`` seconds with an error that names it and says how to fix it.
* **Environment.** Every worker needs the same packages (``make setup`` from the same commit),
  the model, and one thread of torch and BLAS each: ``PinThreads``, a worker plugin registered by
  ``start_client``, pins them on every worker the scheduler has or gets, remote ones included,
  and ``dask worker --preload embedlab.scale`` pins them before the worker imports anything.
* **Faults.** A worker can die. Dask re-runs its lost tasks elsewhere (it keeps each task's
  recipe); a part written atomically is either whole or absent, and a shard is a task whose
  recipe reads its parts from storage, so a shard whose worker dies is rebuilt on another worker
  and the next query answers the same.

Three patterns that carry over to any cluster engine:

1. **Embarrassingly parallel batch work over partitions.** The corpus is split into Parquet
   partitions ``part-00000.parquet, ...``; one task embeds one partition and writes its part under
   the output URL atomically (a temporary name, then a rename), so a reader never sees half a
   file and a re-run skips every part already written (the job is resumable). A task that raises
   is retried; one that keeps failing is reported by its partition id while the others finish.
2. **Per-worker state loaded once.** The encoder is loaded once per worker process (a worker
   plugin warms a module-level cache), not once per task.
3. **Scatter-gather search over shards.** Each worker holds one IVF-PQ shard in memory (a Dask
   future). A query goes to every shard, each returns its own top k with global ids, and the
   client merges the sorted lists with chapter 17's k-way heap merge
   (``embedlab.heap.merge_k_best``). The coarse quantiser and the PQ codebooks are trained once
   and shared by every shard, so a vector gets the same list and the same code wherever it is
   stored, and the sharded result equals the single index's result at the same ``nprobe``.

Ray Data (``ray.data.read_parquet(...).map_batches(Embedder, concurrency=n)``) expresses the
same batch job with actor pools and streaming between stages (GPU and CPU stages side by side);
Spark (``mapInPandas`` / ``pandas_udf``) fits when the corpus already lives in a Spark data lake.
"""

from __future__ import annotations

import io
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SCHEDULER_ENV = "EMBEDLAB_DASK_SCHEDULER"
STORAGE_ENV = "EMBEDLAB_STORAGE"
#: Every worker runs one thread of torch, BLAS and numba: one worker per core is the unit.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
PART_RE = re.compile(r"part-(\d{5})\.parquet")
STORAGE_FIX = ("Every worker must reach the storage: mount the same folder at the same path on "
               "every machine, or set EMBEDLAB_STORAGE to a URL all of them reach (s3://bucket/"
               "prefix, gs://...), or ship the data inside the tasks (storage=None).")


class StorageUnreachable(RuntimeError):
    """A worker cannot read the storage the client wrote to."""


# =========================================================================== storage URLs
def join(url: str | Path, *names: str) -> str:
    """``url/name/...`` for a folder path or any fsspec URL (``s3://b/p``), as a string."""
    out = str(url).rstrip("/")
    for n in names:
        out = f"{out}/{n}"
    return out


def filesystem(url: str | Path):
    """``(fs, path)``: the fsspec filesystem that holds ``url`` and the path within it (resolved
    here, in this process: pass ``url`` itself to tasks, never ``path``)."""
    import fsspec

    return fsspec.core.url_to_fs(str(url))


_fs = filesystem


def default_storage() -> str:
    """``$EMBEDLAB_STORAGE``, or a new local folder (what a ``LocalCluster``'s workers share)."""
    import tempfile

    return os.environ.get(STORAGE_ENV) or tempfile.mkdtemp(prefix="embedlab-storage-")


def _read_probe(url: str, token: str) -> str:
    """Runs on a worker: read the probe the client wrote."""
    fs, path = _fs(url)
    with fs.open(path, "rb") as f:
        got = f.read().decode()
    if got != token:
        raise StorageUnreachable(f"read {got!r} from {url}, expected the client's {token!r}")
    return _worker_name()


def check_storage(client, url: str | Path, timeout: float = 30.0) -> dict[str, str]:
    """Write a token through the client to ``url`` and read it on every worker.

    Returns ``{worker address: its name}``. A worker that cannot read it (another machine, a
    folder it cannot see, no credentials) raises ``StorageUnreachable`` naming the worker, what
    it got, and the fix; a worker that does not answer within ``timeout`` seconds likewise.
    """
    from distributed import wait

    token = uuid.uuid4().hex
    probe = join(url, f".probe-{token[:12]}")
    fs, path = _fs(probe)
    fs.makedirs(fs._parent(path), exist_ok=True)
    with fs.open(path, "wb") as f:
        f.write(token.encode())
    try:
        addrs = workers(client)
        if not addrs:
            raise StorageUnreachable("the cluster has no workers")
        futs = {client.submit(_read_probe, probe, token, workers=[a], allow_other_workers=False,
                              pure=False, key=f"probe-{token[:8]}-{i}"): a
                for i, a in enumerate(addrs)}
        done, _ = wait(list(futs), timeout=timeout, return_when="ALL_COMPLETED")
        names = client.scheduler_info(n_workers=-1)["workers"]
        problems, ok = [], {}
        for fut, addr in futs.items():
            name = names.get(addr, {}).get("name", addr)
            if fut not in done:
                problems.append(f"worker {name} ({addr}) did not answer within {timeout:g} s")
            elif fut.status == "error":
                exc = fut.exception()
                problems.append(f"worker {name} ({addr}) cannot read {probe}: "
                                f"{type(exc).__name__}: {exc}")
            else:
                ok[addr] = str(name)
        for fut in futs:
            fut.cancel()
        if problems:
            raise StorageUnreachable("; ".join(problems) + ". " + STORAGE_FIX)
        return ok
    finally:
        fs.rm(path)


# =========================================================================== the cluster
class _PinThreads:
    """Worker plugin: one thread of BLAS, OpenMP, numba and torch in every worker process."""

    name = "embedlab-pin-threads"

    def setup(self, worker=None) -> None:
        pin_threads()


def _pin_plugin():
    from distributed.diagnostics.plugin import WorkerPlugin

    class PinThreads(_PinThreads, WorkerPlugin):
        pass

    return PinThreads()


def pin_threads() -> None:
    """One thread for BLAS/OpenMP (``threadpoolctl``, for libraries already loaded; the
    environment for those loaded later and for child processes) and for torch if loaded."""
    for key, value in THREAD_ENV.items():
        os.environ[key] = value
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def thread_report() -> dict[str, Any]:
    """This process's thread settings (run on workers with ``client.run``)."""
    from threadpoolctl import threadpool_info

    pools = threadpool_info()
    torch_threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "blas_threads": max((p["num_threads"] for p in pools), default=None),
            "torch_threads": torch_threads}


def dask_setup(worker) -> None:
    """``dask worker --preload embedlab.scale``: pin threads as the worker starts."""
    pin_threads()


def start_client(n_workers: int = 2, address: str | None = None, timeout: float = 8.0,
                 **cluster_kwargs: Any):
    """A ``dask.distributed.Client``: to ``address`` (or ``$EMBEDLAB_DASK_SCHEDULER``) if given,
    else to a fresh ``LocalCluster`` of ``n_workers`` processes, one thread each. Either way the
    ``PinThreads`` plugin pins one thread in every worker, now and as workers join.

    Connecting to an unreachable scheduler fails after ``timeout`` seconds with a
    ``ConnectionError`` naming the address. ``close_client(client)`` shuts a local cluster down.
    """
    from distributed import Client, LocalCluster

    address = address or os.environ.get(SCHEDULER_ENV) or None
    if address is not None:
        if not isinstance(address, str) or "://" not in address:
            raise ValueError(f"address must look like 'tcp://host:port', got {address!r}")
        try:
            client = Client(address, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"no Dask scheduler answered at {address} within "
                                  f"{timeout:g} s ({type(exc).__name__})") from exc
    else:
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
            raise ValueError(f"n_workers must be an int >= 1, got {n_workers!r}")
        for key, value in THREAD_ENV.items():  # inherited by the spawned workers
            os.environ.setdefault(key, value)
        kwargs = {"threads_per_worker": 1, "processes": True, "dashboard_address": None,
                  "env": dict(THREAD_ENV), **cluster_kwargs}
        client = Client(LocalCluster(n_workers=n_workers, **kwargs))
    client.register_plugin(_pin_plugin(), name=_PinThreads.name)
    return client


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


def worker_model(device: str | None = None):
    """MiniLM for this process, loaded on first use and cached (one load per worker)."""
    global _LOADS
    from embedlab.encoders import default_device

    key = device or default_device()
    if key not in _MODELS:
        from embedlab.encoders import load_minilm

        pin_threads()
        import torch

        torch.set_num_threads(1)
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


def part_path(folder: str | Path, part: int) -> str:
    """The URL of part ``part`` under ``folder``."""
    return join(folder, f"part-{part:05d}.parquet")


def part_id(path: str | Path) -> int:
    name = str(path).rstrip("/").rsplit("/", 1)[-1]
    m = PART_RE.fullmatch(name)
    if not m:
        raise ValueError(f"{path}: expected a file named part-NNNNN.parquet")
    return int(m.group(1))


def list_parts(folder: str | Path) -> dict[int, str]:
    """``{part id: URL}`` of the finished parts under ``folder`` (temporary files are
    ignored); the URLs keep ``folder``'s own spelling, so a worker resolves them itself."""
    fs, path = _fs(folder)
    if not fs.isdir(path):
        return {}
    names = sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
    return {part_id(n): join(folder, n) for n in names if PART_RE.fullmatch(n)}


def write_atomic(table, url: str | Path) -> str:
    """Write a pyarrow ``table`` to ``url`` via a temporary name beside it, then a rename
    (``os.replace`` on a local disk, atomic on POSIX; an object store shows an object whole or
    not at all): readers see the whole part or none of it."""
    import pyarrow.parquet as pq

    fs, path = _fs(url)
    parent, name = path.rsplit("/", 1) if "/" in path else ("", path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.{name}.{uuid.uuid4().hex}.tmp" if parent else f".{name}.tmp"
    try:
        with fs.open(tmp, "wb") as f:
            pq.write_table(table, f)
        fs.mv(tmp, path)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)
    return str(url)


def write_text_partitions(texts: Sequence[str], folder: str | Path,
                          partition_size: int) -> list[str]:
    """Split ``texts`` into consecutive partitions of ``partition_size`` rows, written as
    ``part-NNNNN.parquet`` under ``folder`` (any fsspec URL) with columns ``id`` (global row
    number) and ``text``."""
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


def table_to_bytes(table) -> bytes:
    """A pyarrow table as Arrow IPC stream bytes (what a task ships)."""
    import pyarrow as pa

    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def table_from_bytes(data: bytes):
    import pyarrow as pa

    return pa.ipc.open_stream(data).read_all()


def _embed_table(table, batch_size: int, device: str | None,
                 encode: Callable[[list[str]], np.ndarray] | None):
    import pyarrow as pa

    texts = table.column("text").to_pylist()
    if encode is None:
        vecs = worker_model(device).encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                           normalize_embeddings=True, show_progress_bar=False)
    else:
        vecs = encode(texts)
    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    emb = pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), vecs.shape[1])
    return pa.table({"id": table.column("id"), "embedding": emb}), len(texts)


def embed_partition(in_url: str, out_dir: str, batch_size: int = 64,
                    device: str | None = None,
                    encode: Callable[[list[str]], np.ndarray] | None = None) -> dict[str, Any]:
    """The storage task: read one text partition from ``in_url``, embed it with this worker's
    MiniLM (or ``encode``, any picklable function from texts to an (n, d) array) and write its
    part under ``out_dir``. Skips the work when the part exists (resumable). Returns a small
    summary (partition id, rows, seconds, worker), never the vectors: they stay in storage."""
    import pyarrow.parquet as pq

    part = part_id(in_url)
    out = part_path(out_dir, part)
    fs, out_path = _fs(out)
    if fs.exists(out_path):
        return {"part": part, "n": 0, "seconds": 0.0, "cpu_seconds": 0.0, "skipped": True,
                "worker": _worker_name()}
    t0, c0 = time.perf_counter(), time.process_time()
    in_fs, in_path = _fs(in_url)
    with in_fs.open(in_path, "rb") as f:
        table = pq.read_table(f, columns=["id", "text"])
    result, n = _embed_table(table, batch_size, device, encode)
    write_atomic(result, out)
    return {"part": part, "n": n, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0, "skipped": False,
            "worker": _worker_name()}


def embed_bytes(data: bytes, part: int, batch_size: int = 64, device: str | None = None,
                encode: Callable[[list[str]], np.ndarray] | None = None) -> dict[str, Any]:
    """The shipping task: the partition arrives as Arrow IPC bytes and its part goes back the
    same way (``"table"``), for a cluster with no storage every worker reaches."""
    t0, c0 = time.perf_counter(), time.process_time()
    result, n = _embed_table(table_from_bytes(data), batch_size, device, encode)
    return {"part": part, "n": n, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0, "skipped": False,
            "worker": _worker_name(), "table": table_to_bytes(result)}


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:
        return "local"


def read_part(url: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, vectors)`` of one embedded part."""
    import pyarrow.parquet as pq

    fs, path = _fs(url)
    with fs.open(path, "rb") as f:
        table = pq.read_table(f)
    col = table.column("embedding").combine_chunks()
    dim = col.type.list_size
    vecs = col.values.to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32)
    return table.column("id").to_numpy().astype(np.int64), vecs


def read_embeddings(folder: str | Path,
                    parts: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All (or the listed) embedded parts under ``folder``, concatenated in id order."""
    found = list_parts(folder)
    if not found:
        raise ValueError(f"{folder}: no part-NNNNN.parquet files")
    chosen = sorted(found) if parts is None else list(parts)
    return read_embeddings_paths([found[p] for p in chosen])


def read_embeddings_paths(paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The parts at ``paths``, concatenated in id order."""
    pieces = [read_part(p) for p in paths]
    ids = np.concatenate([p[0] for p in pieces])
    vecs = np.concatenate([p[1] for p in pieces])
    order = np.argsort(ids, kind="stable")
    return ids[order], np.ascontiguousarray(vecs[order])


@dataclass
class EmbedRun:
    """What one run of the embedding job did."""

    done: list[int] = field(default_factory=list)      # parts embedded by this run
    skipped: list[int] = field(default_factory=list)   # parts already written, not resubmitted
    failed: dict[int, str] = field(default_factory=dict)  # part id -> last error
    n_docs: int = 0
    seconds: float = 0.0
    tasks: list[dict[str, Any]] = field(default_factory=list)
    n_workers: int = 0                                  # the workers the tasks were allowed on

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

    @property
    def workers_used(self) -> list[str]:
        """The workers that ran at least one task of this run."""
        return sorted({t["worker"] for t in self.tasks})


def embed_corpus(client, in_dir: str | Path, out_dir: str | Path, *, batch_size: int = 64,
                 device: str | None = None, retries: int = 2,
                 encode: Callable[[list[str]], np.ndarray] | None = None,
                 on_result: Callable[[int, int], None] | None = None,
                 restrict: Sequence[str] | None = None, ship: bool = False) -> EmbedRun:
    """Embed every text part under ``in_dir`` that ``out_dir`` lacks, one task per part.

    ``ship=False``: tasks get the parts' URLs and read and write the storage themselves (every
    worker must reach it: ``check_storage``). ``ship=True``: the client reads each input part
    and ships it inside its task as Arrow bytes, and writes the part the task sends back; the
    workers need no storage at all. ``retries``: how often a failing task is re-run before its
    part is reported in ``failed``. ``encode``: see ``embed_partition`` (None: MiniLM).
    ``on_result(done, total)`` is called after each finished task (the fault demo kills a worker
    from it). ``restrict``: the worker addresses allowed to run the tasks (all by default); a
    row "n workers" passes exactly n of them.
    """
    from distributed import as_completed

    inputs = list_parts(in_dir)
    if not inputs:
        raise ValueError(f"in_dir {in_dir}: no part-NNNNN.parquet files")
    written = list_parts(out_dir)
    allowed = list(restrict) if restrict else None
    run = EmbedRun(skipped=sorted(p for p in inputs if p in written),
                   n_workers=len(allowed) if allowed else len(workers(client)))
    todo = [p for p in sorted(inputs) if p not in written]
    opts = {"retries": retries, "workers": allowed, "allow_other_workers": False}
    t0 = time.perf_counter()
    futures = {}
    for p in todo:
        key = f"embed-part-{p:05d}-{uuid.uuid4().hex[:8]}"
        if ship:
            import pyarrow.parquet as pq

            fs, path = _fs(inputs[p])
            with fs.open(path, "rb") as f:
                data = table_to_bytes(pq.read_table(f, columns=["id", "text"]))
            fut = client.submit(embed_bytes, data, p, batch_size, device, encode, key=key,
                                **opts)
        else:
            fut = client.submit(embed_partition, inputs[p], str(out_dir), batch_size, device,
                                encode, key=key, **opts)
        futures[fut] = p
    for n, fut in enumerate(as_completed(futures, raise_errors=False), start=1):
        p = futures[fut]
        if fut.status == "error":
            exc = fut.exception()
            run.failed[p] = f"{type(exc).__name__}: {exc}"
        else:
            info = dict(fut.result())
            if "table" in info:
                write_atomic(table_from_bytes(info.pop("table")), part_path(out_dir, p))
            if info["skipped"]:  # re-run after its worker died, the part already written
                import pyarrow.parquet as pq

                fs, path = _fs(part_path(out_dir, p))
                with fs.open(path, "rb") as f:
                    info["n"] = pq.ParquetFile(f).metadata.num_rows
            run.tasks.append(info)
            run.done.append(p)
            run.n_docs += info["n"]
        if on_result is not None:
            on_result(n, len(futures))
    run.seconds = time.perf_counter() - t0
    run.done.sort()
    return run


def kill_worker(client, address: str, wait: float = 30.0) -> str:
    """Hard-kill (``os._exit``) the worker at ``address``: no clean-up, as a machine losing power.
    Its nanny starts a fresh process (a new address); the scheduler re-runs its lost tasks.
    Returns once the scheduler has noticed the loss (at most ``wait`` seconds)."""
    client.run(_exit_soon, workers=[address])
    deadline = time.perf_counter() + wait
    while address in workers(client) and time.perf_counter() < deadline:
        time.sleep(0.05)
    return address


def kill_a_busy_worker(client) -> str | None:
    """Hard-kill one worker that is running a task right now. Returns its address."""
    busy = [w for w, keys in client.processing().items() if keys]
    if not busy:
        return None
    return kill_worker(client, sorted(busy)[0], wait=0.0)


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


def save_template(template: Any, url: str | Path) -> str:
    """Write a template (``train_template``'s result) to ``url``: a shard rebuilt on any worker
    reads it from storage, like its parts."""
    import pickle

    fs, path = _fs(url)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "wb") as f:
        pickle.dump(template, f, protocol=pickle.HIGHEST_PROTOCOL)
    return str(url)


def load_template(url: str | Path) -> Any:
    import pickle

    fs, path = _fs(url)
    with fs.open(path, "rb") as f:
        return pickle.load(f)  # noqa: S301  (a file this module wrote)


class Shard:
    """One worker's IVF-PQ shard: the shared template plus its parts, with global ids.

    ``template`` is a template or the URL ``save_template`` wrote it to; ``paths`` the URLs of
    the shard's parts. Built from storage alone, so any worker can rebuild it.
    """

    def __init__(self, template: Any, paths: Sequence[str]) -> None:
        import copy

        if isinstance(template, (str, Path)):
            template = load_template(template)
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
        self.built_by = _worker_name()

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


def _index_bytes(shard: Shard) -> int:
    if shard.kind == "ours":
        return int(shard.index.nbytes)
    import faiss

    return int(faiss.serialize_index(shard.index).nbytes)


def _shard_info(shard: Shard) -> dict[str, Any]:
    return {"ntotal": shard.ntotal, "nbytes": shard.nbytes, "build_seconds": shard.build_seconds,
            "bytes_per_vector": shard.bytes_per_vector, "worker": _worker_name(),
            "built_by": shard.built_by}


def _search_shard(shard: Shard, q: np.ndarray, k: int, nprobe: int):
    return shard.search(q, k, nprobe)


def assign_parts(parts: Sequence[int], n_shards: int) -> list[list[int]]:
    """Contiguous, nearly equal blocks of part ids, one block per shard."""
    parts = sorted(parts)
    bounds = np.linspace(0, len(parts), n_shards + 1).round().astype(int)
    return [parts[bounds[s]:bounds[s + 1]] for s in range(n_shards)]


@dataclass
class ShardSet:
    """The shards of one index: Dask futures, each first built on ``placed[s]`` from the
    template and parts at ``template`` and ``parts[s]`` (URLs: the shard's recipe);
    ``holders`` says where each one lives now, and ``rebuilt`` lists the shards rebuilt after
    their worker died."""

    futures: list
    placed: list[str]
    template: str
    parts: list[list[str]]
    rebuilt: list[int] = field(default_factory=list)

    def holders(self, client) -> list[str]:
        """The worker that holds each shard now (``""`` while it is being rebuilt)."""
        who = client.who_has(self.futures)
        return [sorted(who.get(f.key, ()) or [""])[0] for f in self.futures]

    def ensure(self, client) -> list[int]:
        """Rebuild, on any live worker, every shard that no worker holds (its worker died):
        a new task from the same recipe, with no placement. Dask would recompute a lost shard
        itself, but a task placed on a worker that no longer exists can wait for ever once
        every worker it could fall back on was gone at the moment of the loss. Returns the
        shards resubmitted."""
        who = client.who_has(self.futures)
        redo = [s for s, f in enumerate(self.futures) if not who.get(f.key)]
        for s in redo:
            self.futures[s] = client.submit(Shard, self.template, self.parts[s], pure=False,
                                            key=f"shard-{s}-{uuid.uuid4().hex[:8]}")
        self.rebuilt += redo
        return redo


def build_shards(client, emb_dir: str | Path, template: Any,
                 n_shards: int | None = None) -> ShardSet:
    """One shard per worker (or ``n_shards``), built on that worker from its block of parts:
    only URLs travel. The template is saved beside the parts, so a shard's recipe reads
    everything from storage, and a shard may be rebuilt on any worker (``allow_other_workers``)
    if its own dies. Waits until every shard is built."""
    found = list_parts(emb_dir)
    if not found:
        raise ValueError(f"{emb_dir}: no embedded parts")
    addrs = workers(client)
    n = len(addrs) if n_shards is None else n_shards
    turl = template if isinstance(template, (str, Path)) else \
        save_template(template, join(emb_dir, "_shards", f"template-{uuid.uuid4().hex[:8]}.pkl"))
    futures, blocks = [], []
    for s, block in enumerate(assign_parts(list(found), n)):
        paths = [found[p] for p in block]
        futures.append(client.submit(Shard, str(turl), paths, workers=[addrs[s % len(addrs)]],
                                     allow_other_workers=True, pure=False,
                                     key=f"shard-{s}-{uuid.uuid4().hex[:8]}"))
        blocks.append(paths)
    client.gather(futures)  # wait until every shard is built (raises if one failed)
    return ShardSet(futures, [addrs[s % len(addrs)] for s in range(n)], str(turl), blocks)


def shard_infos(client, shards: ShardSet) -> list[dict[str, Any]]:
    """Each shard's size, bytes, build time and worker."""
    return client.gather([client.submit(_shard_info, f, pure=False) for f in shards.futures])


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
                   largest: bool = True, timeout: float = 300.0
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Scatter ``q`` to every shard, gather each shard's top k, heap-merge on the client.

    Each search task runs where its shard lives (Dask moves the task to the data); a shard
    being rebuilt after its worker died is waited for. Returns ``(D, I, timings)`` with the wall
    time, the slowest shard's search time and the merge time, in seconds. Gives up after
    ``timeout`` seconds with a ``TimeoutError``.
    """
    from embedlab.index.base import check_int

    k = check_int(k, "k")
    q = np.ascontiguousarray(q, dtype=np.float32)
    if q.ndim != 2:
        raise ValueError(f"q must be 2-D (nq, dim), got shape {q.shape}")
    t0 = time.perf_counter()
    got = _gather_within(client, shards, q, k, nprobe, timeout)
    t1 = time.perf_counter()
    D, I = merge_shard_results([(d, i) for d, i, _ in got], k, largest=largest)  # noqa: E741
    t2 = time.perf_counter()
    return D, I, {"wall": t2 - t0, "slowest_shard": max(s for _, _, s in got),
                  "merge": t2 - t1}


def _gather_within(client, shards: ShardSet, q, k, nprobe, timeout: float, step: float = 5.0):
    """Search every shard. A shard future that is not ``finished`` lost its worker: rebuild the
    shards no worker holds (``ShardSet.ensure``) first; and every ``step`` seconds without an
    answer, check again and ask again, until ``timeout``."""
    from distributed import wait

    deadline = time.perf_counter() + timeout
    while True:
        if any(f.status != "finished" for f in shards.futures):   # a shard was lost
            shards.ensure(client)
        futs = [client.submit(_search_shard, f, q, k, nprobe, pure=False)
                for f in shards.futures]
        try:
            wait(futs, timeout=max(0.1, min(step, deadline - time.perf_counter())))
            return client.gather(futs)
        except TimeoutError:
            if time.perf_counter() >= deadline:
                raise TimeoutError(f"the shards did not answer within {timeout:g} s") from None


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each query's true k nearest ids found in its first k results."""
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth,
                                                                            strict=True)]
    return float(np.mean(hits) / k)


# =========================================================================== a cluster check
def check_cluster(client, storage: str | Path, timeout: float = 30.0) -> dict[str, Any]:
    """What ``python -m embedlab.scale check`` runs: every worker reads the storage
    (``check_storage``), every worker's threads are pinned, and a small job runs through the
    storage: partitions embedded by the hashing encoder on every worker, a sharded IVF-PQ
    index built from them, one shard's worker killed, the same answer after the rebuild."""
    names = check_storage(client, storage, timeout)
    threads = client.run(thread_report)
    texts = [f"sentence {i} about topic {i % 7} and word{i % 11}" for i in range(240)]
    root = join(storage, f"check-{uuid.uuid4().hex[:8]}")
    write_text_partitions(texts, join(root, "in"), 20)
    run = embed_corpus(client, join(root, "in"), join(root, "out"), encode=hashing_encoder)
    _, x = read_embeddings(join(root, "out"))
    shards = build_shards(client, join(root, "out"), train_template(x, nlist=8, m=8, nbits=4))
    q = x[:5]
    before = sharded_search(client, shards, q, 10, nprobe=8)[:2]
    victim = shards.holders(client)[0]
    kill_worker(client, victim)
    after = sharded_search(client, shards, q, 10, nprobe=8)[:2]
    fs, path = _fs(root)
    fs.rm(path, recursive=True)
    return {"workers": names, "threads": threads, "parts": len(run.done),
            "workers used": run.workers_used, "failed": run.failed,
            "killed shard worker": victim,
            "identical after rebuild": bool(np.array_equal(before[1], after[1])
                                            and np.array_equal(before[0], after[0]))}


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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m embedlab.scale check [--storage URL] [--timeout S]``: connect to
    ``$EMBEDLAB_DASK_SCHEDULER`` (a local cluster without it) and run ``check_cluster``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m embedlab.scale")
    ap.add_argument("command", choices=["check"])
    ap.add_argument("--storage", default=None, help=f"a URL every worker reaches "
                                                     f"(default: ${STORAGE_ENV})")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args(argv)
    client = start_client()
    t0 = time.perf_counter()
    try:
        out = check_cluster(client, args.storage or default_storage(), args.timeout)
    except StorageUnreachable as exc:
        print(f"storage check failed after {time.perf_counter() - t0:.1f} s: {exc}",
              file=sys.stderr, flush=True)
        return 2
    finally:
        close_client(client)
    for addr, name in out["workers"].items():
        t = out["threads"].get(addr, {})
        print(f"worker {name} ({addr}): reads the storage; OMP_NUM_THREADS="
              f"{t.get('OMP_NUM_THREADS')}, BLAS threads {t.get('blas_threads')}")
    print(f"embedded {out['parts']} parts on {len(out['workers used'])} workers, failed: "
          f"{out['failed'] or 'none'}")
    print(f"shard worker killed: identical={out['identical after rebuild']}")
    return 0 if out["identical after rebuild"] and not out["failed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
