"""Running the course: every notebook in order, executed copies, HTML and ``REPORT.md``.

``run_course(profile)`` executes ``notebooks/NN_*.ipynb`` one after another with papermill
(injecting ``profile``), writes each executed notebook and its HTML to ``build/course/``, and
writes ``build/course/REPORT.md``: each notebook's state, wall time and the results it recorded
with ``embedlab.report.record``, then the ledger (``embedlab.report.ledger``: a verdict on each
item of the study session the course checks, computed from this run's records). A notebook that
fails stops nothing else; the report says which failed and in which cell.
``build/course/report.json`` holds the same as ``{"notebooks": [...], "ledger": [...]}``.

It also holds the notebook hygiene helpers: ``clean_notebook`` strips what must not be
committed (outputs, execution counts, metadata beyond an allow-list).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from embedlab.report import (
    VERDICTS,
    format_value,
    ledger,
    ledger_counts,
    ledger_markdown,
    read_claims,
    read_records,
)

# The chapter list: number -> (file stem, title). Notebook files are notebooks/NN_stem.ipynb.
CHAPTERS: dict[str, tuple[str, str]] = {
    "00": ("welcome", "Welcome"),
    "01": ("geometry_of_meaning", "The geometry of meaning"),
    "02": ("word2vec", "word2vec from scratch"),
    "03": ("glove", "GloVe from scratch"),
    "04": ("sentence_embeddings", "Sentence embeddings"),
    "05": ("contrastive_infonce", "Contrastive learning: InfoNCE"),
    "06": ("simcse", "SimCSE"),
    "07": ("similarity_metrics", "Similarity metrics"),
    "08": ("exact_search_ivf", "Exact search and IVF"),
    "09": ("product_quantisation", "Product quantisation"),
    "10": ("hnsw", "HNSW"),
    "11": ("anisotropic_quantisation", "Anisotropic quantisation and choosing an index"),
    "12": ("vector_databases", "Vector databases"),
    "13": ("matryoshka", "Matryoshka embeddings"),
    "14": ("failure_modes", "Failure modes of real systems"),
    "15": ("beyond_text", "Beyond text"),
    "16": ("code_and_speech", "Code and speech"),
    "17": ("k_closest_points", "k closest points (heap)"),
    "18": ("checklist_review", "Checklist review"),
    "19": ("scale_out", "Beyond one machine: Dask"),
    "20": ("capstone", "Capstone: a search engine under a budget"),
}

CELL_METADATA_ALLOWED = {"tags", "exercise", "jupyter"}
NOTEBOOK_METADATA_ALLOWED = {"kernelspec", "language_info"}
KERNELSPEC = {"display_name": "Python (embedlab)", "language": "python", "name": "embedlab"}


# --------------------------------------------------------------------------- hygiene
def clean_notebook(nb: Any) -> Any:
    """Strip outputs, execution counts and non-allow-listed metadata, in place; returns ``nb``."""
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in NOTEBOOK_METADATA_ALLOWED}
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in CELL_METADATA_ALLOWED}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def clean_file(path: str | Path) -> bool:
    """Clean one notebook file; returns True when it changed."""
    path = Path(path)
    before = path.read_text(encoding="utf-8")
    nb = clean_notebook(nbformat.read(path, as_version=4))
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after, encoding="utf-8")
        return True
    return False


def chapter_notebooks(root: str | Path = "notebooks") -> list[Path]:
    return sorted(Path(root).glob("[0-9][0-9]_*.ipynb"))


# --------------------------------------------------------------------------- running
@dataclass
class Outcome:
    notebook: str
    ok: bool
    seconds: float
    error: str = ""
    records: dict[str, Any] = field(default_factory=dict)
    claims: list[dict[str, Any]] = field(default_factory=list)


def _failure_summary(exc: BaseException) -> str:
    text = str(exc)
    cell = re.search(r"Cell In\[(\d+)\]|cell (\d+)", text)
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else type(exc).__name__
    last = re.sub(r"\x1b\[[0-9;]*m", "", last)[:200]
    where = f"cell {cell.group(1) or cell.group(2)}: " if cell else ""
    return f"{where}{last}"


def run_notebook(path: Path, out_dir: Path, profile: str, timeout: int = 1800) -> Outcome:
    """Execute one notebook with papermill; never raises for a failing notebook."""
    import logging

    import papermill as pm

    from embedlab.lab import kernel_config

    # The parameters cell calls profile_from_env(), which papermill cannot parse for types; the
    # injected `profile = "..."` still overrides it. Keep that warning out of the course output.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_nb = out_dir / path.name
    rec = out_dir / f"{path.stem}.records.jsonl"
    rec.unlink(missing_ok=True)
    env_before = os.environ.get("EMBEDLAB_REPORT")
    os.environ["EMBEDLAB_REPORT"] = str(rec.resolve())
    # An executed build has no one to watch a progress bar or drag a slider: bars stay quiet
    # and explorers draw their static figure.
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("EMBEDLAB_STATIC", "1")
    from embedlab.quiet import startup_dir

    os.environ.setdefault("IPYTHONDIR", str(startup_dir(out_dir.parent / "kernel").resolve()))
    t0 = time.perf_counter()
    error = ""
    try:
        pm.execute_notebook(str(path), str(out_nb), parameters={"profile": profile},
                            cwd=str(path.parent), progress_bar=False, kernel_name="python3",
                            execution_timeout=timeout, config=kernel_config())
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell's error
        error = _failure_summary(exc)
    finally:
        if env_before is None:
            os.environ.pop("EMBEDLAB_REPORT", None)
        else:
            os.environ["EMBEDLAB_REPORT"] = env_before
    seconds = time.perf_counter() - t0
    if out_nb.exists():
        _to_html(out_nb)
    return Outcome(path.name, not error, seconds, error, read_records(rec), read_claims(rec))


def _to_html(nb_path: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(nb_path))
    nb_path.with_suffix(".html").write_text(body, encoding="utf-8")


def write_report(outcomes: list[Outcome], profile: str, out_dir: Path) -> Path:
    lines = [
        "# Course report",
        "",
        f"Profile `{profile}`; {sum(o.ok for o in outcomes)} of {len(outcomes)} notebooks ran "
        f"top to bottom in {sum(o.seconds for o in outcomes):.0f} s.",
        "",
        "| notebook | state | wall time (s) | recorded results | claims (held / stated) |",
        "|---|---|---:|---:|---:|",
    ]
    for o in outcomes:
        state = "ok" if o.ok else f"FAILED ({o.error})".replace("|", "/")
        n, held = len(o.records), sum(c["holds"] for c in o.claims)
        lines.append(f"| {o.notebook} | {state} | {o.seconds:.1f} | {n} | "
                     f"{held} / {len(o.claims)} |")
    stated = [(o.notebook, c) for o in outcomes for c in o.claims]
    if stated:
        lines += ["", "## Claims", "", "| notebook | claim | verdict | sentence |",
                  "|---|---|---|---|"]
        lines += [f"| {nb} | `{c['id']}` | {'holds' if c['holds'] else 'FAILS'} | "
                  f"{c['text'].replace('|', '/')} |".replace("\n", " ") for nb, c in stated]
    for o in outcomes:
        if o.records:
            lines += ["", f"## {o.notebook}", "", "| result | value |", "|---|---|"]
            lines += [f"| `{k}` | {format_value(v)} |".replace("\n", " ")
                      for k, v in o.records.items()]
    rows = course_ledger(outcomes)
    counts = ledger_counts(rows)
    lines += ["", "## Ledger", "",
              "Each item of the study session the course follows, with the verdict this run's "
              "figures give it (`embedlab.report.ledger`): "
              + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ".", "",
              ledger_markdown(rows)]
    path = out_dir / "REPORT.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out_dir / "report.json").write_text(json.dumps(
        {"notebooks": [o.__dict__ for o in outcomes], "ledger": rows}, indent=1),
        encoding="utf-8")
    return path


def course_ledger(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """The ledger computed from the records and claims of this run's notebooks (later wins)."""
    records: dict[str, Any] = {}
    claims: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        records.update(o.records)
        claims.update({c["id"]: c for c in o.claims})
    return ledger(records, claims)


def run_course(profile: str, notebooks_dir: str | Path = "notebooks",
               out_dir: str | Path = "build/course", only: list[str] | None = None) -> int:
    """Run every chapter notebook; returns the number that failed."""
    from tqdm.auto import tqdm

    from embedlab.profiles import check_profile

    check_profile(profile)
    out_dir = Path(out_dir)
    paths = chapter_notebooks(notebooks_dir)
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
    if not paths:
        raise FileNotFoundError(f"no NN_*.ipynb notebooks in {notebooks_dir}")
    from embedlab.prepare import NEWS_USERS, prepare, report_lines

    # the shared embeddings before the first notebook that reads them (resumable, timed)
    prepared = prepare(profile) if any(p.name[:2] in NEWS_USERS for p in paths) else None
    outcomes = []
    # chapter 18 computes the ledger from the records this run's notebooks wrote before it:
    # records files older than this moment belong to an earlier run
    started_before = os.environ.get("EMBEDLAB_RUN_STARTED")
    os.environ["EMBEDLAB_RUN_STARTED"] = repr(time.time() - 1.0)
    bar = tqdm(paths, desc=f"course ({profile})", unit="notebook")
    try:
        for path in bar:
            bar.set_postfix_str(path.stem)
            outcome = run_notebook(path, out_dir, profile)
            outcomes.append(outcome)
            state = "ok" if outcome.ok else f"FAILED: {outcome.error}"
            bar.write(f"{path.name:<40} {outcome.seconds:7.1f} s  {state}")
    finally:
        if started_before is None:
            os.environ.pop("EMBEDLAB_RUN_STARTED", None)
        else:
            os.environ["EMBEDLAB_RUN_STARTED"] = started_before
    report = write_report(outcomes, profile, out_dir)
    if prepared:
        with open(report, "a", encoding="utf-8") as fh:  # and the preparation step's time
            fh.write("\n" + "\n".join(report_lines(prepared)))
    failed = sum(not o.ok for o in outcomes)
    print(f"\nReport: {report}  ({len(outcomes) - failed} ok, {failed} failed)")
    return failed
