"""Chapter 05's temperature explorer: the bars it draws are infonce_row's numbers."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from embedlab.contrastive import infonce_row  # noqa: E402
from embedlab.infonce_explorer import draw_row, temperature_explorer  # noqa: E402

SIMS = np.array([0.62, 0.55, 0.20, -0.05, 0.31])


def _bar_widths(ax):
    return np.array([p.get_width() for p in ax.patches])


def test_draw_row_shows_the_softmax_and_the_gradient_weights():
    fig = draw_row(SIMS, 0.1, labels=list("abcde"))
    left, right = fig.axes
    order = np.argsort(-SIMS)
    row = infonce_row(SIMS, 0.1)
    assert np.allclose(_bar_widths(left), row["probabilities"][order])
    assert np.allclose(_bar_widths(right), row["negative_weights"][order])
    assert "0.1" in left.get_title() and left.get_xlabel() and right.get_xlabel()
    assert right.get_legend() is not None


def test_static_explorer_draws_at_the_starting_temperature(monkeypatch):
    monkeypatch.setenv("EMBEDLAB_STATIC", "1")
    fig = temperature_explorer(SIMS, labels=list("abcde"), temperature=0.5)
    assert np.allclose(_bar_widths(fig.axes[0]),
                       infonce_row(SIMS, 0.5)["probabilities"][np.argsort(-SIMS)])
    # a lower temperature gives the hardest negative a larger share of the push
    cold = draw_row(SIMS, 0.02).axes[1]
    hot = draw_row(SIMS, 1.0).axes[1]
    share = [_bar_widths(ax)[1] / _bar_widths(ax).sum() for ax in (cold, hot)]
    assert share[0] > share[1]


def test_explorer_bad_input(monkeypatch):
    monkeypatch.setenv("EMBEDLAB_STATIC", "1")
    with pytest.raises(ValueError, match="labels"):
        draw_row(SIMS, 0.1, labels=["a"])
    with pytest.raises(ValueError, match="temperature must lie"):
        temperature_explorer(SIMS, temperature=5.0)
    with pytest.raises(ValueError, match="low < high"):
        temperature_explorer(SIMS, low=0.5, high=0.1, temperature=0.2)
    with pytest.raises(ValueError, match="at least two"):
        temperature_explorer([0.3])
