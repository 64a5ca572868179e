"""The claims ledger: every CLAIMS.md item has a row, every listed claim id is stated somewhere."""

import json
import re
from pathlib import Path

import nbformat

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
    # and each id is stated in the chapter the ledger names (or in chapter 17, the review)
    for item, (chapter, ids, _) in report.LEDGER.items():
        for i in ids:
            own = re.match(r"(?:ch)?(\d\d)\.", i).group(1)
            assert stated[i][:2] in (chapter, "17") and stated[i][:2] == own, (item, i, stated[i])


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
    own = tmp_path / "17_checklist_review.records.jsonl"
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
