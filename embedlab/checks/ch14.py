"""Checks for chapter 14: overlap@k, a chunker with overlap, and the migration executor."""

from __future__ import annotations

import numpy as np

from embedlab.checks import exercise, raises


def _overlap(a, b, k: int) -> float:
    """overlap@k by counting, query by query (the check's own reference)."""
    shared = 0
    for row_a, row_b in zip(np.asarray(a)[:, :k], np.asarray(b)[:, :k], strict=True):
        shared += sum(1 for x in set(row_a.tolist()) if x >= 0 and x in set(row_b.tolist()))
    return shared / (k * len(a))


def _chunk(text: str, size: int, overlap: int) -> list[str]:
    """Windows of `size` words, `size - overlap` apart, until one reaches the last word."""
    words, out, start = text.split(), [], 0
    while True:
        out.append(" ".join(words[start:start + size]))
        if start + size >= len(words):
            return out
        start += size - overlap

# --------------------------------------------------------------------------- 14.overlap_at_k
ov = exercise("14.overlap_at_k", name="overlap_at_k", points=4,
    reference=("embedlab.failure:overlap_at_k",))


@ov.check("counts shared ids in each query's top k, divided by k, averaged over queries")
def _(fn):
    a = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    b = np.array([[4, 3, 2, 9], [8, 7, 6, 5]])
    got = float(fn(a, b, 4))
    assert abs(got - 7 / 8) < 1e-12, f"k=4: got {got}, expected {7 / 8}"
    got = float(fn(a, b, 2))
    assert abs(got - 0.0) < 1e-12, f"k=2: only the first 2 columns count, got {got}"


@ov.check("agrees with a count of shared ids on fresh random answers for several k")
def _(fn):
    rng = np.random.default_rng()
    a = np.stack([rng.permutation(30)[:12] for _ in range(25)])
    b = np.stack([rng.permutation(30)[:10] for _ in range(25)])
    for k in (1, 5, 10):
        got, want = float(fn(a, b, k)), _overlap(a, b, k)
        assert abs(got - want) < 1e-12, f"k={k}: got {got:.4f}, expected {want:.4f}"


@ov.check("ignores order within the top k and never matches the empty id -1")
def _(fn):
    assert abs(float(fn([[3, 1, 2]], [[2, 3, 1]], 3)) - 1.0) < 1e-12
    got = float(fn([[7, -1, -1]], [[7, -1, -1]], 3))
    assert abs(got - 1 / 3) < 1e-12, f"-1 is 'no result', not a shared id: got {got}"


@ov.check("raises ValueError for a different number of rows, k < 1 or k wider than the arrays")
def _(fn):
    a = np.array([[1, 2], [3, 4]])
    assert raises(fn, a, a[:1], 1), "2 rows vs 1 row must raise"
    assert raises(fn, a, a, 0), "k=0 must raise"
    assert raises(fn, a, a, 3), "k=3 with 2 columns must raise"


# --------------------------------------------------------------------------- 14.chunk_words
ch = exercise("14.chunk_words", name="chunk_words", points=4,
    reference=("embedlab.text:chunk",))


@ch.check("makes windows of `size` words stepping by size - overlap (the docstring's example)")
def _(fn):
    assert list(fn("a b c d e", 3, 1)) == ["a b c", "c d e"]
    words = " ".join(f"w{i}" for i in range(10))
    assert list(fn(words, 4, 2)) == ["w0 w1 w2 w3", "w2 w3 w4 w5", "w4 w5 w6 w7", "w6 w7 w8 w9"]


@ch.check("agrees with a reference chunker on a fresh random text for many sizes and overlaps")
def _(fn):
    rng = np.random.default_rng()
    text = " ".join(f"t{i}." if i % 7 == 6 else f"t{i}" for i in range(int(rng.integers(50, 90))))
    for size, overlap in ((1, 0), (5, 0), (5, 4), (16, 3), (100, 10)):
        got, want = list(fn(text, size, overlap)), _chunk(text, size, overlap)
        assert got == want, f"size={size}, overlap={overlap}: {len(got)} chunks, expected " \
                            f"{len(want)}"


@ch.check("loses no word and stops at the first window that reaches the end (whitespace too)")
def _(fn):
    assert list(fn("  one\ttwo \n three  ", 2, 0)) == ["one two", "three"]
    assert list(fn("x y", 5, 3)) == ["x y"]
    assert list(fn("a b c d", 2, 1)) == ["a b", "b c", "c d"]


@ch.check("raises ValueError for overlap >= size, a negative overlap, size < 1 or an empty text")
def _(fn):
    assert raises(fn, "a b c", 3, 3), "overlap == size must raise"
    assert raises(fn, "a b c", 3, 5), "overlap > size must raise"
    assert raises(fn, "a b c", 3, -1), "a negative overlap must raise"
    assert raises(fn, "a b c", 0, 0), "size 0 must raise"
    assert raises(fn, "   ", 3, 1), "an empty document must raise"
# --------------------------------------------------------------------------- 14.migration
mig = exercise("14.migration", name="MigrationExecutor", points=8,
    reference=("embedlab.failure:Migration", "embedlab.failure:Backfill"))


class _Crash(RuntimeError):
    """The process dies: raised by the v2 embedder in the middle of a backfill batch."""


class _World:
    """A random workload and its own answers: brute force over the texts the check wrote."""

    def __init__(self, seed: int, dim: int = 8):
        self.rng = np.random.default_rng(seed)
        self.seed, self.dim = seed, dim
        self.vecs: dict[tuple[str, str], np.ndarray] = {}
        self.calls = {"v1": 0, "v2": 0, "backfill": 0}
        self.in_backfill, self.crash_at = False, None
        self.texts: dict[int, str] = {}
        self.bad: list[str] = []           # every wrong or missing answer, with when it happened
        self.n_queries = 0

    def vec(self, model: str, text: str) -> np.ndarray:
        key = (model, text)
        if key not in self.vecs:           # a fresh random unit vector per (model, text)
            v = self.rng.normal(size=self.dim)
            self.vecs[key] = v / np.linalg.norm(v)
        return self.vecs[key]

    def embedder(self, model: str):
        def embed(texts):
            texts = list(texts)
            self.calls[model] += len(texts)
            if model == "v2" and self.in_backfill:
                self.calls["backfill"] += len(texts)
                if self.crash_at is not None and self.calls["backfill"] >= self.crash_at:
                    self.crash_at = None
                    raise _Crash("the backfill process crashed")
            return np.stack([self.vec(model, t) for t in texts]) if texts else np.zeros((0, 8))
        return embed

    def new_text(self) -> str:
        return f"text-{self.rng.integers(10**12)}"

    def expected(self, model: str, q: str, k: int, ids=None) -> list[int]:
        ids = sorted(self.texts if ids is None else ids)
        s = {i: float(self.vec(model, self.texts[i]) @ self.vec(model, q)) for i in ids}
        return sorted(ids, key=lambda i: (-s[i], i))[:k]

    def ask(self, ex, served: str, when: str, k: int = 5) -> None:
        q = f"query-{self.rng.integers(10**12)}"
        self.n_queries += 1
        got = ex.query(q, k)
        want = self.expected(served, q, k)
        got = [int(i) for i in got] if got is not None else None
        if got != want:
            self.bad.append(f"{when}: query answered {got}, brute force over {served} says {want}")


def _drive(cls, seed: int, crash: bool = True, batch: int | None = None) -> dict:
    """Run one random migration through ``cls``; returns what happened."""
    w = _World(seed)
    rng = w.rng
    n0 = int(rng.integers(20, 40))
    batch = batch or int(rng.integers(3, 7))
    w.texts = {i: w.new_text() for i in range(n0)}
    db = {"texts": dict(w.texts), "v1": {i: w.vec("v1", t) for i, t in w.texts.items()},
          "alias": "v1"}
    e1, e2 = w.embedder("v1"), w.embedder("v2")
    ex = cls(db, e1, e2, batch_size=batch)
    out = {"world": w, "db": db, "seed": seed, "n0": n0, "batch": batch, "errors": [],
           "states": [], "crashed": False, "shadow": [], "shadow_want": []}

    def write(when):
        doc = int(rng.integers(0, len(w.texts) + 3))
        doc = doc if doc in w.texts else max(w.texts) + 1
        w.texts[doc] = w.new_text()
        ex.write(doc, w.texts[doc])

    for _ in range(int(rng.integers(3, 8))):                  # v1 serving
        write("serving") if rng.random() < 0.5 else w.ask(ex, "v1", "before start()")
    ex.start()
    out["n_start"] = len(w.texts)
    out["states"].append(ex.state)
    try:
        ex.cutover()
        out["errors"].append("cutover() right after start() did not raise ValueError")
    except ValueError:
        pass
    n_batches = -(-out["n_start"] // batch)
    w.crash_at = int(rng.integers(batch + 1, max(batch + 2, (n_batches - 1) * batch))) \
        if crash else None
    done, steps = False, 0
    while not done and steps < 10 * n_batches + 20:
        steps += 1
        r = 0.5 if steps % 4 == 1 else rng.random()      # a query at least every 4 steps
        if r < 0.3:
            write("migrating")
        elif r < 0.6:
            q = f"query-{rng.integers(10**12)}"
            k = 5
            got = ex.query(q, k)
            want = w.expected("v1", q, k)
            w.n_queries += 1
            if [int(i) for i in got] != want:
                w.bad.append(f"during the backfill: got {got}, brute force over v1 says {want}")
            shadow = w.expected("v2", q, k, ids=[i for i in db.get("v2", {}) if i in w.texts])
            out["shadow_want"].append(len(set(want) & set(shadow)) / k)
            out["shadow"].append(ex.shadow_overlaps[-1] if ex.shadow_overlaps else None)
        else:
            w.in_backfill = True
            try:
                done = ex.backfill_step() == 0
            except _Crash:
                out["crashed"] = True
                ex = cls(db, e1, e2, batch_size=batch)            # a new process, same db
                out["states"].append(ex.state)
            finally:
                w.in_backfill = False
    out["backfill_done"] = done
    ex.cutover()
    out["states"].append(ex.state)
    for _ in range(int(rng.integers(4, 8))):                  # v2 serving
        write("after cutover") if rng.random() < 0.5 else w.ask(ex, "v2", "after cutover")
    ex.rollback()
    out["states"].append(ex.state)
    for _ in range(int(rng.integers(4, 8))):                  # v1 again: must be current
        write("after rollback") if rng.random() < 0.5 else w.ask(ex, "v1", "after rollback")
    w.ask(ex, "v1", "after rollback")
    out["v1_current"] = all(i in db["v1"] and np.allclose(db["v1"][i], w.vec("v1", t))
                            for i, t in w.texts.items())
    ex.cutover()
    out["states"].append(ex.state)
    w.ask(ex, "v2", "after the second cutover")
    out["v2_current"] = all(i in db.get("v2", {}) and np.allclose(db["v2"][i], w.vec("v2", t))
                            for i, t in w.texts.items())
    return out


def _seed() -> int:
    return int(np.random.default_rng().integers(2**31))


@mig.check("a state machine: start() moves serving -> migrating, cutover() -> cut_over, "
           "rollback() -> rolled_back, and the state is read from db (it survives a crash)")
def _(cls):
    seed = _seed()
    out = _drive(cls, seed, crash=True)
    want = ["migrating", "migrating", "cut_over", "rolled_back", "cut_over"]
    assert out["crashed"], f"seed {seed}: the injected crash never fired (is the backfill run?)"
    assert out["states"] == want, f"seed {seed}: states {out['states']}, expected {want}"


@mig.check("refuses moves the state machine does not allow (ValueError): cutover before the "
           "backfill is complete or before start(), rollback before a cutover, start() twice")
def _(cls):
    seed = _seed()
    out = _drive(cls, seed, crash=False)
    assert not out["errors"], f"seed {seed}: {out['errors'][0]}"
    w = _World(seed)
    db = {"texts": {0: "a", 1: "b"}, "v1": {0: w.vec("v1", "a"), 1: w.vec("v1", "b")},
          "alias": "v1"}
    ex = cls(db, w.embedder("v1"), w.embedder("v2"), batch_size=1)
    for name in ("cutover", "rollback"):
        assert raises(getattr(ex, name)), f"{name}() while serving must raise ValueError"
    ex.start()
    assert raises(ex.start), "start() while migrating must raise ValueError"
    assert raises(ex.rollback), "rollback() before any cutover must raise ValueError"
    ex.backfill_step()
    assert raises(ex.cutover), "cutover() with one of two documents backfilled must raise"
    assert db["alias"] == "v1", "a refused cutover must leave the alias on v1"


@mig.check("nothing lost: after a crash mid-backfill and a resume, every document, including "
           "those written or rewritten during the migration, is in v2 with its current text")
def _(cls):
    seed = _seed()
    out = _drive(cls, seed, crash=True)
    assert out["backfill_done"], f"seed {seed}: backfill_step() never returned 0 (done)"
    assert out["v2_current"], f"seed {seed}: some document is missing from db['v2'] or holds " \
                              "the vector of an old text (write the cursor after the upsert)"


@mig.check("no query unanswered: before, during and across the crash, after cutover and after "
           "rollback, query() returns the served collection's top k (checked by brute force)")
def _(cls):
    seed = _seed()
    out = _drive(cls, seed, crash=True)
    w = out["world"]
    assert w.n_queries > 5, f"seed {seed}: too few queries ran"
    assert not w.bad, f"seed {seed}: {len(w.bad)} of {w.n_queries} wrong; first: {w.bad[0]}"


@mig.check("resumes instead of restarting: the backfill embeds each document that existed at "
           "start() once, plus at most the one batch the crash interrupted")
def _(cls):
    seed = _seed()
    out = _drive(cls, seed, crash=True)
    n = out["world"].calls["backfill"]
    n0 = out["n_start"]
    bound = n0 + out["batch"]                 # plus the one batch the crash interrupted
    assert n <= bound, f"seed {seed}: {n} texts embedded by the backfill for {n0} " \
                       f"documents (batch {out['batch']}): keep the cursor in db"
    assert n >= n0, f"seed {seed}: only {n} of {n0} documents backfilled"


@mig.check("rollback loses nothing: dual writes continue after the cutover, so v1 is current "
           "when it serves again")
def _(cls):
    seed = _seed()
    out = _drive(cls, seed, crash=False)
    assert out["v1_current"], f"seed {seed}: after the rollback v1 misses a write made after " \
                              "the cutover"


@mig.check("shadow reads: each query while migrating appends to self.shadow_overlaps the "
           "overlap@k of v1's answer and v2's answer over what v2 holds so far")
def _(cls):
    seed = _seed()
    out = _drive(cls, seed, crash=False)
    got, want = out["shadow"], out["shadow_want"]
    assert want, f"seed {seed}: no query ran during the migration"
    bad = [(g, x) for g, x in zip(got, want, strict=True)
           if g is None or abs(float(g) - x) > 1e-9]
    assert not bad, f"seed {seed}: logged overlap {bad[0][0]}, expected {bad[0][1]}"
