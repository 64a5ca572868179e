"""Explorations you can drag: a figure redrawn by sliders, with a static fallback.

A chapter's explorer is two things:

- a **pure function** of the parameters (``nprobe``, ``ef``, a temperature, a word) that returns
  the numbers to show, computed from arrays the chapter already measured, so a move answers in well
  under a second; the tests check that function;
- a ``render(**values)`` that draws those numbers as one matplotlib figure.

:func:`explore` wires them to ipywidgets controls. In a live JupyterLab the controls appear above
the figure and every move redraws it. Where nothing can drag a slider (papermill, nbval, the
book, or ``EMBEDLAB_STATIC=1``, which the course runner and the tests set) it draws the figure once
at the controls' starting values, so every executed notebook keeps a picture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["explore", "is_static", "values_of"]


def is_static() -> bool:
    """True when no one can move a control: ``EMBEDLAB_STATIC`` is set, or no kernel runs."""
    if os.environ.get("EMBEDLAB_STATIC", "").strip() not in ("", "0", "false", "no"):
        return True
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    shell = get_ipython()
    return shell is None or not hasattr(shell, "kernel")


def values_of(controls: Mapping[str, Any]) -> dict[str, Any]:
    """The current value of each control, by name."""
    out = {}
    for name, ctl in controls.items():
        if not hasattr(ctl, "value"):
            raise TypeError(f"control {name!r} has no .value: pass ipywidgets controls")
        out[name] = ctl.value
    return out


def explore(render: Callable[..., Any], controls: Mapping[str, Any], *,
            static: bool | None = None) -> Any:
    """Show ``render(**values)`` with ``controls`` (``{name: ipywidgets control}``) that redraw it.

    Returns the ipywidgets box in a live session, the static figure otherwise (``static=True``
    forces the static figure; by default :func:`is_static` decides).
    """
    import matplotlib.pyplot as plt

    if not controls:
        raise ValueError("explore needs at least one control")
    if not callable(render):
        raise TypeError("render must be a function of the controls' values")
    static = is_static() if static is None else static
    if static:
        fig = render(**values_of(controls))
        plt.show()
        return fig

    import ipywidgets as widgets
    from IPython.display import display

    def draw(**values: Any) -> None:
        # display this call's own figure, never pyplot's "current" one: two quick moves of a
        # slider can run two callbacks at once, and the current figure may be the other's
        fig = render(**values)
        if fig is None:
            fig = plt.gcf()
        display(fig)
        plt.close(fig)

    out = widgets.interactive_output(draw, dict(controls))
    box = widgets.VBox([widgets.HBox(list(controls.values())), out])
    display(box)
    return box
