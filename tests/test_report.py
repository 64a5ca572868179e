"""claim() and the claims ledger: a verdict printed, recorded, warned or raised; every CLAIMS.md
item has a row, every listed claim id is stated somewhere."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from embedlab import report

ROOT = Path(__file__).resolve().parent.parent
CLAIM_CALL = re.compile(r"""claim\(\s*f?["']([a-z0-9_.]+)["']""")


def stated_claim_ids() -> dict[str, str]:
    """``{claim id: notebook}`` for every ``claim("id", ...)`` in the teaching notebooks."""
    out = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                for cid in CLAIM_CALL.findall(cell.source):
                    out[cid] = path.name
    return out


def test_ledger_covers_every_item_of_the_claims_list() -> None:
    assert sorted(report.LEDGER) == list(range(1, 31))
    for item, (chapter, ids, text) in report.LEDGER.items():
        assert re.fullmatch(r"\d\d", chapter) and text, item
        assert all(re.fullmatch(r"(ch)?\d\d\.[a-z0-9_]+", i) for i in ids), item


def test_every_ledger_claim_id_is_stated_by_a_notebook() -> None:
    stated = stated_claim_ids()
    missing = [(item, i) for item, (_, ids, _) in report.LEDGER.items() for i in ids
               if i not in stated]
    assert not missing, f"ledger ids no notebook states: {missing}"
    # and each id is stated in the chapter the ledger names (or in chapter 18, the review)
    for item, (chapter, ids, _) in report.LEDGER.items():
        for i in ids:
            own = re.match(r"(?:ch)?(\d\d)\.", i).group(1)
            assert stated[i][:2] in (chapter, "18") and stated[i][:2] == own, (item, i, stated[i])


def test_rows_say_not_run_when_nothing_was_recorded() -> None:
    rows = report.ledger_rows({})
    assert len(rows) == 30
    for r in rows:
        ids = report.LEDGER[r["item"]][1]
        assert r["verdict"] == (report.NOT_RUN if ids else
                                report.NOT_CHECKED.format(chapter=r["chapter"]))


def test_rows_take_verdicts_from_the_course_records(tmp_path, monkeypatch) -> None:
    first = tmp_path / "01_geometry_of_meaning.records.jsonl"
    first.write_text(json.dumps({"claim": "ch01.cos_example_model_dependent", "text": "measured",
                                 "holds": True}) + "\n" + json.dumps(
        {"claim": "ch01.king_minus_man_plus_woman", "text": "wrong", "holds": False}) + "\n")
    own = tmp_path / "18_checklist_review.records.jsonl"
    own.write_text("")
    monkeypatch.setattr(report, "_CLAIMS", [])
    recorded = report.course_claims(own)
    assert recorded["ch01.cos_example_model_dependent"]["notebook"] == "01_geometry_of_meaning"
    rows = {r["item"]: r for r in report.ledger_rows(recorded)}
    assert rows[2]["verdict"] == "checked, all hold" and "measured" in rows[2]["measured"]
    assert rows[3]["verdict"] == "FAILS: ch01.king_minus_man_plus_woman"
    assert rows[1]["verdict"] == report.NOT_RUN
    table = report.ledger_markdown(list(rows.values()))
    assert table.count("\n") == 31 and "| 2 | 01 |" in table


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
