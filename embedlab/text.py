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
