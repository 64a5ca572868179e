"""The index explorer's pure function: a slider picks a measured point, never a guess."""

import matplotlib
import pytest

matplotlib.use("Agg")

from embedlab.index.explore import (  # noqa: E402
    Curve,
    controls,
    curve_from_rows,
    describe,
    explorer_view,
    render_view,
)


def _curves():
    ivf = Curve("IVF", "nprobe", [1, 4, 16], [0.5, 0.8, 0.95], [5.0, 12.0, 40.0],
                [208.0, 208.0, 208.0])
    ivfpq = Curve("IVF-PQ", "nprobe", [1, 4, 16], [0.4, 0.6, 0.7], [3.0, 6.0, 15.0],
                  [18.0, 18.0, 18.0], start=16)
    hnsw = Curve("HNSW", "ef", [16, 64], [0.8, 0.97], [20.0, 60.0], [340.0, 340.0])
    return [ivf, ivfpq, hnsw]


def test_view_picks_the_measured_point_of_each_curve():
    curves = _curves()
    start = explorer_view(curves)
    assert [(p["name"], p["value"]) for p in start] == [("IVF", 4), ("IVF-PQ", 16), ("HNSW", 64)]
    moved = explorer_view(curves, nprobe=16, ef=16)
    assert moved[0] == {"name": "IVF", "knob": "nprobe", "value": 16, "recall": 0.95,
                        "latency_us": 40.0, "bytes_per_vector": 208.0}
    assert moved[1]["recall"] == 0.7 and moved[2]["latency_us"] == 20.0
    # one knob moves every curve on it, and nothing else
    assert explorer_view(curves, nprobe=1)[2] == start[2]
    assert "recall@10 0.950" in describe(moved)


def test_bad_settings_and_curves_get_clear_errors():
    curves = _curves()
    with pytest.raises(ValueError, match="was not measured"):
        explorer_view(curves, nprobe=8)
    with pytest.raises(ValueError, match="no curve has the knob"):
        explorer_view(curves, M=8)
    with pytest.raises(ValueError, match="at least one"):
        explorer_view([])
    with pytest.raises(ValueError, match="one entry per value"):
        Curve("x", "ef", [1, 2], [0.1], [1.0, 2.0], [3.0, 3.0])
    with pytest.raises(ValueError, match="recall must be in"):
        Curve("x", "ef", [1], [1.5], [1.0], [3.0])
    with pytest.raises(ValueError, match="finite numbers"):
        Curve("x", "ef", [1], [0.5], [float("nan")], [3.0])
    with pytest.raises(ValueError, match="not a measured value"):
        Curve("x", "ef", [1, 2], [0.5, 0.6], [1.0, 2.0], [3.0, 3.0], start=3)
    with pytest.raises(ValueError, match="same values"):
        explorer_view([Curve("a", "ef", [1, 2], [0.5, 0.6], [1, 2], [3, 3]),
                       Curve("b", "ef", [1, 3], [0.5, 0.6], [1, 2], [3, 3])])


def test_render_draws_the_curves_the_points_and_the_bars(capsys):
    fig = render_view(_curves(), title="explorer", nprobe=1)
    left, right = fig.axes
    assert left.get_title() == "explorer" and left.get_xlabel().startswith("single-query")
    assert len(right.patches) == 3 and right.patches[2].get_width() == 340.0
    assert "nprobe=1" in capsys.readouterr().out


def test_controls_are_sliders_over_the_measured_values_and_rows_make_curves():
    sliders = controls(_curves())
    assert set(sliders) == {"nprobe", "ef"}
    assert list(sliders["nprobe"].options) == [1, 4, 16] and sliders["nprobe"].value == 16
    rows = [{"params": {"ef": e}, "recall": r, "median_ms": ms, "bytes_per_vector": 300.0}
            for e, r, ms in [(64, 0.9, 0.05), (16, 0.7, 0.02)]]
    c = curve_from_rows(rows, "HNSW", "ef")
    assert list(c.values) == [16, 64] and list(c.latency_us) == [20.0, 50.0]
