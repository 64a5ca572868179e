"""claim() and the ledger: a claim's verdict printed, recorded, warned or raised; the ledger's
thirty rows, each verdict computed from planted records (holds, fails, partly, not measurable,
not run), and every id the ledger reads recorded by a chapter or listed as needed."""

import ast
import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from embedlab import report

ROOT = Path(__file__).resolve().parent.parent


def _notebook_ids() -> tuple[set[str], list[re.Pattern]]:
    """Ids every teaching notebook passes to ``record``/``claim``: literal ones, and f-string ids
    as patterns (``f"ch06.{key}"`` -> ``ch06\\..+``)."""
    literal, patterns = set(), []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            for m in ID_CALL.finditer(cell.source):
                prefix, rid = m.group(1), m.group(2)
                if prefix or "{" in rid:
                    patterns.append(re.compile(re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(rid))
                                               + "$"))
                else:
                    literal.add(rid)
    return literal, patterns


ID_CALL = re.compile(r"""\b(?:record|claim)\(\s*(f?)["']([^"']+)["']""")


def _ledger_reads() -> list[tuple[str, ...]]:
    """The id groups (an id and its aliases) the ledger's item functions read, from the source."""
    tree = ast.parse(Path(report.__file__).read_text(encoding="utf-8"))
    out = []
    for n in ast.walk(tree):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                and n.func.attr in ("record", "claim") and isinstance(n.func.value, ast.Name)
                and n.func.value.id == "ev"):
            out.append(tuple(a.value for a in n.args if isinstance(a, ast.Constant)))
    return out


def test_the_ledger_has_the_thirty_items() -> None:
    rows = report.ledger({}, {})
    assert [r["item"] for r in rows] == list(range(1, 31))
    for r in rows:
        assert {"item", "session", "verdict", "figures", "evidence"} <= set(r)
        assert re.fullmatch(r"\d\d", r["chapter"]) and len(r["session"]) > 20
        assert r["verdict"] in report.VERDICTS


def test_every_id_the_ledger_reads_is_recorded_by_a_chapter_or_listed_as_needed() -> None:
    literal, patterns = _notebook_ids()
    reads = _ledger_reads()
    assert len(reads) > 40
    written = [g for g in reads if any(i in literal or any(p.match(i) for p in patterns)
                                       for i in g)]
    unwritten = {g[0] for g in reads if g not in written}
    assert unwritten <= set(report.NEEDED), (
        f"the ledger reads ids no notebook writes and NEEDED does not list: "
        f"{sorted(unwritten - set(report.NEEDED))}")
    stale = [i for i in report.NEEDED if i in literal or any(p.match(i) for p in patterns)]
    assert not stale, f"NEEDED lists ids a notebook now records: {stale} (remove them)"
    assert set(report.NEEDED) <= {g[0] for g in reads}, "NEEDED lists ids the ledger never reads"


def test_needs_markdown_names_each_needed_record_and_its_chapter() -> None:
    text = report.needs_markdown()
    for rid, (chapter, _) in report.NEEDED.items():
        assert f"**chapter {chapter}**, `{rid}`" in text


def test_with_no_records_every_item_reads_not_run() -> None:
    rows = report.ledger({}, {})
    assert {r["verdict"] for r in rows} == {report.NOT_RUN}
    assert all(r["missing"] for r in rows)


def _row(records: dict, claims: dict | None = None, item: int = 0) -> dict:
    rows = {r["item"]: r for r in report.ledger(records, claims or {})}
    return rows[item]


COS = {"ch01.cos_king_queen": 0.92, "ch01.cos_king_banana": 0.05}


def test_item_2_holds_fails_or_is_partly_on_planted_cosines() -> None:
    assert _row(COS, item=2)["verdict"] == report.HOLDS
    r = _row({"ch01.cos_king_queen": 0.7839, "ch01.cos_king_banana": 0.2207}, item=2)
    assert r["verdict"] == report.FAILS
    assert r["figures"]["cos(king, queen), GloVe 6B 50d"] == 0.7839
    assert r["evidence"] == ["ch01.cos_king_queen", "ch01.cos_king_banana"]
    assert "0.78" in r["reason"] and "0.22" in r["reason"]
    assert _row({"ch01.cos_king_queen": 0.9, "ch01.cos_king_banana": 0.3}, item=2)["verdict"] \
        == report.PARTLY


MATRYOSHKA = {"fine-tuned, Matryoshka 384": 0.80, "fine-tuned, InfoNCE 384": 0.80,
              "MiniLM frozen 384": 0.78, "MiniLM frozen 64": 0.70}


def _mrl(loss_mrl: float, loss_plain: float, funnel: float = 1.0) -> dict:
    n = dict(MATRYOSHKA, **{"fine-tuned, Matryoshka 64": 0.80 - loss_mrl,
                            "fine-tuned, InfoNCE 64": 0.80 - loss_plain})
    return {"ch13.minilm_ndcg10_by_dims": n,
            "ch13.funnel_of_full_recall10": {"funnel 48 -> 384, s=100": funnel}}


def test_item_23_negligible_loss_is_a_threshold_on_the_measured_loss() -> None:
    assert _row(_mrl(0.005, 0.05), item=23)["verdict"] == report.HOLDS
    r = _row(_mrl(0.06, 0.08), item=23)       # Matryoshka helps, but 0.06 is not negligible
    assert r["verdict"] == report.PARTLY
    assert r["figures"]["nDCG@10 lost (Matryoshka, plain)"] == pytest.approx([0.06, 0.08])
    assert _row(_mrl(0.08, 0.06, funnel=0.9), item=23)["verdict"] == report.FAILS


def test_item_17_counts_the_ids_an_index_stores() -> None:
    r = _row({"ch09.adc_recall10_glove": 0.45}, item=17)
    assert r["verdict"] == report.PARTLY      # 128 B holds, lossy holds, 32x is about 30x
    ratio = r["figures"]["4096 B / bytes per vector"]
    assert 29 < ratio < 31
    assert _row({"ch09.adc_recall10_glove": 1.0}, item=17)["verdict"] == report.PARTLY


IVF_HNSW = {"dataset": "glove", "n": 20000, "dim": 50, "k": 10, "mode": "batch", "threads": 1,
            "blas": "matched", "recall_level": 0.9, "raw_bytes_per_vector": 200.0,
            "ivf": {"bytes_per_vector": 210.0, "best_recall": 1.0, "qps_at_level": 2000.0,
                    "params_at_level": {"nprobe": 8}, "qps_spread": None},
            "hnsw": {"bytes_per_vector": 340.0, "best_recall": 1.0, "qps_at_level": 6000.0,
                     "params_at_level": {"ef": 40}, "qps_spread": None}}


def test_item_16_reads_memory_speed_and_recall_side_by_side() -> None:
    assert _row({"ch11.ivf_vs_hnsw": IVF_HNSW}, item=16)["verdict"] == report.HOLDS
    fast = json.loads(json.dumps(IVF_HNSW))
    fast["ivf"]["qps_at_level"] = 9000.0      # IVF smaller, as fast and as accurate
    assert _row({"ch11.ivf_vs_hnsw": fast}, item=16)["verdict"] == report.PARTLY
    big = json.loads(json.dumps(fast))
    big["ivf"]["bytes_per_vector"] = 400.0
    assert _row({"ch11.ivf_vs_hnsw": big}, item=16)["verdict"] == report.PARTLY
    assert _row({"ch11.ivf_vs_hnsw": {"ivf": {}}}, item=16)["verdict"] == report.NOT_RUN


def _scann(scann_qps: float | None, other_qps: float) -> dict:
    row = {"library": "faiss", "index": "IVF", "params": {}, "recall": 0.92, "qps": other_qps}
    s = None if scann_qps is None else dict(row, library="ScaNN", index="AH", qps=scann_qps)
    best = max([r for r in (s, row) if r], key=lambda r: r["qps"])
    return {"ch11.scann_best": {"dataset": "glove", "n": 20000, "mode": "batch", "threads": 1,
                                "level": 0.9, "best": best, "scann": s, "best_other": row}}


def test_item_18_scann_best_is_a_speed_ratio_at_one_recall() -> None:
    assert _row(_scann(3000, 1000), item=18)["verdict"] == report.HOLDS
    assert _row(_scann(500, 1000), item=18)["verdict"] == report.FAILS
    assert _row(_scann(1050, 1000), item=18)["verdict"] == report.PARTLY
    assert _row(_scann(None, 1000), item=18)["verdict"] == report.FAILS


HNSW = {"ch10.degree_by_n": {"M": 16, "N": [1000, 2000, 4000, 8000],
                             "mean_degree_l0": [19.9, 20.3, 20.6, 20.8],
                             "max_degree_l0": [32, 32, 32, 32], "layers": [3, 3, 3, 5]},
        "ch10.latency_at_recall": {"recall": 0.965, "ef": 40, "median_ms": 0.028, "p99_ms": 0.05,
                                   "n": 4000, "mode": "single", "threads": 1},
        "ch10.memory_ratio_by_d": {"d": [50, 128, 384, 768, 1024, 1536],
                                   "M=16": [1.683, 1.267, 1.089, 1.044, 1.033, 1.022],
                                   "M=32": [2.321, 1.516, 1.172, 1.086, 1.065, 1.043]}}


def test_item_15_degree_latency_and_memory_of_hnsw() -> None:
    r = _row(HNSW, item=15)
    assert [p["verdict"] for p in r["parts"]] == [report.FAILS, report.HOLDS, report.PARTLY,
                                                   report.NOT_MEASURABLE]
    assert r["verdict"] == report.PARTLY
    slow = dict(HNSW, **{"ch10.latency_at_recall": dict(HNSW["ch10.latency_at_recall"],
                                                        recall=None, ef=None, median_ms=None)})
    assert _row(slow, item=15)["parts"][1]["verdict"] == report.FAILS
    grows = dict(HNSW, **{"ch10.degree_by_n": dict(HNSW["ch10.degree_by_n"],
                                                   mean_degree_l0=[7.0, 7.7, 8.3, 9.0])})
    assert _row(grows, item=15)["parts"][0]["verdict"] == report.HOLDS


def test_item_29_compares_the_heap_with_sorting_and_its_expected_replacements() -> None:
    heap = {"n": 2000, "ks": [1, 10, 100], "agrees_with_sort": True, "replacements_k10": 45,
            "expected_replacements_k10": 52.5, "sd_replacements_k10": 6.6}
    scan = {"ch17.heap_is_scan_selection": {"holds": True, "text": "same as faiss"}}
    assert _row({"ch18.k_closest_heap": heap}, scan, item=29)["verdict"] == report.HOLDS
    far = dict(heap, replacements_k10=2000)             # a heap touched on every point
    assert _row({"ch18.k_closest_heap": far}, scan, item=29)["verdict"] == report.PARTLY
    wrong = dict(heap, agrees_with_sort=False)
    scan_fails = {"ch17.heap_is_scan_selection": {"holds": False, "text": "differs"}}
    assert _row({"ch18.k_closest_heap": wrong}, scan_fails, item=29)["verdict"] == report.FAILS


def test_items_the_course_cannot_measure_say_so_with_their_figures() -> None:
    r = _row({"ch18.checklist": {"cosine": True, "heap": True}}, item=30)
    assert r["verdict"] == report.NOT_MEASURABLE and "2 of 2" in r["reason"]
    parts = _row(COS, item=4)["parts"]
    assert [p["verdict"] for p in parts] == [report.NOT_RUN, report.NOT_MEASURABLE]


def test_a_record_of_another_shape_reads_not_run_and_names_it() -> None:
    r = _row({"ch10.memory_ratio_by_d": {"M=16": [1.7]}}, item=15)
    assert r["verdict"] == report.NOT_RUN
    assert any(m.startswith("ch10.memory_ratio_by_d (shape") for m in r["missing"])


def test_combine_rules() -> None:
    H, F, P, N, R = (report.HOLDS, report.FAILS, report.PARTLY, report.NOT_MEASURABLE,
                     report.NOT_RUN)
    assert report.combine([H, N]) == H and report.combine([F, N]) == F
    assert report.combine([H, F]) == P and report.combine([H, P]) == P
    assert report.combine([N, N]) == N and report.combine([H, R, F]) == R
    with pytest.raises(ValueError, match="verdicts"):
        report.combine([])


def test_a_measured_contradiction_reads_fails_or_partly_with_figures() -> None:
    """The ledger can say the session is wrong: measured figures like this run's."""
    records = {"ch01.cos_king_queen": 0.7839, "ch01.cos_king_banana": 0.2207,
               "ch09.adc_recall10_glove": 0.45, **_mrl(0.059, 0.059),
               "ch08.bandwidth_gb_s": 20.95, "ch08.seconds_per_query_100m_1024d": 19.55}
    claims = {"ch02.cbow_predicts_centre": {"holds": True, "text": "CBOW predicts the centre"},
              "04.mteb_average_is_not_map": {"holds": True, "text": "not a mAP"}}
    rows = {r["item"]: r for r in report.ledger(records, claims)}
    against = [i for i in (2, 4, 8, 14, 17, 23) if rows[i]["verdict"] in (report.FAILS,
                                                                          report.PARTLY)]
    assert against == [2, 4, 8, 14, 17, 23]
    assert all(rows[i]["figures"] for i in against)
    assert rows[8]["evidence"] == ["04.mteb_average_is_not_map"]   # an alias of the claim id
    table = report.ledger_markdown(list(rows.values()))
    assert table.count("\n") == 31 and "| 2 | 01 |" in table and "**fails**" in table
    assert report.ledger_counts(list(rows.values()))[report.FAILS] >= 3


def test_course_results_read_only_this_runs_files(tmp_path, monkeypatch) -> None:
    old = tmp_path / "01_geometry_of_meaning.records.jsonl"
    old.write_text(json.dumps({"name": "ch01.cos_king_queen", "value": 0.5}) + "\n")
    os.utime(old, (1_000, 1_000))
    new = tmp_path / "02_word2vec.records.jsonl"
    new.write_text(json.dumps({"name": "ch02.sg_analogy", "value": 0.1}) + "\n"
                   + json.dumps({"claim": "ch02.cbow_predicts_centre", "text": "t",
                                 "holds": True}) + "\n")
    own = tmp_path / "18_checklist_review.records.jsonl"
    own.write_text("")
    monkeypatch.setattr(report, "_CLAIMS", [])
    monkeypatch.setattr(report, "_RECORDED", {"ch18.k": 1})
    records, claims, notebooks = report.course_results(own, since=2_000)
    assert records == {"ch02.sg_analogy": 0.1, "ch18.k": 1}
    assert list(claims) == ["ch02.cbow_predicts_centre"]
    assert notebooks == ["02_word2vec", "18_checklist_review"]
    monkeypatch.delenv("EMBEDLAB_REPORT", raising=False)
    records, claims, notebooks = report.course_results(None)
    assert records == {"ch18.k": 1} and notebooks == []


def test_claim_prints_records_and_returns_its_verdict(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "records.jsonl"
    monkeypatch.setenv("EMBEDLAB_REPORT", str(out))
    monkeypatch.delenv("EMBEDLAB_STRICT", raising=False)
    monkeypatch.setattr(report, "_CLAIMS", [])
    v = report.claim("ch99.holds", "two is more than one", 2 > 1)
    assert v and v == True and v.holds is True  # noqa: E712 (a Verdict compares with bools)
    assert capsys.readouterr().out.strip() == "✓ two is more than one"
    with pytest.warns(UserWarning, match="ch99.fails"):
        v = report.claim("ch99.fails", "one is more than two", 1 > 2)
    assert not v and v == False  # noqa: E712
    assert capsys.readouterr().out.strip() == "✗ one is more than two"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [{"claim": "ch99.holds", "text": "two is more than one", "holds": True},
                    {"claim": "ch99.fails", "text": "one is more than two", "holds": False}]
    assert [c["id"] for c in report.claims()] == ["ch99.holds", "ch99.fails"]


def test_claim_under_strict_raises_after_printing(monkeypatch, capsys) -> None:
    monkeypatch.delenv("EMBEDLAB_REPORT", raising=False)
    monkeypatch.setenv("EMBEDLAB_STRICT", "1")
    monkeypatch.setattr(report, "_CLAIMS", [])
    with pytest.raises(report.ClaimFailed, match="ch99.strict"):
        report.claim("ch99.strict", "a failing sentence", False)
    assert "✗ a failing sentence" in capsys.readouterr().out
    assert report.claim("ch99.ok", "a holding sentence", True)


def test_claim_rejects_a_verdict_that_is_not_a_bool() -> None:
    with pytest.raises(TypeError, match="holds must be a bool"):
        report.claim("ch99.x", "text", 0.5)
    with pytest.raises(ValueError, match="id"):
        report.claim("", "text", True)


def test_a_verdict_shows_nothing_in_a_notebook() -> None:
    """A cell ending in claim(...) displays only the printed sentence, no `Out: True`."""
    from IPython.core.formatters import DisplayFormatter

    assert DisplayFormatter().format(report.Verdict("ch99.x", True)) == ({}, {})
    assert DisplayFormatter().format(True)[0]  # a bare bool would be shown


BEYOND = {"ch15.zero_shot_accuracy": 0.96, "ch15.recall10_logq": 0.6,
          "ch15.recall10_popular": 0.2, "code.mrr10_finetuned": 0.641, "code.mrr10_bm25": 0.392,
          "audio.r1_heldout_voice": 0.925, "audio.chance": 1 / 1500}


def test_item_28_code_and_speech_read_chapter_16s_records_and_can_fail() -> None:
    parts = {p["statement"]: p for p in _row(BEYOND, item=28)["parts"]}
    assert parts["code"]["verdict"] == parts["speech"]["verdict"] == report.HOLDS
    flipped = dict(BEYOND, **{"code.mrr10_finetuned": 0.392, "code.mrr10_bm25": 0.641,
                              "audio.r1_heldout_voice": 1 / 1000})
    parts = {p["statement"]: p for p in _row(flipped, item=28)["parts"]}
    assert parts["code"]["verdict"] == parts["speech"]["verdict"] == report.FAILS
    assert "0.392 against 0.641" in parts["code"]["reason"]
