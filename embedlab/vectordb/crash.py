"""Crash tests that prove their kill: SIGKILL a writer in the middle of a transaction, then count.

A writer process (``python -m embedlab.vectordb.crash ENGINE WHERE DIM BATCH``) inserts batches
of ``BATCH`` random rows, one transaction per batch, and reports each step on stdout
(``begin b``, for PostgreSQL ``xid b X``, ``committed n``). ``kill_mid_transaction`` waits until
batch 2 is under way (for SQLite, until its journal appears), SIGKILLs it after a random part of
a batch's duration, and then checks that the kill really landed inside the open transaction,
which a kill at a random moment may miss (the batch may have committed just before):

* SQLite (rollback-journal mode): a write transaction copies each page's old content to
  ``<file>-journal`` before changing it, and deleting the journal is its commit (SQLite, "Atomic
  Commit In SQLite"). A journal that outlives its process therefore proves the kill came
  mid-transaction. Its header holds the magic bytes ``d9 d5 05 f9 20 a1 63 d7`` once it has been
  synced, just before the database file itself is changed: such a journal is *hot*, and the
  next connection copies the old pages back (rollback); with a zero header the database file
  was never touched and the journal is ignored.
* PostgreSQL: the writer prints the id of its transaction (``pg_current_xact_id()``). Just
  before the kill, ``pg_stat_activity.backend_xid`` shows it open; after recovery,
  ``pg_xact_status(xid)`` must read ``aborted``, never ``committed`` (or the recovered server
  must not know the id at all: it was handed out but no WAL record of it survived, so it cannot
  have committed).

A try whose kill missed is thrown away and run again, at most ``max_tries`` times. Two kills
for PostgreSQL: ``"backend"`` kills the writer and the server process serving it (the
postmaster then resets every session and recovers from its write-ahead log); ``"postmaster"``
kills the server itself, which is started again and replays its WAL (crash recovery, PostgreSQL
manual, "Write-Ahead Logging"). Afterwards: no committed batch lost, no row of the killed batch
visible, the file (SQLite) passes ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")
KILLS = ("writer", "backend", "postmaster")


def writer(engine: str, where: str, dim: int, batch: int, table: str = "crash") -> None:
    """The writer process: batches of random rows, one transaction each, reported on stdout."""
    from embedlab import vectordb as V

    fields = {"source": str, "date": int}
    if engine == "pgvector":
        store = V.PgVectorStore(dsn=where, table=table, fields=fields).attach(dim)
        print("backend", store.conn.info.backend_pid, flush=True)
    else:
        store = V.SqliteVecAdapter(where, fields=fields, table=table).attach(dim)
    rng = np.random.default_rng(0)
    for b in range(1000):
        x = rng.standard_normal((batch, dim)).astype(np.float32)
        ids = range(b * batch, (b + 1) * batch)
        payload = {"source": ["w"] * batch, "date": [b] * batch}
        print("begin", b, flush=True)
        if engine == "pgvector":
            with store.conn.transaction():
                xid = store.conn.execute("SELECT pg_current_xact_id()").fetchone()[0]
                print("xid", b, xid, flush=True)
                store.upsert(ids, x, payload)
        else:
            store.upsert(ids, x, payload)
        print("committed", (b + 1) * batch, flush=True)


def hot_journal(db: str | Path) -> int:
    """Bytes of a hot rollback journal next to ``db`` (0 if there is none)."""
    j = Path(f"{db}-journal")
    if not j.exists() or j.stat().st_size < len(JOURNAL_MAGIC):
        return 0
    with open(j, "rb") as f:
        return j.stat().st_size if f.read(len(JOURNAL_MAGIC)) == JOURNAL_MAGIC else 0


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.0005)
    return True


def _postmaster_pid(srv) -> int:
    return int((Path(srv.pgdata) / "postmaster.pid").read_text().split()[0])


def _in_progress(dsn: str, backend: int, xid: int) -> bool:
    import psycopg

    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as c:
        open_xid = c.execute("SELECT backend_xid FROM pg_stat_activity WHERE pid = %s",
                             (backend,)).fetchone()
        status = c.execute("SELECT pg_xact_status(%s::text::xid8)", (str(xid),)).fetchone()[0]
    return bool(open_xid and open_xid[0] is not None and status == "in progress")


def _alive(pid: int) -> bool:
    """Whether ``pid`` still exists. A dead child of ours (this process may be a subreaper that
    adopted the daemonised server) stays a zombie until we reap it, and pgserver would read its
    pid as a running server and never start a new one: reap it here. Another's zombie is waited
    for until its parent reaps it."""
    import psutil

    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0          # our child: 0 while it runs, its pid once reaped
    except ChildProcessError:
        return psutil.pid_exists(pid)


def _connect_when_up(dsn: str, timeout: float = 60.0):
    import psycopg

    deadline = time.time() + timeout
    while True:
        try:
            return psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
        except psycopg.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def kill_mid_transaction(engine: str, where: str | Path, dim: int, batch: int = 2_000,
                         kill: str = "writer", srv: Any = None, max_tries: int = 8,
                         seed: int = 0) -> dict[str, Any]:
    """Kill a writer mid-transaction (retrying a kill that missed) and check what survived.

    ``engine`` is ``"sqlite-vec"`` (``where``: the database file; ``kill="writer"``) or
    ``"pgvector"`` (``where``: the DSN, ``srv``: the pgserver handle; ``kill="backend"`` or
    ``"postmaster"``). The table (``crash``) or file is created afresh for every try. Returns
    the tries it took, the proof that the kill landed mid-transaction, the rows reported
    committed and the rows found after reopening, and the checks.
    """
    from embedlab.index.base import check_int

    if engine not in ("sqlite-vec", "pgvector"):
        raise ValueError(f"engine must be 'sqlite-vec' or 'pgvector', got {engine!r}")
    if kill not in KILLS or (engine == "sqlite-vec") != (kill == "writer"):
        raise ValueError(f"kill must be 'writer' for sqlite-vec and 'backend' or 'postmaster' "
                         f"for pgvector, got {kill!r} for {engine}")
    if engine == "pgvector" and srv is None:
        raise ValueError("srv (the pgserver handle) is needed to kill and restart PostgreSQL")
    dim, batch = check_int(dim, "dim"), check_int(batch, "batch")
    max_tries = check_int(max_tries, "max_tries")
    rng = np.random.default_rng(seed)
    for attempt in range(1, max_tries + 1):
        out = _one_try(engine, str(where), dim, batch, kill, srv, rng)
        if out["mid-transaction"]:
            out["tries"] = attempt
            return out
    raise RuntimeError(f"{engine}: no kill landed inside a transaction in {max_tries} tries")


def _fresh(engine: str, where: str, dim: int) -> None:
    from embedlab import vectordb as V

    fields = {"source": str, "date": int}
    if engine == "pgvector":
        V.PgVectorStore(dsn=where, table="crash", fields=fields).create(dim).close()
    else:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{where}{suffix}").unlink(missing_ok=True)
        V.SqliteVecAdapter(where, fields=fields, table="crash").create(dim).close()


def _one_try(engine, where, dim, batch, kill, srv, rng) -> dict[str, Any]:
    _fresh(engine, where, dim)
    proc = subprocess.Popen([sys.executable, "-m", "embedlab.vectordb.crash", engine, where,
                             str(dim), str(batch)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    committed, backend, xid, t_begin, t_batch, was_open = 0, None, None, {}, None, None
    victims: list[int] = []
    log_start = 0 if srv is None else len(_log(srv))
    try:
        for line in proc.stdout:
            word, *rest = line.split()
            if word == "backend":
                backend = int(rest[0])
            elif word == "committed":
                committed = int(rest[0])
                if committed == 2 * batch:
                    t_batch = time.perf_counter() - t_begin[1]
            elif word == "begin":
                t_begin[int(rest[0])] = time.perf_counter()
            if (engine == "sqlite-vec" and word == "begin" and rest[0] == "2") or \
                    (word == "xid" and rest[0] == "2"):
                xid = int(rest[1]) if word == "xid" else None
                t_batch = t_batch or 0.1
                if engine == "sqlite-vec":           # wait for the batch's first page write
                    _wait_for(lambda: Path(f"{where}-journal").exists(), 5 * t_batch)
                time.sleep(float(rng.uniform(0.0, 0.3)) * t_batch)
                if kill == "backend":
                    was_open = _in_progress(where, backend, xid)
                    os.kill(backend, signal.SIGKILL)
                elif kill == "postmaster":
                    was_open = _in_progress(where, backend, xid)
                    import psutil

                    pm = _postmaster_pid(srv)
                    victims = [p.pid for p in psutil.Process(pm).children(recursive=True)]
                    os.kill(pm, signal.SIGKILL)
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    report: dict[str, Any] = {"engine": engine, "kill": kill, "writer exit": proc.returncode,
                              "rows reported committed": committed}
    if engine == "sqlite-vec":
        return _check_sqlite(where, batch, report)
    return _check_pg(where, batch, kill, srv, xid, was_open, victims, log_start, report)


def _check_sqlite(where, batch, report) -> dict[str, Any]:
    from embedlab.vectordb.sqlite import connect_sqlite_vec

    j = Path(f"{where}-journal")
    left = j.stat().st_size if j.exists() else 0
    hot = hot_journal(where) > 0
    conn = connect_sqlite_vec(where)        # the first reader rolls a hot journal back
    n = int(conn.execute("SELECT count(*) FROM crash").fetchall()[0][0])
    killed_batch = int(conn.execute("SELECT count(*) FROM crash WHERE date = 2")
                       .fetchall()[0][0])
    integrity = conn.execute("PRAGMA integrity_check").fetchall()[0][0]
    conn.close()
    state = ("hot: the database file was being written, rolled back on reopening" if hot else
             "header not yet synced: the database file was untouched")
    report.update({"mid-transaction": left > 0, "proof": f"journal of {left} bytes left, {state}",
                   "hot journal": hot,
                   "rows after reopening": n, "rows of the killed batch": killed_batch,
                   "no committed row lost": n >= report["rows reported committed"],
                   "whole batches only": n % batch == 0, "integrity": integrity})
    return report


NEVER_LOGGED = "unknown to the recovered server (no WAL record of it survived)"


def _xact_status(conn, xid: int) -> str:
    """``pg_xact_status`` of ``xid`` after recovery. An id the recovered server calls "in the
    future" was handed out but never reached the WAL before the crash: that transaction cannot
    have committed (its commit record would be in the WAL)."""
    import psycopg

    try:
        return conn.execute("SELECT pg_xact_status(%s::text::xid8)", (str(xid),)).fetchone()[0]
    except psycopg.errors.InvalidParameterValue:
        return NEVER_LOGGED


def _log(srv) -> str:
    from embedlab.vectordb.pgvector import server_log

    return server_log(srv)


def _check_pg(dsn, batch, kill, srv, xid, was_open, victims, log_start, report
              ) -> dict[str, Any]:
    from embedlab.vectordb.pgvector import restart_pgserver

    if kill == "postmaster":
        import psutil

        deadline = time.time() + 30
        for pid in victims:                   # the dead server's own processes
            while _alive(pid) and time.time() < deadline:
                time.sleep(0.05)
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
        dsn = restart_pgserver(srv)
    conn = _connect_when_up(dsn)
    status = _xact_status(conn, xid)
    n = int(conn.execute("SELECT count(*) FROM crash").fetchone()[0])
    killed_batch = int(conn.execute("SELECT count(*) FROM crash WHERE date = 2").fetchone()[0])
    conn.close()
    log = _log(srv)[log_start:]
    recovery = [ln.split("LOG:", 1)[-1].strip() for ln in log.splitlines()
                if "automatic recovery in progress" in ln or "redo done" in ln
                or "redo starts" in ln]
    report.update({"mid-transaction": bool(was_open) and status in ("aborted", NEVER_LOGGED),
                   "proof": f"xid {xid} open at the kill, '{status}' after recovery",
                   "rows after reopening": n, "rows of the killed batch": killed_batch,
                   "no committed row lost": n >= report["rows reported committed"],
                   "whole batches only": n % batch == 0,
                   "crash recovery": bool(recovery), "recovery log": recovery[-3:]})
    return report


if __name__ == "__main__":
    writer(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
