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


def chunk(text: str, size: int = 128, overlap: int = 0, method: str = "fixed") -> list[str]:
    """Split a document into chunks of at most ``size`` words, so each fits an encoder's limit.

    Encoders read a bounded number of word pieces (all-MiniLM-L6-v2: 256) and silently drop the
    rest, so facts late in a long document are never embedded. Chunking embeds every part:

    * ``method="fixed"``: windows of ``size`` whitespace-separated words, each starting
      ``size - overlap`` words after the previous one (``overlap=0``: disjoint windows;
      ``overlap > 0``: a fact cut at a boundary is whole in the next window);
    * ``method="sentences"``: whole sentences (``split_sentences``) packed greedily up to
      ``size`` words; the next chunk starts with the previous chunk's last sentences totalling
      at most ``overlap`` words. A single sentence longer than ``size`` words is cut into fixed
      windows rather than truncated.

    Words keep their punctuation and case; chunks are joined with single spaces. Raises
    ``ValueError`` for an empty document, ``size < 1``, ``overlap < 0`` or ``overlap >= size``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    for name, value in (("size", size), ("overlap", overlap)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if size < 1:
        raise ValueError(f"size must be >= 1 word, got {size}")
    if overlap < 0 or overlap >= size:
        raise ValueError(f"overlap must be in [0, size={size}) words, got {overlap}")
    if method not in ("fixed", "sentences"):
        raise ValueError(f"method must be 'fixed' or 'sentences', got {method!r}")
    words = text.split()
    if not words:
        raise ValueError("text is empty: a document needs at least one word to chunk")

    def windows(ws: list[str]) -> list[str]:
        step = size - overlap
        out = []
        for start in range(0, len(ws), step):
            out.append(" ".join(ws[start:start + size]))
            if start + size >= len(ws):
                break
        return out

    if method == "fixed":
        return windows(words)
    chunks: list[str] = []
    current: list[list[str]] = []          # the sentences (as word lists) of the open chunk
    n_current = 0
    for sentence in split_sentences(text):
        sw = sentence.split()
        if len(sw) > size:                 # too long for any chunk: close, then cut it up
            if current:
                chunks.append(" ".join(w for s in current for w in s))
            chunks.extend(windows(sw))
            current, n_current = [], 0
            continue
        if current and n_current + len(sw) > size:
            chunks.append(" ".join(w for s in current for w in s))
            carry: list[list[str]] = []
            n_carry = 0
            for s in reversed(current):    # trailing sentences that fit in the overlap
                if n_carry + len(s) > overlap or n_carry + len(s) + len(sw) > size:
                    break
                carry.insert(0, s)
                n_carry += len(s)
            current, n_current = carry, n_carry
        current.append(sw)
        n_current += len(sw)
    if current:
        chunks.append(" ".join(w for s in current for w in s))
    return chunks


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
