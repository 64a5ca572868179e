"""Chapter 05's temperature explorer: one anchor's InfoNCE softmax, redrawn as tau moves.

The numbers come from :func:`embedlab.contrastive.infonce_row` (a pure function the tests check):
the softmax of the anchor's similarities divided by tau, and the gradient weight p_j / tau with
which each negative is pushed away (van den Oord et al. 2018, eq. 4; Wang and Liu 2021,
"Understanding the Behaviour of Contrastive Loss", on the temperature's hardness-awareness).
:func:`temperature_explorer` wires a log-scale slider for tau to :func:`draw_row` through
:func:`embedlab.widgets.explore`, which draws the figure once, at the slider's starting value,
where nothing can drag it (papermill, nbval, the book).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from embedlab.contrastive import infonce_row

__all__ = ["draw_row", "temperature_explorer"]


def _labels(labels: Sequence[str] | None, n: int) -> list[str]:
    if labels is None:
        return [f"candidate {j}" for j in range(n)]
    labels = [str(x) for x in labels]
    if len(labels) != n:
        raise ValueError(f"labels must name each of the {n} candidates, got {len(labels)}")
    return labels


def draw_row(similarities: Sequence[float] | np.ndarray, temperature: float,
             labels: Sequence[str] | None = None, positive: int = 0) -> Any:
    """Two panels for one anchor at ``temperature``: the softmax probability of every candidate
    (the positive in green), and the gradient weight p_j / tau of every negative. Returns the
    matplotlib figure."""
    import matplotlib.pyplot as plt

    row = infonce_row(similarities, temperature, positive=positive)
    s = np.asarray(similarities, dtype=np.float64)
    names = _labels(labels, s.size)
    order = np.argsort(-s, kind="stable")
    y = np.arange(s.size)
    colors = ["tab:green" if j == positive else "tab:red" for j in order]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * s.size + 1.6), sharey=True)
    left.barh(y, row["probabilities"][order], color=colors)
    left.set(xlim=(0, 1), xlabel="softmax probability p_j (fraction)",
             title=f"tau = {temperature:.3g}: loss -log p+ = {row['loss']:.2f}")
    left.set_yticks(y, [f"{names[j]}  (s = {s[j]:+.2f})" for j in order])
    left.invert_yaxis()
    right.barh(y, row["negative_weights"][order], color=colors)
    right.set(xlabel="gradient weight p_j / tau on each negative (per unit of similarity)",
              title="how hard each negative is pushed away")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("tab:green", "tab:red")]
    right.legend(handles, ["positive", "negative"], loc="lower right")
    fig.tight_layout()
    return fig


def temperature_explorer(similarities: Sequence[float] | np.ndarray,
                         labels: Sequence[str] | None = None, positive: int = 0,
                         temperature: float = 0.05, low: float = 0.01,
                         high: float = 1.0) -> Any:
    """A log-scale tau slider (``low`` to ``high``, starting at ``temperature``) over
    :func:`draw_row`; the static figure at ``temperature`` where nothing can drag."""
    import ipywidgets as widgets

    from embedlab.widgets import explore

    if not 0 < low < high:
        raise ValueError(f"need 0 < low < high, got low={low}, high={high}")
    if not low <= temperature <= high:
        raise ValueError(f"temperature must lie in [low, high] = [{low}, {high}], "
                         f"got {temperature}")
    infonce_row(similarities, temperature, positive=positive)      # bad input fails here
    names = _labels(labels, np.asarray(similarities).size)
    slider = widgets.FloatLogSlider(value=temperature, base=10, min=float(np.log10(low)),
                                    max=float(np.log10(high)), step=0.05, description="tau",
                                    continuous_update=False)

    def render(temperature: float) -> Any:
        return draw_row(similarities, temperature, names, positive)

    return explore(render, {"temperature": slider})
