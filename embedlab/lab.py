"""Starting JupyterLab for the course: the repository root, the course's kernel, a free port.

``make lab`` runs ``python -m embedlab.lab``. It starts ``jupyter lab`` from the same environment
at the repository root, so ``notebooks/``, ``exercises/`` and ``solutions/`` all show in the file
browser, with the settings in ``jupyter/jupyter_server_config.json`` (loopback only, the
``embedlab`` kernel for new notebooks, CurveZMQ encryption between the server and its kernels).
When the preferred port is taken, it picks a free one and says which.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "jupyter"
DEFAULT_PORT = 8888


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(preferred: int = DEFAULT_PORT, host: str = "127.0.0.1") -> int:
    """``preferred`` when nothing listens there, otherwise a port the OS hands out as free."""
    if preferred and port_is_free(preferred, host):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def lab_command(port: int, root: Path = ROOT) -> list[str]:
    jupyter = Path(sys.executable).with_name("jupyter")
    return [str(jupyter), "lab", f"--ServerApp.root_dir={root}", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0"]


def lab_env(base: dict | None = None) -> dict:
    """The environment for the server: the course's Jupyter settings on the config path."""
    env = dict(os.environ if base is None else base)
    extra = env.get("JUPYTER_CONFIG_PATH", "")
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(p for p in (str(CONFIG_DIR), extra) if p)
    return env


def kernel_config():
    """The kernel-manager part of the course's Jupyter settings, as a traitlets ``Config``.

    Anything that starts kernels itself (papermill, nbclient) can pass it on, e.g.
    ``papermill.execute_notebook(..., config=kernel_config())``, so those kernels are encrypted
    too and print no unencrypted-TCP warning.
    """
    import json

    from traitlets.config import Config

    settings = json.loads((CONFIG_DIR / "jupyter_server_config.json").read_text(encoding="utf-8"))
    return Config({"KernelManager": settings["KernelManager"]})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    preferred = int(os.environ.get("LAB_PORT", DEFAULT_PORT))
    port = free_port(preferred)
    if port != preferred:
        print(f"embedlab lab: port {preferred} is busy; JupyterLab uses port {port} instead",
              file=sys.stderr)
    print(f"embedlab lab: opening JupyterLab at {ROOT} on http://127.0.0.1:{port}/lab "
          f"(kernel 'embedlab'; the token is in the URL printed below)", file=sys.stderr,
          flush=True)
    cmd = lab_command(port) + argv
    os.execve(cmd[0], cmd, lab_env())
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
