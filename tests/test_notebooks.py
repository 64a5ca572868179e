"""Every chapter notebook runs top to bottom in the ci profile, twice: nbval and papermill.

nbval (``--nbval-lax``) re-runs the notebook in a fresh kernel and compares the outputs of cells
marked ``# NBVAL_CHECK_OUTPUT`` with a reference run; papermill injects ``profile = "ci"`` after
the parameters cell and keeps the executed copy under ``build/papermill/``.
"""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
INLINE = "module://matplotlib_inline.backend_inline"
IDS = [p.stem for p in NOTEBOOKS]


def _env() -> dict:
    from embedlab.quiet import startup_dir

    ipython = startup_dir(ROOT / "build" / "kernel")  # quiet progress bars in executed copies
    return dict(os.environ, IPYTHONDIR=str(ipython), EMBEDLAB_PROFILE="ci",
                OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                NUMBA_NUM_THREADS="1", MPLBACKEND=INLINE, TQDM_DISABLE="1", EMBEDLAB_STATIC="1")


def _papermill(path: Path) -> Path:
    import papermill as pm

    from embedlab.lab import kernel_config

    out = ROOT / "build" / "papermill" / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    os.environ.update(_env())
    # the kernel draws figures inline (an Agg backend inherited from the tests would leave the
    # executed copy without its pictures); this process keeps Agg
    os.environ["MPLBACKEND"] = INLINE
    try:
        pm.execute_notebook(str(path), str(out), parameters={"profile": "ci"},
                            cwd=str(path.parent), progress_bar=False, kernel_name="python3",
                            config=kernel_config())
    finally:
        os.environ["MPLBACKEND"] = "Agg"
    return out


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_under_papermill_then_nbval(path: Path) -> None:
    """papermill runs the notebook (profile injected); nbval then re-runs that executed copy in a
    fresh kernel and requires every ``# NBVAL_CHECK_OUTPUT`` cell to reproduce its output."""
    executed = _papermill(path)
    nb = nbformat.read(executed, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'profile = "ci"' in injected[0].source
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout", "300",
         "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
         "-o", "testpaths=", "-o", "addopts=", "--rootdir", str(executed.parent), str(executed)],
        capture_output=True, text=True, env=_env(), cwd=str(executed.parent),
    )
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
    assert proc.returncode == 0, f"nbval failed for {path.name}:\n{tail}"
    assert " passed" in proc.stdout, tail
