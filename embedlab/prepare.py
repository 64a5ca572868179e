"""The course's shared preparation: what several chapters need, computed once, before any of them.

Chapters 08 to 12 search the same MiniLM embeddings of the news sentences
(``bench.load_dataset("minilm-news", ...)``). Embedding them on a 2-core CPU takes minutes; done
inside the first chapter that needs them, it would make that chapter wait for every later one.
So ``embedlab data prepare`` (run by ``make course`` and ``make lab`` before the first notebook)
embeds as many sentences as the profile's chapters use, with a progress bar, into the same cache
the chapters read (``$EMBEDLAB_DATA/derived``, chunks of ``bench.CHUNK`` sentences).

It is resumable: each chunk is written when it is done, so an interrupted run continues at the
first missing chunk, and a finished one returns in seconds. Its time is written to
``$EMBEDLAB_DATA/prepared-<profile>.json`` and shown in the course report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from embedlab.profiles import SIZES, check_profile

# the chapters that search MiniLM news vectors, and the keys of their base and query sizes
NEWS_USERS = {"08": ("minilm_base", "n_query"), "09": ("minilm_base", "n_query"),
              "10": ("news_base", "n_query"), "11": ("news_base", "n_query"),
              "12": ("n_base", "n_query")}


def news_sentences_needed(profile: str) -> int:
    """How many news sentences the profile's chapters embed: the largest base plus query set of
    the chapters in ``NEWS_USERS`` (chapters without the key are skipped)."""
    check_profile(profile)
    need = 0
    for chapter, (base, query) in NEWS_USERS.items():
        sizes = SIZES.get(chapter, {}).get(profile, {})
        if base in sizes and query in sizes:
            if "datasets" in sizes and "minilm-news" not in sizes["datasets"]:
                continue
            need = max(need, int(sizes[base]) + int(sizes[query]))
    return need


def record_path(profile: str) -> Path:
    from embedlab.data import cache_dir

    return cache_dir() / f"prepared-{check_profile(profile)}.json"


def prepare(profile: str = "standard", quiet: bool = False) -> dict[str, Any]:
    """Embed the news sentences the profile needs (cached chunks are reused); returns and
    stores ``{"profile", "sentences", "chunks", "embedded_chunks", "seconds"}``: this run's wall
    time and how many chunks it had to embed (0 when everything was cached)."""
    from tqdm.auto import tqdm

    from embedlab import bench
    from embedlab.encoders import embed_cached, load_minilm

    t0 = time.perf_counter()
    n = news_sentences_needed(profile)
    sentences = bench.news_sentences()
    n = min(n, len(sentences))
    chunks = [sentences[a:a + bench.CHUNK] for a in range(0, n, bench.CHUNK)]
    missing = [i for i, c in enumerate(chunks) if not bench.embedding_cached(c)]
    model = load_minilm() if missing else None
    bar = tqdm(total=len(chunks), unit="chunk", disable=quiet or None,
               desc=f"prepare: MiniLM embeddings of {n:,} news sentences")
    bar.update(len(chunks) - len(missing))
    for i in missing:
        embed_cached(chunks[i], model=model, show_progress_bar=False)
        bar.update(1)
    bar.close()
    out = {"profile": profile, "sentences": n, "chunks": len(chunks),
           "embedded_chunks": len(missing), "seconds": round(time.perf_counter() - t0, 1)}
    path = record_path(profile)
    previous = read_record(profile)
    if missing:
        out["first_run_seconds"] = out["seconds"]
    else:  # keep the time of the run that did the work, when this cache saw it
        out["first_run_seconds"] = (previous or {}).get("first_run_seconds")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return out


def read_record(profile: str) -> dict[str, Any] | None:
    """The stored record of the last ``prepare(profile)``, or None."""
    path = record_path(profile)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def report_lines(rec: dict[str, Any]) -> list[str]:
    """The course report's lines about the preparation step."""
    if rec["embedded_chunks"]:
        done = f"embedded {rec['embedded_chunks']} of {rec['chunks']} chunks"
    elif rec.get("first_run_seconds") is not None:
        done = (f"all {rec['chunks']} chunks were cached; the run that embedded them took "
                f"{rec['first_run_seconds']:.0f} s")
    else:
        done = f"all {rec['chunks']} chunks were already cached"
    return ["## Preparation", "",
            f"`embedlab data prepare --profile {rec['profile']}`: MiniLM embeddings of "
            f"{rec['sentences']:,} news sentences, {rec['seconds']:.1f} s ({done}).", ""]
