"""The course report: key results recorded by notebooks, gathered by ``make course``.

A notebook calls ``record("ch16.heap_ops_n1e6_k10", 2.1e7)``. When the notebook runs under
``embedlab course`` the environment variable ``EMBEDLAB_REPORT`` names a JSON-lines file and each
call appends one line to it; the course runner then writes ``build/course/REPORT.md`` with every
notebook's wall time, state and recorded results. In JupyterLab, with no such variable, the values
are kept in memory only (``recorded()`` returns them).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

_RECORDED: dict[str, Any] = {}


def _plain(value: Any) -> Any:
    """numpy scalars and arrays to plain Python, so the value serialises as JSON."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    raise TypeError(f"record: value must be a number, string, list or dict, got {type(value)!r}")


def record(name: str, value: Any) -> None:
    """Record one key result under ``name`` (returns nothing, so a notebook shows nothing)."""
    if not isinstance(name, str) or not name:
        raise ValueError("record: name must be a non-empty string")
    plain = _plain(value)
    _RECORDED[name] = plain
    path = os.environ.get("EMBEDLAB_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"name": name, "value": plain}) + "\n")


def recorded() -> dict[str, Any]:
    """Everything recorded in this process so far."""
    return dict(_RECORDED)


def read_records(path: str | Path) -> dict[str, Any]:
    """Read a JSON-lines file written by ``record``; later values of a name win."""
    out: dict[str, Any] = {}
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["name"]] = row["value"]
    return out


def format_value(value: Any) -> str:
    """A short human form of a recorded value for the report table."""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
