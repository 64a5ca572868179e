"""embedlab.scale: the heap merge of shard results, the atomic resumable writer, the storage
probe, faults on a real two-worker Dask cluster (a killed worker, a corrupt partition, a killed
shard worker, an unreachable scheduler), tasks that ship bytes instead of paths, worker-count
rows that use the workers they name, and sharded IVF-PQ search equal to the single index. A
hashing encoder stands in for MiniLM so the cluster tests need no model."""

import functools
import inspect
import time

import numpy as np
import pytest

from embedlab import scale

TEXTS = [f"sentence number {i} about topic {i % 7} and word{i % 13}" for i in range(96)]


@pytest.fixture(scope="module")
def client():
    c = scale.start_client(2)
    yield c
    scale.close_client(c)


# ----------------------------------------------------------------------------- the merge
def _brute(results, k):
    d = np.concatenate([r[0] for r in results], axis=1)
    i = np.concatenate([r[1] for r in results], axis=1)
    out = []
    for row_d, row_i in zip(d, i, strict=True):
        keep = row_i >= 0
        pairs = sorted(zip((-row_d[keep]).tolist(), row_i[keep].tolist(), strict=True))[:k]
        out.append([p[1] for p in pairs] + [-1] * (k - len(pairs)))
    return np.array(out)


def test_merge_matches_a_global_sort_and_pads_with_minus_one() -> None:
    rng = np.random.default_rng(0)
    results, next_id = [], 0
    for size in (5, 3, 8):  # shards of different sizes, each padded to its own k_s = 6
        scores = np.sort(rng.normal(size=(4, min(size, 6))), axis=1)[:, ::-1]
        ids = np.arange(next_id, next_id + scores.shape[1])[None].repeat(4, 0)
        pad = 6 - scores.shape[1]
        results.append((np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf),
                        np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)))
        next_id += size
    for k in (1, 4, 15, 20):  # 20 > the 15 results that exist: padded with -1
        D, I = scale.merge_shard_results(results, k)  # noqa: E741
        assert np.array_equal(I, _brute(results, k))
        found = min(k, 15)
        assert np.all(np.diff(D[:, :found], axis=1) <= 0)  # best first
    assert (I[:, 15:] == -1).all() and np.isneginf(D[:, 15:]).all()


# ----------------------------------------------------------------------------- the writer
def test_partitions_round_trip_and_atomic_write_leaves_no_part(tmp_path, monkeypatch) -> None:
    paths = scale.write_text_partitions(TEXTS, tmp_path / "in", 40)
    assert [scale.part_id(p) for p in paths] == [0, 1, 2]
    info = scale.embed_partition(paths[1], str(tmp_path / "out"), encode=scale.hashing_encoder)
    assert info["n"] == 40 and not info["skipped"]
    ids, vecs = scale.read_embeddings(tmp_path / "out")
    assert np.array_equal(ids, np.arange(40, 80))
    assert np.allclose(vecs, scale.hashing_encoder(TEXTS[40:80]))
    # a second call skips the written part (resumable)
    assert scale.embed_partition(paths[1], str(tmp_path / "out"),
                                 encode=scale.hashing_encoder)["skipped"]

    # a writer that dies mid-write leaves neither a part nor a temporary file
    import pyarrow.parquet as pq

    def dying(table, where):
        where.write(b"half a file")
        raise OSError("disk gone")

    monkeypatch.setattr(pq, "write_table", dying)
    with pytest.raises(OSError):
        scale.embed_partition(paths[2], str(tmp_path / "out"), encode=scale.hashing_encoder)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part-00001.parquet"]
    # a stray temporary file (a killed process) is not taken for a part
    (tmp_path / "out" / ".part-00002.parquet.abc.tmp").write_bytes(b"x")
    assert list(scale.list_parts(tmp_path / "out")) == [1]


def test_urls_work_through_fsspec(tmp_path) -> None:
    url = f"file://{tmp_path}/store"
    scale.write_text_partitions(TEXTS, scale.join(url, "in"), 50)
    found = scale.list_parts(scale.join(url, "in"))
    assert list(found) == [0, 1] and all(u.startswith("file://") for u in found.values())
    info = scale.embed_partition(found[0], scale.join(url, "out"), encode=scale.hashing_encoder)
    assert info["n"] == 50
    assert (tmp_path / "store" / "out" / "part-00000.parquet").exists()
    data = scale.table_to_bytes(__import__("pyarrow").table({"id": [1], "text": ["a b"]}))
    assert scale.table_from_bytes(data).column("text").to_pylist() == ["a b"]


def test_bad_input_is_rejected(tmp_path) -> None:
    with pytest.raises(ValueError, match="partition_size"):
        scale.write_text_partitions(TEXTS, tmp_path, 0)
    with pytest.raises(TypeError, match="texts"):
        scale.write_text_partitions("not a list", tmp_path, 3)
    with pytest.raises(ValueError, match="part-NNNNN"):
        scale.part_id("notes.txt")
    with pytest.raises(ValueError, match="address"):
        scale.start_client(address="localhost:8786")


def test_unreachable_scheduler_fails_fast_naming_the_address(monkeypatch) -> None:
    monkeypatch.setenv(scale.SCHEDULER_ENV, "tcp://127.0.0.1:9")
    assert inspect.signature(scale.start_client).parameters["timeout"].default < 10
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"tcp://127\.0\.0\.1:9"):
        scale.start_client(timeout=3)
    assert time.perf_counter() - t0 < 10


# ----------------------------------------------------------------------------- the cluster
def test_storage_probe_and_pinned_threads(client, tmp_path) -> None:
    names = scale.check_storage(client, tmp_path / "shared")
    assert sorted(names) == scale.workers(client)
    assert not list((tmp_path / "shared").iterdir())            # the probe is removed
    report = client.run(scale.thread_report)
    assert all(r["OMP_NUM_THREADS"] == "1" and r["blas_threads"] == 1 for r in report.values())
    # the client's in-memory filesystem is a storage no worker reaches (another process)
    t0 = time.perf_counter()
    with pytest.raises(scale.StorageUnreachable) as err:
        scale.check_storage(client, "memory://embedlab-client-only", timeout=30)
    assert time.perf_counter() - t0 < 30
    for addr in scale.workers(client):
        assert addr in str(err.value)
    assert "EMBEDLAB_STORAGE" in str(err.value) and "FileNotFoundError" in str(err.value)


def test_rows_use_the_workers_they_name_and_shipping_bytes_matches(client, tmp_path) -> None:
    scale.write_text_partitions(TEXTS, tmp_path / "in", 12)
    addrs = scale.workers(client)
    one = scale.embed_corpus(client, tmp_path / "in", tmp_path / "one",
                             encode=scale.hashing_encoder, restrict=addrs[:1])
    assert one.n_workers == 1 and one.workers_used == addrs[:1]
    two = scale.embed_corpus(client, tmp_path / "in", tmp_path / "two",
                             encode=functools.partial(scale.hashing_encoder, seconds=0.2),
                             restrict=addrs[:2])
    assert two.n_workers == 2 and two.workers_used == addrs[:2]
    shipped = scale.embed_corpus(client, tmp_path / "in", tmp_path / "shipped",
                                 encode=scale.hashing_encoder, ship=True)
    assert shipped.done == list(range(8)) and all("table" not in t for t in shipped.tasks)
    a = scale.read_embeddings(tmp_path / "one")
    b = scale.read_embeddings(tmp_path / "shipped")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_resume_corrupt_partition_and_killed_worker(client, tmp_path) -> None:
    scale.write_text_partitions(TEXTS, tmp_path / "in", 8)  # 12 partitions
    slow = functools.partial(scale.hashing_encoder, seconds=0.25)
    clean = scale.embed_corpus(client, tmp_path / "in", tmp_path / "clean", encode=slow)
    assert clean.done == list(range(12)) and not clean.failed and clean.n_docs == 96
    again = scale.embed_corpus(client, tmp_path / "in", tmp_path / "clean", encode=slow)
    assert again.done == [] and again.skipped == list(range(12))

    killed = []

    def kill_once(done, total):
        if not killed and done >= 2:
            killed.append(scale.kill_a_busy_worker(client))

    hit = scale.embed_corpus(client, tmp_path / "in", tmp_path / "hit", encode=slow,
                             on_result=kill_once)
    assert killed and killed[0] is not None
    assert hit.done == list(range(12)) and not hit.failed
    a, b = scale.read_embeddings(tmp_path / "clean"), scale.read_embeddings(tmp_path / "hit")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])

    (tmp_path / "in" / "part-00005.parquet").write_bytes(b"not parquet")
    bad = scale.embed_corpus(client, tmp_path / "in", tmp_path / "bad", retries=1,
                             encode=scale.hashing_encoder)
    assert list(bad.failed) == [5] and bad.failed[5]  # reported by id, with its error
    assert bad.done == [p for p in range(12) if p != 5]


def _vector_parts(folder, x):
    import pyarrow as pa

    for p in range(6):
        rows = slice(200 * p, 200 * (p + 1))
        emb = pa.FixedSizeListArray.from_arrays(pa.array(x[rows].ravel()), x.shape[1])
        scale.write_atomic(pa.table({"id": np.arange(len(x))[rows], "embedding": emb}),
                           scale.part_path(folder, p))


def test_sharded_search_equals_the_single_index(client, tmp_path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1200, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:25] + 0.1 * rng.normal(size=(25, 32)).astype(np.float32)
    _vector_parts(tmp_path, x)
    truth = np.argsort(-(q @ x.T), axis=1)[:, :10]
    for kind in ("ours", "faiss"):
        tmpl = scale.train_template(x, kind, nlist=16, m=8, nbits=6)
        shards = scale.build_shards(client, tmp_path, tmpl)
        assert [i["ntotal"] for i in scale.shard_infos(client, shards)] == [600, 600]
        D, I, timing = scale.sharded_search(client, shards, q, 10, nprobe=4)  # noqa: E741
        single = scale.Shard(tmpl, list(scale.list_parts(tmp_path).values()))
        Ds, Is, _ = single.search(q, 10, 4)
        assert np.allclose(D, Ds, atol=1e-5)  # the same scores, rank by rank
        if kind == "ours":  # ties broken by the lower id on both sides; faiss's order is its own
            assert np.array_equal(I, Is)
        assert abs(scale.recall_at_k(I, truth) - scale.recall_at_k(Is, truth)) < 0.01
        assert timing["slowest_shard"] <= timing["wall"]
        # k beyond a shard's size: what exists, then -1 (nprobe = nlist scans everything)
        _, Ik, _ = scale.sharded_search(client, shards, q[:2], 1300, nprobe=16)
        assert (Ik[:, :1200] >= 0).all() and (Ik[:, 1200:] == -1).all()


def test_a_shard_whose_worker_dies_is_rebuilt_and_answers_the_same(client, tmp_path) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1200, 32)).astype(np.float32)
    _vector_parts(tmp_path, x)
    shards = scale.build_shards(client, tmp_path, scale.train_template(x, nlist=16, m=8,
                                                                       nbits=6))
    before = scale.sharded_search(client, shards, x[:20], 10, nprobe=4)
    victim = shards.holders(client)[0]
    scale.kill_worker(client, victim)
    after = scale.sharded_search(client, shards, x[:20], 10, nprobe=4, timeout=120)
    assert np.array_equal(before[1], after[1]) and np.array_equal(before[0], after[0])
    infos = scale.shard_infos(client, shards)
    assert infos[0]["built_by"] != victim and victim not in scale.workers(client)
    assert [i["ntotal"] for i in infos] == [600, 600]
    # every worker dies at once: the shards are rebuilt on the workers that replace them
    everyone = scale.workers(client)
    for addr in everyone:
        scale.kill_worker(client, addr)
    again = scale.sharded_search(client, shards, x[:20], 10, nprobe=4, timeout=180)
    assert np.array_equal(before[1], again[1]) and np.array_equal(before[0], again[0])
    assert not set(everyone) & {i["built_by"] for i in scale.shard_infos(client, shards)}
