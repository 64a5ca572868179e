"""Vector databases: embeddings next to ordinary data, searched with SQL or an ANN index.

Six real engines behind one thin adapter each, with the same five operations (``create``,
``upsert``, ``delete``, ``search``, ``close``) and the same rules (``base``: the checks, the
distance convention, k real ids, the zero vector refused under cosine):

========================  =============================================================
module                    engine
========================  =============================================================
``vectordb.pgvector``     PostgreSQL + pgvector (HNSW, halfvec, binary, IVFFlat; full text)
``vectordb.milvus``       Milvus Lite (faiss HNSW per sealed segment)
``vectordb.qdrant``       Qdrant's client in local mode (exact numpy search)
``vectordb.lance``        LanceDB (IVF-PQ on Lance files; full text)
``vectordb.sqlite``       sqlite-vec in SQLite (exact ``vec0`` scan; FTS5)
``vectordb.faiss_store``  faiss ``IndexIDMap2(IndexFlat)`` with the payload in Python
========================  =============================================================

``vectordb.workload`` holds chapter 12's workload and measurements, ``vectordb.crash`` the
crash tests that prove their kill. ``open_store(engine, path)`` opens any adapter by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedlab.vectordb.base import (
    DEFAULT_FIELDS,
    ENGINES,
    METRICS,
    ZERO_VECTOR,
    VectorStore,
    dir_bytes,
    reciprocal_rank_fusion,
    require,
    text_terms,
)
from embedlab.vectordb.faiss_store import FaissStore
from embedlab.vectordb.lance import LanceStore, lance_build_ivfpq, lance_search, lance_table
from embedlab.vectordb.milvus import MilvusStore
from embedlab.vectordb.pgvector import (
    PgVectorStore,
    pg_vector_literal,
    plan_label,
    restart_pgserver,
    start_pgserver,
    stop_pgserver,
)
from embedlab.vectordb.qdrant import QdrantStore
from embedlab.vectordb.sqlite import SqliteVecAdapter, SqliteVecStore, connect_sqlite_vec
from embedlab.vectordb.workload import (
    HybridTask,
    Workload,
    filtered_run,
    measure,
    news_workload,
    per_query_recall,
    pg_latency_model,
    plan_summary,
    post_filter,
    single_query_ms,
)

__all__ = [
    "ADAPTERS", "DEFAULT_FIELDS", "ENGINES", "METRICS", "ZERO_VECTOR", "FaissStore",
    "HybridTask", "LanceStore", "MilvusStore", "PgVectorStore", "QdrantStore",
    "SqliteVecAdapter", "SqliteVecStore", "VectorStore", "Workload", "connect_sqlite_vec",
    "dir_bytes", "filtered_run", "lance_build_ivfpq", "lance_search", "lance_table", "measure",
    "news_workload", "open_store", "per_query_recall", "pg_latency_model", "pg_vector_literal",
    "plan_label", "plan_summary", "post_filter", "reciprocal_rank_fusion", "require",
    "restart_pgserver", "single_query_ms", "start_pgserver", "stop_pgserver", "text_terms",
]

ADAPTERS: dict[str, type[VectorStore]] = {
    "pgvector": PgVectorStore, "milvus": MilvusStore, "qdrant": QdrantStore,
    "lancedb": LanceStore, "sqlite-vec": SqliteVecAdapter, "faiss": FaissStore}


def open_store(engine: str, path: str | Path | None = None, **options: Any) -> VectorStore:
    """The adapter for ``engine`` (one of ``ENGINES``), opened on ``path``."""
    if engine not in ADAPTERS:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return ADAPTERS[engine](path, **options)
