"""Crash tests that prove their kill (``embedlab.vectordb.crash``): a writer process SIGKILLed
inside an open transaction, the proof that it was (a journal left behind by SQLite; a
transaction id that PostgreSQL showed open at the kill and reports aborted after recovery),
then no committed batch lost and no row of the killed batch visible. For PostgreSQL the server
process serving the writer is killed, and, separately, the postmaster itself, which is then
started again and recovers from its write-ahead log."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab import vectordb as V
from embedlab.vectordb import crash

DIM, BATCH = 64, 2_000


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    srv, folder = V.start_pgserver(tmp_path_factory.mktemp("pg"))
    yield srv
    V.stop_pgserver(srv, folder)


def _common(report: dict) -> None:
    assert report["mid-transaction"], report["proof"]
    assert 1 <= report["tries"] <= 8
    assert report["writer exit"] == -9                       # SIGKILL, no clean-up
    assert report["rows reported committed"] == 2 * BATCH    # batches 0 and 1
    assert report["rows after reopening"] == report["rows reported committed"]
    assert report["rows of the killed batch"] == 0           # no partial batch visible
    assert report["whole batches only"] and report["no committed row lost"]


def test_sqlite_kill_leaves_a_journal_and_loses_nothing(tmp_path):
    report = crash.kill_mid_transaction("sqlite-vec", tmp_path / "c.db", DIM, BATCH)
    _common(report)
    assert "journal of" in report["proof"] and report["integrity"] == "ok"
    store = V.SqliteVecAdapter(tmp_path / "c.db", table="crash").attach(DIM)
    x0 = np.random.default_rng(0).standard_normal((BATCH, DIM)).astype(np.float32)
    assert store.search(x0[:3], 1)[1][:, 0].tolist() == [0, 1, 2]   # the writer's batch 0
    store.upsert([10 ** 9], x0[:1] * 2, {"source": ["t"], "date": [0]})  # writable again
    assert not (tmp_path / "c.db-journal").exists()         # the next write cleared it
    store.close()


def test_hot_journal_reads_the_header(tmp_path):
    db = tmp_path / "x.db"
    assert crash.hot_journal(db) == 0                        # no journal
    (tmp_path / "x.db-journal").write_bytes(bytes(600))      # zero header: not hot
    assert crash.hot_journal(db) == 0
    (tmp_path / "x.db-journal").write_bytes(crash.JOURNAL_MAGIC + bytes(600))
    assert crash.hot_journal(db) == 608


@pytest.mark.parametrize("kill", ["backend", "postmaster"])
def test_pgvector_kill_aborts_the_open_transaction(kill, pg):
    report = crash.kill_mid_transaction("pgvector", pg.get_uri(), DIM, BATCH, kill=kill,
                                        srv=pg)
    _common(report)
    assert "open at the kill, " in report["proof"]
    assert ("'aborted' after recovery" in report["proof"]
            or crash.NEVER_LOGGED in report["proof"]), report["proof"]
    assert report["crash recovery"], report["recovery log"]
    store = V.PgVectorStore(dsn=pg.get_uri(), table="crash").attach(DIM)
    n_dates = store.conn.execute("SELECT count(DISTINCT date) FROM crash").fetchone()[0]
    assert n_dates == 2
    x0 = np.random.default_rng(0).standard_normal((BATCH, DIM)).astype(np.float32)
    assert store.search(x0[:3], 1)[1][:, 0].tolist() == [0, 1, 2]
    store.close()


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="engine"):
        crash.kill_mid_transaction("redis", tmp_path / "c.db", DIM)
    with pytest.raises(ValueError, match="kill"):
        crash.kill_mid_transaction("sqlite-vec", tmp_path / "c.db", DIM, kill="postmaster")
    with pytest.raises(ValueError, match="srv"):
        crash.kill_mid_transaction("pgvector", "postgresql://x", DIM, kill="backend")
