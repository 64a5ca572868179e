"""Quiet progress bars in executed builds.

A learner in JupyterLab watches ``tqdm.auto`` bars move. An executed copy of a notebook (the
course report, the book, the tests) has no one watching: a bar there is a frozen ``0%|`` line, and
tqdm's notebook bar ignores ``$TQDM_DISABLE``. Executed builds therefore start their kernels with
an IPython startup file (:func:`startup_dir`) that, when ``$TQDM_DISABLE`` is set, makes every
``tqdm.auto`` and ``tqdm.notebook`` bar a disabled text bar before any cell runs.
"""

from __future__ import annotations

import os
from pathlib import Path

STARTUP = (
    "# written by embedlab.quiet: executed builds keep progress bars quiet\n"
    "import os\n"
    "if os.environ.get('TQDM_DISABLE', '').strip().lower() not in ('', '0', 'false', 'no'):\n"
    "    from embedlab.quiet import silence_progress_bars\n"
    "    silence_progress_bars()\n"
)


def silence_progress_bars() -> None:
    """Make ``tqdm.auto.tqdm``/``trange`` and ``tqdm.notebook.tqdm``/``trange`` disabled bars."""
    import tqdm.auto
    import tqdm.notebook
    import tqdm.std

    class QuietTqdm(tqdm.std.tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    def quiet_trange(*args, **kwargs):
        return QuietTqdm(range(*args), **kwargs)

    for mod in (tqdm.auto, tqdm.notebook):
        mod.tqdm, mod.trange = QuietTqdm, quiet_trange
    try:
        import tqdm.autonotebook as auto_nb

        auto_nb.tqdm, auto_nb.trange = QuietTqdm, quiet_trange
    except ImportError:  # pragma: no cover - tqdm always ships it
        pass


def startup_dir(root: str | os.PathLike) -> Path:
    """An IPython directory under ``root`` whose default profile runs :data:`STARTUP`; point
    ``$IPYTHONDIR`` at it for the kernels of an executed build."""
    folder = Path(root) / "ipython"
    startup = folder / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-embedlab-quiet.py").write_text(STARTUP, encoding="utf-8")
    return folder
