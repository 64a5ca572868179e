"""Failure modes: overlap and rank flips, quantised storage with re-scoring, the migration."""

import json

import numpy as np
import pytest

from embedlab import failure as F
from embedlab.index import FlatIndex


def _unit(rng, n, d):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_overlap_and_rank_flips_known_answers() -> None:
    a = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    b = np.array([[4, 3, 2, 9], [5, 6, 7, 8]])
    assert F.overlap_at_k(a, b, 4) == pytest.approx((3 + 4) / 8)
    assert F.overlap_at_k(a, b, 1) == 0.5
    # shared {2, 3, 4}: reference order 2 < 3 < 4, test order 4, 3, 2: all 3 pairs flip
    assert F.rank_flips(a, b, 4) == pytest.approx(3 / 2)
    assert F.rank_flips(a, a, 4) == 0.0
    assert F.overlap_at_k([[-1, -1]], [[-1, -1]], 2) == 0.0      # "no result" never matches
    with pytest.raises(ValueError, match="k"):
        F.overlap_at_k(a, b, 5)
    with pytest.raises(ValueError, match="ids_b"):
        F.overlap_at_k(a, b[:1], 2)
    with pytest.raises(TypeError, match="integer"):
        F.rank_flips(a.astype(float), b, 2)


def test_float32_storage_matches_faiss_style_flat_search() -> None:
    rng = np.random.default_rng(0)
    x, q = _unit(rng, 500, 16), _unit(rng, 20, 16)
    idx = F.QuantizedIndex(16, "float32")
    idx.add(x)
    flat = FlatIndex(16, metric="ip")
    flat.add(x)
    d, i = idx.search(q, 10)
    fd, fi = flat.search(q, 10)
    assert np.array_equal(i, fi) and np.allclose(d, fd, atol=1e-5)


@pytest.mark.parametrize("kind,bytes_per_dim,min_overlap,shortlist", [("float16", 2, 0.98, 50),
                                                                     ("int8", 1, 0.85, 100),
                                                                     ("binary", 1 / 8, 0.1, 1000)])
def test_quantised_kinds_size_accuracy_and_rescoring(kind, bytes_per_dim, min_overlap,
                                                     shortlist) -> None:
    rng = np.random.default_rng(1)
    x = _unit(rng, 3000, 64)
    q = x[:50] + 0.2 * _unit(rng, 50, 64)
    ref = F.QuantizedIndex(64, "float32")
    ref.add(x)
    _, exact = ref.search(q, 10)
    idx = F.QuantizedIndex(64, kind)
    idx.add(x)
    assert idx.nbytes == int(3000 * 64 * bytes_per_dim)
    _, approx = idx.search(q, 10)
    assert F.overlap_at_k(exact, approx, 10) >= min_overlap
    # re-scoring a shortlist with float32 recovers the exact answer (binary needs a long one)
    _, fixed = idx.search(q, 10, rescore=shortlist)
    assert F.overlap_at_k(exact, fixed, 10) >= 0.95
    assert F.overlap_at_k(exact, fixed, 10) >= F.overlap_at_k(exact, approx, 10)
    assert F.rank_flips(exact, fixed, 10) <= F.rank_flips(exact, approx, 10) + 1e-9


def test_binary_score_is_the_sign_vector_inner_product() -> None:
    rng = np.random.default_rng(2)
    x, q = rng.normal(size=(40, 20)).astype(np.float32), rng.normal(size=(3, 20)).astype(np.float32)
    idx = F.QuantizedIndex(20, "binary")
    idx.add(x)
    want = np.sign(q) @ np.sign(x).T
    assert np.array_equal(idx.scores(q), want.astype(np.float32))
    assert np.array_equal(idx.decode(idx.codes), np.sign(x))


def test_int8_reconstruction_error_is_below_half_a_step() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    idx = F.QuantizedIndex(8, "int8")
    idx.add(x)
    err = np.abs(idx.decode(idx.codes) - x)
    assert (err <= idx.scale / 2 + 1e-6).all()


def test_quantized_index_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="kind"):
        F.QuantizedIndex(8, "int4")
    idx = F.QuantizedIndex(8, "int8")
    with pytest.raises(ValueError, match="empty"):
        idx.search(np.ones((1, 8)), 1)
    idx.add(np.ones((5, 8)))
    with pytest.raises(ValueError, match="dim=8"):
        idx.search(np.ones((1, 7)), 1)
    with pytest.raises(ValueError, match="NaN"):
        idx.add(np.full((1, 8), np.nan))
    with pytest.raises(ValueError, match="rescore"):
        idx.search(np.ones((1, 8)), 1, rescore=-1)


def test_collection_upsert_overwrites_and_search_returns_doc_ids() -> None:
    c = F.VectorCollection("v1", 2, "m")
    c.upsert([10, 20], np.array([[1, 0], [0, 1]]))
    c.upsert([10, 30], np.array([[0.6, 0.8], [-1, 0]]))
    assert len(c) == 3 and 30 in c
    d, i = c.search(np.array([[1.0, 0.0]]), 4)
    assert i.tolist() == [[10, 20, 30, -1]] and d[0, 3] == -np.inf
    with pytest.raises(ValueError, match="dim=2"):
        c.upsert([1], np.ones((1, 3)))


def _toy(n_docs=120, seed=0):
    rng = np.random.default_rng(seed)
    r1, r2 = _unit(rng, n_docs, 16), _unit(rng, n_docs, 24)
    texts = [f"doc {i}" for i in range(n_docs)]
    calls = {"v1": 0, "v2": 0}

    def e1(ts):
        calls["v1"] += len(ts)
        return r1[[int(t.split()[1]) for t in ts]]

    def e2(ts):
        calls["v2"] += len(ts)
        return r2[[int(t.split()[1]) for t in ts]]

    return texts, e1, e2, calls


def test_backfill_is_resumable_from_its_checkpoint(tmp_path) -> None:
    texts, _, e2, calls = _toy()
    store = F.DocumentStore()
    for i, t in enumerate(texts):
        store.put(i, t)
    target = F.VectorCollection("docs_v2", 24, "v2")
    ck = tmp_path / "ck.json"
    first = F.Backfill(store, target, e2, ck, batch_size=25)
    assert first.run(max_batches=2, progress=False) == 2
    assert json.loads(ck.read_text())["cursor"] == 50
    resumed = F.Backfill(store, target, e2, ck, batch_size=25)   # a new process after a crash
    assert resumed.cursor == 50
    resumed.run(progress=False)
    assert resumed.done and len(target) == 120 and calls["v2"] == 120   # nothing embedded twice
    other = F.VectorCollection("docs_v3", 24, "v3")
    with pytest.raises(ValueError, match="checkpoint"):
        F.Backfill(store, other, e2, ck)


def test_cutover_refused_until_backfilled_and_rollback_restores_v1(tmp_path) -> None:
    texts, e1, e2, _ = _toy(40)
    store, aliases = F.DocumentStore(), F.Aliases()
    v1 = F.VectorCollection("docs_v1", 16, "v1")
    mig = F.Migration(store, aliases, "docs", v1, e1)
    for i in range(30):
        mig.write(i, texts[i])
    aliases.swap("docs", "docs_v1")
    mig.start(F.VectorCollection("docs_v2", 24, "v2"), e2)
    mig.write(30, texts[30])                       # dual write: lands in both
    assert 30 in v1 and 30 in mig.new
    with pytest.raises(ValueError, match="backfill"):
        mig.cutover()
    F.Backfill(store, mig.new, e2, tmp_path / "c.json").run(progress=False)
    mig.cutover()
    assert aliases.resolve("docs") == "docs_v2"
    mig.write(31, texts[31])                       # written after cutover: still dual
    mig.rollback()
    assert aliases.resolve("docs") == "docs_v1" and 31 in v1
    q1, q2 = e1([texts[31]]), e2([texts[31]])
    ids, served = mig.query(q1, q2, k=3)
    assert served == "docs_v1" and ids[0] == 31
    with pytest.raises(ValueError, match="non-empty"):
        mig.write(32, "  ")


def test_cross_model_queries_collapse_recall() -> None:
    texts, e1, e2, _ = _toy(200, seed=4)
    # v2' : "retrained" v1 (same dimension, different coordinates)
    rot = np.linalg.qr(np.random.default_rng(5).normal(size=(16, 16)))[0].astype(np.float32)
    docs = F.VectorCollection("v1", 16, "v1")
    docs.upsert(list(range(200)), e1(texts))
    own = docs.search(e1(texts), 10)[1]
    cross = docs.search(e1(texts) @ rot, 10)[1]
    gold = np.arange(200)[:, None]
    assert (own == gold).any(1).mean() == 1.0
    assert (cross == gold).any(1).mean() < 0.3


def test_simulated_migration_answers_every_query_and_is_deterministic(tmp_path) -> None:
    texts, e1, e2, _ = _toy(150, seed=6)
    queries = np.random.default_rng(7).integers(0, 10**6, size=300)
    kw = dict(n_initial=100, start_at=40, batch_size=16, crash_after=2, rollback_at=220,
              checkpoint=tmp_path / "ck.json", progress=False)
    out = F.simulate_migration(texts, queries, e1, e2, texts, **kw)
    again = F.simulate_migration(texts, queries, e1, e2, texts, **kw)
    log = out["log"]
    assert log == again["log"] or np.allclose(  # NaN overlaps compare unequal: check both ways
        [r["overlap"] for r in log], [r["overlap"] for r in again["log"]], equal_nan=True)
    assert [{k: v for k, v in r.items() if k != "overlap"} for r in log] == [
        {k: v for k, v in r.items() if k != "overlap"} for r in again["log"]]
    assert len(log) == 300 and all(r["answered"] for r in log)
    phases = [r["phase"] for r in log]
    assert phases[0] == "v1 only" and "dual write + backfill" in phases
    assert "after cutover" in phases and "rolled back" in phases
    assert phases[-1] == "after cutover"           # cut over again after the rollback
    # served by v1 until cutover; the crash did not cost a second embedding of any document
    first_cut = phases.index("after cutover")
    assert all(r["served_by"] == "docs_v1" for r in log[:first_cut])
    assert out["embedded_v2"] == 100 + sum(1 for t in range(1, 40) if t % 4 == 0)
    assert len(out["migration"].new) == 150
    assert all(r["hit"] for r in log)               # toy embedders: exact self-retrieval


def test_binary_and_float16_storage_match_faiss() -> None:
    import faiss

    rng = np.random.default_rng(8)
    x, q = _unit(rng, 400, 64), _unit(rng, 15, 64)
    # binary: our score is dim - 2 * hamming; faiss's IndexBinaryFlat returns hamming distances
    ours = F.QuantizedIndex(64, "binary")
    ours.add(x)
    ref = faiss.IndexBinaryFlat(64)
    ref.add(np.packbits(x > 0, axis=1))
    dist, _ = ref.search(np.packbits(q > 0, axis=1), 400)
    got = np.sort(ours.scores(q), axis=1)[:, ::-1]
    assert np.array_equal(got, 64 - 2 * dist.astype(np.float32))
    # float16: faiss's fp16 scalar quantiser stores the same values
    ours16 = F.QuantizedIndex(64, "float16")
    ours16.add(x)
    sq = faiss.IndexScalarQuantizer(64, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    sq.add(x)
    d_ref, i_ref = sq.search(q, 10)
    d_got, i_got = ours16.search(q, 10)
    assert np.allclose(d_got, d_ref, atol=1e-5)
    assert F.overlap_at_k(i_got, i_ref, 10) == 1.0


def test_partial_top_k_equals_a_stable_full_sort_with_ties() -> None:
    from embedlab.failure import _top_k

    rng = np.random.default_rng(11)
    for _ in range(100):
        scores = rng.integers(-3, 4, size=(4, int(rng.integers(1, 400)))).astype(np.float32)
        k = int(rng.integers(1, scores.shape[1] + 1))
        d, i = _top_k(scores, k)
        want = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        assert np.array_equal(i, want)
        assert np.array_equal(d, np.take_along_axis(scores, want, axis=1))


def test_overlap_per_query_averages_to_overlap_at_k() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 30, size=(40, 10))
    b = rng.integers(0, 30, size=(40, 10))
    per = F.overlap_per_query(a, b, 10)
    assert per.shape == (40,) and per.dtype == np.float64
    assert per.mean() == pytest.approx(F.overlap_at_k(a, b, 10))
    assert F.overlap_per_query([[1, 2, 3]], [[3, 2, 9]], 3).tolist() == [pytest.approx(2 / 3)]
    with pytest.raises(ValueError, match="ids_b"):
        F.overlap_per_query(a, b[:3], 10)


def test_window_spans_are_the_chunker_windows() -> None:
    from embedlab.text import chunk

    rng = np.random.default_rng(6)
    for _ in range(30):
        n = int(rng.integers(1, 400))
        size = int(rng.integers(1, 150))
        overlap = int(rng.integers(0, size))
        words = [f"w{i}" for i in range(n)]
        pieces = chunk(" ".join(words), size=size, overlap=overlap)
        spans = F.window_spans(n, size, overlap)
        assert [" ".join(words[a:b]) for a, b in spans] == pieces
    with pytest.raises(ValueError, match="overlap"):
        F.window_spans(100, 10, 10)
    with pytest.raises(TypeError, match="size"):
        F.window_spans(100, 10.0, 2)


def test_progress_bars_stay_quiet_in_executed_builds(monkeypatch) -> None:
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert F._quiet(True) and F._quiet(False)
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert not F._quiet(True) and F._quiet(False)
    monkeypatch.delenv("TQDM_DISABLE")
    assert not F._quiet(True)
