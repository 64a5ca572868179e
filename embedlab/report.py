"""The course report: key results recorded by notebooks, gathered by ``make course``.

A notebook calls ``record("ch17.heap_ops_n1e6_k10", 2.1e7)``. When the notebook runs under
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


class Verdict:
    """What :func:`claim` returns: true when the claim holds, false when it does not.

    A notebook cell that ends with ``claim(...)`` shows nothing more than the sentence that
    ``claim`` printed with its mark (a plain ``bool`` would add an ``Out: True`` under it).
    """

    __slots__ = ("id", "holds")

    def __init__(self, id: str, holds: bool) -> None:
        self.id, self.holds = id, holds

    def __bool__(self) -> bool:
        return self.holds

    def __eq__(self, other: object) -> bool:
        return bool(self) == other if isinstance(other, (bool, Verdict)) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.holds)

    def __repr__(self) -> str:
        return f"Verdict({self.id!r}, holds={self.holds})"

    def _ipython_display_(self) -> None:
        """Display nothing: the sentence and its mark are already printed."""


def claim(id: str, text: str, holds: Any) -> Verdict:
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
    return Verdict(id, holds)


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


# --------------------------------------------------------------------------- the ledger
# The session's claims (../shared/CLAIMS.md, items 1 to 30) -> the chapter that checks each one,
# the ids of the claim() calls that check it, and a short paraphrase. Chapter 18 prints it as a
# table computed from the claims the course recorded. An item whose tuple of ids is empty is not
# checked by any chapter yet; its row says so.
LEDGER: dict[int, tuple[str, tuple[str, ...], str]] = {
    1: ("01", ("ch01.sentences_cluster_by_topic",),
        "an embedding maps items to vectors; similar things get similar vectors"),
    2: ("01", ("ch01.cos_example_model_dependent",),
        "cos(king, queen) about 0.92, cos(king, banana) about 0.05"),
    3: ("01", ("ch01.king_minus_man_plus_woman",), "king - man + woman is close to queen"),
    4: ("02", ("ch02.cbow_predicts_centre",),
        "word2vec: CBOW and skip-gram, trained on Google News, one vector per word"),
    5: ("03", ("ch03.glove_fits_log_counts", "ch03.w2v_vs_glove"),
        "GloVe factorises the co-occurrence matrix: same regime, different objective"),
    6: ("04", ("04.siamese_one_vector",),
        "Sentence-BERT: a siamese BERT fine-tuned on NLI and STS pairs"),
    7: ("06", ("06.dropout_is_the_augmentation",),
        "SimCSE: dropout as the augmentation, no labelled pairs"),
    8: ("04", ("04.mteb_average_is_not_map",), "modern embedders; what the MTEB average is"),
    9: ("05", ("05.low_tau_weights_hard_negatives", "05.denominator_includes_positive",
               "ch18.low_tau_hard_negatives", "ch18.infonce_denominator"),
        "InfoNCE with tau about 0.05 to 0.1; lower tau weighs hard negatives more"),
    10: ("05", ("05.in_batch_negatives", "ch18.in_batch_negatives"),
        "a batch of 256 gives 255 free negatives per anchor"),
    11: ("05", ("05.hard_negative_margin",), "hard negatives raise the margin and the quality"),
    12: ("07", ("ch07.dot_equals_cosine_unit", "ch07.metrics_disagree_raw",
                "ch18.unit_vectors_rank_identically"),
         "cosine for varying magnitude; dot equals cosine on unit vectors"),
    13: ("07", ("ch07.normalise_once_faster",), "always L2-normalise, then use the dot product"),
    14: ("08", ("ch08.scan_100m_1024d",),
         "a linear scan of 100M x 1024-d is about 400 GB and takes seconds per query"),
    15: ("10", ("ch10.degree_is_constant", "ch10.layers_grow_like_log_n", "ch10.sub_ms_at_95",
                "ch10.memory_vs_raw"),
         "HNSW: log N neighbours, 95-99% recall under a millisecond, about 2x memory"),
    16: ("08", ("ch08.ivf_recall_rises",), "IVF: smaller than HNSW, slower or lower recall"),
    17: ("09", ("ch09.pq_4096_to_128",), "PQ: 4096 B become 128 B, 32x smaller and lossy"),
    18: ("11", ("ch11.anisotropic_vs_scann", "ch11.scann_scan_faster"),
         "ScaNN: anisotropic loss plus ADC give the best recall and throughput"),
    19: ("11", ("ch11.exact_1m_query_ms", "ch11.table_hnsw_100m", "ch11.table_ivfpq_1b",
                "ch18.index_choice_by_size"),
         "the index-choice table by collection size, latency, recall and memory"),
    20: ("12", ("ch12.slower_beyond_10m", "ch12.pre_filter", "ch12.post_filter_trap"),
         "the vector databases compared (pgvector slower beyond 10M, payload filtering)"),
    21: ("12", ("ch12.until_you_outgrow_it",), "pgvector until you outgrow it"),
    22: ("13", ("ch13.bigger_not_better",), "bigger is not better; dimension sweet spots"),
    23: ("13", ("ch13.six_x_truncation_loss", "ch13.mrl_keeps_more",
                "ch13.minilm_matryoshka_6x", "ch13.funnel_recovers", "ch18.minilm_truncation"),
         "Matryoshka: truncate 6x with negligible quality loss"),
    24: ("14", ("ch14.drift", "ch14.migration"),
         "drift: a new embedder version makes every stored vector stale"),
    25: ("14", ("ch14.mismatch",), "distribution mismatch loses recall"),
    26: ("14", ("ch14.fp16_inference", "ch14.fp16_mixing"),
         "fp16 for inference, fp32 for storage; mixing can drop recall"),
    27: ("14", ("ch14.truncation", "ch14.chunking"),
         "the tokenisation gap: chunk before embedding"),
    28: ("15", ("ch15.zero_shot_far_above_chance", "ch15.logq_recovers_recall"),
         "images, recommendation, code and audio use the same contrastive recipe"),
    29: ("17", ("ch17.heap_is_scan_selection", "ch18.k_closest_heap"),
        "k closest points: a size-k heap, as an ANN scan"),
    30: ("18", ("ch18.checklist_demonstrated",), "the learner's end-of-course checklist"),
}

NOT_RUN = "not run in this session: run `make course`"
NOT_CHECKED = "not checked by chapter {chapter} yet"


def course_claims(report: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Claims recorded by every notebook of this course run, ``{id: {id, text, holds, notebook}}``.

    Under ``embedlab course`` each notebook writes ``build/course/NN_x.records.jsonl`` (the file
    ``EMBEDLAB_REPORT`` names); the files beside the current one hold the earlier notebooks'
    claims. Outside a course run (JupyterLab, tests) there are none, and the claims stated in this
    process are all there is.
    """
    report = report or os.environ.get("EMBEDLAB_REPORT")
    out: dict[str, dict[str, Any]] = {}
    if report:
        for path in sorted(Path(report).parent.glob("*.records.jsonl")):
            notebook = path.name.removesuffix(".records.jsonl")
            for c in read_claims(path):
                out[c["id"]] = {**c, "notebook": notebook}
    for c in claims():
        out[c["id"]] = {**c, "notebook": "this notebook"}
    return out


def ledger_rows(recorded: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per CLAIMS.md item: item, chapter, claim, what was measured, verdict."""
    recorded = course_claims() if recorded is None else recorded
    rows = []
    for item, (chapter, ids, text) in sorted(LEDGER.items()):
        found = [recorded[i] for i in ids if i in recorded]
        if not ids:
            measured, verdict = "", NOT_CHECKED.format(chapter=chapter)
        elif not found:
            measured, verdict = "", NOT_RUN
        else:
            measured = " ".join(f"{'✓' if c['holds'] else '✗'} {c['text']}" for c in found)
            failed = [c["id"] for c in found if not c["holds"]]
            missing = [i for i in ids if i not in recorded]
            verdict = ("FAILS: " + ", ".join(failed)) if failed else "checked, all hold"
            if missing:
                verdict += f" ({len(missing)} of {len(ids)} checks not run in this session)"
        rows.append({"item": item, "chapter": chapter, "claim": text, "measured": measured,
                     "verdict": verdict})
    return rows


def ledger_markdown(rows: list[dict[str, Any]]) -> str:
    """The ledger rows as a Markdown table."""
    lines = ["| # | chapter | claim | what was measured | verdict |", "|---:|---|---|---|---|"]
    for r in rows:
        cells = [str(r["item"]), r["chapter"], r["claim"], r["measured"] or "–", r["verdict"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells)
                     + " |")
    return "\n".join(lines)
