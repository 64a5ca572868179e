"""Executed builds keep progress bars quiet: the startup file and what it does."""

import subprocess
import sys
from pathlib import Path

from embedlab.quiet import STARTUP, startup_dir


def test_startup_dir_writes_the_profile_startup_file(tmp_path: Path) -> None:
    folder = startup_dir(tmp_path)
    script = folder / "profile_default" / "startup" / "00-embedlab-quiet.py"
    assert script.read_text() == STARTUP


def test_silenced_bars_are_disabled_and_still_iterate() -> None:
    code = ("from embedlab.quiet import silence_progress_bars\n"
            "silence_progress_bars()\n"
            "from tqdm.auto import tqdm, trange\n"
            "import tqdm.notebook as nb\n"
            "bar = tqdm(range(3), desc='x')\n"
            "assert bar.disable and list(bar) == [0, 1, 2]\n"
            "assert list(trange(2)) == [0, 1] and nb.tqdm(range(1)).disable\n"
            "print('quiet')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "quiet" and "it/s" not in out.stderr
