"""Text handling shared by the chapters: tokenisation and sentence splitting.

Tokenisation here is deliberately simple and transparent: lower-case, then runs of letters,
digits and inner apostrophes are tokens. That is close to what the GloVe and word2vec papers'
preprocessing did to news text, and it keeps every step inspectable.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens of ``text``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _TOKEN.findall(text.lower())


def split_sentences(text: str, min_chars: int = 1) -> list[str]:
    """Split running text into sentences at ., ! or ? followed by space and a capital or digit."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    out = []
    for para in text.splitlines():
        for s in _SENTENCE_END.split(para.strip()):
            s = s.strip()
            if len(s) >= min_chars:
                out.append(s)
    return out


def news_sentences(max_articles: int | None = None, titles: bool = True) -> list[list[str]]:
    """The news corpus (``embedlab.data.load("news")``) as tokenised sentences.

    Each article contributes its headline (when ``titles``) and the sentences of its text, in
    article order; empty sentences are dropped. ``max_articles`` keeps only the first articles,
    which is how the small profiles slice the corpus. About 91k sentences, 2.1M tokens in full.
    """
    if max_articles is not None and (not isinstance(max_articles, int) or max_articles < 1):
        raise ValueError(f"max_articles must be None or an int >= 1, got {max_articles!r}")
    from embedlab import data

    df = data.load("news")
    if max_articles is not None:
        df = df.iloc[:max_articles]
    out: list[list[str]] = []
    for title, body in zip(df["title"], df["text"], strict=True):
        if titles:
            toks = tokenize(title)
            if toks:
                out.append(toks)
        for sentence in split_sentences(body):
            toks = tokenize(sentence)
            if toks:
                out.append(toks)
    return out


def build_vocab(sentences, min_count: int = 5) -> tuple[list[str], list[int]]:
    """Words seen at least ``min_count`` times, most frequent first, with their counts.

    Ties keep the order of first appearance (a stable sort), the order gensim uses, so the two
    vocabularies line up row for row. ``sentences`` is a list of token lists.
    """
    from collections import Counter

    if isinstance(sentences, (str, bytes)) or not hasattr(sentences, "__iter__"):
        raise TypeError("sentences must be a list of token lists, got "
                        f"{type(sentences).__name__}")
    if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
        raise ValueError(f"min_count must be an int >= 1, got {min_count!r}")
    counts: Counter[str] = Counter()
    n_sentences = 0
    for sentence in sentences:
        if isinstance(sentence, str):
            raise TypeError("sentences must be a list of token lists; got a str where a list of "
                            "tokens was expected (did you pass one sentence?)")
        counts.update(sentence)
        n_sentences += 1
    if n_sentences == 0 or not counts:
        raise ValueError("sentences is empty: the corpus needs at least one token")
    kept = [(w, c) for w, c in counts.items() if c >= min_count]
    if not kept:
        raise ValueError(f"min_count={min_count} removes every word (the most frequent word "
                         f"occurs {max(counts.values())} times); lower min_count")
    kept.sort(key=lambda wc: wc[1], reverse=True)
    return [w for w, _ in kept], [c for _, c in kept]
