"""The benchmark helpers: datasets with exact ground truth, recall@k, sweeps side by side."""

import faiss
import numpy as np
import pytest

from embedlab import bench
from embedlab.index import FlatIndex, IVFIndex


def test_recall_at_k_known_answers():
    gt = np.array([[1, 2, 3], [4, 5, 6]])
    assert bench.recall_at_k(gt, gt, 3) == 1.0
    found = np.array([[1, 9, 3], [-1, -1, 4]])
    assert bench.recall_at_k(found, gt, 3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert bench.recall_at_k(found, gt, 1) == 0.5
    with pytest.raises(ValueError, match="k=4 needs at least k columns"):
        bench.recall_at_k(found, gt, 4)
    with pytest.raises(ValueError, match="same number of rows"):
        bench.recall_at_k(found[:1], gt, 2)
    with pytest.raises(ValueError, match="k must be >= 1"):
        bench.recall_at_k(found, gt, 0)


def test_glove_split_is_held_out_and_ground_truth_is_exact():
    ds = bench.load_dataset("glove", n_base=3000, n_query=100, gt_k=20, seed=1)
    assert ds.xb.shape == (3000, 50) and ds.xq.shape == (100, 50) and ds.gt.shape == (100, 20)
    np.testing.assert_allclose(np.linalg.norm(ds.xb, axis=1), 1.0, rtol=1e-5)
    # held out: no query is a base vector
    assert np.max(ds.xq @ ds.xb.T) < 1 - 1e-6
    sims = ds.xq @ ds.xb.T
    np.testing.assert_array_equal(ds.gt[:, 0], sims.argmax(1))
    again = bench.load_dataset("glove", n_base=3000, n_query=100, gt_k=20, seed=1)  # cached
    np.testing.assert_array_equal(again.gt, ds.gt)


def test_minilm_news_small_slice():
    ds = bench.load_dataset("minilm-news", n_base=900, n_query=100, gt_k=10)
    assert ds.xb.shape == (900, 384) and ds.dim == 384
    flat = faiss.IndexFlatIP(384)
    flat.add(ds.xb)
    np.testing.assert_array_equal(flat.search(ds.xq, 10)[1], ds.gt)


def test_sweep_rows_side_by_side():
    bench.one_thread()
    ds = bench.load_dataset("glove", n_base=2000, n_query=50, gt_k=10)

    def ours():
        idx = IVFIndex(ds.dim, nlist=16, metric="ip")
        idx.train(ds.xb)
        idx.add(ds.xb)
        return idx

    def theirs():
        idx = faiss.IndexIVFFlat(faiss.IndexFlatIP(ds.dim), ds.dim, 16,
                                 faiss.METRIC_INNER_PRODUCT)
        idx.train(ds.xb)
        idx.add(ds.xb)
        return idx

    grid = [{"nprobe": 1}, {"nprobe": 16}]
    rows = bench.sweep(ours, ds, grid, label="IVF") + bench.sweep(theirs, ds, grid,
                                                                  library="faiss", label="IVF")
    assert [r["library"] for r in rows] == ["embedlab"] * 2 + ["faiss"] * 2
    assert rows[1]["recall"] == pytest.approx(1.0) and rows[3]["recall"] == pytest.approx(1.0)
    assert rows[0]["recall"] < rows[1]["recall"]
    assert all(r["qps"] > 0 and r["build_s"] >= 0 for r in rows)
    assert rows[0]["bytes_per_vector"] >= 50 * 4
    df = bench.table(rows)
    assert list(df["params"]) == ["nprobe=1", "nprobe=16"] * 2


def test_flat_sweep_recall_is_one_and_bytes_are_the_vectors():
    ds = bench.load_dataset("glove", n_base=2000, n_query=50, gt_k=10)

    def build():
        idx = FlatIndex(ds.dim, metric="cosine")
        idx.add(ds.xb)
        return idx

    (row,) = bench.sweep(build, ds, k=10, repeats=1)  # ground truth: float64 numpy
    assert row["recall"] == 1.0 and row["bytes_per_vector"] == 200


def test_bad_input():
    with pytest.raises(ValueError, match="name must be one of"):
        bench.load_dataset("sift", 10)
    with pytest.raises(ValueError, match="n_base must be >= 1"):
        bench.load_dataset("glove", 0)
    with pytest.raises(ValueError, match="n_base \\+ n_query must be <= 400000"):
        bench.load_dataset("glove", 399_990, 100)


def test_exact_neighbours_is_independent_float64_and_matches_faiss():
    rng = np.random.default_rng(3)
    xb = rng.standard_normal((500, 16)).astype(np.float32)
    xq = rng.standard_normal((30, 16)).astype(np.float32)
    for metric, ref in (("ip", faiss.IndexFlatIP(16)), ("l2", faiss.IndexFlatL2(16))):
        ref.add(xb)
        got = bench.exact_neighbours(xb, xq, 5, metric=metric)
        np.testing.assert_array_equal(got, ref.search(xq, 5)[1])
    # ties: two identical base rows, the lower id comes first
    xb2 = np.vstack([xb[:3], xb[1:2]])
    assert list(bench.exact_neighbours(xb2, xb[1:2], 2, metric="ip")[0]) == [1, 3]
    with pytest.raises(ValueError, match="metric must be"):
        bench.exact_neighbours(xb, xq, 5, metric="hamming")


def test_measure_modes_interleave_and_report_latency():
    calls = []

    def slow(q):
        calls.append(("slow", q.shape[0]))
        sum(range(20_000))

    def fast(q):
        calls.append(("fast", q.shape[0]))

    xq = np.zeros((40, 4), np.float32)
    single = bench.measure({"slow": slow, "fast": fast}, xq, mode="single", repeats=3)
    assert single["slow"]["qps"] < single["fast"]["qps"]
    assert single["slow"]["median_ms"] <= single["slow"]["p99_ms"]
    assert all(n == 1 for _, n in calls)  # single mode: one query per call
    # warm-up 20 queries each, then 3 rounds of 40 with the order rotating
    timed = [name for name, _ in calls[40:]]
    firsts = [timed[0], timed[80], timed[160]]
    assert firsts == ["slow", "fast", "slow"]
    calls.clear()
    batch = bench.measure({"slow": slow, "fast": fast}, xq, mode="batch", repeats=3)
    assert [n for _, n in calls] == [20, 20] + [40] * 6
    assert set(batch["fast"]) >= {"qps", "median_ms", "p99_ms", "qps_spread"}
    with pytest.raises(ValueError, match="mode must be one of"):
        bench.measure({"fast": fast}, xq, mode="stream")
    with pytest.raises(ValueError, match="contenders"):
        bench.measure({}, xq)


def test_blas_setting_is_checked_not_assumed():
    import os
    import subprocess
    import sys

    info = bench.blas_info()
    assert {r["side"] for r in info} >= {"numpy", "faiss"}
    line = bench.protocol_line("batch")
    assert "mode: batch" in line and all(r["kernel"] in line for r in info)
    code = ("from embedlab import bench; print(bench.blas_setting()); "
            "bench.require_blas('matched')")
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stdout.strip() == "installed"
    assert "OPENBLAS_CORETYPE=Haswell" in bad.stderr and "numpy" in bad.stderr
    assert "faiss" in bad.stderr
    good = subprocess.run([sys.executable, "-c", code], env=bench.blas_env("matched"),
                          capture_output=True, text=True)
    assert good.returncode == 0 and good.stdout.strip() == "matched", good.stderr
    with pytest.raises(ValueError, match="setting must be one of"):
        bench.require_blas("fast")
    with pytest.raises(ValueError, match="mode must be one of"):
        bench.protocol_line("stream")


def test_sweep_single_mode_rows_carry_latency():
    ds = bench.load_dataset("glove", n_base=2000, n_query=50, gt_k=10)

    def build():
        idx = FlatIndex(ds.dim, metric="ip")
        idx.add(ds.xb)
        return idx

    (row,) = bench.sweep(build, ds, k=10, repeats=3, mode="single", n_single=30)
    assert row["mode"] == "single" and row["recall"] == 1.0
    assert 0 < row["median_ms"] <= row["p99_ms"]


def test_measure_counts_cpu_time_and_rounds_and_ratios_carry_their_spread():
    xq = np.zeros((30, 4), np.float32)

    def slow(q):
        sum(range(30_000))

    def fast(q):
        sum(range(3_000))

    t = bench.measure({"slow": slow, "fast": fast}, xq, mode="single", rounds=5)
    for name in ("slow", "fast"):
        assert len(t[name]["cpu_us"]) == len(t[name]["wall_us"]) == 5
        assert t[name]["rounds"] == 5 and t[name]["n_queries"] == 30
    r = bench.speed_ratio(t["fast"], t["slow"])  # fast is ours: several times faster
    assert r["min"] <= r["median"] <= r["p90"] and r["rounds"] == 5
    assert r["median"] > 2 and r["verdict"] == "faster"
    assert "x (min" in bench.format_ratio(r) and "CPU time" in bench.format_ratio(r)
    same = bench.speed_ratio(t["slow"], t["slow"], clock="wall")  # a ratio of one, by definition
    assert same["verdict"] == "no measurable difference"
    assert bench.format_ratio(same).startswith("no measurable difference")
    with pytest.raises(ValueError, match="clock must be"):
        bench.speed_ratio(t["slow"], t["fast"], clock="gpu")
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        bench.measure({"f": fast}, xq, rounds=0)


def test_peers_are_called_raw_with_parameters_set_once():
    ds = bench.load_dataset("glove", n_base=1500, n_query=30, gt_k=10)
    hl = bench.HnswlibIndex(ds.dim, "ip", M=8, ef_construction=40)
    hl.add(ds.xb)
    raw = bench.searcher(hl, 10, {"ef": 48})
    labels, dist = raw(ds.xq[:3])                    # hnswlib's own output: no conversion
    assert labels.dtype == np.uint64 and hl.raw.ef == 48
    np.testing.assert_array_equal(labels.astype(np.int64), hl.search(ds.xq[:3], 10, ef=48)[1])
    fidx = faiss.IndexIVFFlat(faiss.IndexFlatIP(ds.dim), ds.dim, 8, faiss.METRIC_INNER_PRODUCT)
    fidx.train(ds.xb)
    fidx.add(ds.xb)
    bench.searcher(fidx, 10, {"nprobe": 3})
    assert fidx.nprobe == 3                          # set on the index once, not per call
    ours = IVFIndex(ds.dim, nlist=8, metric="ip")
    ours.train(ds.xb)
    ours.add(ds.xb)
    np.testing.assert_array_equal(bench.searcher(ours, 10, {"nprobe": 3})(ds.xq)[1],
                                  ours.search(ds.xq, 10, nprobe=3)[1])


def test_cache_sizes_and_bandwidths_are_measured():
    assert bench.l3_cache_bytes() > 1 << 20
    assert bench.l3_cache_bytes(default=123) in (123, bench.l3_cache_bytes())
    assert bench.cache_bandwidth(1 << 20, repeats=5) > 0.1
    with pytest.raises(ValueError, match="nbytes"):
        bench.cache_bandwidth(10)
