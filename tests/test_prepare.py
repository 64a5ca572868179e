"""The preparation step: how many sentences a profile needs, resumable chunks, the report line."""

import numpy as np

from embedlab import bench, prepare
from embedlab.profiles import SIZES


def test_needed_sentences_cover_every_chapter_that_reads_the_news_vectors():
    for profile in ("ci", "standard", "full"):
        need = prepare.news_sentences_needed(profile)
        for chapter, (base, query) in prepare.NEWS_USERS.items():
            s = SIZES[chapter][profile]
            if "datasets" in s and "minilm-news" not in s["datasets"]:
                continue
            assert need >= s[base] + s[query], (profile, chapter)
    assert prepare.news_sentences_needed("ci") < prepare.news_sentences_needed("standard")


def test_prepare_embeds_only_missing_chunks_and_records_its_time(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDLAB_DATA", str(tmp_path))
    sentences = [f"sentence number {i}" for i in range(9)]
    monkeypatch.setattr(bench, "news_sentences", lambda: sentences)
    monkeypatch.setattr(bench, "CHUNK", 4)
    monkeypatch.setattr(prepare, "news_sentences_needed", lambda profile: 9)
    calls = []

    def fake_embed(texts, model=None, show_progress_bar=True):
        calls.append(list(texts))
        import hashlib

        from embedlab.data import cache_dir

        h = hashlib.sha256()
        for t in texts:
            h.update(t.encode("utf-8"))
            h.update(b"\0")
        path = cache_dir() / "derived" / f"minilm-{h.hexdigest()[:16]}-{len(texts)}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.zeros((len(texts), 3), np.float32))

    import embedlab.encoders as E

    monkeypatch.setattr(E, "embed_cached", fake_embed)
    monkeypatch.setattr(E, "load_minilm", lambda: object())
    first = prepare.prepare("ci", quiet=True)
    assert first["chunks"] == 3 and first["embedded_chunks"] == 3 and len(calls) == 3
    assert calls[2] == sentences[8:]
    again = prepare.prepare("ci", quiet=True)  # resumable: nothing left to embed
    assert again["embedded_chunks"] == 0 and len(calls) == 3
    assert again["first_run_seconds"] == first["seconds"]
    assert prepare.read_record("ci") == again
    line = "\n".join(prepare.report_lines(again))
    assert "## Preparation" in line and "all 3 chunks were cached" in line
