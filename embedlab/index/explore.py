"""The index explorer of chapters 08-11: drag a knob, watch recall, latency and memory answer.

A chapter measures each index once per setting of its knob (``nprobe`` for IVF and IVF-PQ,
``ef`` for HNSW, the code size ``m`` for PQ) and keeps the numbers as ``Curve``s. The explorer
never searches again: moving a slider only picks a measured point, so it answers at once.

* ``explorer_view(curves, **settings)``: the pure function. For each curve, the point at the
  chosen setting (recall@k, single-query latency, bytes per vector). The tests check it.
* ``render_view(curves, **settings)``: one figure of two panels, recall@k against latency with
  every measured curve and the chosen points marked, and the bytes per vector of each index at
  its chosen setting as bars.
* ``controls(curves)``: one ``ipywidgets.SelectionSlider`` per knob, over the measured values.

``embedlab.widgets.explore(lambda **s: render_view(curves, **s), controls(curves))`` shows the
sliders in JupyterLab and a static figure at the starting values in executed builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Curve:
    """One index measured at several settings of one knob.

    ``name``: the index ("IVF"); ``knob``: the slider's name ("nprobe"), shared by every curve it
    moves; ``values``: the settings measured; ``recall``, ``latency_us`` and ``bytes_per_vector``:
    one number per setting; ``start``: the slider's starting value (default: the middle one).
    """

    name: str
    knob: str
    values: Sequence[Any]
    recall: Sequence[float]
    latency_us: Sequence[float]
    bytes_per_vector: Sequence[float]
    start: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # plain lists: a pandas Series would be indexed by its labels, not by position
        self.values = [v.item() if hasattr(v, "item") else v for v in self.values]
        self.recall, self.latency_us, self.bytes_per_vector = (
            [float(v) for v in seq] for seq in (self.recall, self.latency_us,
                                                 self.bytes_per_vector))
        if not isinstance(self.name, str) or not self.name:
            raise TypeError("name must be a non-empty string")
        if not isinstance(self.knob, str) or not self.knob.isidentifier():
            raise ValueError(f"knob must be an identifier (a slider's name), got {self.knob!r}")
        n = len(self.values)
        if n == 0:
            raise ValueError(f"{self.name}: values must hold at least one setting")
        for what in ("recall", "latency_us", "bytes_per_vector"):
            seq = getattr(self, what)
            if len(seq) != n:
                raise ValueError(f"{self.name}: {what} must have one entry per value ({n}), "
                                 f"got {len(seq)}")
            arr = np.asarray(seq, dtype=np.float64)
            if not np.isfinite(arr).all() or (arr < 0).any():
                raise ValueError(f"{self.name}: {what} must hold finite numbers >= 0")
        if not all(0 <= r <= 1 for r in self.recall):
            raise ValueError(f"{self.name}: recall must be in [0, 1]")
        if self.start is None:
            self.start = self.values[n // 2]
        elif self.start not in list(self.values):
            raise ValueError(f"{self.name}: start {self.start!r} is not a measured value")


def _by_knob(curves: Sequence[Curve]) -> dict[str, list[Any]]:
    """The knobs and the values every curve on that knob measured (the slider's options)."""
    knobs: dict[str, list[Any]] = {}
    for c in curves:
        vals = list(c.values)
        if c.knob in knobs and knobs[c.knob] != vals:
            raise ValueError(f"curves on knob {c.knob!r} must be measured at the same values")
        knobs[c.knob] = vals
    return knobs


def explorer_view(curves: Sequence[Curve], **settings: Any) -> list[dict[str, Any]]:
    """The point of each curve at the chosen settings (a knob left out stays at its start).

    Returns one dict per curve: ``name, knob, value, recall, latency_us, bytes_per_vector``.
    A setting must be one of the measured values: the explorer shows measurements, never guesses.
    """
    if not curves:
        raise ValueError("curves must hold at least one Curve")
    knobs = _by_knob(curves)
    unknown = sorted(set(settings) - set(knobs))
    if unknown:
        raise ValueError(f"no curve has the knob(s) {unknown}; knobs: {sorted(knobs)}")
    out = []
    for c in curves:
        value = settings.get(c.knob, c.start)
        vals = list(c.values)
        if value not in vals:
            raise ValueError(f"{c.knob}={value!r} was not measured for {c.name}; "
                             f"measured: {vals}")
        i = vals.index(value)
        out.append({"name": c.name, "knob": c.knob, "value": value,
                    "recall": float(c.recall[i]), "latency_us": float(c.latency_us[i]),
                    "bytes_per_vector": float(c.bytes_per_vector[i])})
    return out


def describe(view: list[dict[str, Any]], k: int = 10) -> str:
    """One line per chosen point: what the explorer prints under its figure."""
    return "\n".join(f"{p['name']:<12} {p['knob']}={p['value']!s:<6} recall@{k} "
                     f"{p['recall']:.3f}  {p['latency_us']:8.1f} µs per query  "
                     f"{p['bytes_per_vector']:7.1f} B per vector" for p in view)


def render_view(curves: Sequence[Curve], title: str = "", k: int = 10,
                xlabel: str = "single-query latency (µs, one thread, log scale)",
                **settings: Any):
    """Recall@k against latency (every curve, the chosen points ringed; ``xlabel`` says how the
    latency was measured) and the bytes per vector at the chosen settings; shows the figure (in
    IPython) and returns it.

    The figure is built outside pyplot's registry and shown by itself: a kernel may run two slider
    callbacks at once, and ``plt.show()`` in one of them would otherwise also draw the other's
    half-built figure.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    view = explorer_view(curves, **settings)
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (c, p) in enumerate(zip(curves, view, strict=True)):
        col = colours[i % len(colours)]
        ax.plot(c.latency_us, c.recall, "-o", color=col, ms=3, alpha=0.6,
                label=f"{c.name} ({c.knob} swept)")
        ax.plot([p["latency_us"]], [p["recall"]], "o", ms=12, mfc="none", mec=col, mew=2.5)
        ax.annotate(f"{p['knob']}={p['value']}", (p["latency_us"], p["recall"]),
                    textcoords="offset points", xytext=(8, -12), fontsize=8, color=col)
        bx.barh(i, p["bytes_per_vector"], color=col)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"recall@{k}")
    ax.set_title(title or f"recall@{k} against latency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    bx.set_yticks(range(len(view)), [f"{p['name']}\n{p['knob']}={p['value']}" for p in view],
                  fontsize=8)
    sizes = [p["bytes_per_vector"] for p in view]
    if max(sizes) > 10 * max(min(sizes), 1e-9):  # a log axis only when sizes differ tenfold
        bx.set_xscale("log")
        bx.set_xlabel("bytes per vector (log scale)")
    else:
        bx.set_xlabel("bytes per vector")
    bx.set_title("memory at the chosen settings")
    fig.tight_layout()
    print(describe(view, k))
    _show(fig)
    return fig


def _show(fig: Any) -> None:
    """Display ``fig`` in IPython (the inline backend renders it); nothing elsewhere."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the course
        return
    if get_ipython() is not None:
        from IPython.display import display

        display(fig)


def controls(curves: Sequence[Curve]) -> dict[str, Any]:
    """One ``SelectionSlider`` per knob, over its measured values, at the curves' start."""
    import ipywidgets as widgets

    starts = {c.knob: c.start for c in curves}
    return {knob: widgets.SelectionSlider(options=vals, value=starts[knob], description=knob,
                                          continuous_update=False)
            for knob, vals in _by_knob(curves).items()}


def curve_from_rows(rows: Sequence[dict[str, Any]], name: str, knob: str,
                    start: Any = None) -> Curve:
    """A ``Curve`` from ``bench.sweep`` rows in single mode (params hold the knob; latency from
    ``median_ms``), sorted by the knob's value."""
    rs = sorted(rows, key=lambda r: r["params"][knob])
    if not rs:
        raise ValueError(f"rows hold no setting of {knob!r}")
    return Curve(name, knob, [r["params"][knob] for r in rs], [r["recall"] for r in rs],
                 [1e3 * r["median_ms"] for r in rs], [r["bytes_per_vector"] for r in rs], start)
