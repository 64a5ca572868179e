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
            if "name" in row:
                out[row["name"]] = row["value"]
    return out


def format_value(value: Any) -> str:
    """A short human form of a recorded value for the report table."""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------- claims
class ClaimFailed(AssertionError):
    """A claim that did not hold, raised only under ``EMBEDLAB_STRICT=1``."""


_CLAIMS: list[dict[str, Any]] = []


def strict() -> bool:
    """True when a failing claim must fail the notebook (``EMBEDLAB_STRICT=1``, as in CI)."""
    return os.environ.get("EMBEDLAB_STRICT", "").strip() not in ("", "0", "false", "no")


def claim(id: str, text: str, holds: Any) -> bool:
    """State one claim the chapter checks on this run, with its verdict.

    ``text`` is the sentence, built from the run's own numbers (an f-string); ``holds`` is the
    measured verdict. The sentence is printed with a check mark or a cross and recorded (under
    ``EMBEDLAB_REPORT``, as a ``{"claim": id, "text", "holds"}`` line) for the course report. A
    claim that does not hold only warns, so a learner who changes a parameter can read on; under
    ``EMBEDLAB_STRICT=1`` it raises :class:`ClaimFailed` after printing.
    """
    if not isinstance(id, str) or not id:
        raise ValueError("claim: id must be a non-empty string such as 'ch08.ivf_recall'")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("claim: text must be the sentence being claimed")
    if hasattr(holds, "item"):
        holds = holds.item()
    if not isinstance(holds, bool):
        raise TypeError(f"claim: holds must be a bool (the measured verdict), got {type(holds)!r}")
    row = {"id": id, "text": text, "holds": holds}
    _CLAIMS[:] = [c for c in _CLAIMS if c["id"] != id] + [row]
    path = os.environ.get("EMBEDLAB_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"claim": id, "text": text, "holds": holds}) + "\n")
    print(f"{'✓' if holds else '✗'} {text}")
    if not holds:
        if strict():
            raise ClaimFailed(f"claim {id} does not hold: {text}")
        import warnings

        warnings.warn(f"claim {id} does not hold on this run: {text}", stacklevel=2)
    return holds


def claims() -> list[dict[str, Any]]:
    """Every claim stated in this process so far (latest verdict per id)."""
    return [dict(c) for c in _CLAIMS]


def read_claims(path: str | Path) -> list[dict[str, Any]]:
    """The claims in a JSON-lines report file, in order, the latest verdict per id."""
    out: dict[str, dict[str, Any]] = {}
    p = Path(path)
    if not p.exists():
        return []
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if "claim" in row:
                out.pop(row["claim"], None)
                out[row["claim"]] = {"id": row["claim"], "text": row["text"],
                                     "holds": row["holds"]}
    return list(out.values())
