"""The explorer wiring: a static figure where nothing can drag, values read from the controls."""

import ipywidgets as widgets
import matplotlib
import pytest

matplotlib.use("Agg")

from embedlab.widgets import explore, is_static, values_of  # noqa: E402


def test_static_fallback_draws_at_the_controls_values(monkeypatch) -> None:
    monkeypatch.setenv("EMBEDLAB_STATIC", "1")
    seen = {}

    def render(nprobe, metric):
        import matplotlib.pyplot as plt

        seen.update(nprobe=nprobe, metric=metric)
        fig, ax = plt.subplots()
        ax.set_title(f"nprobe {nprobe}")
        return fig

    controls = {"nprobe": widgets.IntSlider(value=8, min=1, max=64),
                "metric": widgets.Dropdown(options=["ip", "l2"], value="l2")}
    assert is_static()
    fig = explore(render, controls)
    assert seen == {"nprobe": 8, "metric": "l2"}
    assert fig.axes[0].get_title() == "nprobe 8"


def test_values_and_bad_input() -> None:
    assert values_of({"a": widgets.FloatSlider(value=0.5)}) == {"a": 0.5}
    with pytest.raises(TypeError, match="no .value"):
        values_of({"a": 3})
    with pytest.raises(ValueError, match="at least one control"):
        explore(lambda: None, {}, static=True)
    with pytest.raises(TypeError, match="render"):
        explore(3, {"a": widgets.IntSlider()}, static=True)
