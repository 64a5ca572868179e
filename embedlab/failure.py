"""Failure modes of real embedding systems, and the machinery that fixes them.

Three pieces, each small enough to read in one sitting:

* **Comparing answers.** ``overlap_at_k`` (how many of one system's top k the other also
  returns) and ``rank_flips`` (pairs of shared results whose order is reversed) measure how far
  two rankings of the same queries disagree, without any relevance labels.
* **Quantised storage.** ``QuantizedIndex`` stores vectors as float16, int8 (per-dimension
  scalar quantisation) or binary (one sign bit per dimension, Hamming distance), searches the
  compressed codes, and optionally **re-scores** a shortlist with the float32 vectors (kept
  "on disk"), the usual recipe for binary and int8 embeddings.
* **A migration with no downtime.** When the embedding model changes (v1 -> v2), vectors from
  the two models are not comparable: querying a v1 index with v2 vectors returns near-random
  neighbours, silently. ``Migration`` moves a live collection to a new model the way production
  systems do:

  1. **dual write**: every write from now on is embedded by both models and goes to both
     collections;
  2. **backfill**: a ``Backfill`` re-embeds the existing documents in batches, saving a
     checkpoint (a JSON file with its cursor) after each batch, so a crash resumes where it
     stopped instead of starting over;
  3. **shadow reads**: queries are still answered from v1, and also run against v2; the
     overlap@10 of the two answers is logged;
  4. **cutover**: an alias (the name clients query) is swapped to v2 in one step;
  5. **rollback**: the alias is swapped back; v1 stayed current thanks to dual writes.

  ``simulate_migration`` runs a seeded query and write stream through all of it and records, for
  every query, which collection answered it and whether the relevant document came back.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Aliases",
    "Backfill",
    "DocumentStore",
    "Migration",
    "QuantizedIndex",
    "VectorCollection",
    "overlap_at_k",
    "overlap_per_query",
    "rank_flips",
    "simulate_migration",
    "window_spans",
]

Embed = Callable[[Sequence[str]], np.ndarray]


# =========================================================================== comparing answers
def _quiet(progress: bool) -> bool:
    """True when a progress bar must stay hidden: ``progress`` is False, or ``$TQDM_DISABLE`` is
    set (executed builds set it; tqdm's notebook bar ignores it once ``disable=`` is passed)."""
    env = os.environ.get("TQDM_DISABLE", "").strip().lower()
    return (not progress) or env not in ("", "0", "false", "no")


def _ids_2d(x: object, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array of ids (n_queries, k), got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold integer ids, got dtype {a.dtype}")
    return a


def _check_k(k: object, width: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 1 <= k <= width:
        raise ValueError(f"k must be in [1, {width}] (the width of the id arrays), got {k}")
    return int(k)


def overlap_at_k(ids_a, ids_b, k: int = 10) -> float:
    """Mean over queries of |top-k of a ∩ top-k of b| / k (id -1, "no result", never matches).

    1.0: the two systems return the same k results (in any order); about k / n for unrelated
    random rankings of n documents.
    """
    a, b = _ids_2d(ids_a, "ids_a"), _ids_2d(ids_b, "ids_b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"ids_a and ids_b must have one row per query each, got {a.shape[0]} "
                         f"and {b.shape[0]} rows")
    k = _check_k(k, min(a.shape[1], b.shape[1]))
    if a.shape[0] == 0:
        raise ValueError("ids_a is empty: expected at least one query")
    total = 0
    for ra, rb in zip(a[:, :k].tolist(), b[:, :k].tolist(), strict=True):
        total += len({i for i in ra if i >= 0} & {i for i in rb if i >= 0})
    return total / (k * a.shape[0])


def overlap_per_query(ids_a, ids_b, k: int = 10) -> np.ndarray:
    """|top-k of a ∩ top-k of b| / k for each query, as a float64 array (its mean is
    :func:`overlap_at_k`); feeds :func:`embedlab.stats.bootstrap_ci` or ``paired_bootstrap``."""
    a, b = _ids_2d(ids_a, "ids_a"), _ids_2d(ids_b, "ids_b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"ids_a and ids_b must have one row per query each, got {a.shape[0]} "
                         f"and {b.shape[0]} rows")
    k = _check_k(k, min(a.shape[1], b.shape[1]))
    if a.shape[0] == 0:
        raise ValueError("ids_a is empty: expected at least one query")
    return np.array([len({i for i in ra if i >= 0} & {i for i in rb if i >= 0}) / k
                     for ra, rb in zip(a[:, :k].tolist(), b[:, :k].tolist(), strict=True)],
                    dtype=np.float64)


def window_spans(n_words: int, size: int, overlap: int = 0) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` word positions of the fixed windows that
    ``embedlab.text.chunk(text, size, overlap)`` cuts from a text of ``n_words`` words: each
    window starts ``size - overlap`` words after the previous one, the last one reaches the end.
    Used to draw where the chunks of a long document fall."""
    for name, value in (("n_words", n_words), ("size", size), ("overlap", overlap)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if n_words < 1 or size < 1:
        raise ValueError(f"n_words and size must be >= 1, got {n_words} and {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, size={size}), got {overlap}")
    spans = []
    for start in range(0, int(n_words), int(size - overlap)):
        spans.append((start, min(start + int(size), int(n_words))))
        if start + size >= n_words:
            break
    return spans


def rank_flips(ids_ref, ids_test, k: int = 10) -> float:
    """Mean number, per query, of pairs of results in both top-k lists whose order is reversed.

    A pair (x, y) "flips" when the reference ranks x above y and the tested system ranks y above
    x (Kendall's discordant pairs, restricted to the shared results). 0 means every shared result
    keeps its relative order.
    """
    a, b = _ids_2d(ids_ref, "ids_ref"), _ids_2d(ids_test, "ids_test")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"ids_ref and ids_test must have the same number of rows, got "
                         f"{a.shape[0]} and {b.shape[0]}")
    k = _check_k(k, min(a.shape[1], b.shape[1]))
    flips = 0
    for ra, rb in zip(a[:, :k].tolist(), b[:, :k].tolist(), strict=True):
        pos_b = {i: r for r, i in enumerate(rb) if i >= 0}
        shared = [pos_b[i] for i in ra if i >= 0 and i in pos_b]   # ref order, test positions
        flips += sum(1 for x in range(len(shared)) for y in range(x + 1, len(shared))
                     if shared[x] > shared[y])
    return flips / max(1, a.shape[0])


# =========================================================================== quantised storage
def _as_matrix(x: object, name: str, dim: int | None = None) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (n, dim), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"{name} must have dim={dim} columns, got {a.shape[1]}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` columns of each row, highest score first; ties by the lower column.

    A partial selection (``argpartition``) finds each row's k-th best value; every column above
    it and, by column order, enough columns equal to it are kept, then only those are sorted.
    """
    n = scores.shape[1]
    k = min(k, n)
    if k == n or n <= 4 * k:
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, axis=1), order
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    order = np.empty((len(scores), k), dtype=np.int64)
    for r in range(len(scores)):
        above = np.flatnonzero(scores[r] > kth[r])
        tied = np.flatnonzero(scores[r] == kth[r])[: k - len(above)]
        cols = np.concatenate([above, tied])
        order[r] = cols[np.lexsort((cols, -scores[r, cols]))]
    return np.take_along_axis(scores, order, axis=1), order


class QuantizedIndex:
    """Exact inner-product search over vectors stored as float32, float16, int8 or binary.

    * ``float16``: each value rounded to half precision (2 bytes per dimension);
    * ``int8``: per-dimension scalar quantisation, ``code = round((x - lo) / (hi - lo) * 255) -
      128`` with ``lo, hi`` the training minimum and maximum of that dimension (1 byte);
    * ``binary``: one bit per dimension, the sign (``dim / 8`` bytes); scored by
      ``dim - 2 * hamming(q_bits, x_bits)``, the inner product of the two sign vectors.

    ``search(q, k, rescore=r)`` takes the best ``max(r, k)`` candidates by the compressed score,
    then re-ranks them by the exact float32 inner product (the float32 vectors are kept in
    ``self.full``, standing for a copy on disk: ``nbytes`` counts only the codes). Queries stay
    float32 except for ``binary``, where they are binarised too.
    """

    KINDS = ("float32", "float16", "int8", "binary")

    def __init__(self, dim: int, kind: str = "float16"):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be an int >= 1, got {dim!r}")
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        self.dim, self.kind = int(dim), kind
        self.full = np.zeros((0, self.dim), np.float32)
        self.codes: np.ndarray | None = None
        self.lo: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    @property
    def ntotal(self) -> int:
        return len(self.full)

    @property
    def nbytes(self) -> int:
        """Bytes of the searched codes (the float32 copy for re-scoring is not counted)."""
        return 0 if self.codes is None else int(self.codes.nbytes)

    def add(self, x) -> None:
        """Add vectors (ids continue from ``ntotal``); int8 ranges come from the first batch."""
        x = _as_matrix(x, "x", self.dim)
        self.full = np.concatenate([self.full, x])
        if self.kind == "int8" and self.lo is None:
            self.lo = x.min(axis=0)
            self.scale = np.maximum(x.max(axis=0) - self.lo, 1e-12) / 255.0
        new = self.encode(x)
        self.codes = new if self.codes is None else np.concatenate([self.codes, new])

    def encode(self, x) -> np.ndarray:
        x = _as_matrix(x, "x", self.dim)
        if self.kind == "float32":
            return x.copy()
        if self.kind == "float16":
            return x.astype(np.float16)
        if self.kind == "int8":
            if self.lo is None:
                raise ValueError("int8 ranges are unset: add vectors before encoding")
            q = np.rint((x - self.lo) / self.scale) - 128
            return np.clip(q, -128, 127).astype(np.int8)
        return np.packbits(x > 0, axis=1)

    def decode(self, codes) -> np.ndarray:
        """float32 reconstructions of ``codes`` (binary: the +-1 sign vectors)."""
        c = np.asarray(codes)
        if self.kind in ("float32", "float16"):
            return c.astype(np.float32)
        if self.kind == "int8":
            return ((c.astype(np.float32) + 128) * self.scale + self.lo).astype(np.float32)
        bits = np.unpackbits(c, axis=1, count=self.dim)
        return bits.astype(np.float32) * 2 - 1

    def scores(self, q) -> np.ndarray:
        """Compressed-domain scores of every query against every stored vector (higher = better)."""
        q = _as_matrix(q, "q", self.dim)
        if self.codes is None:
            raise ValueError("the index is empty: add vectors before searching")
        if self.kind == "binary":
            qb = np.packbits(q > 0, axis=1)
            out = np.empty((len(q), self.ntotal), np.float32)
            block = max(1, (1 << 24) // max(1, self.codes.size))     # about 16 MB of XORs
            for s in range(0, len(q), block):
                xor = qb[s:s + block, None, :] ^ self.codes[None, :, :]
                ham = np.bitwise_count(xor).sum(axis=2, dtype=np.int64)
                out[s:s + block] = self.dim - 2 * ham
            return out
        if self.kind == "float16":            # float16 storage, arithmetic in float32
            return q @ self.codes.astype(np.float32).T
        return q @ self.decode(self.codes).T

    def search(self, q, k: int, rescore: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ids by compressed score, or by float32 score among the best ``rescore``."""
        q = _as_matrix(q, "q", self.dim)
        k = _check_k(k, max(1, self.ntotal))
        if isinstance(rescore, bool) or not isinstance(rescore, (int, np.integer)) or rescore < 0:
            raise ValueError(f"rescore must be an int >= 0 (shortlist size), got {rescore!r}")
        out_d, out_i = [], []
        for start in range(0, len(q), 256):          # bounded memory: 256 query rows at a time
            qb = q[start:start + 256]
            s = self.scores(qb)
            if not rescore:
                d, i = _top_k(s, k)
            else:
                _, cand = _top_k(s, max(int(rescore), k))
                exact = np.einsum("qd,qcd->qc", qb, self.full[cand])
                d, pos = _top_k(exact, k)
                i = np.take_along_axis(cand, pos, axis=1)
            out_d.append(d)
            out_i.append(i)
        return np.concatenate(out_d), np.concatenate(out_i)


# =========================================================================== the migration
class DocumentStore:
    """The source of truth: document id -> text. Embeddings are derived data; texts are not."""

    def __init__(self) -> None:
        self.texts: dict[int, str] = {}

    def put(self, doc_id: int, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"document {doc_id}: text must be a non-empty string")
        self.texts[int(doc_id)] = text

    def ids(self) -> list[int]:
        return sorted(self.texts)

    def __len__(self) -> int:
        return len(self.texts)


class VectorCollection:
    """A named set of unit vectors from ONE embedding model, keyed by document id.

    ``upsert`` inserts or overwrites; ``search`` is exact inner product (cosine on unit
    vectors), ties broken by insertion order. ``model`` names the embedder: the whole point of
    this chapter is that vectors of different models must never meet in one collection.
    """

    def __init__(self, name: str, dim: int, model: str):
        self.name, self.dim, self.model = name, int(dim), model
        self._vecs = np.zeros((0, self.dim), np.float32)
        self._ids: list[int] = []
        self._row: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, doc_id: int) -> bool:
        return int(doc_id) in self._row

    def upsert(self, ids: Sequence[int], vectors) -> None:
        v = _as_matrix(vectors, "vectors", self.dim)
        if len(ids) != len(v):
            raise ValueError(f"ids and vectors must have the same length, got {len(ids)} and "
                             f"{len(v)}")
        new_rows: list[np.ndarray] = []
        stored = len(self._vecs)
        for i, row in zip(ids, v, strict=True):
            i = int(i)
            r = self._row.get(i)
            if r is None:                      # a new document: a new row at the end
                self._row[i] = stored + len(new_rows)
                self._ids.append(i)
                new_rows.append(row)
            elif r < stored:
                self._vecs[r] = row
            else:                              # written twice in this call: last one wins
                new_rows[r - stored] = row
        if new_rows:
            self._vecs = np.concatenate([self._vecs, np.stack(new_rows)])

    def search(self, q, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Scores and document ids of the ``k`` best matches (padded with -inf / -1)."""
        q = _as_matrix(q, "q", self.dim)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        out_d = np.full((len(q), k), -np.inf, np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        if len(self._ids):
            d, pos = _top_k(q @ self._vecs.T, k)
            out_d[:, : d.shape[1]] = d
            out_i[:, : d.shape[1]] = np.asarray(self._ids)[pos]
        return out_d, out_i


class Aliases:
    """Names clients query -> collection names; ``swap`` repoints an alias in one step."""

    def __init__(self) -> None:
        self._map: dict[str, str] = {}
        self.history: list[tuple[str, str | None, str]] = []

    def swap(self, alias: str, collection: str) -> str | None:
        previous = self._map.get(alias)
        self._map[alias] = collection
        self.history.append((alias, previous, collection))
        return previous

    def resolve(self, alias: str) -> str:
        if alias not in self._map:
            raise KeyError(f"unknown alias {alias!r}; known: {sorted(self._map)}")
        return self._map[alias]


class Backfill:
    """Re-embed every document that existed when the backfill started, in resumable batches.

    The checkpoint file holds ``{"collection", "ids", "cursor"}``: the frozen list of ids to
    do and how many are done. After each batch it is rewritten atomically (write, then rename),
    so after a crash ``Backfill(..., checkpoint=same_path)`` continues at the first unfinished
    batch. Documents written after the start are covered by dual writes; re-embedding a document
    is idempotent (an upsert of its current text), so a batch redone after a crash is harmless.
    """

    def __init__(self, store: DocumentStore, target: VectorCollection, embed: Embed,
                 checkpoint: str | Path, batch_size: int = 64):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.store, self.target, self.embed = store, target, embed
        self.batch_size = batch_size
        self.path = Path(checkpoint)
        if self.path.exists():
            state = json.loads(self.path.read_text(encoding="utf-8"))
            if state["collection"] != target.name:
                raise ValueError(f"checkpoint {self.path} belongs to collection "
                                 f"{state['collection']!r}, not {target.name!r}")
            self.ids, self.cursor = [int(i) for i in state["ids"]], int(state["cursor"])
        else:
            self.ids, self.cursor = store.ids(), 0
            self._save()
        self.embedded = 0                     # documents embedded by THIS object

    def _save(self) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps({"collection": self.target.name, "ids": self.ids,
                                   "cursor": self.cursor}), encoding="utf-8")
        tmp.replace(self.path)

    @property
    def done(self) -> bool:
        return self.cursor >= len(self.ids)

    def step(self) -> int:
        """Embed and upsert the next batch, then checkpoint; returns how many were done."""
        batch = self.ids[self.cursor:self.cursor + self.batch_size]
        if not batch:
            return 0
        texts = [self.store.texts[i] for i in batch]
        self.target.upsert(batch, self.embed(texts))
        self.cursor += len(batch)
        self.embedded += len(batch)
        self._save()
        return len(batch)

    def run(self, max_batches: int | None = None, progress: bool = True) -> int:
        """Run batches until done (or ``max_batches``), with a tqdm bar; returns docs embedded."""
        from tqdm.auto import tqdm

        n = 0
        with tqdm(total=len(self.ids), initial=self.cursor, desc=f"backfill {self.target.name}",
                  disable=_quiet(progress), leave=False) as bar:
            while not self.done and (max_batches is None or n < max_batches):
                bar.update(self.step())
                n += 1
        return n


@dataclass
class Migration:
    """Move the alias ``alias`` from collection ``old`` to ``new`` with no downtime."""

    store: DocumentStore
    aliases: Aliases
    alias: str
    old: VectorCollection
    embed_old: Embed
    new: VectorCollection | None = None
    embed_new: Embed | None = None
    state: str = "serving"        # serving -> dual_write -> cut_over (-> rolled_back)
    shadow_overlaps: list[float] = field(default_factory=list)

    def collection(self, name: str) -> VectorCollection:
        for c in (self.old, self.new):
            if c is not None and c.name == name:
                return c
        raise KeyError(f"no collection named {name!r}")

    def start(self, new: VectorCollection, embed_new: Embed) -> None:
        """Create the v2 collection and begin dual writes."""
        if new.name == self.old.name:
            raise ValueError("the new collection needs its own name")
        self.new, self.embed_new, self.state = new, embed_new, "dual_write"

    def write(self, doc_id: int, text: str) -> None:
        """Store the text, then embed it into v1 and, during a migration, into v2 as well."""
        self.store.put(doc_id, text)
        self.old.upsert([doc_id], self.embed_old([text]))
        if self.new is not None:
            self.new.upsert([doc_id], self.embed_new([text]))

    def query(self, q_old, q_new=None, k: int = 10, shadow: bool = True
              ) -> tuple[np.ndarray, str]:
        """Answer from whatever the alias points at; shadow-read the other collection.

        ``q_old`` / ``q_new``: the query embedded by each model (one row). Returns the served ids
        (k,) and the name of the collection that served them.
        """
        served = self.aliases.resolve(self.alias)
        ids_old = self.old.search(q_old, k)[1]
        ids_new = None if self.new is None or q_new is None else self.new.search(q_new, k)[1]
        if shadow and ids_new is not None:
            self.shadow_overlaps.append(overlap_at_k(ids_old, ids_new, k))
        ids = ids_old if served == self.old.name else ids_new
        if ids is None:
            raise ValueError(f"alias points at {served!r}, but no query vector for it was given")
        return ids[0], served

    def cutover(self) -> None:
        """Point the alias at v2 (refused until every document is in v2)."""
        if self.new is None:
            raise ValueError("no migration in progress: call start() first")
        missing = [i for i in self.store.ids() if i not in self.new]
        if missing:
            raise ValueError(f"cutover refused: {len(missing)} documents are not in "
                             f"{self.new.name!r} yet (finish the backfill)")
        self.aliases.swap(self.alias, self.new.name)
        self.state = "cut_over"

    def rollback(self) -> None:
        """Point the alias back at v1; dual writes kept it current, so nothing is lost."""
        self.aliases.swap(self.alias, self.old.name)
        self.state = "rolled_back"


def simulate_migration(doc_texts: Sequence[str], queries: Sequence[int],
                       embed_v1: Embed, embed_v2: Embed, query_text: Sequence[str], *,
                       n_initial: int, start_at: int, write_every: int = 4,
                       backfill_every: int = 2, batch_size: int = 32, crash_after: int = 2,
                       rollback_at: int | None = None, k: int = 10, checkpoint: str | Path,
                       seed: int = 0, progress: bool = True) -> dict:
    """A seeded stream of queries and writes through a full v1 -> v2 migration.

    Documents ``0..n_initial-1`` are in v1 at the start; every ``write_every`` ticks the next
    document is written (new ids), or, when all are written, an existing one is re-written.
    Tick ``t`` issues query ``queries[t]`` (a document id: its ``query_text`` is the query and
    that document is the relevant answer; only documents already written are queried). At
    ``start_at`` the migration starts (dual writes; a ``Backfill`` runs one batch every
    ``backfill_every`` ticks); the first backfill object "crashes" after ``crash_after`` batches
    and a new one resumes from the checkpoint. Cutover happens the tick after the backfill
    finishes; ``rollback_at`` (optional) rolls back there and cuts over again 20 ticks later.

    Returns ``{"log": list of per-tick dicts, "migration": Migration, "embedded_v2": int}``;
    each log row has ``tick, phase, served_by, hit, hit_v1, hit_v2, overlap`` (``hit``: the
    relevant document is in the served top k; ``hit_v1``/``hit_v2``: in each collection's).
    """
    rng = np.random.default_rng(seed)
    n_docs = len(doc_texts)
    if not 1 <= n_initial <= n_docs:
        raise ValueError(f"n_initial must be in [1, {n_docs}], got {n_initial}")
    ckpt = Path(checkpoint)
    if ckpt.exists():
        ckpt.unlink()
    store, aliases = DocumentStore(), Aliases()
    q1_all = np.asarray(embed_v1(list(query_text)), np.float32)
    q2_all = np.asarray(embed_v2(list(query_text)), np.float32)
    v1 = VectorCollection("docs_v1", q1_all.shape[1], "v1")
    mig = Migration(store, aliases, "docs", v1, embed_v1)
    for start in range(0, n_initial, 256):      # the v1 system as it was before we arrived
        ids = list(range(start, min(n_initial, start + 256)))
        for i in ids:
            store.put(i, doc_texts[i])
        v1.upsert(ids, embed_v1([doc_texts[i] for i in ids]))
    aliases.swap("docs", "docs_v1")
    next_doc, backfill, batches_by_first, embedded_v2 = n_initial, None, 0, 0
    cut_tick, log = None, []
    from tqdm.auto import tqdm

    for t in tqdm(range(len(queries)), desc="query stream", disable=_quiet(progress),
                  leave=False):
        if t == start_at:
            mig.start(VectorCollection("docs_v2", q2_all.shape[1], "v2"), embed_v2)
            backfill = Backfill(store, mig.new, embed_v2, ckpt, batch_size)
        if t > 0 and t % write_every == 0:
            if next_doc < n_docs:
                mig.write(next_doc, doc_texts[next_doc])
                next_doc += 1
            else:
                i = int(rng.integers(0, n_docs))
                mig.write(i, doc_texts[i])
        if backfill is not None and not backfill.done and t % backfill_every == 0:
            backfill.step()
            batches_by_first += 1
            if batches_by_first == crash_after and backfill.embedded:      # a crash: resume
                embedded_v2 += backfill.embedded
                backfill = Backfill(store, mig.new, embed_v2, ckpt, batch_size)
            if backfill.done:
                embedded_v2 += backfill.embedded
                cut_tick = t + 1
        if cut_tick is not None and t == cut_tick:
            mig.cutover()
        if rollback_at is not None and mig.state == "cut_over" and t == rollback_at:
            mig.rollback()
        if rollback_at is not None and mig.state == "rolled_back" and t == rollback_at + 20:
            mig.cutover()
        doc = int(queries[t]) % min(next_doc, n_docs)
        q1, q2 = q1_all[doc:doc + 1], q2_all[doc:doc + 1]
        ids, served = mig.query(q1, q2 if mig.new is not None else None, k)
        hit_v1 = bool(doc in v1.search(q1, k)[1][0])
        hit_v2 = None if mig.new is None else bool(doc in mig.new.search(q2, k)[1][0])
        phase = {"serving": "v1 only", "dual_write": "dual write + backfill",
                 "cut_over": "after cutover", "rolled_back": "rolled back"}[mig.state]
        log.append({"tick": t, "phase": phase, "served_by": served, "answered": len(ids) == k,
                    "hit": bool(doc in ids), "hit_v1": hit_v1, "hit_v2": hit_v2,
                    "overlap": mig.shadow_overlaps[-1] if mig.new is not None else math.nan})
    return {"log": log, "migration": mig, "embedded_v2": embedded_v2}
