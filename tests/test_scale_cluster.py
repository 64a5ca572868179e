"""The "On several machines" commands of README.md, run on one machine over loopback: a scheduler
and workers started with the ``dask`` command line, then ``python -m embedlab.scale check``.

1. The README's own commands (``SCHEDULER`` -> 127.0.0.1, a free port, a temporary folder for
   the shared storage), plus one bare worker started with neither the thread variables nor the
   preload: the check passes, every worker reads the storage, every worker (the bare one too)
   runs one BLAS thread, the job runs on all of them, and the query answers the same after a
   shard's worker is killed.
2. One more worker that cannot see the client's temporary folder joins: the check fails within
   its timeout, naming that worker and the fix.

How a worker is made unable to see the client's folder, honestly, on one machine: where this
test may create mount namespaces (root with mount rights), that worker runs under
``unshare --mount`` with a private, empty tmpfs over the test's own folder, so the client's
storage folder, in it, does not exist for it, exactly as on another machine. Elsewhere it runs from
another working directory and the storage is given as a path relative to the client's working
directory, which names a different, missing folder on that worker: the same failure as a path
that exists on the client alone.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def readme_commands() -> list[str]:
    """The bash block of README.md's "On several machines" section, one command a line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## On several machines", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README's 'On several machines' section has no bash block"
    return [ln.strip() for ln in block.group(1).splitlines() if ln.strip()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               "mount -t tmpfs tmpfs /tmp"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Cluster:
    """Processes this test starts, each in its own session, stopped by process group."""

    def __init__(self, cwd: Path, env: dict) -> None:
        self.cwd, self.env, self.procs = cwd, env, []

    def start(self, command: str, cwd: Path | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(command, shell=True, cwd=cwd or self.cwd, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, executable="/bin/bash")
        self.procs.append(proc)
        return proc

    def wait_for_workers(self, address: str, n: int, timeout: float = 120.0) -> list[str]:
        from distributed import Client

        deadline = time.time() + timeout
        with Client(address, timeout=30) as c:
            while len(c.scheduler_info(n_workers=-1)["workers"]) < n:
                assert time.time() < deadline, f"fewer than {n} workers joined"
                time.sleep(0.5)
            return [w["name"] for w in c.scheduler_info(n_workers=-1)["workers"].values()]

    def stop(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)


def _substitute(cmd: str, port: int, storage: str) -> str:
    cmd = re.sub(r"(?<![A-Z_])SCHEDULER(?![A-Z_])", "127.0.0.1", cmd).replace("8786", str(port))
    cmd = cmd.replace("/mnt/shared/embedlab", storage)
    return cmd.replace(".venv/bin/", f"{BIN}/")


def test_readme_commands_on_loopback_and_a_worker_that_cannot_see_the_storage(tmp_path):
    commands = readme_commands()
    assert any(c.split()[1:2] == ["scheduler"] for c in commands if "dask" in c)
    assert any("dask worker" in c for c in commands)
    assert any("embedlab.scale check" in c for c in commands)
    unshare = _can_unshare()
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    storage = str(tmp_path / "shared") if unshare else "shared"   # relative: the client's cwd
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                        "NUMBA_NUM_THREADS", "EMBEDLAB_DASK_SCHEDULER", "EMBEDLAB_STORAGE")}
    env["PYTHONPATH"] = str(ROOT)
    cluster = Cluster(client_dir, env)
    check = None
    try:
        for cmd in commands:
            cmd = _substitute(cmd, port, storage)
            if cmd.startswith("export "):
                key, value = cmd[len("export "):].split("=", 1)
                env[key] = value
            elif " scheduler " in f" {cmd} " or " worker " in f" {cmd} ":
                cluster.start(cmd)
            else:
                check = shlex.split(cmd)
        assert check is not None and env["EMBEDLAB_DASK_SCHEDULER"].endswith(f":{port}")
        address = env["EMBEDLAB_DASK_SCHEDULER"]
        # a bare worker: no thread variables, no preload; the client's plugin pins it
        cluster.start(f"{BIN}/dask worker {address} --nthreads 1 --name bare")
        names = cluster.wait_for_workers(address, 3)
        assert "bare" in names

        t0 = time.time()
        ok = subprocess.run(check, cwd=client_dir, env=env, capture_output=True, text=True,
                            timeout=300)
        assert ok.returncode == 0, ok.stderr[-3000:]
        lines = [ln for ln in ok.stdout.splitlines() if ln.startswith("worker ")]
        assert len(lines) == 3 and all("reads the storage" in ln for ln in lines)
        assert all("OMP_NUM_THREADS=1, BLAS threads 1" in ln for ln in lines), lines
        assert any(ln.startswith("worker bare ") for ln in lines)
        assert "on 3 workers, failed: none" in ok.stdout
        assert "shard worker killed: identical=True" in ok.stdout
        assert time.time() - t0 < 300

        # a worker that cannot see the client's folder
        if unshare:
            # an empty tmpfs over this test's folder, not over all of /tmp, where a clone and
            # its .venv may live
            blind = (f"unshare --mount --propagation private sh -c 'mount -t tmpfs tmpfs "
                     f"{tmp_path} && cd / && exec {BIN}/dask worker {address} --nthreads 1 "
                     f"--name blind'")
            cluster.start(blind)
        else:
            elsewhere = tmp_path / "elsewhere"
            elsewhere.mkdir()
            cluster.start(f"{BIN}/dask worker {address} --nthreads 1 --name blind",
                          cwd=elsewhere)
        cluster.wait_for_workers(address, 4)
        bad = subprocess.run(check, cwd=client_dir, env=env, capture_output=True, text=True,
                             timeout=300)
        assert bad.returncode == 2, (bad.stdout, bad.stderr[-3000:])
        message = bad.stderr
        assert "worker blind (tcp://" in message and "cannot read" in message
        assert "EMBEDLAB_STORAGE" in message
        assert message.count("cannot read") == 1                 # the others read it
        seconds = float(re.search(r"failed after ([\d.]+) s", message).group(1))
        assert seconds < 30
    finally:
        cluster.stop()


def test_chapter_19_shows_the_commands_this_test_runs():
    """Chapter 19's "On several machines" section shows the README's commands, line for line."""
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "19_scale_out.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown"
                     and "## On several machines" in c.source)
    block = re.search(r"```bash\n(.*?)```", text.split("## On several machines", 1)[1], re.S)
    assert block, "chapter 19 has no bash block under 'On several machines'"
    assert [ln.strip() for ln in block.group(1).splitlines() if ln.strip()] == readme_commands()
