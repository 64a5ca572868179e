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
    # a few articles have no headline (60) or no body (36): loaders keep them, tasks filter
    assert (df["title"].str.len() > 0).sum() == 3_764
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
    fake = data.Source(lambda: copy, source.sha256, source.how)
    monkeypatch.setitem(data.REGISTRY, name, data.Entry(
        entry.name, entry.description, entry.licence, (fake,), entry.loader))
    return copy


def test_corrupt_file_names_dataset_and_fix(monkeypatch, tmp_path) -> None:
    copy = _copy_entry(monkeypatch, tmp_path, "wordsim353")
    assert len(data.load("wordsim353")) == 353  # the intact copy loads
    with open(copy, "a", encoding="utf-8") as fh:
        fh.write("tiger\tcat\t7.35\n")
    with pytest.raises(data.DataError, match=r"'wordsim353'.*corrupt.*embedlab data fetch"):
        data.load("wordsim353")


def test_missing_file_names_dataset_and_fix(monkeypatch, tmp_path) -> None:
    copy = _copy_entry(monkeypatch, tmp_path, "simlex999")
    copy.unlink()
    with pytest.raises(data.DataError, match=r"'simlex999'.*missing.*make setup"):
        data.load("simlex999")
    status = data.fetch(["simlex999"], verbose=False)
    assert "missing" in status["simlex999"]


def test_cache_dir_follows_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("EMBEDLAB_DATA", str(tmp_path / "here"))
    assert data.cache_dir() == tmp_path / "here" and (tmp_path / "here").is_dir()
