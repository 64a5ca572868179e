"""Chapter 11's readings of a comparison: Pareto frontier, fastest at a recall, IVF vs HNSW."""

import pytest

from embedlab import bench
from embedlab.index import compare


def _row(lib, index, recall, qps, bpv=100.0, params=None):
    return {"library": lib, "index": index, "recall": recall, "qps": qps, "mode": "batch",
            "bytes_per_vector": bpv, "params": params or {}, "qps_spread": [qps * 0.9, qps,
                                                                             qps * 1.1]}


ROWS = [_row("embedlab", "IVF", 0.80, 5000, 210, {"nprobe": 4}),
        _row("embedlab", "IVF", 0.95, 2000, 210, {"nprobe": 16}),
        _row("embedlab", "HNSW", 0.93, 4000, 340, {"ef": 32}),
        _row("embedlab", "HNSW", 0.99, 2500, 340, {"ef": 128}),
        _row("faiss", "Flat", 1.00, 300, 200),
        _row("ScaNN", "AH", 0.60, 9000, 13),
        _row("ScaNN", "tree+AH+reorder", 0.96, 2200, 213, {"leaves": 8})]


def test_pareto_and_best_at():
    front = compare.pareto(ROWS)
    assert _row("embedlab", "IVF", 0.95, 2000, 210, {"nprobe": 16}) not in front  # HNSW ef=128
    assert {(r["library"], r["index"], r["recall"]) for r in front} == {
        ("ScaNN", "AH", 0.60), ("embedlab", "IVF", 0.80), ("embedlab", "HNSW", 0.93),
        ("embedlab", "HNSW", 0.99), ("faiss", "Flat", 1.00)}
    assert compare.best_at(ROWS, 0.95)["params"] == {"ef": 128}
    assert compare.best_at(ROWS, 0.5)["index"] == "AH"
    assert compare.best_at(ROWS, 1.01) is None


def test_ivf_vs_hnsw_and_scann_best_records():
    ds = bench.ANNDataset("glove", __import__("numpy").zeros((1000, 50), "float32"),
                          __import__("numpy").zeros((10, 50), "float32"),
                          __import__("numpy").zeros((10, 10), "int64"))
    r = compare.ivf_vs_hnsw(ROWS, ds, 0.95)
    assert r["raw_bytes_per_vector"] == 200.0 and r["n"] == 1000 and r["recall_level"] == 0.95
    assert r["ivf"] == {"bytes_per_vector": 210.0, "best_recall": 0.95, "qps_at_level": 2000.0,
                        "params_at_level": {"nprobe": 16}, "qps_spread": [1800.0, 2000.0, 2200.0]}
    assert r["hnsw"]["qps_at_level"] == 2500.0 and r["hnsw"]["best_recall"] == 0.99
    s = compare.scann_best(ROWS, ds, 0.95)
    assert s["best"]["index"] == "HNSW" and s["scann"]["index"] == "tree+AH+reorder"
    assert s["best_other"]["index"] == "HNSW" and s["level"] == 0.95
    with pytest.raises(ValueError, match="IVF and HNSW"):
        compare.ivf_vs_hnsw([r_ for r_ in ROWS if r_["index"] != "IVF"], ds, 0.9)
