"""The course runner and report, notebook cleaning, and `embedlab doctor`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from embedlab import report
from embedlab.course import clean_notebook, run_course

PARAMS = ('from embedlab.profiles import profile_from_env, sizes\n\n'
          'profile = profile_from_env(default="standard")')


def _notebook(path: Path, body: str) -> None:
    params = new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell(f"# {path.name[:2]} · test"), params,
                             new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


def test_run_course_reports_successes_and_failures(tmp_path: Path) -> None:
    src = tmp_path / "notebooks"
    src.mkdir()
    _notebook(src / "00_good.ipynb",
              "from embedlab.report import record\n"
              "record('ch00.profile', profile)\nrecord('ch00.answer', 42.0)")
    _notebook(src / "01_bad.ipynb", "x = 1\nraise RuntimeError('deliberate failure')")
    _notebook(src / "02_after.ipynb", "from embedlab.report import record\nrecord('ch02.ran', 1)")
    out = tmp_path / "out"
    failed = run_course("ci", notebooks_dir=src, out_dir=out)
    assert failed == 1
    text = (out / "REPORT.md").read_text()
    assert "Profile `ci`; 2 of 3 notebooks ran" in text
    assert "| 00_good.ipynb | ok |" in text
    assert "| 01_bad.ipynb | FAILED (" in text and "deliberate failure" in text
    assert "| 02_after.ipynb | ok |" in text  # a failure stops nothing else
    assert "| `ch00.profile` | \"ci\" |" in text and "| `ch00.answer` | 42 |" in text
    assert (out / "00_good.html").exists() and (out / "00_good.ipynb").exists()
    data = json.loads((out / "report.json").read_text())
    assert set(data) == {"notebooks", "ledger"}
    assert [r["ok"] for r in data["notebooks"]] == [True, False, True]
    assert data["notebooks"][0]["records"] == {"ch00.profile": "ci", "ch00.answer": 42}
    ledger = data["ledger"]
    assert [r["item"] for r in ledger] == list(range(1, 31))
    assert all({"item", "session", "verdict", "figures", "evidence"} <= set(r) for r in ledger)
    assert {r["verdict"] for r in ledger} == {report.NOT_RUN}   # no chapter of the course ran
    assert "## Ledger" in text and "| 30 | 18 |" in text and "30 not run" in text
    assert "EMBEDLAB_RUN_STARTED" not in os.environ


def test_the_report_ledger_reads_this_runs_records(tmp_path: Path) -> None:
    from embedlab.course import Outcome, write_report

    outcomes = [Outcome("01_geometry_of_meaning.ipynb", True, 1.0, records={
        "ch01.cos_king_queen": 0.7839, "ch01.cos_king_banana": 0.2207}),
        Outcome("02_word2vec.ipynb", True, 1.0, claims=[
            {"id": "ch02.cbow_predicts_centre", "text": "CBOW predicts the centre",
             "holds": True}])]
    write_report(outcomes, "ci", tmp_path)
    ledger = {r["item"]: r for r in json.loads((tmp_path / "report.json").read_text())["ledger"]}
    assert ledger[2]["verdict"] == report.FAILS and ledger[2]["figures"]
    assert ledger[4]["verdict"] == report.FAILS
    assert ledger[4]["evidence"] == ["ch02.cbow_predicts_centre"]
    assert "| 2 | 01 |" in (tmp_path / "REPORT.md").read_text()


def test_record_writes_json_lines(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "r.jsonl"
    monkeypatch.setenv("EMBEDLAB_REPORT", str(path))
    import numpy as np

    report.record("a.float", np.float32(0.5))
    report.record("a.list", np.array([1, 2]))
    report.record("a.float", 0.75)
    assert report.read_records(path) == {"a.float": 0.75, "a.list": [1, 2]}
    assert report.recorded()["a.list"] == [1, 2]


def test_clean_notebook_strips_outputs_and_metadata() -> None:
    cell = new_code_cell("1 + 1", execution_count=3,
                         outputs=[new_output("execute_result", {"text/plain": "2"},
                                             execution_count=3)])
    cell.metadata.update({"tags": ["x"], "collapsed": True, "papermill": {}})
    nb = new_notebook(cells=[cell])
    nb.metadata.update({"papermill": {}, "widgets": {}})
    clean = clean_notebook(nb)
    assert clean.cells[0].outputs == [] and clean.cells[0].execution_count is None
    assert clean.cells[0].metadata == {"tags": ["x"]}
    assert set(clean.metadata) == {"kernelspec", "language_info"}


def test_doctor_prints_versions_threads_and_data() -> None:
    proc = subprocess.run([sys.executable, "-m", "embedlab.cli", "doctor"], capture_output=True,
                          text=True, check=True)
    out = proc.stdout
    for word in ("python", "torch_threads", "cuda", "faiss-cpu", "glove-6b-50d", "data_cache"):
        assert word in out
    assert "problem" not in out
