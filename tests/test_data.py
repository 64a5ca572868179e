"""The data registry: documented types, offline loading, clear errors for bad files."""

import shutil

import numpy as np
import pytest

from embedlab import data


def test_names_lists_the_datasets() -> None:
    assert data.names() == ["glove-6b-50d", "analogy-google", "wordsim353", "simlex999", "lee",
                            "wiki-sample", "news", "digits"]


def test_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'glove'.*known: "):
        data.load("glove")


def test_glove_shape_and_known_similarity() -> None:
    vectors, words = data.load("glove-6b-50d")
    assert vectors.shape == (400_000, 50) and vectors.dtype == np.float32
    assert len(words) == 400_000 and words[:3] == ["the", ",", "."]
    idx = {w: i for i, w in enumerate(words)}
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cos = float(unit[idx["king"]] @ unit[idx["queen"]])
    assert abs(cos - 0.784) < 0.001  # DATA.md's figure


def test_analogy_sections() -> None:
    sections = data.load("analogy-google")
    assert len(sections) == 14
    assert sum(len(q) for q in sections.values()) == 19_544
    assert sections["capital-common-countries"][0] == ("Athens", "Greece", "Baghdad", "Iraq")
    assert sum(name.startswith("gram") for name in sections) == 9


@pytest.mark.parametrize("name,n", [("wordsim353", 353), ("simlex999", 999)])
def test_similarity_pairs(name: str, n: int) -> None:
    pairs = data.load(name)
    assert len(pairs) == n
    w1, w2, score = pairs[0]
    assert isinstance(w1, str) and isinstance(w2, str) and isinstance(score, float)


def test_lee() -> None:
    docs, sims = data.load("lee")
    assert len(docs) == 50 and sims.shape == (50, 50)
    assert np.allclose(np.diag(sims), 1.0) and sims.min() >= 0 and sims.max() <= 1


def test_news() -> None:
    df = data.load("news")
    assert len(df) == 3_824
    assert list(df.columns) == ["article_id", "publish_date", "source", "title", "subtitle", "text"]
    # a few articles have no headline (60) or no body (36): loaders keep them, tasks filter; the
    # capstone's sealed articles keep their text, and their headlines read as empty outside its
    # scorer
    assert (df["title"].str.len() > 0).sum() == 3_764 - data.N_SEALED
    assert (df["text"].str.len() > 0).sum() == 3_788
    assert df["text"].str.split().str.len().sum() > 1_800_000
    assert df["source"].nunique() == 9


def test_digits() -> None:
    images, labels = data.load("digits")
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    assert set(labels.tolist()) == set(range(10))


def test_wiki_sample() -> None:
    articles = data.load("wiki-sample")
    assert len(articles) == 106
    assert 400_000 < sum(map(len, articles)) < 500_000
    assert all(t == t.lower() for t in articles[0][:50])


def _copy_entry(monkeypatch, tmp_path, name: str):
    """Point dataset ``name`` at a private copy of its file, with a private stamp cache."""
    monkeypatch.setenv("EMBEDLAB_DATA", str(tmp_path / "cache"))
    entry = data.REGISTRY[name]
    (source,) = entry.sources
    copy = tmp_path / source.path.name
    shutil.copy(source.path, copy)
    fake = data.Source(lambda: copy, source.sha256, source.how, package=source.package)
    monkeypatch.setitem(data.REGISTRY, name, data.Entry(
        entry.name, entry.description, entry.licence, (fake,), entry.loader))
    return copy


def _locked(package: str) -> str:
    """The pinned version, read from requirements.lock independently of embedlab.data."""
    lock = (data.LOCK_FILE).read_text(encoding="utf-8").splitlines()
    (line,) = [ln for ln in lock if ln.lower().startswith(package + "==")]
    return line.split("==")[1].strip()


def test_corrupt_file_names_dataset_and_a_working_fix(monkeypatch, tmp_path) -> None:
    from importlib import metadata

    copy = _copy_entry(monkeypatch, tmp_path, "wordsim353")
    assert len(data.load("wordsim353")) == 353  # the intact copy loads
    with open(copy, "a", encoding="utf-8") as fh:
        fh.write("tiger\tcat\t7.35\n")
    with pytest.raises(data.DataError, match=r"'wordsim353'.*corrupt") as err:
        data.load("wordsim353")
    # the remedy is a forced reinstall of exactly the locked gensim, which is what is installed
    version = _locked("gensim")
    assert version == metadata.version("gensim")
    assert f"-m pip install --force-reinstall --no-deps gensim=={version}`" in str(err.value)
    assert "make setup" not in str(err.value)


def test_missing_file_names_dataset_and_fix(monkeypatch, tmp_path) -> None:
    copy = _copy_entry(monkeypatch, tmp_path, "simlex999")
    copy.unlink()
    with pytest.raises(data.DataError, match=r"'simlex999'.*missing.*--force-reinstall "
                                             r"--no-deps gensim=="):
        data.load("simlex999")
    status = data.fetch(["simlex999"], verbose=False)
    assert "missing" in status["simlex999"]


def test_cache_dir_follows_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("EMBEDLAB_DATA", str(tmp_path / "here"))
    assert data.cache_dir() == tmp_path / "here" and (tmp_path / "here").is_dir()


def test_downloaded_file_remedy_is_fetch() -> None:
    (source,) = data.REGISTRY["news"].sources
    msg = data._remedy(data.REGISTRY["news"], source)
    assert "embedlab data fetch news" in msg and "pip install" not in msg


def test_rehash_skipped_only_when_size_mtime_and_inode_match(monkeypatch, tmp_path) -> None:
    import os

    copy = _copy_entry(monkeypatch, tmp_path, "wordsim353")
    calls = []
    real = data.sha256_of
    monkeypatch.setattr(data, "sha256_of", lambda p: calls.append(p) or real(p))
    data.paths("wordsim353")
    data.paths("wordsim353")
    assert len(calls) == 1                         # the stamp matched: no second hash
    # same size and same mtime but another inode (a file replaced in place): hashed again
    text = copy.read_bytes()
    st = copy.stat()
    bad = tmp_path / "bad"
    bad.write_bytes(text[:-2] + b"9\n" if text[-2:-1] != b"9" else text[:-2] + b"8\n")
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(bad, copy)
    assert copy.stat().st_size == st.st_size and copy.stat().st_mtime_ns == st.st_mtime_ns
    assert copy.stat().st_ino != st.st_ino
    with pytest.raises(data.DataError, match="corrupt"):
        data.paths("wordsim353")
    assert len(calls) == 2


def test_minilm_tokenizer_and_configs_are_checksummed() -> None:
    sources = data.REGISTRY["all-minilm-l6-v2"].sources
    files = {rel for s in sources for rel in data.MINILM_SHA256
             if s.path.as_posix().endswith("/" + rel)}
    for needed in ("model/model.safetensors", "model/tokenizer.json", "model/vocab.txt",
                   "model/tokenizer_config.json", "model/config.json",
                   "model/1_Pooling/config.json", "model/modules.json"):
        assert needed in files
    got = data.paths("all-minilm-l6-v2")
    assert len(got) == len(data.MINILM_SHA256) and all(p.is_file() for p in got)
