"""Hybrid search inside the engines (pgvector: tsvector + HNSW fused in one SQL statement;
sqlite-vec: FTS5 bm25 + vec0 in one statement; LanceDB: its full-text index and RRF reranker),
and the quantised indexes: pgvector's halfvec, binary with re-ranking and IVFFlat next to HNSW,
and Qdrant's quantisation config in local mode."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab import vectordb as V

N, D = 1_500, 32
FIELDS = {"source": str, "text": str}
WORDS = ["river", "market", "league", "storm", "budget", "vote", "court", "film", "trade"]


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    srv, folder = V.start_pgserver(tmp_path_factory.mktemp("pg"))
    yield srv
    V.stop_pgserver(srv, folder)


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, D)).astype(np.float32)
    q = rng.standard_normal((8, D)).astype(np.float32)
    texts = [" ".join(rng.choice(WORDS, 6)) for _ in range(N)]
    return x, q, texts


def _hybrid_store(engine, tmp_path, pg):
    if engine == "pgvector":
        return V.PgVectorStore(dsn=pg.get_uri(), table="docs", fields=FIELDS, text_field="text")
    if engine == "sqlite-vec":
        return V.SqliteVecAdapter(tmp_path / "docs.db", fields=FIELDS, text_field="text")
    return V.LanceStore(tmp_path / "lance", fields=FIELDS, text_field="text")


@pytest.mark.parametrize("engine", ["pgvector", "sqlite-vec", "lancedb"])
def test_hybrid_finds_a_document_only_its_text_matches(engine, tmp_path, pg, corpus):
    x, q, texts = corpus
    planted = 1234
    texts = list(texts)
    texts[planted] = "zanzibar harbour ferry timetable"
    store = _hybrid_store(engine, tmp_path, pg).create(D, "cosine")
    store.upsert(range(N), x, {"source": ["s"] * N, "text": texts})
    store.build_index()
    far = -x[planted]                      # the planted row is the farthest from this query
    _, dense = store.search(far, 10)
    assert planted not in dense[0]
    scores, ids = store.hybrid_search("Zanzibar ferries?", far, 10)
    assert planted in ids.tolist()
    assert ids.shape == (10,) and (ids >= 0).all() and (np.diff(scores) <= 1e-12).all()
    # a text that matches nothing leaves the vector ranking: the same ids as search()
    _, only_vec = store.hybrid_search("qwertyuiop", far, 10)
    assert set(only_vec.tolist()) == set(dense[0].tolist())
    with pytest.raises(TypeError, match="text"):
        store.hybrid_search(None, far, 10)
    with pytest.raises(ValueError, match="rrf_k"):
        store.hybrid_search("x", far, 10, rrf_k=-1)
    store.close()


def test_sqlite_hybrid_equals_python_rrf_of_its_two_lists(tmp_path, corpus):
    x, q, texts = corpus
    store = _hybrid_store("sqlite-vec", tmp_path, None).create(D, "cosine")
    store.upsert(range(N), x, {"source": ["s"] * N, "text": texts})
    depth = 40
    for row in q[:4]:
        text = "storm budget court"
        lex = [r[0] for r in store.conn.execute(
            "SELECT rowid FROM items_fts WHERE items_fts MATCH ? ORDER BY rank LIMIT ?",
            ('"storm" OR "budget" OR "court"', depth)).fetchall()]
        vec = store.search(row, depth)[1][0].tolist()
        want = V.reciprocal_rank_fusion([lex, vec], k=60, top=10)
        scores, ids = store.hybrid_search(text, row, 10, depth=depth)
        assert ids.tolist() == [i for i, _ in want]
        np.testing.assert_allclose(scores, [s for _, s in want], rtol=1e-9)
    store.close()


def test_hybrid_needs_a_text_field_and_an_engine_with_full_text(tmp_path, corpus):
    x, q, _ = corpus
    plain = V.SqliteVecAdapter(tmp_path / "p.db", fields={"source": str}).create(D)
    with pytest.raises(ValueError, match="text_field"):
        plain.hybrid_search("storm", q[0], 5)
    plain.close()
    faiss_store = V.FaissStore(fields={"source": str}).create(D)
    with pytest.raises(NotImplementedError, match="pgvector, sqlite-vec and lancedb"):
        faiss_store.hybrid_search("storm", q[0], 5)
    with pytest.raises(ValueError, match="text_field"):
        V.SqliteVecAdapter(tmp_path / "q.db", fields={"n": int}, text_field="n")


def test_pgvector_quantised_indexes(pg, corpus):
    x, q, _ = corpus
    base = V.PgVectorStore(dsn=pg.get_uri(), table="quant", fields={"source": str})
    base.create(D, "cosine")
    base.upsert(range(N), x, {"source": ["s"] * N})
    base.build_index()
    want = np.argsort(-(q / np.linalg.norm(q, axis=1, keepdims=True))
                      @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T, axis=1)[:, :10]
    opts = {"fields": {"source": str}, "dsn": pg.get_uri(), "table": "quant",
            "complete_short": False, "record_plans": True, "plan": "index"}
    stores = {"hnsw": base,
              "halfvec": V.PgVectorStore(index="halfvec", **opts).attach(D),
              "binary": V.PgVectorStore(index="binary", rerank=100, **opts).attach(D),
              "ivfflat": base.copy_table("quant_ivf", index="ivfflat", lists=20, probes=20,
                                         complete_short=False, record_plans=True,
                                         plan="index")}
    sizes, recall = {}, {}
    for name, s in stores.items():
        assert s.exact if name != "hnsw" else not s.exact
        if name != "hnsw":
            s.build_index()
        sizes[name] = s.index_bytes()
        _, ids = s.search(q, 10)
        assert (ids >= 0).all()
        recall[name] = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, want,
                                                                         strict=True)])
        if name != "hnsw":
            assert all(f"({s.index_name})" in p for p in s.plans), (name, s.plans)
    assert sizes["binary"] < sizes["halfvec"] < sizes["hnsw"]
    assert recall["hnsw"] >= 0.9 and recall["halfvec"] >= 0.9
    assert recall["ivfflat"] >= 0.999          # every list probed: exact
    assert recall["binary"] >= 0.5             # 1 bit a dimension, re-ranked from 100
    short = V.PgVectorStore(index="binary", rerank=10, **opts).attach(D)
    _, few = short.search(q, 10)
    narrow = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(few, want, strict=True)])
    assert narrow < recall["binary"]           # a shorter shortlist re-ranks less
    for s in (*stores.values(), short):
        s.close()


def test_qdrant_local_mode_drops_quantisation(corpus):
    x, q, _ = corpus
    plain = V.QdrantStore(None, fields={"source": str}).create(D)
    scalar = V.QdrantStore(None, fields={"source": str}, quantization="scalar").create(D)
    for s in (plain, scalar):
        s.upsert(range(N), x, {"source": ["s"] * N})
    assert plain.quantization_config() is None and scalar.quantization_config() is None
    a, b = plain.search(q, 10), scalar.search(q, 10)
    assert (a[1] == b[1]).all() and np.array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="quantization"):
        V.QdrantStore(None, quantization="pq")
